"""Read paper abstracts from files into :class:`~assistant.types.Paper` records.

Four formats: ``sample`` (the scraped "daily papers" pages in ``data/sample``), ``jsonl`` (the
arXiv metadata snapshot schema, or one JSON array), ``csv``/``tsv`` and ``bibtex`` (a Zotero
export). Bad input never raises: every unusable file or record becomes a
:class:`~assistant.types.Skipped` with its file, 1-based line and reason, and every good record
is kept. The same paper read twice (same arXiv id, or same normalised title) becomes one
:class:`Paper` listing each file in ``sources``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError
from .settings import SAMPLE_DIR
from .text import normalize_text, paper_id_for_title, split_sentences, title_key
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
MIN_ABSTRACT_CHARS = 20
"""A shorter "abstract" is not one: the record counts as having no abstract."""

Item = Paper | Skipped


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

_ARXIV_NEW = r"\d{4}\.\d{4,5}"
_ARXIV_OLD = r"[a-z\-]+(?:\.[A-Z]{2})?/\d{7}"
_ARXIV_ID = re.compile(rf"(?:{_ARXIV_NEW}|{_ARXIV_OLD})")
_ARXIV_PREFIX = re.compile(r"^(?:https?://(?:www\.|export\.)?arxiv\.org/(?:abs|pdf)/|arxiv:)", re.I)
_ARXIV_IN_TEXT = re.compile(
    rf"(?:(?i:arxiv\.org/(?:abs|pdf)/)|(?i:arxiv)[:.]\s?)({_ARXIV_NEW}|{_ARXIV_OLD})(?:v\d+)?"
)


def normalize_arxiv_id(value: str) -> str | None:
    """``arXiv:2101.00001v2`` or ``https://arxiv.org/abs/2101.00001`` -> ``2101.00001``.

    Old-style ids (``hep-th/9901001``) are kept as they are. Returns ``None`` when ``value``
    does not look like an arXiv id.
    """
    s = _ARXIV_PREFIX.sub("", value.strip()).strip()
    s = re.sub(r"\.pdf$", "", s)
    s = re.sub(r"v\d+$", "", s)
    return s if _ARXIV_ID.fullmatch(s) else None


def _arxiv_in_text(text: str) -> str | None:
    """An arXiv id inside a URL, a DOI (``10.48550/arXiv.2101.00001``) or a note."""
    m = _ARXIV_IN_TEXT.search(text)
    return m.group(1) if m else None


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


def _lines(text: str) -> list[str]:
    """Lines as an editor numbers them (``str.splitlines`` also splits on \\x0c, \\u2028...)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


# --- building and merging papers --------------------------------------------------------------


def _dedup_key(title: str) -> str:
    # title_key keeps only [0-9a-z]; a title in another script would be "" for every paper.
    return title_key(title) or " ".join(normalize_text(title).casefold().split())


def _title_id(title: str) -> str:
    if title_key(title):
        return paper_id_for_title(title)
    return "t:" + hashlib.sha1(_dedup_key(title).encode("utf-8")).hexdigest()[:16]


def _make_paper(
    file: str,
    line: int | None,
    title: str,
    abstract: str,
    *,
    arxiv_id: str | None = None,
    authors: str = "",
    date: str = "",
    url: str = "",
    categories: str = "",
    extra: dict[str, str] | None = None,
) -> Item:
    title = normalize_text(title)
    abstract = normalize_text(abstract)
    if not title:
        return Skipped(file, line, "record has no title")
    short = title if len(title) <= 60 else title[:57] + "..."
    if not abstract:
        return Skipped(file, line, f"title without abstract: {short!r}")
    if len(abstract) < MIN_ABSTRACT_CHARS:
        return Skipped(
            file,
            line,
            f"title without abstract: {short!r} (its abstract {abstract!r} is too short to "
            f"be one; at least {MIN_ABSTRACT_CHARS} characters)",
        )
    return Paper(
        paper_id=arxiv_id or _title_id(title),
        title=title,
        abstract=abstract,
        authors=authors,
        date=normalize_text(date),
        url=url or (f"https://arxiv.org/abs/{arxiv_id}" if arxiv_id else ""),
        categories=normalize_text(categories),
        extra={k: v for k, v in (extra or {}).items() if v},
    )


