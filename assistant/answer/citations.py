"""Answering, after the model: the structure of its answer, read before verification.

Lines, sentences, citation markers ("[1]", "[1, 2]", "[Source 3]", "(2)", "【1】", "Source 1:
..."), refusals and filler.

:func:`parse_answer` splits an answer into units (one per line: paragraph, list item or
heading) of sentences, each with the source numbers the model cited for it, and drops a
reference list the model wrote itself. :func:`is_refusal` and :func:`is_filler` tell a
sentence that declines to answer or carries no claim from one that must be checked.
:mod:`assistant.answer.verify` scores the claims against the sources.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from assistant.text import content_terms, numbers_in, split_sentences

__all__ = ["CitationMarker", "parse_citation_markers", "starts_with_citation_marker"]

# --- refusals and filler -------------------------------------------------------------------
_SRC = (
    r"(?:sources?|papers?|abstracts?|context|collection|documents?|passages?|excerpts?|"
    r"articles?|provided (?:information|material|text))"
)
_REFUSAL = [
    re.compile(p, re.IGNORECASE)
    for p in (
        rf"\b{_SRC}\b[^.]*\b(?:do|does|did)(?: not|n't|\s+not)\s+(?:\w+\s+)?(?:mention|say|"
        r"provide|contain|answer|discuss|address|include|report|specify|state|give|cover|"
        r"describe|offer|explain|indicate)",
        rf"\bno (?:information|mention|details?|data|evidence|answer)\b[^.]*\b{_SRC}\b",
        rf"\b{_SRC}\b[^.]*\b(?:contain|provide|give|include|offer|has|have)s? no\b",
        r"\bcan(?:not|'t| not) be (?:answered|determined|found)\b",
        r"\b(?:unable|not able) to (?:answer|find|determine|locate)\b",
        rf"\bnot (?:found|covered|mentioned|discussed|addressed|available|provided|specified|"
        rf"stated|reported|described|included) (?:in|by) (?:the|these|any|this|those)\b[^.]*\b{_SRC}\b",
        r"\bI (?:do not|don't|dont) know\b",
        r"\bI (?:cannot|can't|can not|could not|couldn't) (?:answer|find|determine|tell)\b",
        rf"\b(?:none|neither) of the (?:\w+ )?{_SRC}\b",
        r"\b(?:insufficient|not enough) information\b",
        r"\bthere is no (?:information|mention|answer)\b",
    )
]
_DISCOURSE = frozenset(
    """say said tell tells told here following summary summarize summarise answer question
    source collection abstract provided given regarding according information context below
    key point main finding overall briefly describe mention note
    let take look relevant related excerpt passage discuss""".split()
)


def is_refusal(text: str) -> bool:
    """Whether the text says the sources do not answer the question.

    For a single sentence: whether it is a refusal. For a whole answer: whether every
    sentence that carries content is one (an answer that declines one point but answers
    another is not a refusal).
    """
    units = [
        s
        for line in text.splitlines()
        for s in split_sentences(parse_citation_markers(line, [])[0])
    ]
    content = [s for s in units if is_refusal_sentence(s) or not is_filler(s)]
    return bool(content) and all(is_refusal_sentence(s) for s in content)


def is_refusal_sentence(sentence: str) -> bool:
    """Whether one sentence says the sources do not answer (see :func:`is_refusal`)."""
    return any(p.search(sentence) for p in _REFUSAL)


_GENERIC_DECLINE = re.compile(r"\bdo(?:es)?\s*n[o']t\s+answer\b", re.IGNORECASE)


def short_reason(sentence: str) -> bool:
    """Whether a refusal is a short, number-free reason worth quoting after the no-answer text
    (not a bare "the papers do not answer this question", which would only repeat it)."""
    if _GENERIC_DECLINE.search(sentence):
        return False
    return len(sentence.split()) <= 40 and not claim_numbers(sentence)


def is_filler(sentence: str) -> bool:
    """A sentence with no claim in it ("Here is what the papers say:")."""
    terms = content_terms(sentence) - _DISCOURSE
    if len(terms) <= (1 if len(sentence.split()) < 5 else 0):  # "Both help.", "Yes."
        return not claim_numbers(sentence)
    short_intro = sentence.rstrip().endswith(":") and len(sentence.split()) <= 12
    return short_intro and not numbers_in(sentence)


def claim_numbers(sentence: str) -> set[str]:
    """Numbers a source must contain: all but small plain integers (``3 layers``, ``2``)."""
    out = set()
    for n in numbers_in(sentence):
        if n.isdigit() and int(n) < 10:
            continue
        out.add(n)
    return out


# --- answer layout -----------------------------------------------------------------------
_LIST_ITEM = re.compile(r"^(\s*(?:[-*•+]|\d{1,3}[.)])\s+)(.*)$")
_HEADING = re.compile(r"^\s*(?:#{1,6}\s|\*\*[^*]+\*\*:?\s*$)")
_FINAL_PUNCT = re.compile(r"\s*([.!?:;…]+[\"'”’)\]]*)\s*$")


@dataclass
class AnswerSentence:
    """One sentence of the answer with the citations the model gave it; the verifier fills
    in the rest."""

    text: str
    model_cites: list[int]
    kind: str = "claim"  # claim | filler | refusal
    keep: list[int] = field(default_factory=list)
    """Chosen source numbers (prompt numbering)."""
    score: float = 0.0
    supported: bool = False
    index: int = -1


@dataclass
class AnswerUnit:
    """One line of the answer: a paragraph or list item (``prefix`` is its bullet), or a
    heading or a line without sentences, kept verbatim in ``raw``."""

    prefix: str
    sentences: list[AnswerSentence]
    raw: str = ""
    gap_before: str = ""
    """'' for the first unit, '\\n' within a block, '\\n\\n' after a blank line."""


_REFS_HEADING = re.compile(
    r"^\s*(?:#+\s*)?\**(?:references|sources|bibliography|citations|works cited)\**:?\**\s*$",
    re.IGNORECASE,
)


_REFS_WORDS = re.compile(r"\b(?:sources?|references?|citations?|bibliography|cited)\b", re.I)
_WORDY = re.compile(r"[^\W_]")


def parse_answer(raw_text: str, valid: Sequence[int]) -> list[AnswerUnit]:
    """Split the answer into units (lines: paragraphs, list items, headings) of sentences.

    Each line is its own unit, so the layout survives and a leading "Source 2:" applies to
    its line only. A trailing reference list the model wrote itself is dropped (the caller builds one).
    """
    lines = raw_text.splitlines()
    for i, line in enumerate(lines):
        if _REFS_HEADING.match(line):
            rest = [x for x in lines[i + 1 :] if x.strip()]
            if all(_LIST_ITEM.match(x) or starts_with_citation_marker(x) for x in rest):
                lines = lines[:i]
                break
    units: list[AnswerUnit] = []
    gap = ""  # separator before the next unit
    for line in lines:
        if not line.strip():
            gap = "\n\n" if units else ""
            continue
        item = _LIST_ITEM.match(line)
        if item:
            units.append(_unit(item.group(1).lstrip(), item.group(2), valid, gap))
        elif _HEADING.match(line):
            units.append(AnswerUnit(prefix="", sentences=[], raw=line.strip(), gap_before=gap))
        else:
            units.append(_unit("", line, valid, gap))
        gap = "\n"
    return units


def _unit(prefix: str, body: str, valid: Sequence[int], gap: str) -> AnswerUnit:
    clean, markers = parse_citation_markers(body, valid)
    if not _WORDY.search(_REFS_WORDS.sub("", clean)):  # "Sources: [1], [2]" or "[3]" alone
        return AnswerUnit(prefix=prefix, sentences=[], raw="", gap_before=gap)
    texts = split_sentences(clean)
    spans: list[tuple[int, int]] = []
    pos = 0
    for s in texts:
        start = clean.find(s, pos)
        start = pos if start < 0 else start
        spans.append((start, start + len(s)))
        pos = start + len(s)
    sentences = [AnswerSentence(text=s, model_cites=[]) for s in texts]
    if not sentences:
        return AnswerUnit(prefix=prefix, sentences=[], raw=clean, gap_before=gap)
    for m in markers:
        targets = range(len(sentences)) if m.leading else [_owner(m.offset, spans, m.forward)]
        for t in targets:
            for n in m.numbers:
                if n not in sentences[t].model_cites:
                    sentences[t].model_cites.append(n)
    return AnswerUnit(prefix=prefix, sentences=sentences, gap_before=gap)


def _owner(offset: int, spans: list[tuple[int, int]], forward: bool = False) -> int:
    """The sentence a marker belongs to: the one it sits in, else the one it follows (or,
    for ``forward`` markers, the one that follows it)."""
    for i, (start, end) in enumerate(spans):
        if offset <= start:
            return i if forward else max(0, i - 1)
        if offset < end or (offset == end and not forward):
            return i
    return len(spans) - 1


def place_marks(text: str, marks: str) -> str:
    """Put ``marks`` before the sentence's final punctuation: ``... accuracy [1].``"""
    if not marks:
        return text
    m = _FINAL_PUNCT.search(text)
    if m and m.start() > 0:
        return f"{text[: m.start()]} {marks}{m.group(1)}"
    return f"{text} {marks}"


