"""One exception root for the whole package.

Every error a user can cause carries a remedy in its message: what to set, install or run.
Entry points catch :class:`AssistantError` and print its message, never a stack trace.
"""

from __future__ import annotations

__all__ = [
    "AssistantError",
    "ConfigError",
    "InputError",
    "IndexMissingError",
    "IndexUnavailableError",
    "IndexMismatchError",
    "IndexBusyError",
    "ModelMissingError",
    "LLMError",
    "LLMUnavailableError",
    "QuestionError",
]


class AssistantError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(AssistantError):
    """A setting is wrong or inconsistent (names the setting and the fix)."""


class ModelMissingError(ConfigError):
    """A local model is not installed, or its file does not match the expected hash."""


class InputError(AssistantError):
    """No usable input: a path that cannot be read, or files with no usable record."""


class IndexMissingError(AssistantError):
    """The index does not exist or holds no papers: run ingest first."""


class IndexUnavailableError(AssistantError):
    """The index store failed (server down, refused, damaged files): not the same as missing.

    Nothing that raises this may be taken for "no index yet": ingesting the sample collection
    into a user's collection because a server had a hiccup would be worse than stopping."""


class IndexBusyError(AssistantError):
    """Another process is writing to the index (names it): one writer at a time."""


class IndexMismatchError(ConfigError):
    """The index was built with another embedder or chunking than the settings ask for."""


class LLMError(AssistantError):
    """The language model failed to answer (server error, bad reply)."""


class LLMUnavailableError(LLMError):
    """The language model server cannot be reached or keeps timing out."""


class QuestionError(AssistantError):
    """The question is empty or does not fit in the model's context window."""