class _Collector:
    """Deduplicates papers by id and, across id kinds, by normalised title."""

    def __init__(self, result: ReadResult) -> None:
        self.result = result
        self._by_id: dict[str, Paper] = {}
        self._by_title: dict[str, Paper] = {}

    def add(self, paper: Paper) -> None:
        self.result.records_seen += 1
        key = _dedup_key(paper.title)
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


# --- field helpers shared by the structured formats --------------------------------------------


def _as_text(value: Any, sep: str = ", ") -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (list, tuple)):
        return sep.join(t for t in (_as_text(v, sep) for v in value) if t)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _split_top_level(text: str) -> list[str]:
    """Split on commas and "and" outside parentheses (arXiv author lists)."""
    parts, depth, start = [], 0, 0
    for m in re.finditer(r"[()]|,\s*(?:and\s+)?|\s+and\s+", text):
        tok = m.group(0)
        if tok == "(":
            depth += 1
        elif tok == ")":
            depth = max(0, depth - 1)
        elif depth == 0:
            parts.append(text[start : m.start()])
            start = m.end()
    parts.append(text[start:])
    return parts


def _join_authors(value: Any) -> str:
    """Authors as one ``"; "``-joined string."""
    if isinstance(value, (list, tuple)):
        parts = [v.get("name", "") if isinstance(v, dict) else _as_text(v, " ") for v in value]
    else:
        text = normalize_text(_as_text(value))
        by_and = re.split(r"\s+and\s+", text)
        if ";" in text:
            parts = text.split(";")
        elif len(by_and) > 1 and all(p.count(",") == 1 for p in by_and):
            parts = by_and  # "Smith, John and Doe, Jane"
        else:
            parts = _split_top_level(text)
    return "; ".join(p for p in (normalize_text(p) for p in parts) if p)


def _pick(record: dict[str, Any], names: Iterable[str], used: set[str]) -> str:
    """The first non-empty value among ``names``; marks that key as used."""
    for n in names:
        value = _as_text(record.get(n))
        if value:
            used.add(n)
            return value
    return ""


def _url_and_id(url: str, ids: Iterable[str]) -> tuple[str, str | None]:
    arxiv_id = next((a for a in (normalize_arxiv_id(i) for i in ids if i) if a), None)
    return url, arxiv_id or (_arxiv_in_text(url) if url else None)


# --- sample pages -------------------------------------------------------------------------------

_HEADER_LINES = frozenset(
    {
        "new",
        "get trending papers in your email inbox!",
        "get trending papers in your email inbox once a day!",
        "subscribe",
        "byak and the research community",
    }
)
_DATE_LINE = re.compile(
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.? \d{1,2}(?:, \d{4})?"
)


def _looks_like_abstract(line: str) -> bool:
    """Abstracts are long multi-sentence lines; titles are short, one "sentence" at most."""
    n = len(line)
    if n < MIN_ABSTRACT_CHARS:
        return False
    if n >= 250:
        return True
    sentences = len(split_sentences(line))
    return (sentences >= 2 and (line.endswith(".") or n >= 160)) or (
        line.endswith(".") and len(line.split()) >= 12
    )


def _read_sample(text: str, file: str, suffix: str) -> Iterator[Item]:
    """Title line, abstract line, title line... after a few header lines (blank lines optional)."""
    date = ""
    in_header = True
    pending: tuple[int, str] | None = None  # a title waiting for its abstract
    for no, raw in enumerate(_lines(text), 1):
        line = raw.strip()
        if not line:
            continue
        if in_header:
            if line.lower() in _HEADER_LINES:
                continue
            if _DATE_LINE.fullmatch(line):
                date = line
                continue
            if line.startswith("Subscribe") and len(line) > 9 and not line[9].islower():
                line = line[9:].strip()  # "SubscribeA Downsampled Variant..." (004_*.txt)
            in_header = False
        if pending is None:
            if _looks_like_abstract(line):
                yield Skipped(file, no, "abstract-like text with no title line before it")
            else:
                pending = (no, line)
        elif _looks_like_abstract(line):
            yield _make_paper(file, pending[0], pending[1], line, date=date)
            pending = None
        else:
            yield _make_paper(file, pending[0], pending[1], "")  # title without abstract
            pending = (no, line)
    if pending is not None:
        yield _make_paper(file, pending[0], pending[1], "")


