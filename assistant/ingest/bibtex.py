"""Reading, one format: BibTeX (a Zotero export), read with bibtexparser 2.

Every entry with a title and an abstract becomes a :class:`~assistant.types.Paper`; LaTeX
accents are decoded and protective braces dropped (:mod:`assistant.latex`). Parse errors and entries without an
abstract become :class:`~assistant.types.Skipped` records; nothing here raises for bad input.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

from assistant.ingest.records import (
    MIN_ABSTRACT_CHARS,
    BadRecord,
    Item,
    OpenText,
    Stopped,
    arxiv_in_text,
    make_paper,
    normalize_arxiv_id,
    title_name,
)
from assistant.latex import latex_to_text
from assistant.text import normalize_text

logger = logging.getLogger(__name__)

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


def _bib_text(value: Any) -> str:
    """A BibTeX value as plain text: accents decoded, protective braces dropped
    (:func:`assistant.latex.latex_to_text`, as every format's LaTeX is)."""
    return normalize_text(latex_to_text(str(value), braces=True))


def _bib_date(fields: dict[str, str]) -> str:
    if fields.get("date"):
        return fields["date"]
    year, month = fields.get("year", ""), fields.get("month", "").strip().lower()
    if not year:
        return ""
    if month[:3] in _MONTHS:
        return f"{year}-{_MONTHS.index(month[:3]) + 1:02d}"
    return f"{year}-{int(month):02d}" if month.isdigit() and 1 <= int(month) <= 12 else year


def read_bibtex(open_text: OpenText, file: str, suffix: str) -> Iterator[Item]:
    import bibtexparser  # imported here: only BibTeX input needs it
    from bibtexparser.model import (
        DuplicateBlockKeyBlock,
        DuplicateFieldKeyBlock,
        Entry,
        ParsingFailedBlock,
    )

    with open_text() as stream:
        text = stream.read()
    try:
        library = bibtexparser.parse_string(text)
    except Exception as e:  # the parser raises on states it considers its own bugs
        logger.debug("bibtexparser failed on %s", file, exc_info=True)
        yield Stopped(file, None, f"BibTeX parser failed: {type(e).__name__}: {e}")
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
            yield BadRecord(file, line, f"BibTeX parse error: {' '.join(reason.split())}")
            continue
        if isinstance(block, Entry):
            yield from _bib_entry(block, file, line)


def _bib_entry(entry: Any, file: str, line: int | None) -> Iterator[Item]:
    fields: dict[str, str] = {}
    for f in entry.fields:  # first occurrence wins
        fields.setdefault(f.key.lower(), _bib_text(f.value))
    where = f"entry {entry.key!r}"
    if not fields.get("title"):
        yield BadRecord(file, line, f"{where} has no title", names=())
        return
    if len(fields.get("abstract", "")) < MIN_ABSTRACT_CHARS:
        what = "a too short abstract" if fields.get("abstract") else "no abstract"
        names = (title_name(fields["title"]),)
        yield BadRecord(file, line, f"{where} ({fields['title'][:60]!r}) has {what}", names)
        return
    eprint = fields.get("eprint", "")
    arxiv_id = normalize_arxiv_id(eprint) if eprint else None
    for k in ("arxivid", "url", "doi", "journal", "note", "number", "howpublished"):
        if arxiv_id:
            break
        arxiv_id = normalize_arxiv_id(fields.get(k, "")) or arxiv_in_text(fields.get(k, ""))
    url = fields.get("url", "")
    if not url and fields.get("doi") and not arxiv_id:
        url = f"https://doi.org/{fields['doi']}"
    used = {"title", "abstract", "author", "year", "month", "date", "url", "keywords"}
    extra = {k: v for k, v in fields.items() if k not in used}
    extra.update(bibtex_key=entry.key, entry_type=entry.entry_type)
    authors = "; ".join(a.strip() for a in re.split(r"\s+and\s+", fields.get("author", "")))
    yield from make_paper(
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
