"""What the API door needs to answer many clients with one model: a gate that admits a bounded
number of questions (the rest get "busy" with a time to retry), and a run that produces one
question's answer in its own thread and hands its pieces to the event loop.

The local model answers one question at a time (:class:`~assistant.llm.local.LocalChatModel`
holds a lock for a whole generation). Each run is one thread from start to end, so one
``Assistant.stream`` generator is never resumed from two threads and two clients' pieces
never mix; the gate's ``running`` slots (the model's ``max_concurrency``) are taken in
arrival order, and ``waiting`` more may queue behind them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assistant.answer.engine import Assistant

__all__ = ["Gate", "Run", "END", "WaitingCount"]

log = logging.getLogger(__name__)

END = object()
"""The last item of every run's queue."""


class Cancelled(Exception):
    """The client went away while its question waited for the model."""


class Gate:
    """Admits up to ``running + waiting`` questions; ``running`` of them are answered at once.

    :meth:`admit` never blocks (the event loop calls it): False means busy, and
    :meth:`retry_after` says in how many seconds to try again (from the mean time of the
    last answers and how many are ahead).
    """

    def __init__(self, running: int, waiting: int, *, first_guess_s: float = 10.0) -> None:
        self.running = max(1, int(running))
        self.waiting = max(0, int(waiting))
        self.admitted = 0
        """Questions admitted and not finished (running or waiting)."""
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._busy = 0
        self._next_ticket = 0
        self._serving = 0
        self._skipped: set[int] = set()
        self._mean_s = first_guess_s

    @property
    def limit(self) -> int:
        return self.running + self.waiting

    def admit(self) -> bool:
        with self._lock:
            if self.admitted >= self.limit:
                return False
            self.admitted += 1
            return True

    def leave(self) -> None:
        """An admitted question is done (answered, failed or cancelled)."""
        with self._lock:
            self.admitted = max(0, self.admitted - 1)

    def retry_after(self) -> int:
        """Seconds a refused client should wait: the queue ahead times the mean answer."""
        with self._lock:
            ahead = max(1, self.admitted - self.running + 1)
            return max(1, min(600, math.ceil(self._mean_s * ahead / self.running)))

    @contextlib.contextmanager
    def slot(self, cancelled: threading.Event) -> Iterator[None]:
        """Wait (first come, first served) for one of the ``running`` slots and hold it.

        Raises :class:`Cancelled` when ``cancelled`` is set while waiting.
        """
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            while ticket != self._serving or self._busy >= self.running:
                if cancelled.is_set():
                    self._skip(ticket)
                    raise Cancelled()
                self._cond.wait(timeout=0.25)
            self._busy += 1
            self._advance()
        started = time.monotonic()
        try:
            yield
        finally:
            spent = time.monotonic() - started
            with self._cond:
                self._busy -= 1
                self._mean_s = 0.7 * self._mean_s + 0.3 * spent
                self._cond.notify_all()

    def _skip(self, ticket: int) -> None:
        """A cancelled waiter gives up its place (called with the lock held)."""
        if ticket == self._serving:
            self._advance()
        else:
            self._skipped.add(ticket)

    def _advance(self) -> None:
        """The next ticket's turn, past the cancelled ones (called with the lock held)."""
        self._serving += 1
        while self._serving in self._skipped:
            self._skipped.discard(self._serving)
            self._serving += 1
        self._cond.notify_all()


class Run:
    """One question answered by ``Assistant.stream`` in its own thread.

    Items arrive on :attr:`queue`, in order: the model's text pieces (str), then the final
    :class:`~assistant.types.Answer`, or an exception; then :data:`END`. :meth:`cancel`
    ends the generation at the next piece (the client went away).
    """

    def __init__(
        self,
        assistant: Assistant,
        gate: Gate,
        question: str,
        kwargs: dict[str, Any],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.cancelled = threading.Event()
        self.pieces = 0
        self._assistant = assistant
        self._gate = gate
        self._question = question
        self._kwargs = kwargs
        self._loop = loop
        self._thread = threading.Thread(target=self._work, name="api-answer", daemon=True)

    def start(self) -> Run:
        self._thread.start()
        return self

    def cancel(self) -> None:
        self.cancelled.set()

    def _put(self, item: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening
            self._loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def _work(self) -> None:
        try:
            with self._gate.slot(self.cancelled):
                stream = self._assistant.stream(self._question, **self._kwargs)
                try:
                    for item in stream:
                        if self.cancelled.is_set():
                            log.info("client went away: generation stopped")
                            break
                        if isinstance(item, str):
                            self.pieces += 1
                        self._put(item)
                finally:
                    stream.close()  # ends the model's generation when stopped early
        except Cancelled:
            log.info("client went away while waiting for the model")
        except Exception as exc:  # handed to the request, which answers with an error
            self._put(exc)
        finally:
            self._gate.leave()
            self._put(END)


class WaitingCount:
    """The chat page's admission count: how many accepted questions have not started being
    answered. Each is counted from
    :func:`add_question` until the responder starts it; one whose browser went away before
    that is forgotten after ``expiry`` seconds."""

    def __init__(self, expiry: float = 600.0) -> None:
        self.expiry = expiry
        self._since: list[float] = []
        self._lock = threading.Lock()

    def _prune(self) -> None:
        now = time.monotonic()
        self._since = [t for t in self._since if now - t < self.expiry]

    def add(self) -> None:
        with self._lock:
            self._prune()
            self._since.append(time.monotonic())

    def started(self) -> None:
        with self._lock:
            if self._since:
                self._since.pop(0)

    def count(self) -> int:
        with self._lock:
            self._prune()
            return len(self._since)