# --- citation markers ("[1]", "[1, 2]", "[Source 3]", "(2)", "【1】", "Source 1: ...") --------
_LABEL = r"(?:sources?|papers?|refs?\.?|references?|docs?|documents?|abstracts?|articles?)"
_NUM = rf"(?:{_LABEL}\s*)?#?\d{{1,3}}"
_SEP = r"(?:\s*(?:[,;&]|and|[-–—]|to)\s*|\s+)"
_LIST = rf"{_NUM}(?:{_SEP}{_NUM})*"
_BRACKET = re.compile(rf"(?:\[\s*({_LIST})\s*\]|【\s*({_LIST})\s*】)", re.IGNORECASE)
_PAREN = re.compile(rf"\(\s*({_LIST})\s*\)", re.IGNORECASE)
_LEAD = re.compile(rf"^\s*\**({_LABEL}\s*#?\d{{1,3}}(?:{_SEP}{_NUM})*)\**\s*[:.\-–—]\s*", re.I)
_RANGE = re.compile(rf"({_NUM})\s*(?:[-–—]|to)\s*({_NUM})", re.IGNORECASE)
_INT = re.compile(r"\d+")
_LEAD_PHRASE = re.compile(
    r"(?:^|(?<=[.!?] ))(?:according to|as (?:shown|reported|described|noted|stated|found) "
    r"(?:in|by)|in|see|from)\s*$",
    re.IGNORECASE,
)
_COMMA = re.compile(r"\s*,\s*(?=\w)")


