"""The model, server backend: any OpenAI-compatible chat server (OpenAI, vLLM, Ollama, llama.cpp).

Reached with the ``openai`` package; errors become :class:`~assistant.errors.LLMError` or
:class:`~assistant.errors.LLMUnavailableError` with the server's own message and a remedy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from assistant.errors import (
    LLMError,
    LLMUnavailableError,
    QuestionError,
)
from assistant.llm.base import ChatModel, Messages
from assistant.safety import redact_url
from assistant.tokens import encoding_for_model

if TYPE_CHECKING:
    import openai

__all__ = ["OpenAIChatModel"]


# --------------------------------------------------------------------------------------------
# OpenAI-compatible server
# --------------------------------------------------------------------------------------------


class OpenAIChatModel(ChatModel):
    """A model behind an OpenAI-compatible ``/v1/chat/completions`` endpoint.

    The ``openai`` client retries connection errors, 408/409/429 and 5xx answers
    ``max_retries`` times with backoff; what still fails is raised as
    :class:`LLMUnavailableError` (cannot reach, timed out, overloaded) or :class:`LLMError`.
    """

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        model: str,
        context_window: int = 8192,
        timeout: float = 120,
        max_retries: int = 2,
        max_concurrency: int = 4,
    ) -> None:
        import openai

        # An explicit base URL, so the client never falls back to reading OPENAI_BASE_URL.
        self.base_url = (base_url or "https://api.openai.com/v1").rstrip("/")
        self.model = model
        self.timeout = timeout
        self.context_window = context_window
        self.max_concurrency = max_concurrency
        self.name = f"openai:{model}@{redact_url(self.base_url)}"  # shown in every answer
        self.client = openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key or "not-needed",
            timeout=timeout,
            max_retries=max_retries,
        )

    def stream(
        self,
        messages: Messages,
        *,
        max_tokens: int,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        import openai

        extra: dict[str, Any] = {"stop": stop} if stop else {}
        try:
            chunks = self.client.chat.completions.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]
                max_tokens=max_tokens,
                temperature=temperature,
                stream=True,
                **extra,
            )
        except openai.OpenAIError as exc:
            raise self._map_error(exc) from exc
        try:
            for chunk in chunks:
                if chunk.choices and (piece := chunk.choices[0].delta.content):
                    yield piece
        except openai.OpenAIError as exc:
            raise self._map_error(exc, mid_stream=True) from exc
        finally:
            chunks.close()

    def count_tokens(self, text: str) -> int:
        return len(encoding_for_model(self.model).encode(text, disallowed_special=()))

    def list_models(self) -> list[str]:
        """Model ids the server says it serves (raises the mapped error if it cannot)."""
        import openai

        try:
            return sorted(m.id for m in self.client.models.list())
        except openai.OpenAIError as exc:
            raise self._map_error(exc, probe=False) from exc

    def _map_error(
        self, exc: Exception, *, probe: bool = True, mid_stream: bool = False
    ) -> Exception:
        import openai

        where = f"the LLM server at {redact_url(self.base_url)} (model {self.model!r})"
        if isinstance(exc, openai.APITimeoutError):
            return LLMUnavailableError(
                f"{where} did not answer within {self.timeout:g} s; check that it is running "
                "and not overloaded, or raise ASSISTANT_REQUEST_TIMEOUT"
            )
        if mid_stream and isinstance(exc, openai.APIConnectionError):
            return LLMUnavailableError(
                f"the connection to {where} broke in the middle of the reply "
                f"({str(exc).rstrip('.')}); check the server's log (did it crash or restart?) "
                "and ask again"
            )
        if isinstance(exc, openai.APIConnectionError):
            return LLMUnavailableError(
                f"cannot connect to {where} ({str(exc).rstrip('.')}). Check that the server "
                "is running and that ASSISTANT_OPENAI_BASE_URL is right (it usually ends in "
                "/v1), or unset it to use the local model"
            )
        if isinstance(exc, openai.APIStatusError):
            return self._map_status(exc, where, probe)
        when = " in the middle of the reply" if mid_stream else ""
        return LLMError(f"{where} failed{when}: {type(exc).__name__}: {exc}")

    def _map_status(self, exc: openai.APIStatusError, where: str, probe: bool) -> Exception:
        status = exc.status_code
        detail = _error_detail(exc)
        if status == 404:
            served = self._served_models() if probe else None
            if served:
                return LLMError(
                    f"{where} answered 404: the model name {self.model!r} is wrong, the server "
                    f"serves {', '.join(served)}; set ASSISTANT_OPENAI_MODEL to one of them "
                    f"({detail})"
                )
            return LLMError(
                f"{where} answered 404 Not Found ({detail}); check ASSISTANT_OPENAI_MODEL and "
                "that ASSISTANT_OPENAI_BASE_URL points at the API root (usually ending in /v1)"
            )
        if status in (401, 403):
            return LLMError(
                f"{where} refused the API key (HTTP {status}: {detail}); set "
                "ASSISTANT_OPENAI_API_KEY (or OPENAI_API_KEY)"
            )
        if status == 400 and "context" in detail.lower():
            return QuestionError(
                f"{where} says the prompt is too long ({detail}); ask a shorter question or "
                "lower ASSISTANT_TOP_K, or set ASSISTANT_OPENAI_CONTEXT_WINDOW to the "
                "model's real context window"
            )
        if status == 429 or status >= 500:
            return LLMUnavailableError(
                f"{where} is overloaded or failing (HTTP {status}: {detail}) after retries; "
                "try again later or raise ASSISTANT_MAX_RETRIES"
            )
        return LLMError(f"{where} answered HTTP {status}: {detail}")

    def _served_models(self) -> list[str] | None:
        try:
            return self.list_models()
        except LLMError:
            return None


def _error_detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        msg = inner.get("message") if isinstance(inner, dict) else inner
        if msg:
            return str(msg)[:500]
    return str(exc.message)[:500]
