"""Reading JSON: top-level values of a text stream, one at a time, each with the line it starts on.

For JSON files too big to parse whole: :class:`JsonValues` finds where each value ends by its
brackets and quotes (not by parsing it), reading the stream in chunks and dropping what it has
passed, so memory holds one value; one malformed element of an array is then one bad value and
the scan goes on after it. :func:`json_layout` tells a JSON array, pretty-printed values and
JSON lines apart from a file's first characters.
"""

from __future__ import annotations

import io
import json
import re
from typing import TextIO

__all__ = ["JsonValues", "json_layout", "UNCLOSED"]

UNCLOSED = "the file ends inside this value: a bracket or quote is not closed"
"""What :meth:`JsonValues.take` says when the stream ends inside a value."""

_SKIP_WS = re.compile(r"[^\s,]")
_OUTSIDE = re.compile(r'[\[\]{}"]')
_INSIDE = re.compile(r'["\\]')
_SCALAR_END = re.compile(r"[\s,\]}]")


class JsonValues:
    """Top-level JSON values of a text stream, one at a time, each with the line it starts on.

    Text is read ``chunk_chars`` at a time and dropped once passed; a value longer than
    ``max_chars`` is scanned to its end but not kept.
    """

    def __init__(self, stream: TextIO, chunk_chars: int, max_chars: int) -> None:
        self.stream = stream
        self.chunk_chars = chunk_chars
        self.max_chars = max_chars
        self.buf = ""
        self.pos = 0
        self.line = 1

    def _more(self) -> bool:
        chunk = self.stream.read(self.chunk_chars)
        self.buf += chunk
        return bool(chunk)

    def next_char(self) -> str | None:
        """Skip whitespace and commas; the next character (not consumed), or None at the end."""
        while True:
            m = _SKIP_WS.search(self.buf, self.pos)
            if m:
                self.line += self.buf.count("\n", self.pos, m.start())
                self.pos = m.start()
                return self.buf[self.pos]
            self.line += self.buf.count("\n", self.pos)
            self.buf, self.pos = "", 0
            if not self._more():
                return None

    def skip(self, n: int = 1) -> None:
        self.pos += n

    def take(self) -> tuple[int, str | None, str]:
        """The value starting here: (first line, its text or None, what is wrong or "")."""
        self.buf, self.pos = self.buf[self.pos :], 0
        first, start_line = self.buf[0], self.line
        if first in "]}":
            self.pos = 1
            return start_line, None, f"unexpected {first!r}"
        end, dropped, newlines = self._scan(first)
        if end is None:
            self.line += newlines + self.buf.count("\n")
            self.buf, self.pos = "", 0
            return start_line, None, UNCLOSED
        self.line += newlines + self.buf.count("\n", 0, end)
        self.pos = end
        if dropped:
            return start_line, None, f"a value longer than {self.max_chars:,} characters"
        return start_line, self.buf[:end], ""

    def _scan(self, first: str) -> tuple[int | None, bool, int]:
        """Where the value at buf[0] ends: (end index, or None when the file ends first; whether
        text was dropped for length; newlines in the dropped text)."""
        scalar = first not in '{["'
        depth, in_str = 0, first == '"'
        i = 1 if in_str else 0
        dropped, newlines = False, 0
        while True:
            end, i, depth, in_str = self._scan_buffer(i, scalar, depth, in_str)
            if end is not None:
                return end, dropped, newlines
            if len(self.buf) > self.max_chars:  # too long to keep: scan on, drop the text
                newlines += self.buf.count("\n", 0, i)
                self.buf, i, dropped = self.buf[i:], 0, True
            if not self._more():
                return (len(self.buf) if scalar else None), dropped, newlines

    def _scan_buffer(
        self, i: int, scalar: bool, depth: int, in_str: bool
    ) -> tuple[int | None, int, int, bool]:
        """Scan the buffer from ``i``: (end or None, where to go on, depth, inside a string)."""
        buf = self.buf
        if scalar:
            m = _SCALAR_END.search(buf, i)
            return (m.start() if m else None), len(buf), depth, in_str
        while True:
            if in_str:
                m = _INSIDE.search(buf, i)
                if m is None:
                    return None, len(buf), depth, True
                if m.group() == "\\":
                    if m.end() >= len(buf):  # an escape at the buffer's end: read on first
                        return None, m.start(), depth, True
                    i = m.end() + 1
                    continue
                in_str, i = False, m.end()
                if depth == 0:
                    return i, i, depth, False
                continue
            m = _OUTSIDE.search(buf, i)
            if m is None:
                return None, len(buf), depth, False
            c, i = m.group(), m.end()
            if c == '"':
                in_str = True
            elif c in "[{":
                depth += 1
            else:
                depth -= 1
                if depth <= 0:
                    return i, i, depth, False


def json_layout(head: str) -> str:
    """How a JSON file is laid out, from its first characters: ``array`` (one JSON array),
    ``values`` (pretty-printed values one after another) or ``lines`` (JSON lines)."""
    body = head.lstrip()
    if body.startswith("["):
        return "array"
    if not body.startswith("{"):
        return "lines"
    try:
        json.loads(body.split("\n", 1)[0])
        return "lines"
    except (ValueError, RecursionError):
        pass
    # One value spread over several lines (pretty-printed)? Then read values, not lines.
    values = JsonValues(io.StringIO(body), len(body) + 1, len(body) + 1)
    values.next_char()
    _, text, _ = values.take()
    if text is None or "\n" not in text:
        return "lines"
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return "lines"
    return "values"
