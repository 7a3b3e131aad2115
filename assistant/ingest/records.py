"""Reading, shared by every format: one record's fields made into a checked Paper, or a skipped
record.

Each parser reads one file as a stream of text, record by record (no whole-file reads except
BibTeX), and yields a :class:`~assistant.types.Paper` per good record and a
:class:`~assistant.types.Skipped` (file, 1-based line, reason) per problem; it never raises
for bad input. One bad record never ends a file's reading: it is a :class:`BadRecord`. Only a
problem that leaves the rest of the file unreadable (a JSON array whose brackets never close)
ends it early, as a :class:`Stopped`, and then the file says nothing about which papers it no
longer lists (``--prune`` leaves its papers alone). A plain :class:`Skipped` from a parser is a
note about a kept paper (a withheld sentence, a dropped link).

The parsers, one module each: :mod:`~assistant.ingest.sample_pages`,
:mod:`~assistant.ingest.jsonl`, :mod:`~assistant.ingest.delimited` (CSV/TSV) and
:mod:`~assistant.ingest.bibtex`; :mod:`assistant.ingest.readers` picks the parser per file and
:mod:`assistant.ingest.dedup` merges the papers.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from assistant.safety import instruction_reason, safe_url, withhold_instructions
from assistant.text import (
    join_lines,
    normalize_text,
    paper_id_for_title,
    strip_control,
    title_key,
)
from assistant.types import Paper, Skipped

MIN_ABSTRACT_CHARS = 20
"""A shorter "abstract" is not one: the record counts as having no abstract."""
MAX_ABSTRACT_CHARS = 100_000
"""A longer "abstract" is a whole paper or a broken field (arXiv allows 1,920 characters):
the record is skipped."""
MAX_TITLE_CHARS = 500
"""A longer "title" is an abstract or a whole record in the wrong field (arXiv's longest are
about 300 characters): the record is skipped. Every chunk carries its title, so a 20 KB title
would leave each chunk a few tokens of abstract."""
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
    field loses its control characters. Spans of the title and the abstract that read as
    instructions to an assistant are withheld (kept in :attr:`Paper.withheld`, each reported
    by a :class:`Skipped` note before the paper), line by line and without the real sentences
    glued to them; so is a link that is not http(s). A title that is nothing but such a span,
    or longer than :data:`MAX_TITLE_CHARS`, skips the record.
    """
    names: tuple[str, ...] = (arxiv_id,) if arxiv_id else ()
    title, title_withheld, problem = _checked_title(title)
    if problem:
        if title:
            names = (arxiv_id or _title_id(title), title_name(title))
        yield BadRecord(file, line, problem, names=names)
        return
    paper_id = arxiv_id or _title_id(title)
    names = (paper_id, title_name(title))
    short = title if len(title) <= 60 else title[:57] + "..."
    abstract = normalize_text(abstract, keep_lines=True)
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
    kept = join_lines(kept)
    yield from _withheld_notes(file, line, short, title_withheld, "the title")
    yield from _withheld_notes(file, line, short, withheld, "the abstract")
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
        withheld=[*({**w, "reason": f"{w['reason']} (in the title)"} for w in title_withheld),
                  *withheld],
    )  # fmt: skip


def _checked_title(raw: str) -> tuple[str, list[dict[str, str]], str | None]:
    """(the title with instruction-like spans withheld, those spans, why the record must be
    skipped or None)."""
    lines = normalize_text(raw, keep_lines=True)
    title = join_lines(lines)
    if not title:
        return "", [], "record has no title"
    short = title if len(title) <= 60 else title[:57] + "..."
    if len(title) > MAX_TITLE_CHARS:
        return (
            title,
            [],
            (
                f"the title {short!r} is {len(title):,} characters, over the limit of "
                f"{MAX_TITLE_CHARS:,} (an abstract in the title field?); record skipped"
            ),
        )
    kept, withheld = withhold_instructions(lines, sentences=False)
    if not withheld:
        return title, [], None
    kept = join_lines(kept).strip(" -–—:;,|")
    if not kept:
        reason = instruction_reason(title) or withheld[0]["reason"]
        return (
            title,
            withheld,
            (f"title {short!r} reads as {_markup_or_order(reason)}; record skipped"),
        )
    return kept, withheld, None


def _withheld_notes(
    file: str, line: int | None, short: str, withheld: list[dict[str, str]], where: str
) -> Iterator[Skipped]:
    for w in withheld:
        sentence = w["sentence"] if len(w["sentence"]) <= 120 else w["sentence"][:117] + "..."
        yield Skipped(
            file,
            line,
            f"sentence withheld from {where} of {short!r} ({w['reason']}): {sentence!r}",
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


MAX_DEPTH = 32
"""Nesting followed into a field's value (a list of lists of names); deeper is left out."""


def _as_text(value: Any, sep: str = ", ") -> str:
    """A field's value as text: strings as they are, lists joined with ``sep``, objects as
    JSON. Never recursive: a value nested hundreds of levels deep (a hostile line) costs
    linear time and is read to :data:`MAX_DEPTH` levels."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, dict):
        try:
            return json.dumps(value, ensure_ascii=False)
        except (ValueError, RecursionError):
            return ""
    if not isinstance(value, (list, tuple)):
        return str(value)
    parts: list[str] = []
    stack: list[tuple[Any, int]] = [(v, 1) for v in reversed(value)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, tuple)):
            if depth < MAX_DEPTH:
                stack.extend((v, depth + 1) for v in reversed(item))
        elif item is not None:
            parts.append(_as_text(item))
    return sep.join(p for p in parts if p)


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
