"""The API door's wire format: OpenAI chat requests in (the question, the history, our
optional fields), the assistant's answer out (a chat completion or its stream chunks, with the
citations as data), and errors in OpenAI's shape.

The content a client shows is the checked answer with its [n] markers, then the reference
list after :data:`REFERENCES`; Markdown in the model's text that a client would fetch or
follow (an image, a link, HTML) is made literal (:func:`inert_markdown`): the text came from a
model that read abstracts we do not control. The only links are the citations' own http(s)
URLs. Used by :mod:`assistant.app.api`.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from assistant.answer.retrieval import parse_filters
from assistant.errors import (
    AssistantError,
    ConfigError,
    IndexMissingError,
    IndexUnavailableError,
    LLMUnavailableError,
    QuestionError,
)
from assistant.types import Answer, Citation

__all__ = [
    "REFERENCES",
    "ApiError",
    "ChatMessage",
    "ChatRequest",
    "Chunks",
    "answer_fields",
    "completion",
    "content_of",
    "from_assistant_error",
    "inert_markdown",
    "InertStream",
    "question_and_history",
    "request_filters",
    "sse",
    "usage",
    "usage_chunk",
]

log = logging.getLogger(__name__)

REFERENCES = "\n\n**References**\n\n"
"""Where the reference list starts in ``content`` (and where a follow-up's history ends)."""

# --- the request ---------------------------------------------------------------------------


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


def from_assistant_error(exc: Exception) -> ApiError:
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


# --- the answer as OpenAI's objects ---------------------------------------------------------

_MARKUP = re.compile(r"!\[|\]\(|<")


def inert_markdown(text: str) -> str:
    """``text`` with the Markdown that a client would fetch or follow made literal: an image
    ``![..](..)``, a link ``[..](..)``, an HTML tag or autolink ``<..>`` (backslash escapes:
    a Markdown client shows the characters, a plain one shows a backslash before them)."""
    return _MARKUP.sub(
        lambda m: "\\<" if m.group() == "<" else m.group()[0] + "\\" + m.group()[1], text
    )


class InertStream:
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


def usage(answer: Answer, pieces: int) -> dict[str, int]:
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": pieces,
        "total_tokens": answer.prompt_tokens + pieces,
    }


def completion(answer: Answer, model: str, pieces: int) -> dict[str, Any]:
    message = {"role": "assistant", "content": content_of(answer), **answer_fields(answer)}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
        "usage": usage(answer, pieces),
    }


class Chunks:
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


def usage_chunk(chunks: Chunks) -> dict[str, Any]:
    return {
        "id": chunks.id,
        "object": "chat.completion.chunk",
        "created": chunks.created,
        "model": chunks.model,
        "choices": [],
    }
