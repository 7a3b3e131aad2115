"""A real Chroma server for tests: ``chroma run`` on 127.0.0.1 on a free port."""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from llm_server import free_port, serving

__all__ = ["chroma_server"]


@contextlib.contextmanager
def chroma_server(data_dir: Path, *, startup_timeout: float = 60.0) -> Iterator[str]:
    """Start ``chroma run --path data_dir``; yields its URL ``http://127.0.0.1:P``."""
    port = free_port()
    exe = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    url = f"http://127.0.0.1:{port}"
    cmd = [exe, "run", "--path", str(data_dir), "--host", "127.0.0.1", "--port", str(port)]
    with serving(
        cmd, data_dir.parent / f"chroma-{port}.log", f"{url}/api/v2/heartbeat", startup_timeout
    ):
        yield url
