"""Parsers for the input formats, and the record building they share.

Each parser takes a file's text and yields a :class:`~assistant.types.Paper` per good record
and a :class:`~assistant.types.Skipped` (file, 1-based line, reason) per bad one; it never
raises for bad input. Here: ``sample`` (the scraped "daily papers" pages in ``data/sample``),
``jsonl`` (the arXiv metadata snapshot schema, or one JSON array) and ``csv``/``tsv``.
BibTeX is in :mod:`assistant.bibtex`; :mod:`assistant.readers` picks the parser per file and
deduplicates the papers.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from .text import normalize_text, paper_id_for_title, split_sentences, title_key
from .types import Paper, Skipped

MIN_ABSTRACT_CHARS = 20
"""A shorter "abstract" is not one: the record counts as having no abstract."""

Item = Paper | Skipped


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


def _lines(text: str) -> list[str]:
    """Lines as an editor numbers them (``str.splitlines`` also splits on \\x0c, \\u2028...)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


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
) -> Item:
    """A :class:`Paper` from one record's fields, or a :class:`Skipped` saying what is missing.

    The id is the arXiv id when there is one, else one derived from the title.
    """
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


def read_sample(text: str, file: str, suffix: str) -> Iterator[Item]:
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
            yield make_paper(file, pending[0], pending[1], line, date=date)
            pending = None
        else:
            yield make_paper(file, pending[0], pending[1], "")  # title without abstract
            pending = (no, line)
    if pending is not None:
        yield make_paper(file, pending[0], pending[1], "")


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
    return make_paper(
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


def read_jsonl(text: str, file: str, suffix: str) -> Iterator[Item]:
    """JSON lines, one JSON array of objects, or one (pretty-printed) object."""
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


def read_csv(text: str, file: str, suffix: str) -> Iterator[Item]:
    """A header row naming at least a title and an abstract column, then one paper per row.

    Tab-separated for ``.tsv`` or a header with tabs and no commas; comma-separated otherwise.
    """
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
        yield make_paper(
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
