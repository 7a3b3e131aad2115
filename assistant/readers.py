"""Read paper abstracts from files into :class:`~assistant.types.Paper` records.

Four formats: ``sample`` (the scraped "daily papers" pages in ``data/sample``), ``jsonl`` (the
arXiv metadata snapshot schema, or one JSON array), ``csv``/``tsv`` and ``bibtex`` (a Zotero
export). Bad input never raises: every unusable file or record becomes a
:class:`~assistant.types.Skipped` with its file, 1-based line and reason, and every good record
is kept. The same paper read twice (same arXiv id, or same normalised title) becomes one
:class:`Paper` listing each file in ``sources``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .bibtex import read_bibtex
from .errors import InputError
from .formats import MIN_ABSTRACT_CHARS as MIN_ABSTRACT_CHARS
from .formats import Item, dedup_key, normalize_arxiv_id, read_csv, read_jsonl, read_sample
from .resources import SAMPLE_DIR
from .types import Paper, Skipped

__all__ = [
    "FORMATS",
    "EXTENSIONS",
    "ReadResult",
    "detect_format",
    "read_paths",
    "default_sample_paths",
    "normalize_arxiv_id",
]

logger = logging.getLogger(__name__)

FORMATS = ("sample", "jsonl", "csv", "bibtex")
EXTENSIONS = {
    ".txt": "sample",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "csv",
    ".bib": "bibtex",
    ".bibtex": "bibtex",
}
_FORMAT_ALIASES = {
    "txt": "sample",
    "json": "jsonl",
    "ndjson": "jsonl",
    "tsv": "csv",
    "bib": "bibtex",
}


@dataclass
class ReadResult:
    """What :func:`read_paths` found."""

    papers: list[Paper] = field(default_factory=list)
    """Deduplicated, in first-seen order."""
    skipped: list[Skipped] = field(default_factory=list)
    files_read: list[str] = field(default_factory=list)
    """Files that yielded at least one paper."""
    records_seen: int = 0
    """Good records before deduplication."""
    duplicates: int = 0
    """Records merged into an earlier paper."""

    def summary(self) -> str:
        return (
            f"{len(self.papers)} papers from {len(self.files_read)} files "
            f"({self.records_seen} records, {self.duplicates} duplicates merged, "
            f"{len(self.skipped)} skipped)"
        )


# --- public helpers ---------------------------------------------------------------------------


def detect_format(path: Path) -> str | None:
    """The format implied by the file extension, or ``None`` for an unknown one."""
    return EXTENSIONS.get(Path(path).suffix.lower())


def default_sample_paths() -> list[Path]:
    """The pages of the bundled sample collection (``data/sample/*.txt``)."""
    return sorted(SAMPLE_DIR.glob("*.txt")) if SAMPLE_DIR.is_dir() else []


# --- reading files ----------------------------------------------------------------------------


def read_paths(paths: Sequence[str | Path], fmt: str | None = None) -> ReadResult:
    """Read every file (folders are walked recursively) into deduplicated papers.

    ``fmt`` forces one of :data:`FORMATS` for every file; otherwise the extension decides.
    Problems are reported in :attr:`ReadResult.skipped`; nothing here raises for bad input.
    """
    forced = _check_format(fmt) if fmt else None
    if isinstance(paths, (str, Path)):
        paths = [paths]
    result = ReadResult()
    collector = _Collector(result)
    done: set[str] = set()
    for given in paths:
        for path in _expand(Path(given).expanduser().resolve(), result.skipped):
            name = str(path)
            if name in done:
                logger.debug("%s given twice; read once", name)
                continue
            done.add(name)
            _read_file(path, name, forced, collector)
    logger.info("read %s", result.summary())
    return result


def _check_format(fmt: str) -> str:
    kind = _FORMAT_ALIASES.get(fmt.lower(), fmt.lower())
    if kind not in FORMATS:
        raise InputError(f"Unknown format {fmt!r}: use one of {', '.join(FORMATS)}.")
    return kind


def _expand(path: Path, skipped: list[Skipped]) -> list[Path]:
    if not path.is_dir():
        return [path]
    files = sorted(
        p
        for p in path.rglob("*")
        if p.suffix.lower() in EXTENSIONS
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )
    if not files:
        skipped.append(Skipped(str(path), None, f"no files with a known extension ({_exts()})"))
    return files


def _exts() -> str:
    return ", ".join(EXTENSIONS)


def _read_file(path: Path, name: str, forced: str | None, collector: _Collector) -> None:
    result = collector.result
    if not path.exists():
        result.skipped.append(Skipped(name, None, "no such file or directory"))
        return
    if not path.is_file():
        result.skipped.append(Skipped(name, None, "not a regular file"))
        return
    kind = forced or detect_format(path)
    if kind is None:
        reason = (
            f"unknown file extension {path.suffix or '(none)'!r}: accepted extensions are "
            f"{_exts()}; or pass --format {{{','.join(FORMATS)}}} to read it anyway"
        )
        result.skipped.append(Skipped(name, None, reason))
        return
    text = _read_text(path, name)
    if isinstance(text, Skipped):
        result.skipped.append(text)
        return
    good = bad = 0
    for item in _READERS[kind](text, name, path.suffix.lower()):
        if isinstance(item, Skipped):
            result.skipped.append(item)
            bad += 1
        else:
            item.sources = [name]
            collector.add(item)
            good += 1
    logger.debug("%s (%s): %d records, %d skipped", name, kind, good, bad)
    if good:
        result.files_read.append(name)
    elif not bad:
        result.skipped.append(Skipped(name, None, f"no papers found (read as {kind})"))


def _read_text(path: Path, name: str) -> str | Skipped:
    try:
        data = path.read_bytes()
    except OSError as e:
        return Skipped(name, None, f"cannot read the file: {e.strerror or e}")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with BOM (Windows exports)
        try:
            data = data.decode("utf-16").encode("utf-8")
        except UnicodeError:
            pass
    if b"\x00" in data:
        return Skipped(name, None, "not a text file (contains NUL bytes); give a UTF-8 text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        return Skipped(name, line, f"not a text file (not UTF-8 at byte {e.start}); save as UTF-8")
    return text if text.strip() else Skipped(name, None, "empty file")


# --- merging papers --------------------------------------------------------------------------


class _Collector:
    """Deduplicates papers by id and, across id kinds, by normalised title."""

    def __init__(self, result: ReadResult) -> None:
        self.result = result
        self._by_id: dict[str, Paper] = {}
        self._by_title: dict[str, Paper] = {}

    def add(self, paper: Paper) -> None:
        self.result.records_seen += 1
        key = dedup_key(paper.title)
        target = self._by_id.get(paper.paper_id)
        if target is None:
            other = self._by_title.get(key)
            # An arXiv paper and a title-only record of the same title are one paper; two
            # different arXiv ids with the same title are two papers.
            if other is not None and "t:" in (paper.paper_id[:2], other.paper_id[:2]):
                target = other
        if target is None:
            self._by_id[paper.paper_id] = paper
            self._by_title.setdefault(key, paper)
            self.result.papers.append(paper)
            return
        self.result.duplicates += 1
        self._merge(target, paper)

    def _merge(self, target: Paper, new: Paper) -> None:
        if target.paper_id.startswith("t:") and not new.paper_id.startswith("t:"):
            target.paper_id = new.paper_id  # the arXiv id is the better id
            self._by_id[new.paper_id] = target
        for name in ("authors", "date", "url", "categories"):
            if not getattr(target, name):
                setattr(target, name, getattr(new, name))
        if new.abstract != target.abstract:
            logger.debug(
                "%s: abstracts differ in %s; keeping the longer one", target.paper_id, new.sources
            )
            if len(new.abstract) > len(target.abstract):
                target.abstract = new.abstract
        for k, v in new.extra.items():
            target.extra.setdefault(k, v)
        target.sources.extend(s for s in new.sources if s not in target.sources)


_READERS: dict[str, Callable[[str, str, str], Iterator[Item]]] = {
    "sample": read_sample,
    "jsonl": read_jsonl,
    "csv": read_csv,
    "bibtex": read_bibtex,
}
