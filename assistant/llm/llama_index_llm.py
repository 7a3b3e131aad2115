"""The model for llama-index: a :class:`~assistant.llm.base.ChatModel` as a llama-index LLM (for
stock llama-index engines).

This module depends on :mod:`assistant.llm.base`, never the other way round.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from assistant.llm.base import ChatModel, Messages

if TYPE_CHECKING:
    from llama_index.core.llms import CustomLLM

__all__ = ["as_llama_index_llm"]


def as_llama_index_llm(
    model: ChatModel, *, max_tokens: int = 512, temperature: float = 0.0
) -> CustomLLM:
    """``model`` as a llama-index LLM, so stock llama-index engines can use it."""
    return _adapter_class()(model, max_tokens=max_tokens, temperature=temperature)


@functools.cache
def _adapter_class() -> type:
    from llama_index.core.base.llms.types import (
        ChatMessage,
        ChatResponse,
        CompletionResponse,
        LLMMetadata,
        MessageRole,
    )
    from llama_index.core.llms import CustomLLM
    from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
    from pydantic import PrivateAttr

    class ChatModelLLM(CustomLLM):
        """A :class:`ChatModel` seen through llama-index's LLM interface."""

        max_tokens: int = 512
        temperature: float = 0.0
        _model: ChatModel = PrivateAttr()

        def __init__(self, model: ChatModel, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._model = model

        @classmethod
        def class_name(cls) -> str:
            return "assistant_chat_model"

        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(
                context_window=self._model.context_window,
                num_output=self.max_tokens,
                is_chat_model=True,
                model_name=self._model.name,
            )

        def _args(self, kwargs: dict[str, Any]) -> dict[str, Any]:
            return {
                "max_tokens": kwargs.get("max_tokens", self.max_tokens),
                "temperature": kwargs.get("temperature", self.temperature),
                "stop": kwargs.get("stop"),
            }

        @llm_completion_callback()
        def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
            messages = [{"role": "user", "content": prompt}]
            return CompletionResponse(text=self._model.complete(messages, **self._args(kwargs)))

        @llm_completion_callback()
        def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
            messages = [{"role": "user", "content": prompt}]
            args = self._args(kwargs)
            return _accumulate(
                lambda: self._model.stream(messages, **args),
                lambda text, piece: CompletionResponse(text=text, delta=piece),
            )

        @llm_chat_callback()
        def chat(self, messages: Any, **kwargs: Any) -> Any:
            text = self._model.complete(_to_dicts(messages), **self._args(kwargs))
            return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text))

        @llm_chat_callback()
        def stream_chat(self, messages: Any, **kwargs: Any) -> Any:
            dicts = _to_dicts(messages)
            args = self._args(kwargs)
            return _accumulate(
                lambda: self._model.stream(dicts, **args),
                lambda text, piece: ChatResponse(
                    message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=piece
                ),
            )

    return ChatModelLLM


def _to_dicts(messages: Any) -> Messages:
    """llama-index chat messages as role/content dicts (other roles speak as the user)."""
    roles = {"system", "user", "assistant"}
    out = []
    for m in messages:
        role = m.role.value if m.role.value in roles else "user"
        out.append({"role": role, "content": m.content or ""})
    return out


def _accumulate(
    pieces: Callable[[], Iterator[str]], make: Callable[[str, str], Any]
) -> Iterator[Any]:
    """``make(text so far, piece)`` per streamed piece; the stream starts when first read."""
    text = ""
    for piece in pieces():
        text += piece
        yield make(text, piece)