def _numbers_of(spec: str) -> list[int]:
    """``"1, 2"`` -> [1, 2]; ``"1-3"`` -> [1, 2, 3]; ``"Source 2 and Source 4"`` -> [2, 4]."""
    out: list[int] = []
    pos = 0
    for m in _RANGE.finditer(spec):
        out += [int(x) for x in _INT.findall(spec[pos : m.start()])]
        a, b = int(_INT.findall(m.group(1))[0]), int(_INT.findall(m.group(2))[0])
        out += list(range(a, b + 1)) if 0 < b - a <= 20 else [a, b]
        pos = m.end()
    out += [int(x) for x in _INT.findall(spec[pos:])]
    return out


@dataclass
class CitationMarker:
    """A citation marker removed from a line of text (see :func:`parse_citation_markers`)."""

    offset: int
    """Character offset in the cleaned text where the marker stood."""
    numbers: list[int]
    """The valid source numbers it names (possibly none)."""
    leading: bool = False
    """"Source 2: ..." at the start of a line: cites every sentence of the line."""
    forward: bool = False
    """"According to [2], ...": cites the sentence that follows."""


def parse_citation_markers(text: str, valid: Sequence[int]) -> tuple[str, list[CitationMarker]]:
    """Remove citation markers from one line of text.

    Returns the text without markers (whitespace collapsed) and the markers, each with its
    character offset in the returned text and the valid source numbers it names. Bracketed
    markers are always removed (numbers that are not sources are ignored); a parenthesised
    number is taken for a marker only when every number in it is a source and it is not an
    enumeration like ``(1) the encoder``.
    """
    valid_set = set(valid)
    text = " ".join(text.split())
    markers: list[CitationMarker] = []
    lead = _LEAD.match(text)
    if lead:
        markers.append(
            CitationMarker(0, _valid(_numbers_of(lead.group(1)), valid_set), leading=True)
        )
        text = text[lead.end() :]

    spans: list[tuple[int, int, list[int], bool]] = []
    for m in _BRACKET.finditer(text):
        nums = _numbers_of(m.group(1) or m.group(2))
        if 0 in nums:  # "[0, 1]" is an interval, not a citation
            continue
        phrase = _LEAD_PHRASE.search(text, 0, m.start())
        comma = _COMMA.match(text, m.end())
        if phrase and comma:  # "According to [1], the ..." -> "The ... [1]"
            spans.append((phrase.start(), comma.end(), _valid(nums, valid_set), True))
        else:
            spans.append((m.start(), m.end(), _valid(nums, valid_set), False))
    for m in _PAREN.finditer(text):
        nums = _numbers_of(m.group(1))
        labelled = bool(re.search(_LABEL, m.group(1), re.IGNORECASE))
        after = text[m.end() :].lstrip()
        at_end = not after or after[0] in ".,;:!?)[(【"
        if nums and all(n in valid_set for n in nums) and (labelled or at_end):
            spans.append((m.start(), m.end(), nums, False))
    spans.sort()

    clean: list[str] = []
    length = 0
    last = 0
    upper_next = False
    for start, end, nums, forward in spans:
        if start < last:
            continue
        piece = text[last:start]
        piece = piece[:1].upper() + piece[1:] if upper_next else piece
        piece = piece.rstrip()
        clean.append(piece)
        length += len(piece)
        markers.append(CitationMarker(length, nums, forward=forward))
        nxt = text[end : end + 1]
        if nxt and not nxt.isspace() and nxt not in ".,;:!?)]}" and piece:
            clean.append(" ")
            length += 1
        upper_next = forward
        last = end
    tail = text[last:]
    clean.append(tail[:1].upper() + tail[1:] if upper_next else tail)
    out = "".join(clean)
    # "[1] [2]." leaves "  ." behind; collapse without moving offsets past their sentence.
    collapsed, markers = _collapse(out, markers)
    return collapsed, markers


