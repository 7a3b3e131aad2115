"""A real Chroma server for tests: ``chroma run`` on 127.0.0.1 on a free port."""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from llm_server import free_port, serving

__all__ = ["chroma_server", "chroma_token_server"]


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


@contextlib.contextmanager
def chroma_token_server(
    data_dir: Path, token: str, *, header: str = "Authorization", startup_timeout: float = 90.0
) -> Iterator[str]:
    """A real Chroma server that requires a token: Chroma's own Python server (the package's
    ``chromadb.app``, under uvicorn) with its token authentication provider, on 127.0.0.1.
    ``chroma run`` (Chroma 1.x's Rust server) has no authentication of its own; Chroma's
    documentation puts a token-checking proxy in front of it instead (docs/chroma-server.md).
    Yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "IS_PERSISTENT": "TRUE",
        "PERSIST_DIRECTORY": str(data_dir),
        "ANONYMIZED_TELEMETRY": "False",
        "CHROMA_SERVER_AUTHN_PROVIDER": "chromadb.auth.token_authn.TokenAuthenticationServerProvider",
        "CHROMA_SERVER_AUTHN_CREDENTIALS": token,
        "CHROMA_AUTH_TOKEN_TRANSPORT_HEADER": header,
    }
    code = (
        f"import os; os.environ.update({env!r}); import uvicorn; "
        f"uvicorn.run('chromadb.app:app', host='127.0.0.1', port={port}, log_level='warning')"
    )
    with serving(
        [sys.executable, "-c", code],
        data_dir.parent / f"chroma-auth-{port}.log",
        f"{url}/api/v2/heartbeat",
        startup_timeout,
    ):
        yield url
