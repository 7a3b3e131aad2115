"""The doors' shared guard: who may reach the API and the MCP server over HTTP.

The rules are the browser chat's (:func:`assistant.app.ui._check_exposure`): 127.0.0.1 by
default; any other address only with a credential, here a bearer key. The key comes from
``--api-key-file FILE`` (first line; ``chmod 600`` it), the environment variable
``ASSISTANT_API_KEY``, or ``--api-key KEY`` (warned about: visible in ``ps``). A key, once
set, is asked of every request, local ones too, and compared in constant time
(:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import hmac
import logging
import os
import stat
import sys
from pathlib import Path
from typing import Any

from assistant.errors import ConfigError

__all__ = [
    "API_KEY_ENV",
    "BearerGuard",
    "LOCAL_HOSTS",
    "check_key_exposure",
    "key_matches",
    "read_api_key",
]

log = logging.getLogger(__name__)

API_KEY_ENV = "ASSISTANT_API_KEY"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
MIN_KEY_LENGTH = 16
"""Shorter keys are accepted with a warning: a key is guessed, not typed."""


def read_api_key(
    key: str | None = None, key_file: str | None = None, environ: dict[str, str] | None = None
) -> str | None:
    """The bearer key: ``key`` (a command-line value, warned about), else the first line of
    ``key_file``, else ``ASSISTANT_API_KEY``; None when none is set."""
    env = os.environ if environ is None else environ
    if key:
        sys.stderr.write(
            "warning: a key on the command line is visible to other users (ps) and stays in "
            f"your shell history; use --api-key-file FILE or {API_KEY_ENV} instead\n"
        )
        where, value = "--api-key", key
    elif key_file:
        where = f"--api-key-file {key_file}"
        path = Path(key_file).expanduser()
        try:
            lines = path.read_text(encoding="utf-8").strip().splitlines()
            mode = path.stat().st_mode
        except (OSError, UnicodeError) as exc:
            raise ConfigError(f"cannot read the API key from {path}: {exc}") from None
        value = lines[0] if lines else ""
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            sys.stderr.write(f"warning: {path} can be read by other users; chmod 600 it\n")
    elif env.get(API_KEY_ENV):
        where, value = API_KEY_ENV, env[API_KEY_ENV]
    else:
        return None
    value = value.strip()
    if not value or any(c.isspace() for c in value):
        raise ConfigError(f"{where} must hold one key without spaces (openssl rand -hex 24)")
    if len(value) < MIN_KEY_LENGTH:
        sys.stderr.write(
            f"warning: the API key from {where} has {len(value)} characters; use at least "
            f"{MIN_KEY_LENGTH} (openssl rand -hex 24)\n"
        )
    return value


def check_key_exposure(host: str, api_key: str | None, door: str = "the API") -> None:
    """Refuse a non-local bind without a key (:class:`ConfigError`, with the remedy)."""
    if host not in LOCAL_HOSTS and not api_key:
        raise ConfigError(
            f"refusing to serve {door} on host {host!r} without a key: anyone who can reach it "
            f"could use the assistant. Set {API_KEY_ENV} or pass --api-key-file FILE, or bind "
            "127.0.0.1 (the default)"
        )


def key_matches(authorization: str | None, api_key: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <api_key>`` (constant time)."""
    scheme, _, given = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        given = ""
    return hmac.compare_digest(given.strip().encode("utf-8"), api_key.encode("utf-8"))


class BearerGuard:
    """ASGI middleware: HTTP requests under ``prefix`` must carry ``Authorization: Bearer
    <api_key>``, else 401 with ``body`` (JSON). Checked before anything reads the request."""

    def __init__(self, app: Any, *, api_key: str, prefix: str = "", body: bytes = b"") -> None:
        self.app, self.api_key, self.prefix = app, api_key, prefix
        self.body = body or b'{"error": "missing or wrong key: send Authorization: Bearer <key>"}'

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith(self.prefix):
            auth = next((v for k, v in scope["headers"] if k.lower() == b"authorization"), b"")
            if not key_matches(auth.decode("latin-1"), self.api_key):
                headers = [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]
                await send({"type": "http.response.start", "status": 401, "headers": headers})
                await send({"type": "http.response.body", "body": self.body})
                return
        await self.app(scope, receive, send)
