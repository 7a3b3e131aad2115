"""Parsers for the input formats, and the record building they share.

Each parser reads one file as a stream of text, record by record (no whole-file reads except
BibTeX), and yields a :class:`~assistant.types.Paper` per good record and a
:class:`~assistant.types.Skipped` (file, 1-based line, reason) per problem; it never raises
for bad input. One bad record never ends a file's reading: it is a :class:`BadRecord`. Only a
problem that leaves the rest of the file unreadable (a JSON array whose brackets never close)
ends it early, as a :class:`Stopped`, and then the file says nothing about which papers it no
longer lists (``--prune`` leaves its papers alone). A plain :class:`Skipped` from a parser is a
note about a kept paper (a withheld sentence, a dropped link).

Here: ``sample`` (the scraped "daily papers" pages in ``data/sample``), ``jsonl`` (the arXiv
metadata snapshot schema, one JSON array, or pretty-printed objects) and ``csv``/``tsv``.
BibTeX is in :mod:`assistant.bibtex`; :mod:`assistant.readers` picks the parser per file and
deduplicates the papers.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from .jsonstream import UNCLOSED, JsonValues, json_layout
from .safety import instruction_reason, safe_url, withhold_instructions
from .text import normalize_text, paper_id_for_title, split_sentences, strip_control, title_key
from .types import Paper, Skipped

MIN_ABSTRACT_CHARS = 20
"""A shorter "abstract" is not one: the record counts as having no abstract."""
MAX_ABSTRACT_CHARS = 100_000
"""A longer "abstract" is a whole paper or a broken field (arXiv allows 1,920 characters):
the record is skipped."""
MAX_RECORD_CHARS = 16 * 1024 * 1024
"""A JSON line or value, or a CSV field, longer than this is skipped unread (bounds memory)."""
CHUNK_CHARS = 1 << 20
"""Characters read from a file at a time."""


@dataclass(frozen=True)
class Stopped(Skipped):
    """A problem that ended the reading of a file early: the rest of the file was not read."""


@dataclass(frozen=True)
class BadRecord(Skipped):
    """One record that could not be used; the file's reading goes on.

    ``names`` are the ids and title keys (``title:...``) of the paper the record names, so a
    paper the index holds is not pruned because its record went bad; ``None`` when the record
    could not be parsed at all (then nobody can tell which paper it lists).
    """

    names: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("names", None)
        return d


Item = Paper | Skipped
OpenText = Callable[..., TextIO]
"""``open_text(newline=None)``: the file as a text stream (decoding checked beforehand)."""


def title_name(title: str) -> str:
    """The name a title gives a paper for --prune protection (see :class:`BadRecord`)."""
    return "title:" + dedup_key(title)


# --- arXiv ids ---------------------------------------------------------------------------------

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


def arxiv_in_text(text: str) -> str | None:
    """An arXiv id inside a URL, a DOI (``10.48550/arXiv.2101.00001``) or a note."""
    m = _ARXIV_IN_TEXT.search(text)
    return m.group(1) if m else None


def _lines(stream: TextIO, file: str) -> Iterator[tuple[int, str] | Skipped]:
    """(1-based number, text) per line as an editor numbers them (the stream translates \\r\\n
    and \\r; unlike ``str.splitlines`` nothing else splits a line). A line longer than
    :data:`MAX_RECORD_CHARS` is not held in memory: it becomes a :class:`BadRecord`."""
    no = 0
    while True:
        text = stream.readline(MAX_RECORD_CHARS)
        if not text:
            return
        no += 1
        if len(text) >= MAX_RECORD_CHARS and not text.endswith("\n"):
            while text and not text.endswith("\n"):  # skip the rest of the line
                text = stream.readline(CHUNK_CHARS)
            yield BadRecord(
                file, no, f"line longer than {MAX_RECORD_CHARS:,} characters; skipped unread"
            )
            continue
        yield no, text.rstrip("\n")


# --- building papers -------------------------------------------------------------------------


def dedup_key(title: str) -> str:
    """The normalised title two records must share to be the same paper."""
    # title_key keeps only [0-9a-z]; a title in another script would be "" for every paper.
    return title_key(title) or " ".join(normalize_text(title).casefold().split())


def _title_id(title: str) -> str:
    if title_key(title):
        return paper_id_for_title(title)
    return "t:" + hashlib.sha1(dedup_key(title).encode("utf-8")).hexdigest()[:16]


def make_paper(
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
) -> Iterator[Item]:
    """A :class:`Paper` from one record's fields, or a :class:`BadRecord` saying what is wrong.

    The id is the arXiv id when there is one, else one derived from the title. Every text
    field loses its control characters. Sentences of the abstract that read as instructions
    to an assistant are withheld (kept in :attr:`Paper.withheld`, each reported by a
    :class:`Skipped` note before the paper); so is a link that is not http(s).
    """
    title = normalize_text(title)
    names = (arxiv_id,) if arxiv_id else ()
    if not title:
        yield BadRecord(file, line, "record has no title", names=names)
        return
    paper_id = arxiv_id or _title_id(title)
    names = (paper_id, title_name(title))
    short = title if len(title) <= 60 else title[:57] + "..."
    reason = instruction_reason(title)
    if reason:
        yield BadRecord(
            file,
            line,
            f"title {short!r} reads as {_markup_or_order(reason)}; record skipped",
            names,
        )
        return
    abstract = normalize_text(abstract)
    if len(abstract) > MAX_ABSTRACT_CHARS:
        yield BadRecord(
            file,
            line,
            f"the abstract of {short!r} is {len(abstract):,} characters, over the limit of "
            f"{MAX_ABSTRACT_CHARS:,} (a whole paper or a broken field?); record skipped",
            names,
        )
        return
    kept, withheld = withhold_instructions(abstract)
    for w in withheld:
        sentence = w["sentence"] if len(w["sentence"]) <= 120 else w["sentence"][:117] + "..."
        yield Skipped(
            file,
            line,
            f"sentence withheld from the abstract of {short!r} ({w['reason']}): {sentence!r}",
        )
    missing = _missing_abstract(kept, short, bool(withheld))
    if missing:
        yield BadRecord(file, line, missing, names)
        return
    notes: list[Skipped] = []
    link = _checked_link(url, file, line, short, notes)
    clean_extra = _checked_extra(extra or {}, file, line, short, notes)
    yield from notes
    yield Paper(
        paper_id=paper_id,
        title=title,
        abstract=kept,
        authors=strip_control(authors),
        date=normalize_text(date),
        url=link or (f"https://arxiv.org/abs/{arxiv_id}" if arxiv_id else ""),
        categories=normalize_text(categories),
        extra=clean_extra,
        withheld=withheld,
    )


_SCRIPT_URI = re.compile(r"\s*(?:javascript|vbscript|data|file):", re.IGNORECASE)


def _checked_link(url: str, file: str, line: int | None, short: str, notes: list) -> str | None:
    """The record's link if it is http(s); else None, with a note saying it was dropped."""
    url = strip_control(url).strip()
    link = safe_url(url) if url else None
    if url and link is None:
        notes.append(
            Skipped(
                file, line, f"link {url[:80]!r} of {short!r} dropped: only http(s) links are kept"
            )
        )
    return link


