"""The index, its store: the Chroma client, on disk in ``index_dir`` or a Chroma server, with the
server's token when it asks for one; and what to tell the user when the store fails.

A server's token (``ASSISTANT_CHROMA_TOKEN``) travels as ``Authorization: Bearer <token>`` or
``X-Chroma-Token``, what Chroma's token authentication and a token-checking proxy read (see
docs/chroma-server.md); it never appears in a message.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from assistant.errors import ConfigError, IndexUnavailableError
from assistant.settings import Settings

__all__ = ["open_chroma", "auth_headers"]


def open_chroma(settings: Settings) -> Any:
    """A Chroma client: a server when ``chroma_url`` is set, else on disk in ``index_dir``."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConfigError(
                f"ASSISTANT_CHROMA_URL={settings.chroma_url!r} is not a URL like "
                "http://127.0.0.1:8000"
            )
        port = url.port or (443 if url.scheme == "https" else 8000)
        try:
            client = chromadb.HttpClient(
                host=url.hostname,
                port=port,
                ssl=url.scheme == "https",
                headers=auth_headers(settings),
                settings=chroma_settings,
            )
            client.heartbeat()
        except Exception as exc:
            why = _without_token(exc, settings)
            if _is_refused(exc):
                raise IndexUnavailableError(
                    f"the Chroma server at {settings.chroma_url} refused this client ({why}): "
                    + (
                        "the token in ASSISTANT_CHROMA_TOKEN is not the server's"
                        if settings.chroma_token is not None
                        else "it asks for a token; set ASSISTANT_CHROMA_TOKEN to it"
                    )
                    + " (and ASSISTANT_CHROMA_TOKEN_HEADER to the header it reads; "
                    "docs/chroma-server.md)"
                ) from None
            raise IndexUnavailableError(
                f"cannot reach the Chroma server at {settings.chroma_url} ({why}); start it "
                "(`chroma run --path DIR --port PORT`; docs/chroma-server.md for a safe set-up) "
                "or unset ASSISTANT_CHROMA_URL to use the index on disk"
            ) from None
        return client
    try:
        settings.index_dir.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(settings.index_dir), settings=chroma_settings)
    except Exception as exc:
        raise IndexUnavailableError(
            f"cannot open the index at {settings.index_dir} ({type(exc).__name__}: {exc}); "
            f"{_disk_remedy(settings)}"
        ) from None


def auth_headers(settings: Settings) -> dict[str, str]:
    """The headers that carry the Chroma token (``ASSISTANT_CHROMA_TOKEN``): ``Authorization:
    Bearer <token>`` by default, ``X-Chroma-Token: <token>`` when ``chroma_token_header`` says
    so. What Chroma's token authentication and a token-checking proxy read (docs/chroma-server.md)."""
    if settings.chroma_token is None:
        return {}
    token = settings.chroma_token.get_secret_value()
    if settings.chroma_token_header == "X-Chroma-Token":
        return {"X-Chroma-Token": token}
    return {"Authorization": f"Bearer {token}"}


def _is_refused(exc: BaseException) -> bool:
    """Whether the server said no to the client's credentials (401/403), not that it is down."""
    text = f"{type(exc).__name__} {exc}"
    return any(k in text for k in ("AuthError", "Forbidden", "Unauthorized", "401", "403"))


def _without_token(exc: BaseException, settings: Settings) -> str:
    """An exception's text with the token (if it is quoted back) blanked out."""
    text = f"{type(exc).__name__}: {exc}"
    if settings.chroma_token is not None:
        text = text.replace(settings.chroma_token.get_secret_value(), "***")
    return text


def _disk_remedy(settings: Settings) -> str:
    return (
        f"check that {settings.index_dir} is a readable and writable folder holding a Chroma "
        "index (not damaged, not in use by another Chroma version); to start over, move it "
        "away and run `python ingest.py`"
    )


def _remedy(settings: Settings) -> str:
    if settings.chroma_url:
        token = (
            "the token in ASSISTANT_CHROMA_TOKEN is the server's"
            if settings.chroma_token is not None
            else "set ASSISTANT_CHROMA_TOKEN if it asks for a token"
        )
        return (
            f"check that the Chroma server at {settings.chroma_url} is running (`chroma run "
            f"--path DIR --port PORT`) and accepts this client ({token}; docs/chroma-server.md), "
            "then run the command again"
        )
    return _disk_remedy(settings)
