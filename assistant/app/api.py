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
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant.app.access import LOCAL_HOSTS, BearerGuard, check_key_exposure
from assistant.app.openai_format import (
    ApiError,
    ChatRequest,
    Chunks,
    InertStream,
    answer_fields,
    completion,
    content_of,
    from_assistant_error,
    question_and_history,
    request_filters,
    sse,
    usage,
    usage_chunk,
)
from assistant.app.runs import END, Gate, Run
from assistant.errors import ConfigError
from assistant.types import Answer

if TYPE_CHECKING:
    from assistant.answer.engine import Assistant

__all__ = ["build_api", "serve_api", "mount_ui", "served", "DEFAULT_WAITING"]

log = logging.getLogger(__name__)

DEFAULT_WAITING = 4
"""Questions that may wait for the model beyond those it answers at once; more get 429."""
DISCONNECT_POLL_S = 0.5


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
    if api_key:  # before the body is read: a wrong key learns nothing about the request
        unauthorized = ApiError(
            401,
            "missing or wrong API key: send the header 'Authorization: Bearer <key>'",
            code="invalid_api_key",
        )
        body = json.dumps(unauthorized.body()).encode()
        app.add_middleware(BearerGuard, api_key=api_key, prefix="/v1", body=body)

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [door.model_card()]}

    @app.get("/v1/models/{model}")
    async def get_model(model: str) -> dict[str, Any]:
        door.check_model(model)
        return door.model_card()

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(req: ChatRequest, request: Request) -> Any:
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
                raise from_assistant_error(item)
            if isinstance(item, Answer):
                answer = item
    finally:
        run.cancel()  # a no-op once the run has ended
    if answer is None:
        raise ApiError(500, "the answer was cut short", type="server_error")
    return JSONResponse(completion(answer, model, run.pieces))


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
        raise from_assistant_error(first)
    return StreamingResponse(
        _events(run, first, Chunks(model), include_usage),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(run: Run, item: Any, chunks: Chunks, include_usage: bool) -> AsyncIterator[bytes]:
    guard = InertStream()
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
                    yield sse({**usage_chunk(chunks), "usage": usage(item, run.pieces)})
            elif isinstance(item, Exception):
                yield sse(from_assistant_error(item).body())
                return
            item = await run.queue.get()
        yield b"data: [DONE]\n\n"
    finally:
        run.cancel()  # the client went away: stop the model at its next piece


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
