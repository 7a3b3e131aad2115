"""A reply cache for development runs of the evaluation (``python -m evals run --llm-cache F``).

Changes to what happens *after* generation (verification, answerability, the report) can then
be re-scored on every question in seconds: a prompt seen before is answered from the file.
Replayed replies come as one piece, so their latencies mean nothing; reports say the cache was
on. Keyed by the model's name, the messages and the sampling settings.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path

from assistant.llm.base import ChatModel, Messages

__all__ = ["CachedChatModel"]


class CachedChatModel(ChatModel):
    """``model`` with its replies remembered in a JSON Lines file."""

    def __init__(self, model: ChatModel, path: Path) -> None:
        self.model = model
        self.path = Path(path)
        self.name = model.name
        self.context_window = model.context_window
        self.max_concurrency = model.max_concurrency
        self.hits = self.misses = 0
        self._lock = threading.Lock()
        self._replies: dict[str, str] = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    self._replies[row["key"]] = row["reply"]

    def _key(
        self, messages: Messages, max_tokens: int, temperature: float, stop: list[str] | None
    ) -> str:
        blob = json.dumps(
            [self.name, messages, max_tokens, temperature, stop or []], sort_keys=True
        )
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def stream(
        self,
        messages: Messages,
        *,
        max_tokens: int,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        key = self._key(messages, max_tokens, temperature, stop)
        with self._lock:
            cached = self._replies.get(key)
        if cached is not None:
            self.hits += 1
            yield cached
            return
        self.misses += 1
        pieces: list[str] = []
        for piece in self.model.stream(
            messages, max_tokens=max_tokens, temperature=temperature, stop=stop
        ):
            pieces.append(piece)
            yield piece
        reply = "".join(pieces)
        with self._lock:
            self._replies[key] = reply
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"key": key, "reply": reply}, ensure_ascii=False) + "\n")

    def count_tokens(self, text: str) -> int:
        return self.model.count_tokens(text)

    def count_message_tokens(self, messages: Messages) -> int:
        return self.model.count_message_tokens(messages)
