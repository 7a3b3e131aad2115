"""tiktoken, offline: llama-index-core ships the encodings; point tiktoken at them."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from .errors import ConfigError

__all__ = ["get_encoding", "count_tokens"]


def _bundled_cache() -> Path | None:
    try:
        import llama_index.core as core
    except ImportError:  # pragma: no cover - llama-index is a hard dependency
        return None
    path = Path(core.__file__).parent / "_static" / "tiktoken_cache"
    return path if path.is_dir() else None


@lru_cache(maxsize=4)
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


def count_tokens(text: str, encoding: str = "cl100k_base") -> int:
    return len(get_encoding(encoding).encode(text, disallowed_special=()))