# --- JSON lines / JSON array ----------------------------------------------------------------------

_JSON_IGNORED = {"authors_parsed"}


def _json_record(obj: Any, file: str, line: int) -> Item:
    if not isinstance(obj, dict):
        return Skipped(file, line, f"not a JSON object (got {type(obj).__name__})")
    used: set[str] = set()
    title = _pick(obj, ["title"], used)
    abstract = _pick(obj, ["abstract", "summary"], used)
    ids = {k: _as_text(obj.get(k)) for k in ("id", "arxiv_id", "paper_id")}
    url, arxiv_id = _url_and_id(_pick(obj, ["url", "link"], used), ids.values())
    used.update(k for k, v in ids.items() if arxiv_id and normalize_arxiv_id(v) == arxiv_id)
    if not url and obj.get("doi") and not arxiv_id:
        url = f"https://doi.org/{_as_text(obj['doi'])}"
    date = _pick(obj, ["update_date", "date", "published"], used)
    if not date and obj.get("year"):
        used.update({"year", "month"})
        month = _as_text(obj.get("month"))
        date = _as_text(obj["year"]) + (f"-{month.zfill(2)}" if month.isdigit() else "")
    authors_raw = obj.get("authors", obj.get("author"))
    used.update({"authors", "author"})
    categories = _as_text(obj.get("categories"), " ")
    used.add("categories")
    extra = {k: _as_text(v) for k, v in obj.items() if k not in used and k not in _JSON_IGNORED}
    return _make_paper(
        file,
        line,
        title,
        abstract,
        arxiv_id=arxiv_id,
        authors=_join_authors(authors_raw),
        date=date,
        url=url,
        categories=categories,
        extra=extra,
    )


def _json_error(e: Exception) -> str:
    if isinstance(e, json.JSONDecodeError):
        return f"malformed JSON: {e.msg} (column {e.colno})"
    return f"malformed JSON: {type(e).__name__}"


def _read_json_array(text: str, file: str) -> Iterator[Item]:
    """A ``.json`` file holding one array of objects; each element keeps its own line number."""
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text):
            yield Skipped(file, text.count("\n") + 1, "malformed JSON: the array is not closed")
            return
        if text[pos] == "]":
            return
        line = text.count("\n", 0, pos) + 1
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError) as e:
            yield Skipped(file, line, _json_error(e) + "; the rest of the file was not read")
            return
        yield _json_record(obj, file, line)


