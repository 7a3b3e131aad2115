"""tiktoken, offline: llama-index-core ships the encodings; point tiktoken at them.

The one place the assistant loads a tiktoken encoding: by name (:func:`get_encoding`, for
chunking) or for an OpenAI-style model name (:func:`encoding_for_model`, to estimate prompt
sizes for a server). Only ``cl100k_base`` and ``o200k_base`` ship offline.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from assistant.errors import ConfigError

__all__ = ["get_encoding", "encoding_for_model", "OFFLINE_ENCODINGS"]

OFFLINE_ENCODINGS = ("cl100k_base", "o200k_base")


def _bundled_cache() -> Path | None:
    try:
        import llama_index.core as core
    except ImportError:  # pragma: no cover - llama-index is a hard dependency
        return None
    path = Path(core.__file__).parent / "_static" / "tiktoken_cache"
    return path if path.is_dir() else None


@functools.lru_cache(maxsize=4)
def get_encoding(name: str = "cl100k_base"):  # -> tiktoken.Encoding
    """A tiktoken encoding, loaded from the cache llama-index-core ships (no download)."""
    if not os.environ.get("TIKTOKEN_CACHE_DIR"):
        bundled = _bundled_cache()
        if bundled is not None:
            os.environ["TIKTOKEN_CACHE_DIR"] = str(bundled)
    import tiktoken

    try:
        return tiktoken.get_encoding(name)
    except Exception as exc:
        raise ConfigError(
            f"tiktoken encoding {name!r} is not available offline ({exc}); use cl100k_base or "
            "o200k_base (set ASSISTANT_TOKENIZER), which llama-index-core ships"
        ) from exc


@functools.cache
def encoding_for_model(model: str):  # -> tiktoken.Encoding
    """The encoding of ``model`` if tiktoken knows it, else o200k_base; an encoding that does
    not ship offline (older models) is replaced by cl100k_base."""
    import tiktoken

    try:
        name = tiktoken.encoding_name_for_model(model)
    except KeyError:
        name = "o200k_base"
    return get_encoding(name if name in OFFLINE_ENCODINGS else "cl100k_base")
