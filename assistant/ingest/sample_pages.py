"""Reading, one format: the bundled sample pages (scraped "daily papers" listings).

After a few header lines, a title line, then its abstract line, then the next title (blank
lines optional). An abstract is told from a title by its length and sentences.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from assistant.ingest.records import (
    MIN_ABSTRACT_CHARS,
    BadRecord,
    Item,
    OpenText,
    _lines,
    make_paper,
)
from assistant.text import (
    split_sentences,
)
from assistant.types import Skipped

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
