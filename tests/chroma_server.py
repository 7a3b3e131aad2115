"""A real Chroma server for tests: ``chroma run`` on 127.0.0.1 on a free port."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from llm_server import free_port

__all__ = ["chroma_server"]


@contextlib.contextmanager
def chroma_server(data_dir: Path, *, startup_timeout: float = 60.0) -> Iterator[str]:
    """Start ``chroma run --path data_dir``; yields its URL ``http://127.0.0.1:P``."""
    port = free_port()
    exe = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    log = data_dir.parent / f"chroma-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [exe, "run", "--path", str(data_dir), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"chroma run exited: {log.read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("chroma run did not answer within the time limit") from None
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
