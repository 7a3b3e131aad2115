"""Reading, first step: which parser reads each file, folder or format, and what came of it.

Four formats: ``sample`` (the scraped "daily papers" pages in ``data/sample``), ``jsonl`` (the
arXiv metadata snapshot schema, or one JSON array), ``csv``/``tsv`` and ``bibtex`` (a Zotero
export). Bad input never raises: every unusable file or record becomes a
:class:`~assistant.types.Skipped` with its file, 1-based line and reason, and every good record
is kept. The same paper read twice (same arXiv id, or same normalised title) becomes one
:class:`Paper` listing each file in ``sources``.

Files are streamed record by record (BibTeX excepted). With ``stage_dir`` the papers go to a
temporary SQLite file there instead of a list, so memory does not grow with the input.

For ``--prune`` the result says which files were read completely (:attr:`ReadResult.complete_files`):
a file that stopped early, holds a record that could not be parsed at all, is empty (what a
failed download leaves) or gave no paper at all (every record without a title, the wrong
format) says nothing about which papers it no longer lists; papers that a bad record still
names are protected.
"""

from __future__ import annotations

import codecs
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from assistant.errors import InputError
from assistant.ingest import records
from assistant.ingest.bibtex import read_bibtex
from assistant.ingest.dedup import Collector, DiskStore, MemoryStore
from assistant.ingest.delimited import read_csv
from assistant.ingest.jsonl import read_jsonl
from assistant.ingest.records import BadRecord, Item, OpenText, Stopped
from assistant.ingest.sample_pages import read_sample
from assistant.resources import SAMPLE_DIR
from assistant.types import Paper, Skipped

