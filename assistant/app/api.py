"""A door for programs: an OpenAI-compatible chat API over the collection (``assistant serve
--api``), so chat clients and scripts written for ``openai`` ask the assistant and get its
checked answer with the citations as data.

    POST /v1/chat/completions   the last user message is the question, earlier turns the
                                history; ``stream`` true or false
    GET  /v1/models             one model: this collection, answered by this assistant

The message's ``content`` is the checked answer with its [n] markers, then a reference list.
The citations also travel as data: ``message.citations`` (each :meth:`Citation.to_dict`, as
``Assistant.ask`` returns them), ``answerable``, ``evidence_level`` and ``quoted`` on the
message, and on the last chunk's ``delta`` when streaming. While streaming, the model's draft
comes as ``delta.reasoning_content`` (what Open WebUI and LibreChat show as the model's
thinking) and the checked answer as ``delta.content`` in the last chunk, so the text a client
keeps is the checked one. Optional request fields: ``top_k``, ``filters`` (``KEY=VALUE``
strings, as ``assistant ask --filter``), ``date_from``, ``date_to``, ``source``.

The same binding rules as the browser chat: 127.0.0.1 by default, another address only with a
bearer key (:mod:`assistant.app.access`). With the browser chat the API shares its port
(:func:`serve_api` mounts the chat at ``/``): one address, one process, one model.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant.answer.retrieval import parse_filters
from assistant.app.access import LOCAL_HOSTS, check_key_exposure, key_matches
from assistant.app.runs import END, Gate, Run
from assistant.errors import (
    AssistantError,
    ConfigError,
    IndexMissingError,
    IndexUnavailableError,
    LLMUnavailableError,
    QuestionError,
)
from assistant.types import Answer, Citation

if TYPE_CHECKING:
    from assistant.answer.engine import Assistant

__all__ = ["build_api", "serve_api", "served", "ChatRequest", "inert_markdown", "DEFAULT_WAITING"]

log = logging.getLogger(__name__)

DEFAULT_WAITING = 4
"""Questions that may wait for the model beyond those it answers at once; more get 429."""
REFERENCES = "\n\n**References**\n\n"
"""Where the reference list starts in ``content`` (and where a follow-up's history ends)."""
DISCONNECT_POLL_S = 0.5


# --------------------------------------------------------------------------------------------
# the request
# --------------------------------------------------------------------------------------------


class ChatMessage(BaseModel):
    """One message; ``citations`` is ours, sent back by a client that keeps it."""

    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None
    citations: list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    """``POST /v1/chat/completions``: OpenAI's fields (others are accepted and ignored) plus
    ``top_k`` and the filters."""

    model_config = ConfigDict(extra="allow")
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    n: int | None = Field(default=None, ge=1, le=1)
    stream_options: dict[str, Any] | None = None
    top_k: int | None = Field(default=None, ge=1, le=50)
    filters: list[str] | None = None
    date_from: str | None = None
    date_to: str | None = None
    source: str | None = None


class ApiError(Exception):
    """An error answered in OpenAI's shape: ``{"error": {message, type, param, code}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type = status, message, type
        self.param, self.code, self.headers = param, code, headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def _from_assistant_error(exc: Exception) -> ApiError:
    """Our errors as the HTTP status a client expects."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, QuestionError):
        return ApiError(400, str(exc), param="messages", code="invalid_question")
    if isinstance(exc, (IndexMissingError, IndexUnavailableError, LLMUnavailableError)):
        return ApiError(503, str(exc), type="server_error", code="unavailable")
    if isinstance(exc, ConfigError):
        return ApiError(500, str(exc), type="server_error", code="configuration")
    if isinstance(exc, AssistantError):
        return ApiError(500, str(exc), type="server_error", code="assistant_error")
    log.error("unexpected error while answering", exc_info=exc)
    return ApiError(500, f"internal error: {type(exc).__name__}", type="server_error")


def _text(message: ChatMessage) -> str:
    """A message's text (a string, or the text parts of a content list)."""
    if isinstance(message.content, str):
        return message.content
    parts = message.content or []
    return "".join(str(p.get("text", "")) for p in parts if p.get("type") in ("text", None))


def _checked_part(content: str) -> str:
    """An earlier answer without its reference list: what the follow-up reads."""
    return content.split(REFERENCES, 1)[0].strip()


def _turn_answer(question: str, text: str, citations: list[dict[str, Any]]) -> Answer | None:
    """An earlier turn whose client sent our citations back, as an Answer (its papers are
    then favoured by the follow-up's retrieval, as in the browser chat)."""
    cited = []
    for c in citations:
        if isinstance(c, dict) and c.get("paper_id"):
            number = c.get("number")
            cited.append(
                Citation(
                    number=number if isinstance(number, int) else 0,
                    paper_id=str(c["paper_id"]),
                    title=str(c.get("title", "")),
                )
            )
    return Answer(question=question, text=text, citations=cited) if cited else None


def question_and_history(messages: list[ChatMessage]) -> tuple[str, list[Any]]:
    """The question (the last message, a user's) and the earlier turns as the history that
    ``Assistant.stream`` takes: chat messages, or (question, Answer) pairs with citations."""
    turns = [m for m in messages if m.role in ("user", "assistant")]
    if not turns or turns[-1].role != "user":
        raise ApiError(400, "the last message must be the user's question", param="messages")
    question = _text(turns[-1]).strip()
    if not question:
        raise ApiError(
            400, "the question is empty: ask something about the papers", param="messages"
        )
    history: list[Any] = []
    pending: str | None = None
    for m in turns[:-1]:
        if m.role == "user":
            if pending is not None:
                history.append({"role": "user", "content": pending})
            pending = _text(m)
            continue
        if pending is None:
            continue
        text = _checked_part(_text(m))
        answer = _turn_answer(pending, text, m.citations or [])
        if answer is not None:
            history.append((pending, answer))
        else:
            history += [
                {"role": "user", "content": pending},
                {"role": "assistant", "content": text},
            ]
        pending = None
    return question, history


def request_filters(req: ChatRequest) -> list[str]:
    """The request's filters as ``KEY=VALUE`` strings (checked: a bad one is a 400)."""
    out = list(req.filters or [])
    if req.date_from and req.date_from.strip():
        out.append(f"date>={req.date_from.strip()}")
    if req.date_to and req.date_to.strip():
        out.append(f"date<={req.date_to.strip()}")
    if req.source and req.source.strip():
        out.append(f"source={req.source.strip()}")
    try:
        parse_filters(out)
    except ConfigError as exc:
        raise ApiError(400, str(exc), param="filters", code="invalid_filter") from None
    return out


# --------------------------------------------------------------------------------------------
# the answer as OpenAI's objects
# --------------------------------------------------------------------------------------------

_MARKUP = re.compile(r"!\[|\]\(|<")


def inert_markdown(text: str) -> str:
    """``text`` with the Markdown that a client would fetch or follow made literal: an image
    ``![..](..)``, a link ``[..](..)``, an HTML tag or autolink ``<..>`` (backslash escapes:
    a Markdown client shows the characters, a plain one shows a backslash before them)."""
    return _MARKUP.sub(
        lambda m: "\\<" if m.group() == "<" else m.group()[0] + "\\" + m.group()[1], text
    )


class _InertStream:
    """:func:`inert_markdown` over a stream of pieces: a piece that ends in ``!`` or ``]``
    keeps that character until the next piece says whether markup starts there."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, piece: str) -> str:
        text = self._held + piece
        self._held = text[-1] if text and text[-1] in "!]" else ""
        return inert_markdown(text[: len(text) - len(self._held)])

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held


def content_of(answer: Answer) -> str:
    """The message content: the checked answer, then the numbered references with their
    supporting sentences (our links: the citations' own http(s) URLs)."""
    lines = []
    for c in answer.citations:
        title = inert_markdown(c.title).replace("[", "\\[").replace("]", "\\]")
        url = c.url if c.url.startswith(("http://", "https://")) else ""
        lines.append(f"- [{c.number}] [{title}]({url})" if url else f"- [{c.number}] {title}")
        for quote in c.evidence or ([c.snippet] if c.snippet else []):
            lines.append(f"  > “{inert_markdown(quote)}”")
    text = inert_markdown(answer.text)
    return text + REFERENCES + "\n".join(lines) if lines else text


def answer_fields(answer: Answer) -> dict[str, Any]:
    """The structured part, on the message and on the last stream chunk."""
    return {
        "citations": [c.to_dict() for c in answer.citations],
        "answerable": answer.answerable,
        "evidence_level": answer.evidence_level,
        "quoted": answer.quoted,
        "timings": answer.timings,
    }


def _usage(answer: Answer, pieces: int) -> dict[str, int]:
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": pieces,
        "total_tokens": answer.prompt_tokens + pieces,
    }


def _completion(answer: Answer, model: str, pieces: int) -> dict[str, Any]:
    message = {"role": "assistant", "content": content_of(answer), **answer_fields(answer)}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
        "usage": _usage(answer, pieces),
    }


