"""Reading, one format: CSV and TSV files with a title and an abstract column.

Column names are matched case-insensitively with aliases (``summary``, ``paper_title``...);
columns that are not title, abstract, id, authors, date, url or categories are kept as the
paper's ``extra`` metadata. Rows are read one at a time; a row csv cannot parse, or with a field
over ``records.MAX_RECORD_CHARS``, is one skipped record.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass

from assistant.ingest import records
from assistant.ingest.records import (
    BadRecord,
    Item,
    OpenText,
    Stopped,
    _join_authors,
    _url_and_id,
    make_paper,
    normalize_arxiv_id,
)
from assistant.types import Skipped

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
    if csv.field_size_limit() < records.MAX_RECORD_CHARS:  # process-wide; the default is 131,072
        csv.field_size_limit(records.MAX_RECORD_CHARS)
    with open_text() as stream:
        header_line = stream.readline(records.CHUNK_CHARS)
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