def _valid(nums: list[int], valid: set[int]) -> list[int]:
    return [n for n in nums if n in valid]


def _collapse(text: str, markers: list[CitationMarker]) -> tuple[str, list[CitationMarker]]:
    """Collapse runs of spaces and spaces before punctuation, remapping marker offsets."""
    keep = []
    mapping = [0] * (len(text) + 1)
    for i, ch in enumerate(text):
        mapping[i] = len(keep)
        if ch == " " and (
            not keep or keep[-1] == " " or text[i + 1 : i + 2] in (".", ",", ";", ":", "!", "?", "")
        ):
            continue
        keep.append(ch)
    mapping[len(text)] = len(keep)
    out = "".join(keep)
    # "[2]: text" at the start of a line leaves a stray colon or dash.
    lead_marker = any(mapping[m.offset] == 0 for m in markers)
    stripped = out.lstrip(" :;,-–—" if lead_marker else " ")
    shift = len(out) - len(stripped)
    moved = [
        CitationMarker(max(0, mapping[m.offset] - shift), m.numbers, m.leading, m.forward)
        for m in markers
    ]
    return stripped.rstrip(), moved


def starts_with_citation_marker(line: str) -> bool:
    """Whether the line opens with a bracketed marker (``[1] Title`` in a reference list)."""
    return bool(_BRACKET.match(line.strip()))
