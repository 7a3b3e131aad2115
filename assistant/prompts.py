"""Prompts are files in ``prompts/`` (shipped in the package: :mod:`assistant.resources`),
rendered strictly.

A prompt's variables are the ``{name}`` fields in its file (``{{`` and ``}}`` for literal
braces). Rendering with a missing or an unexpected variable is an error, never a silent blank.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from assistant.errors import ConfigError
from assistant.resources import PROMPTS_DIR

__all__ = ["Prompt", "load_prompt", "PROMPT_NAMES"]

PROMPT_NAMES = (
    "system", "answer", "source", "condense", "follow_up", "condense_follow_up", "judge",
    "verdict",
)  # fmt: skip


@dataclass(frozen=True)
class Prompt:
    name: str
    template: str
    variables: frozenset[str]

    def render(self, **values: object) -> str:
        missing = self.variables - values.keys()
        extra = values.keys() - self.variables
        if missing or extra:
            raise ConfigError(
                f"prompt {self.name!r} takes {sorted(self.variables)}; "
                f"missing {sorted(missing)}, unexpected {sorted(extra)}"
            )
        return self.template.format(**values)


def _variables(name: str, template: str) -> frozenset[str]:
    names = set()
    try:
        for _, field, spec, conv in string.Formatter().parse(template):
            if field is None:
                continue
            if not field.isidentifier() or spec or conv:
                raise ConfigError(f"prompt {name!r}: use plain {{name}} fields, not {{{field}}}")
            names.add(field)
    except ValueError as exc:
        raise ConfigError(
            f"prompt {name!r} is malformed ({exc}); write {{{{ for a literal brace"
        ) from None
    return frozenset(names)


@cache
def load_prompt(name: str, directory: Path = PROMPTS_DIR) -> Prompt:
    path = directory / f"{name}.txt"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"prompt file {path} cannot be read ({exc}); reinstall the package"
        ) from None
    text = text.rstrip("\n")
    return Prompt(name, text, _variables(name, text))