def _checked_extra(
    extra: dict[str, str], file: str, line: int | None, short: str, notes: list
) -> dict[str, str]:
    """Other fields without control characters; a script or data URI is dropped, with a note."""
    clean: dict[str, str] = {}
    for k, v in extra.items():
        k, v = strip_control(k).strip(), strip_control(v).strip()
        if k and v and _SCRIPT_URI.match(v):
            notes.append(
                Skipped(
                    file, line, f"field {k!r} of {short!r} dropped: {v[:60]!r} is not a web link"
                )
            )
        elif k and v:
            clean[k] = v
    return clean


def _markup_or_order(reason: str) -> str:
    markup = reason.startswith(("Markdown", "HTML", "script", "chat-template"))
    return f"markup ({reason})" if markup else f"an instruction to an AI assistant ({reason})"


def _missing_abstract(abstract: str, short: str, withheld: bool) -> str | None:
    """Why the record has no usable abstract, or None."""
    left = " once the withheld sentences are taken out" if withheld else ""
    if not abstract:
        return f"title without abstract: {short!r}" + (f" (nothing is left{left})" if left else "")
    if len(abstract) < MIN_ABSTRACT_CHARS:
        return (
            f"title without abstract: {short!r} (its abstract {abstract!r} is too short to "
            f"be one{left}; at least {MIN_ABSTRACT_CHARS} characters)"
        )
    return None


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
    return url, arxiv_id or (arxiv_in_text(url) if url else None)


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


