"""What the command-line entry points share: setting flags, logging, progress bars, errors."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from assistant.errors import AssistantError, InputError
from assistant.llm.base import _destination
from assistant.llm.presets import preset_names
from assistant.settings import Settings

__all__ = [
    "SETTING_FLAGS",
    "SettingFlag",
    "add_setting_flags",
    "positive_int",
    "add_common_args",
    "settings_from_args",
    "setup_logging",
    "tqdm_progress",
    "run_guarded",
    "print_json",
    "say_destination",
]


def positive_int(value: str) -> int:
    """argparse type: a whole number of 1 or more."""
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {n}")
    return n


@dataclass(frozen=True)
class SettingFlag:
    """A command-line flag that sets one :class:`Settings` field (its help is the field's)."""

    flag: str
    field: str
    argparse_kwargs: dict[str, Any] = dataclass_field(default_factory=dict)
    """Extra arguments of ``add_argument``; a callable ``choices`` is called when added."""

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    def add_to(self, parser: Any) -> None:
        kwargs = dict(self.argparse_kwargs)
        if callable(kwargs.get("choices")):
            kwargs["choices"] = kwargs["choices"]()
        info = Settings.model_fields[self.field]
        kwargs.setdefault("type", _FLAG_TYPES.get(info.annotation))
        where = f"ASSISTANT_{self.field.upper()}"
        if info.default is not None and not info.default_factory:
            where += f"; default {info.default}"
        help_text = f"{info.description} ({where})".replace("%", "%%")  # argparse formats help
        parser.add_argument(self.flag, dest=self.dest, help=help_text, **kwargs)


_FLAG_TYPES: dict[Any, Any] = {int: int, float: float}
"""Flags of number fields parse numbers; the rest are strings that Settings validates."""


SETTING_FLAGS: dict[str, tuple[SettingFlag, ...]] = {
    "index": (
        SettingFlag("--index-dir", "index_dir"),
        SettingFlag("--chroma-url", "chroma_url"),
        SettingFlag("--collection", "collection"),
    ),
    "ingest": (
        SettingFlag("--chunk-size", "chunk_size"),
        SettingFlag("--chunk-overlap", "chunk_overlap"),
        SettingFlag("--embed-model", "embed_model"),
    ),
    "llm": (
        SettingFlag("--preset", "llm_preset", {"choices": preset_names}),
        SettingFlag("--model-path", "llm_model_path"),
        SettingFlag("--base-url", "openai_base_url"),
        SettingFlag("--model", "openai_model"),
        SettingFlag("--top-k", "top_k"),
    ),
    "eval": (
        SettingFlag("--preset", "llm_preset", {"choices": preset_names}),
        SettingFlag("--max-tokens", "max_tokens", {"type": positive_int}),
    ),
}
"""The flags that mirror settings, by the parsers that take them (the one table of them)."""


def add_setting_flags(parser: Any, *tables: str) -> None:
    """Add the flags of ``SETTING_FLAGS[table]`` for each table to ``parser`` (or a group)."""
    for table in tables:
        for flag in SETTING_FLAGS[table]:
            flag.add_to(parser)


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """The index flags (each also an ASSISTANT_ variable) and -v/-q."""
    g = parser.add_argument_group("index and models")
    add_setting_flags(g, "index")
    g.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")


def settings_from_args(args: argparse.Namespace, *tables: str, **extra: Any) -> Settings:
    """Settings from the environment and the flags of ``tables`` given in ``args``
    (default: the index flags); ``extra`` sets more fields. Flags not given change nothing."""
    values = {
        flag.field: getattr(args, flag.dest, None)
        for table in tables or ("index",)
        for flag in SETTING_FLAGS[table]
    }
    return Settings.load(**values, **extra)


def say_destination(settings: Settings, flag_url: str | None = None) -> None:
    """Say on stderr, once, where questions go, and which setting sent them to a server
    (an OPENAI_BASE_URL left in the shell must not switch to a server unnoticed)."""
    if settings.backend == "openai":
        url = (settings.openai_base_url or "https://api.openai.com/v1").rstrip("/")
        text = f"questions go to {_destination(url, settings.openai_model, False)}"
        if flag_url:
            origin = "--base-url"
        elif os.environ.get("ASSISTANT_OPENAI_BASE_URL"):
            origin = "ASSISTANT_OPENAI_BASE_URL in the environment"
        elif os.environ.get("OPENAI_BASE_URL"):
            origin = "OPENAI_BASE_URL in the environment"
        else:
            origin = "ASSISTANT_LLM_BACKEND=openai"
        text += f"; set by {origin}"
    else:
        local = str(settings.llm_model_path or f"{settings.llm_preset} preset")
        text = f"questions go to {_destination(None, local, False)}"
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    if not verbose and not quiet:
        level = logging.WARNING
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    for noisy in ("httpx", "chromadb", "urllib3", "sentence_transformers", "transformers", "bm25s"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def tqdm_progress(enabled: bool, unit: str = "paper") -> Callable[[int, str], Any] | None:
    """A progress factory drawing tqdm bars on stderr, or None when not on a terminal.

    The one progress-bar factory of the entry points (ingest, serve, evals); ``unit`` names
    what is counted.
    """
    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    def factory(total: int, desc: str) -> Any:
        return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)

    return factory


def print_json(obj: Any) -> None:
    """One JSON object on one line (the last line of --json output)."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def run_guarded(fn: Callable[[], int]) -> int:
    """Run an entry point: user errors become one readable line, never a traceback."""
    try:
        return fn()
    except KeyboardInterrupt:
        sys.stderr.write(
            "\ninterrupted; what was finished is saved, run the command again to go on\n"
        )
        return 130
    except InputError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except AssistantError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
