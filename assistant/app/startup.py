"""A door's start-up: the page is served at once, and the assistant loads behind it.

Loading takes most of a start: the embedder (torch), the BM25 index and the local model, whose
system prompt is then read into its cache (:meth:`Assistant.warm_up`). :class:`Warmup` runs
that in a background thread, so that ``assistant serve`` can serve the page first. The page
shows :meth:`Warmup.status` until it is ready, and a question asked before then waits for it
(:meth:`Warmup.wait`) under a message that says so, then is answered as usual.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from assistant.answer.engine import Assistant

__all__ = ["Warmup"]

log = logging.getLogger(__name__)


class Warmup:
    """``assistant.warm_up()`` in a daemon thread, and what the page says about it."""

    def __init__(self, assistant: Assistant) -> None:
        self.assistant = assistant
        self.error: Exception | None = None
        """Why loading failed (the page shows it; questions then get the same error)."""
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self.started: float | None = None
        self.seconds: float | None = None
        """How long loading took, once done."""

    def start(self) -> Warmup:
        """Start loading (once); returns self."""
        if self._thread is None:
            self.started = time.monotonic()
            self._thread = threading.Thread(target=self._run, name="warm-up", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.assistant.warm_up()
        except Exception as exc:  # shown on the page; a question asked later reports it too
            log.warning("loading the assistant failed: %s", exc)
            self.error = exc
        finally:
            self.seconds = time.monotonic() - (self.started or time.monotonic())
            log.info("the assistant is ready after %.1f s", self.seconds)
            self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds for loading to end; True when it has."""
        return self._done.wait(timeout)

    def elapsed(self) -> float:
        return 0.0 if self.started is None else time.monotonic() - self.started

    def status(self) -> str:
        """One line of Markdown for the page: loading (for how long), ready, or failed."""
        if not self.done:
            return (
                f"⏳ **Loading the model and the index** ({self.elapsed():.0f} s so far). "
                "You can ask now: the answer starts as soon as they are ready."
            )
        if self.error is not None:
            return f"⚠ **The assistant could not load**: {self.error}"
        return f"✓ **Ready** (loaded in {self.seconds or 0:.0f} s)."

    def waiting_html(self) -> str:
        """What the chat shows in place of an answer while the question waits."""
        return (
            '<p class="pa-loading"><em>The model is still loading '
            f"({self.elapsed():.0f} s so far); your question will be answered as soon as "
            "it is ready.</em></p>"
        )
