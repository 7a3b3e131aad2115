"""A chat model that replays scripted replies: the test double for code that reads replies.

It goes through the same door as the real models (a :class:`~assistant.llm.base.ChatModel`
subclass), so the code under test cannot tell it apart. Use it only where what is tested is
how the assistant treats what a model writes, which the real tiny model cannot be made to
write on demand.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator

from assistant.errors import LLMError
from assistant.llm.base import ChatModel, Messages

__all__ = ["ScriptedChatModel"]


class ScriptedChatModel(ChatModel):
    """Returns scripted replies through the same interface, for tests of reply handling.

    ``replies`` is a list used in order (running out raises :class:`LLMError`, so a test
    notices an unexpected extra call) or a function of the messages. Every call's messages
    are kept in ``calls``. ``stream`` yields the reply word by word; ``stop`` cuts it as a
    real model would.
    """

    def __init__(
        self,
        replies: list[str] | Callable[[Messages], str],
        *,
        name: str = "scripted",
        context_window: int = 8192,
    ) -> None:
        self._replies = replies
        self.name = name
        self.context_window = context_window
        self.max_concurrency = 1
        self.calls: list[Messages] = []
        self._lock = threading.Lock()

    def _next(self, messages: Messages, stop: list[str] | None) -> str:
        with self._lock:
            self.calls.append([dict(m) for m in messages])
            if callable(self._replies):
                reply = self._replies(messages)
            else:
                index = len(self.calls) - 1
                if index >= len(self._replies):
                    raise LLMError(
                        f"ScriptedChatModel has {len(self._replies)} replies and was called "
                        f"{len(self.calls)} times"
                    )
                reply = self._replies[index]
        for s in stop or []:
            if s and s in reply:
                reply = reply[: reply.index(s)]
        return reply

    def stream(
        self,
        messages: Messages,
        *,
        max_tokens: int,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        yield from re.findall(r"\s+|\S+\s*", self._next(messages, stop))

    def count_tokens(self, text: str) -> int:
        return len(re.findall(r"\w+|[^\w\s]", text))
