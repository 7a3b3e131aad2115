"""The model, its door: :class:`ChatModel`, what every chat backend implements.

Two backends implement it: the local GGUF model in process (:mod:`assistant.llm.local`) and any
OpenAI-compatible server (:mod:`assistant.llm.openai_compat`);
:func:`~assistant.llm.backend.chat_model_from_settings` picks one from the settings, and :func:`describe_destination`
says in words where questions go.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

__all__ = ["ChatModel", "Messages", "describe_destination"]


logger = logging.getLogger(__name__)

Messages = list[dict[str, str]]


class ChatModel(abc.ABC):
    """What the assistant needs from a chat model: ``stream`` and ``count_tokens``.

    ``name`` identifies the model in answers and logs (``local:<id>``, ``openai:<model>@<url>``);
    ``context_window`` is the most tokens prompt plus reply may use; ``max_concurrency`` is
    how many requests may usefully run at once (1 for an in-process model).
    """

    name: str = "chat-model"
    context_window: int = 4096
    max_concurrency: int = 1

    def complete(
        self,
        messages: Messages,
        *,
        max_tokens: int,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> str:
        """The whole reply to ``messages``."""
        return "".join(
            self.stream(messages, max_tokens=max_tokens, temperature=temperature, stop=stop)
        )

    @abc.abstractmethod
    def stream(
        self,
        messages: Messages,
        *,
        max_tokens: int,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        """The reply as text pieces, as they are generated."""

    @abc.abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in this model's prompt (exact locally, estimated for servers)."""

    def count_message_tokens(self, messages: Messages) -> int:
        """Rough prompt size of ``messages``: their contents plus a few tokens per message."""
        return sum(self.count_tokens(m.get("content") or "") + 4 for m in messages) + 2

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def describe_destination(llm: Any, *, markdown: bool = False) -> str:
    """Where questions go, in words: a server's URL and model, or the local model."""
    base_url = getattr(llm, "base_url", None)
    model = str(getattr(llm, "model", None) or getattr(llm, "name", "?"))
    return _destination(base_url, model.removeprefix("local:"), markdown)


def _destination(base_url: str | None, model: str, markdown: bool) -> str:
    code = (lambda t: f"`{t}`") if markdown else (lambda t: t)
    if base_url:
        from assistant.safety import redact_url  # no user, password or query is ever shown

        return f"the server {code(redact_url(base_url))} (model {code(model)})"
    return f"the local model {code(model)} on this machine (nothing is sent anywhere)"