def _read_jsonl(text: str, file: str, suffix: str) -> Iterator[Item]:
    if text.lstrip().startswith("["):
        yield from _read_json_array(text, file)
        return
    first = True
    for no, line in enumerate(_lines(text), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as e:
            if first:  # maybe one pretty-printed object in a .json file
                try:
                    whole = json.loads(text)
                except (ValueError, RecursionError):
                    whole = None
                if isinstance(whole, dict):
                    yield _json_record(whole, file, no)
                    return
            yield Skipped(file, no, _json_error(e))
            first = False
            continue
        first = False
        yield _json_record(obj, file, no)


# --- CSV / TSV ---------------------------------------------------------------------------------

_CSV_TITLE = ("title", "paper_title", "name")
_CSV_ABSTRACT = ("abstract", "summary", "abstract_text", "text")
_CSV_ID = ("arxiv_id", "arxiv", "id", "eprint")
_CSV_AUTHORS = ("authors", "author")
_CSV_DATE = ("date", "year", "published")
_CSV_URL = ("url", "link")
_CSV_CATEGORIES = ("categories", "category", "keywords", "tags")


def _read_csv(text: str, file: str, suffix: str) -> Iterator[Item]:
    header_line = text.split("\n", 1)[0]
    tab = suffix == ".tsv" or ("\t" in header_line and "," not in header_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if tab else ",")
    try:
        header = next(reader)
    except (csv.Error, StopIteration) as e:
        yield Skipped(file, 1, f"cannot read the CSV header: {e}")
        return
    names = [h.strip() for h in header]
    norm = [re.sub(r"[\s\-]+", "_", h.lower()) for h in names]

    def col(aliases: tuple[str, ...]) -> int | None:
        return next((norm.index(a) for a in aliases if a in norm), None)

    title_col, abstract_col = col(_CSV_TITLE), col(_CSV_ABSTRACT)
    for label, idx, aliases in (
        ("title", title_col, _CSV_TITLE),
        ("abstract", abstract_col, _CSV_ABSTRACT),
    ):
        if idx is None:
            yield Skipped(
                file,
                1,
                f"no {label} column (found: {', '.join(names) or 'none'}; accepted names: "
                f"{', '.join(aliases)})",
            )
            return
    roles = {
        "authors": col(_CSV_AUTHORS),
        "date": col(_CSV_DATE),
        "url": col(_CSV_URL),
        "doi": col(("doi",)),
        "categories": col(_CSV_CATEGORIES),
    }
    id_cols = [norm.index(a) for a in _CSV_ID if a in norm]
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield Skipped(file, start, f"CSV error: {e}; the rest of the file was not read")
            return
        if not any(c.strip() for c in row):
            continue
        if len(row) > len(names):
            yield Skipped(file, start, f"row has {len(row)} fields but the header has {len(names)}")
            continue
        row = [c.strip() for c in row] + [""] * (len(names) - len(row))
        get = {r: (row[i] if i is not None else "") for r, i in roles.items()}
        url, arxiv_id = _url_and_id(get["url"], [row[i] for i in id_cols])
        if not url and get["doi"] and not arxiv_id:
            url = get["doi"] if "://" in get["doi"] else f"https://doi.org/{get['doi']}"
        used = {title_col, abstract_col, *(i for r, i in roles.items() if r != "doi")}
        used.update(i for i in id_cols if normalize_arxiv_id(row[i]) == arxiv_id and arxiv_id)
        yield _make_paper(
            file,
            start,
            row[title_col],
            row[abstract_col],
            arxiv_id=arxiv_id,
            authors=_join_authors(get["authors"]),
            date=get["date"],
            url=url,
            categories=get["categories"],
            extra={names[i]: v for i, v in enumerate(row) if i not in used and v},
        )


# --- BibTeX ------------------------------------------------------------------------------------

_ACCENTS = {
    "'": "\u0301", "`": "\u0300", "^": "\u0302", '"': "\u0308", "~": "\u0303", "=": "\u0304",
    ".": "\u0307", "u": "\u0306", "v": "\u030c", "H": "\u030b", "c": "\u0327", "k": "\u0328",
}  # fmt: skip
_ACCENT_CMD = re.compile(
    r"\\([`'^\"~=.])\s*(?:\{(\\i|[A-Za-z])\}|(\\i|[A-Za-z]))"  # \'e, \'{e}
    r"|\\([uvHck])(?:\s*\{(\\i|[A-Za-z])\}|\s+([A-Za-z]))"  # \c{c}, \v s
)
_LETTERS = {"ss": "ß", "o": "ø", "O": "Ø", "ae": "æ", "AE": "Æ", "aa": "å", "l": "ł", "i": "i"}
_LETTER_CMD = re.compile(r"\\(ss|o|O|ae|AE|aa|l|i)(?![A-Za-z])(?:\s(?=[a-z]))?")
_BRACES = re.compile(r"(\\[A-Za-z]+\s*)?\{([^{}]*)\}")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


def _accent(m: re.Match[str]) -> str:
    cmd = m.group(1) or m.group(4)
    letter = next(g for g in (m.group(2), m.group(3), m.group(5), m.group(6)) if g)
    return ("i" if letter == "\\i" else letter) + _ACCENTS[cmd]


def _strip_braces(text: str) -> str:
    """Drop protective braces (``{BERT}``), innermost first; keep ``\\command{...}`` groups."""
    for _ in range(5):
        new = _BRACES.sub(lambda m: m.group(0) if m.group(1) else m.group(2), text)
        if new == text:
            break
        text = new
    return text


def _bib_text(value: Any) -> str:
    """A BibTeX value as plain text: accents decoded, protective braces dropped."""
    text = _ACCENT_CMD.sub(_accent, str(value))
    text = _LETTER_CMD.sub(lambda m: _LETTERS[m.group(1)], text)
    return _strip_braces(normalize_text(_strip_braces(text)))


def _bib_date(fields: dict[str, str]) -> str:
    if fields.get("date"):
        return fields["date"]
    year, month = fields.get("year", ""), fields.get("month", "").strip().lower()
    if not year:
        return ""
    if month[:3] in _MONTHS:
        return f"{year}-{_MONTHS.index(month[:3]) + 1:02d}"
    return f"{year}-{int(month):02d}" if month.isdigit() and 1 <= int(month) <= 12 else year


def _read_bibtex(text: str, file: str, suffix: str) -> Iterator[Item]:
    import bibtexparser  # imported here: only BibTeX input needs it
    from bibtexparser.model import (
        DuplicateBlockKeyBlock,
        DuplicateFieldKeyBlock,
        Entry,
        ParsingFailedBlock,
    )

    try:
        library = bibtexparser.parse_string(text)
    except Exception as e:  # the parser raises on states it considers its own bugs
        logger.debug("bibtexparser failed on %s", file, exc_info=True)
        yield Skipped(file, None, f"BibTeX parser failed: {type(e).__name__}: {e}")
        return
    for block in library.blocks:
        line = block.start_line + 1 if block.start_line is not None else None
        if isinstance(block, (DuplicateBlockKeyBlock, DuplicateFieldKeyBlock)) and isinstance(
            block.ignore_error_block, Entry
        ):
            block = block.ignore_error_block  # still a usable entry; papers are deduped later
        elif isinstance(block, ParsingFailedBlock):
            err = block.error
            reason = getattr(err, "abort_reason", "") or str(err) or type(err).__name__
            yield Skipped(file, line, f"BibTeX parse error: {' '.join(reason.split())}")
            continue
        if isinstance(block, Entry):
            yield _bib_entry(block, file, line)


def _bib_entry(entry: Any, file: str, line: int | None) -> Item:
    fields: dict[str, str] = {}
    for f in entry.fields:  # first occurrence wins
        fields.setdefault(f.key.lower(), _bib_text(f.value))
    where = f"entry {entry.key!r}"
    if not fields.get("title"):
        return Skipped(file, line, f"{where} has no title")
    if len(fields.get("abstract", "")) < MIN_ABSTRACT_CHARS:
        what = "a too short abstract" if fields.get("abstract") else "no abstract"
        return Skipped(file, line, f"{where} ({fields['title'][:60]!r}) has {what}")
    eprint = fields.get("eprint", "")
    arxiv_id = normalize_arxiv_id(eprint) if eprint else None
    for k in ("arxivid", "url", "doi", "journal", "note", "number", "howpublished"):
        if arxiv_id:
            break
        arxiv_id = normalize_arxiv_id(fields.get(k, "")) or _arxiv_in_text(fields.get(k, ""))
    url = fields.get("url", "")
    if not url and fields.get("doi") and not arxiv_id:
        url = f"https://doi.org/{fields['doi']}"
    used = {"title", "abstract", "author", "year", "month", "date", "url", "keywords"}
    extra = {k: v for k, v in fields.items() if k not in used}
    extra.update(bibtex_key=entry.key, entry_type=entry.entry_type)
    authors = "; ".join(a.strip() for a in re.split(r"\s+and\s+", fields.get("author", "")))
    return _make_paper(
        file,
        line,
        fields["title"],
        fields["abstract"],
        arxiv_id=arxiv_id,
        authors=authors.strip("; "),
        date=_bib_date(fields),
        url=url,
        categories=fields.get("keywords", ""),
        extra=extra,
    )


_READERS = {"sample": _read_sample, "jsonl": _read_jsonl, "csv": _read_csv, "bibtex": _read_bibtex}
