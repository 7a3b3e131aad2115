"""Reading, one format: arXiv metadata as JSON Lines, one JSON array, or pretty-printed objects.

The arXiv snapshot schema (``id``, ``title``, ``abstract``, ``authors``, ``categories``,
``update_date``), with aliases for other exports. The layout is detected from the first
characters (:func:`~assistant.ingest.json_stream.json_layout`); values are read one at a time,
so a file of any size holds one record in memory. A malformed line or array element is one
skipped record; an array that never closes stops the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, TextIO

from assistant.ingest import records
from assistant.ingest.json_stream import UNCLOSED, JsonValues, json_layout
from assistant.ingest.records import (
    BadRecord,
    Item,
    OpenText,
    Stopped,
    _as_text,
    _join_authors,
    _lines,
    _pick,
    _url_and_id,
    make_paper,
    normalize_arxiv_id,
)
from assistant.types import Skipped

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
    values = JsonValues(stream, records.CHUNK_CHARS, records.MAX_RECORD_CHARS)
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
        mode = json_layout(stream.read(records.CHUNK_CHARS))
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