def read_sample(open_text: OpenText, file: str, suffix: str) -> Iterator[Item]:
    """Title line, abstract line, title line... after a few header lines (blank lines optional)."""
    date = ""
    in_header = True
    pending: tuple[int, str] | None = None  # a title waiting for its abstract
    with open_text() as stream:
        for item in _lines(stream, file):
            if isinstance(item, Skipped):
                yield item
                continue
            no, line = item[0], item[1].strip()
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
                    yield BadRecord(file, no, "abstract-like text with no title line before it")
                else:
                    pending = (no, line)
            elif _looks_like_abstract(line):
                yield from make_paper(file, pending[0], pending[1], line, date=date)
                pending = None
            else:
                yield from make_paper(file, pending[0], pending[1], "")  # title, no abstract
                pending = (no, line)
    if pending is not None:
        yield from make_paper(file, pending[0], pending[1], "")


# --- JSON lines / JSON array ----------------------------------------------------------------------

_JSON_IGNORED = {"authors_parsed"}


def _json_record(obj: Any, file: str, line: int) -> Iterator[Item]:
    if not isinstance(obj, dict):
        yield BadRecord(file, line, f"not a JSON object (got {type(obj).__name__})", names=())
        return
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
    yield from make_paper(
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


def _json_values(stream: TextIO, file: str, array: bool) -> Iterator[tuple[int, str] | Skipped]:
    """(line, text) per top-level value (per element of the array when ``array``)."""
    values = JsonValues(stream, CHUNK_CHARS, MAX_RECORD_CHARS)
    if array:
        values.next_char()
        values.skip()  # the "["
    while True:
        c = values.next_char()
        if c is None:
            if array:
                yield Stopped(
                    file,
                    values.line,
                    "malformed JSON: the array is not closed (no final ']'); the file may be "
                    "cut short",
                )
            return
        if array and c == "]":
            return
        line, text, problem = values.take()
        if text is not None:
            yield line, text
        elif problem == UNCLOSED:
            yield Stopped(
                file, line, f"malformed JSON: {problem}; the rest of the file was not read"
            )
            return
        else:
            yield BadRecord(file, line, f"malformed JSON: {problem}; skipped")


def read_jsonl(open_text: OpenText, file: str, suffix: str) -> Iterator[Item]:
    """JSON lines, one JSON array of objects, or pretty-printed objects one after another."""
    with open_text() as stream:
        mode = json_layout(stream.read(CHUNK_CHARS))
    with open_text() as stream:
        if mode == "lines":
            items: Iterator[tuple[int, str] | Skipped] = _json_lines(stream, file)
        else:
            items = _json_values(stream, file, array=mode == "array")
        for item in items:
            if isinstance(item, Skipped):
                yield item
                continue
            line, text = item
            try:
                obj = json.loads(text)
            except (ValueError, RecursionError) as e:
                yield BadRecord(file, line, _json_error(e))
                continue
            yield from _json_record(obj, file, line)


def _json_lines(stream: TextIO, file: str) -> Iterator[tuple[int, str] | Skipped]:
    for item in _lines(stream, file):
        if isinstance(item, Skipped) or item[1].strip():
            yield item


# --- CSV / TSV ---------------------------------------------------------------------------------

_CSV_TITLE = ("title", "paper_title", "name")
_CSV_ABSTRACT = ("abstract", "summary", "abstract_text", "text")
_CSV_ID = ("arxiv_id", "arxiv", "id", "eprint")
_CSV_AUTHORS = ("authors", "author")
_CSV_DATE = ("date", "year", "published")
_CSV_URL = ("url", "link")
_CSV_CATEGORIES = ("categories", "category", "keywords", "tags")


def read_csv(open_text: OpenText, file: str, suffix: str) -> Iterator[Item]:
    """A header row naming at least a title and an abstract column, then one paper per row.

    Tab-separated for ``.tsv`` or a header with tabs and no commas; comma-separated otherwise.
    A row csv cannot parse, or with a field over MAX_RECORD_CHARS, is one skipped record.
    """
    if csv.field_size_limit() < MAX_RECORD_CHARS:  # process-wide; the default is 131,072
        csv.field_size_limit(MAX_RECORD_CHARS)
    with open_text() as stream:
        header_line = stream.readline(CHUNK_CHARS)
    tab = suffix == ".tsv" or ("\t" in header_line and "," not in header_line)
    with open_text(newline="") as stream:
        reader = csv.reader(stream, delimiter="\t" if tab else ",")
        try:
            header = next(reader)
        except (csv.Error, StopIteration) as e:
            yield Stopped(file, 1, f"cannot read the CSV header: {e}")
            return
        columns = _csv_columns(header, file)
        if isinstance(columns, Skipped):
            yield columns
            return
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                yield BadRecord(file, start, f"CSV error: {e}; this record skipped")
                continue
            if any(c.strip() for c in row):
                yield from columns.record(row, file, start)


@dataclass
class _CsvColumns:
    names: list[str]
    title: int
    abstract: int
    roles: dict[str, int | None]
    ids: list[int]

    def record(self, row: list[str], file: str, start: int) -> Iterator[Item]:
        names = self.names
        if len(row) > len(names):
            yield BadRecord(
                file, start, f"row has {len(row)} fields but the header has {len(names)}"
            )
            return
        row = [c.strip() for c in row] + [""] * (len(names) - len(row))
        get = {r: (row[i] if i is not None else "") for r, i in self.roles.items()}
        url, arxiv_id = _url_and_id(get["url"], [row[i] for i in self.ids])
        if not url and get["doi"] and not arxiv_id:
            url = get["doi"] if "://" in get["doi"] else f"https://doi.org/{get['doi']}"
        used = {self.title, self.abstract, *(i for r, i in self.roles.items() if r != "doi")}
        used.update(i for i in self.ids if normalize_arxiv_id(row[i]) == arxiv_id and arxiv_id)
        yield from make_paper(
            file,
            start,
            row[self.title],
            row[self.abstract],
            arxiv_id=arxiv_id,
            authors=_join_authors(get["authors"]),
            date=get["date"],
            url=url,
            categories=get["categories"],
            extra={names[i]: v for i, v in enumerate(row) if i not in used and v},
        )


def _csv_columns(header: list[str], file: str) -> _CsvColumns | Skipped:
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
            return Stopped(
                file,
                1,
                f"no {label} column (found: {', '.join(names) or 'none'}; accepted names: "
                f"{', '.join(aliases)})",
            )
    roles = {
        "authors": col(_CSV_AUTHORS),
        "date": col(_CSV_DATE),
        "url": col(_CSV_URL),
        "doi": col(("doi",)),
        "categories": col(_CSV_CATEGORIES),
    }
    ids = [norm.index(a) for a in _CSV_ID if a in norm]
    assert title_col is not None and abstract_col is not None
    return _CsvColumns(names, title_col, abstract_col, roles, ids)