class _Chunks:
    """The ``chat.completion.chunk`` objects of one streamed answer, as SSE lines."""

    def __init__(self, model: str) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model
        self.first = True

    def event(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        if self.first:
            delta = {"role": "assistant", **delta}
            self.first = False
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            **extra,
        }
        return sse(chunk)


def sse(obj: Any) -> bytes:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n".encode()


# --------------------------------------------------------------------------------------------
# the app
# --------------------------------------------------------------------------------------------


class _Door:
    """What the routes share: the assistant, the gate, the model id, the key."""

    def __init__(
        self, assistant: Assistant, gate: Gate, model_id: str, api_key: str | None
    ) -> None:
        self.assistant, self.gate, self.model_id, self.api_key = assistant, gate, model_id, api_key
        self.created = int(time.time())

    def check_key(self, request: Request) -> None:
        if self.api_key and not key_matches(request.headers.get("authorization"), self.api_key):
            raise ApiError(
                401,
                "missing or wrong API key: send the header 'Authorization: Bearer <key>'",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def model_card(self) -> dict[str, Any]:
        a = self.assistant
        return {
            "id": self.model_id,
            "object": "model",
            "created": self.created,
            "owned_by": "paper-assistant",
            "description": f"answers from the collection {a.settings.collection!r} "
            f"({a.settings.describe_index()}), checked citations",
        }

    def check_model(self, model: str | None) -> None:
        if model and model != self.model_id:
            raise ApiError(
                404,
                f"the model {model!r} does not exist here; this server answers as "
                f"{self.model_id!r} (GET /v1/models)",
                param="model",
                code="model_not_found",
            )

    def start(self, req: ChatRequest) -> Run:
        """Check the request, admit it (or 429), start its run."""
        self.check_model(req.model)
        question, history = question_and_history(req.messages)
        filters = request_filters(req)
        if not self.gate.admit():
            wait = self.gate.retry_after()
            raise ApiError(
                429,
                f"the assistant is busy ({self.gate.limit} questions running or waiting); "
                f"try again in {wait} s",
                type="rate_limit_error",
                code="busy",
                headers={"Retry-After": str(wait)},
            )
        kwargs = {"top_k": req.top_k, "filters": filters or None, "history": history or None}
        return Run(self.assistant, self.gate, question, kwargs, asyncio.get_running_loop()).start()


def build_api(
    assistant: Assistant,
    *,
    api_key: str | None = None,
    waiting: int = DEFAULT_WAITING,
    running: int | None = None,
    model_id: str | None = None,
) -> FastAPI:
    """The API for ``assistant`` as a FastAPI app (built, not served; see :func:`serve_api`).

    ``api_key``: required of every request when set (``Authorization: Bearer``). ``running``
    questions are answered at once (default: the model's ``max_concurrency``), ``waiting``
    more wait; beyond that a client gets 429 with ``Retry-After``. ``model_id``: the one model
    listed (default: the collection's name).
    """
    if running is None:
        running = assistant.llm.max_concurrency
    door = _Door(
        assistant, Gate(running, waiting), model_id or assistant.settings.collection, api_key
    )
    app = FastAPI(title="paper-assistant API", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.door = door
    _add_error_handlers(app)

    @app.get("/v1/models")
    async def list_models(request: Request) -> dict[str, Any]:
        door.check_key(request)
        return {"object": "list", "data": [door.model_card()]}

    @app.get("/v1/models/{model}")
    async def get_model(model: str, request: Request) -> dict[str, Any]:
        door.check_key(request)
        door.check_model(model)
        return door.model_card()

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(req: ChatRequest, request: Request) -> Any:
        door.check_key(request)
        model = req.model or door.model_id
        run = door.start(req)
        if req.stream:
            include_usage = bool((req.stream_options or {}).get("include_usage"))
            return await _stream_response(run, request, model, include_usage)
        return await _whole_response(run, request, model)

    @app.api_route("/v1/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def unknown(rest: str) -> None:
        raise ApiError(
            404,
            f"no route /v1/{rest} here: POST /v1/chat/completions, GET /v1/models",
            code="not_found",
        )

    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        param = ".".join(loc) or None
        msg = first.get("msg", "invalid request")
        where = f"{param}: " if param else ""
        return ApiError(400, f"{where}{msg}", param=param).response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return ApiError(exc.status_code, str(exc.detail), code=code).response()


async def _next(run: Run, request: Request) -> Any:
    """The run's next item, before a response has started; cancels the run when the client
    has gone away meanwhile (once streaming, Starlette notices that itself)."""
    while True:
        try:
            return await asyncio.wait_for(run.queue.get(), DISCONNECT_POLL_S)
        except asyncio.TimeoutError:
            if await request.is_disconnected():
                run.cancel()
                raise ApiError(400, "the client closed the request", code="client_closed") from None


async def _whole_response(run: Run, request: Request, model: str) -> JSONResponse:
    answer: Answer | None = None
    try:
        while (item := await _next(run, request)) is not END:
            if isinstance(item, Exception):
                raise _from_assistant_error(item)
            if isinstance(item, Answer):
                answer = item
    finally:
        run.cancel()  # a no-op once the run has ended
    if answer is None:
        raise ApiError(500, "the answer was cut short", type="server_error")
    return JSONResponse(_completion(answer, model, run.pieces))


async def _stream_response(
    run: Run, request: Request, model: str, include_usage: bool
) -> StreamingResponse:
    """Server-sent events. The first item is awaited before answering, so that an error in
    preparing the answer (a bad question) is an HTTP error, not an event."""
    try:
        first = await _next(run, request)
    except BaseException:
        run.cancel()
        raise
    if isinstance(first, Exception):
        run.cancel()
        raise _from_assistant_error(first)
    return StreamingResponse(
        _events(run, request, first, _Chunks(model), include_usage),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(
    run: Run, request: Request, item: Any, chunks: _Chunks, include_usage: bool
) -> AsyncIterator[bytes]:
    guard = _InertStream()
    try:
        while item is not END:
            if isinstance(item, str):
                if text := guard.feed(item):
                    yield chunks.event({"reasoning_content": text})
            elif isinstance(item, Answer):
                if held := guard.flush():
                    yield chunks.event({"reasoning_content": held})
                delta = {"content": content_of(item), **answer_fields(item)}
                yield chunks.event(delta, "stop")
                if include_usage:
                    yield sse({**_usage_chunk(chunks), "usage": _usage(item, run.pieces)})
            elif isinstance(item, Exception):
                yield sse(_from_assistant_error(item).body())
                return
            item = await run.queue.get()
        yield b"data: [DONE]\n\n"
    finally:
        run.cancel()  # the client went away: stop the model at its next piece


def _usage_chunk(chunks: _Chunks) -> dict[str, Any]:
    return {
        "id": chunks.id,
        "object": "chat.completion.chunk",
        "created": chunks.created,
        "model": chunks.model,
        "choices": [],
    }


# --------------------------------------------------------------------------------------------
# serving
# --------------------------------------------------------------------------------------------


def serve_api(
    assistant: Assistant,
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    api_key: str | None = None,
    ui: bool = True,
    ui_auth: tuple[str, str] | None = None,
    waiting: int = DEFAULT_WAITING,
) -> None:
    """Serve the API (and, with ``ui``, the browser chat on the same port) until interrupted.

    A host other than 127.0.0.1 needs ``api_key`` (and ``ui_auth`` for the chat), else
    :class:`ConfigError` before anything loads.
    """
    import uvicorn

    check_key_exposure(host, api_key)
    if ui:
        from assistant.app.ui import _check_exposure

        _check_exposure(host, ui_auth, False)
    assistant.warm_up()
    app = build_api(assistant, api_key=api_key, waiting=waiting)
    if ui:
        mount_ui(app, assistant, auth=ui_auth)
    where = "the chat at /, the API" if ui else "the API"
    log.info("serving %s at http://%s:%d/v1", where, host, port)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def mount_ui(app: FastAPI, assistant: Assistant, *, auth: tuple[str, str] | None = None) -> None:
    """Mount the browser chat at ``/`` of ``app``, set up as :func:`assistant.app.ui.launch`
    sets it (theme, style, no analytics, no Gradio MCP); the API's routes come first."""
    import gradio as gr

    from assistant.app.ui import _css, _theme, build_app

    gr.mount_gradio_app(
        app,
        build_app(assistant),
        path="/",
        auth=auth,
        show_error=False,
        ssr_mode=False,
        pwa=False,
        mcp_server=False,
        enable_monitoring=False,
        footer_links=["settings"],
        theme=_theme(),
        css=_css(),
    )


@contextlib.contextmanager
def served(app: Any, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a background thread; yields its base URL
    (``http://127.0.0.1:PORT``). ``port=0`` picks a free one. For tests and benchmarks."""
    import uvicorn

    if host not in LOCAL_HOSTS:
        raise ConfigError("served() is for tests and benchmarks: bind a loopback address")
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise ConfigError(f"the server did not start on {host}:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
