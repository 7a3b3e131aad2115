"""A real OpenAI-compatible server for tests: ``python -m llama_cpp.server`` on 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

__all__ = ["free_port", "llama_server", "serving"]

MODEL_ALIAS = "tiny"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-n:]
    except OSError:
        return "(no output)"


@contextlib.contextmanager
def llama_server(
    model_path: Path, port: int | None = None, *, startup_timeout: float = 120.0
) -> Iterator[str]:
    """Serve ``model_path`` as model ``tiny``; yields the base URL ``http://127.0.0.1:P/v1``."""
    port = port or free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--model_alias",
        MODEL_ALIAS,
    ]
    with tempfile.TemporaryDirectory(prefix="llama-server-") as tmp:
        with serving(cmd, Path(tmp) / "server.log", f"{base_url}/models", startup_timeout):
            yield base_url


@contextlib.contextmanager
def serving(cmd: list[str], log: Path, probe_url: str, startup_timeout: float) -> Iterator[None]:
    """Run ``cmd`` (output to ``log``) until ``probe_url`` answers 200; stop it afterwards."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    name = " ".join(Path(c).name for c in cmd[:3])
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with code {proc.returncode} before answering:\n{_tail(log)}"
                )
            try:
                with urllib.request.urlopen(probe_url, timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{name} did not answer on {probe_url} within {startup_timeout:g} s:\n{_tail(log)}"
                )
            time.sleep(0.25)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
