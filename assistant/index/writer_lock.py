"""The index, one writer at a time: a lock file that names the process holding it.

Two ingests into one index would interleave their writes (and a Chroma folder on disk is
meant for one process). Every ingest holds :func:`writer_lock` while it writes: an OS lock
(``flock``) on a file beside the index, released by the kernel when the process ends however
it ends, so a killed ingest never leaves a stale lock. The file says who holds it (process id,
host, user, command, since when), and a second writer is refused with that in the message.
Readers (``assistant serve``, ``ask``) never take it.

Where the file is: ``index_dir/.writer.lock`` for an index on disk (one per folder: every
collection in it shares the Chroma files); for a Chroma server, beside the collection's
lexical index (``<lexical dir>/.<collection>.writer.lock``), so ingests from one machine (or
through a shared ``ASSISTANT_LEXICAL_DIR``) exclude each other.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from assistant.errors import IndexBusyError
from assistant.settings import Settings

__all__ = ["writer_lock", "lock_path"]

log = logging.getLogger(__name__)


def lock_path(settings: Settings) -> Path:
    """The lock file of the index the settings name."""
    if settings.chroma_url:
        return settings.lexical_path().parent / f".{settings.collection}.writer.lock"
    return settings.index_dir / ".writer.lock"


def _holder() -> dict[str, Any]:
    try:
        user = getpass.getuser()
    except Exception:  # no user name in a container: not worth failing for
        user = ""
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "user": user,
        "command": " ".join(sys.argv)[:300],
        "since": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _describe(path: Path) -> str:
    try:
        h = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        h = {}
    if not h:
        return "another process"
    who = f"process {h.get('pid')} of {h.get('user') or '?'} on {h.get('host')}"
    return f"{who}, running `{h.get('command')}` since {h.get('since')}"


@contextlib.contextmanager
def writer_lock(settings: Settings) -> Iterator[Path]:
    """Hold the index's writer lock for the ``with`` block; raise :class:`IndexBusyError`
    naming the holder when another process has it."""
    path = lock_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _try_lock(fd):
            raise IndexBusyError(
                f"the index {settings.collection!r} at {settings.describe_index()} is being "
                f"written by {_describe(path)}. Wait for it to finish (or stop it), then run "
                f"this again; the lock ({path}) goes away by itself when that process ends"
            )
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(_holder()).encode("utf-8"))
        log.debug("writer lock %s taken", path)
        try:
            yield path
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows: one writer is still the rule, but not enforced here
        log.warning("no fcntl on this platform: the index writer lock is not enforced")
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