__all__ = [
    "FORMATS",
    "EXTENSIONS",
    "ReadResult",
    "detect_format",
    "read_paths",
    "default_sample_paths",
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
EMPTY_NO_PRUNE = (
    "the file is empty (what a failed download or copy leaves), which says nothing about which "
    "papers it no longer lists; to remove its papers, rebuild from the files to keep: "
    "`python ingest.py --rebuild PATH ...`"
)
NOTHING_READ_NO_PRUNE = (
    "no record of it could be read as a paper (read as {kind}: wrong format, or every record "
    "without a title?), which says nothing about which papers it no longer lists; to remove "
    "its papers, rebuild from the files to keep: `python ingest.py --rebuild PATH ...`"
)
MAX_REPORTED_PER_FILE = 10_000
"""Problems listed one by one per file; more are counted in one last entry."""


@dataclass
class ReadResult:
    """What :func:`read_paths` found. Close it (or use ``with``) when papers are staged on disk."""

    papers: Sequence[Paper] = field(default_factory=MemoryStore)
    """Deduplicated, in first-seen order."""
    skipped: list[Skipped] = field(default_factory=list)
    files_read: list[str] = field(default_factory=list)
    """Files that yielded at least one paper."""
    records_seen: int = 0
    """Good records before deduplication."""
    duplicates: int = 0
    """Records merged into an earlier paper."""
    complete_files: list[str] = field(default_factory=list)
    """Files read to the end, every record parsed, at least one paper read: what they do not
    list, they no longer list (``--prune`` may act on them)."""
    unprunable: dict[str, str] = field(default_factory=dict)
    """Files that were opened but not read completely (or were empty, or gave no paper), with
    the reason: ``--prune`` leaves their papers alone and says why."""
    protected: set[str] = field(default_factory=set)
    """Ids and title names (``title:...``) of papers named by records that were skipped."""

    def summary(self) -> str:
        return (
            f"{len(self.papers)} papers from {len(self.files_read)} files "
            f"({self.records_seen} records, {self.duplicates} duplicates merged, "
            f"{len(self.skipped)} skipped)"
        )

    def has_paper(self, paper_id: str) -> bool:
        """Whether this run read a paper with this id."""
        store = self.papers
        if isinstance(store, MemoryStore):
            return store.has_paper(paper_id)
        return any(p.paper_id == paper_id for p in store)

    def close(self) -> None:
        if isinstance(self.papers, MemoryStore):
            self.papers.close()

    def __enter__(self) -> ReadResult:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- public helpers ---------------------------------------------------------------------------


def detect_format(path: Path) -> str | None:
    """The format implied by the file extension, or ``None`` for an unknown one."""
    return EXTENSIONS.get(Path(path).suffix.lower())


def default_sample_paths() -> list[Path]:
    """The pages of the bundled sample collection (``data/sample/*.txt``)."""
    return sorted(SAMPLE_DIR.glob("*.txt")) if SAMPLE_DIR.is_dir() else []


# --- reading files ----------------------------------------------------------------------------


def read_paths(
    paths: Sequence[str | Path], fmt: str | None = None, *, stage_dir: Path | None = None
) -> ReadResult:
    """Read every file (folders are walked recursively) into deduplicated papers.

    ``fmt`` forces one of :data:`FORMATS` for every file; otherwise the extension decides.
    With ``stage_dir`` the papers are kept in a SQLite file in that folder (close the result
    before removing it). Problems are reported in :attr:`ReadResult.skipped`; nothing here
    raises for bad input.
    """
    forced = _check_format(fmt) if fmt else None
    if isinstance(paths, (str, Path)):
        paths = [paths]
    store = DiskStore(stage_dir) if stage_dir is not None else MemoryStore()
    result = ReadResult(papers=store)
    collector = Collector(store)
    done: set[str] = set()
    for given in paths:
        for path in _expand(Path(given).expanduser().resolve(), result.skipped):
            name = str(path)
            if name in done:
                logger.debug("%s given twice; read once", name)
                continue
            done.add(name)
            _read_file(path, name, forced, collector, result)
    result.records_seen, result.duplicates = collector.records, collector.duplicates
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


def _read_file(
    path: Path, name: str, forced: str | None, collector: Collector, result: ReadResult
) -> None:
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
    encoding = _check_text(path, name)
    if isinstance(encoding, Skipped):
        result.skipped.append(encoding)
        if encoding.reason == "empty file":  # what a failed download leaves: no evidence
            result.unprunable[name] = EMPTY_NO_PRUNE
        return
    tally = _FileTally(name, result)

    def open_text(newline: str | None = None) -> TextIO:
        return open(path, encoding=encoding, newline=newline)

    try:
        for item in _READERS[kind](open_text, name, path.suffix.lower()):
            tally.take(item, collector)
    except (OSError, UnicodeError) as e:  # changed or failing under our feet
        tally.take(Stopped(name, None, f"reading stopped: {e}"), collector)
    tally.finish(kind)


class _FileTally:
    """What one file gave: papers to the collector, problems to the result."""

    def __init__(self, name: str, result: ReadResult) -> None:
        self.name = name
        self.result = result
        self.good = self.bad = self.unlisted = 0

    def take(self, item: Item, collector: Collector) -> None:
        if isinstance(item, Paper):
            item.sources = [self.name]
            collector.add(item)
            self.good += 1
            return
        self.bad += 1
        if isinstance(item, Stopped) or (isinstance(item, BadRecord) and item.names is None):
            self.result.unprunable.setdefault(self.name, str(item))
        elif isinstance(item, BadRecord):
            self.result.protected.update(item.names)
        if self.bad <= MAX_REPORTED_PER_FILE:
            self.result.skipped.append(item)
        else:
            self.unlisted += 1

    def finish(self, kind: str) -> None:
        name, result = self.name, self.result
        if self.unlisted:
            result.skipped.append(
                Skipped(name, None, f"{self.unlisted:,} more problems not listed")
            )
        logger.debug("%s (%s): %d records, %d problems", name, kind, self.good, self.bad)
        if self.good:
            result.files_read.append(name)
        elif not self.bad:
            result.skipped.append(Skipped(name, None, f"no papers found (read as {kind})"))
        if not self.good:  # nothing in it read as a paper: a broken file, not a short list
            result.unprunable.setdefault(name, NOTHING_READ_NO_PRUNE.format(kind=kind))
        if name not in result.unprunable:
            result.complete_files.append(name)


def _check_text(path: Path, name: str) -> str | Skipped:
    """The encoding to read ``path`` with, after checking the whole file decodes (in chunks,
    without holding it), has no NUL character and is not blank; else why it is skipped."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            encoding = "utf-16" if head.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
            f.seek(0)
            return _scan_encoding(f, name, encoding)
    except OSError as e:
        return Skipped(name, None, f"cannot read the file: {e.strerror or e}")


def _scan_encoding(f: Any, name: str, encoding: str) -> str | Skipped:
    decoder = codecs.getincrementaldecoder(encoding)()
    blank, lines = True, 0
    while True:
        data = f.read(records.CHUNK_CHARS)
        try:
            text = decoder.decode(data, final=not data)
        except UnicodeDecodeError as e:
            if encoding == "utf-16":
                return Skipped(name, None, "not a text file (bad UTF-16); save as UTF-8")
            line = lines + data[: max(0, e.start)].count(b"\n") + 1
            return Skipped(
                name, line, "not a text file (not UTF-8 near this line); save it as UTF-8"
            )
        if "\x00" in text:
            return Skipped(
                name, None, "not a text file (contains NUL bytes); give a UTF-8 text file"
            )
        blank = blank and not text.strip()
        lines += data.count(b"\n")
        if not data:
            return Skipped(name, None, "empty file") if blank else encoding


_READERS: dict[str, Callable[[OpenText, str, str], Iterator[Item]]] = {
    "sample": read_sample,
    "jsonl": read_jsonl,
    "csv": read_csv,
    "bibtex": read_bibtex,
}
