"""Ask questions about a collection of paper abstracts; answers cite the papers they use.

    from assistant import Assistant
    answer = Assistant.from_settings().ask("Which papers study grokking?")
    print(answer.text)
    print(answer.bibliography())

Nothing heavy happens at import: models load when first needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from assistant.errors import (
    AssistantError,
    ConfigError,
    IndexBusyError,
    IndexMismatchError,
    IndexMissingError,
    IndexUnavailableError,
    InputError,
    LLMError,
    LLMUnavailableError,
    ModelMissingError,
    QuestionError,
)
from assistant.settings import Settings
from assistant.types import Answer, Citation, Source

if TYPE_CHECKING:
    from assistant.answer.engine import Assistant

__all__ = [
    "Assistant",
    "Answer",
    "Citation",
    "Source",
    "Settings",
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

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "Assistant":  # imports llama-index, torch...: only when asked for
        from assistant.answer.engine import Assistant

        return Assistant
    raise AttributeError(f"module 'assistant' has no attribute {name!r}")
