"""Small text utilities shared by ingest, retrieval and verification."""

from __future__ import annotations

import hashlib
import re
import threading
import unicodedata

from assistant.latex import latex_to_text

__all__ = [
    "normalize_text",
    "strip_control",
    "title_key",
    "paper_id_for_title",
    "split_sentences",
    "content_terms",
    "stem",
    "numbers_in",
]

_SPACES = re.compile(r"[ \t\u00a0]+")


# Terminal escape sequences (CSI "\x1b[31m", OSC "\x1b]0;title\x07", two-byte "\x1bc"), then any
# other control character. Whitespace controls become spaces; the rest go.
_ANSI = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]{0,512}(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[PX^_][^\x1b\x9c]{0,512}(?:\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)
_CONTROL_SPACE = re.compile(r"[\x0b\x0c\x1c-\x1f\x85\u2028\u2029]")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def strip_control(text: str) -> str:
    """``text`` without control characters: terminal escape sequences are removed whole,
    vertical tab, form feed and Unicode line separators become spaces, and other C0/C1
    controls and bidirectional overrides are dropped. Tab, newline and carriage return stay."""
    if not text:
        return ""
    text = _ANSI.sub("", text)
    text = _CONTROL_SPACE.sub(" ", text)
    return _CONTROL.sub("", text)


def normalize_text(text: str) -> str:
    """Readable plain text from an abstract that may carry LaTeX.

    LaTeX goes through :func:`assistant.latex.latex_to_text` (``96.38\\%`` becomes
    ``96.38%``, ``$\\times$`` becomes ``×``, ``\\textbf{x}`` becomes ``x``; other math and
    unknown commands are kept as written); whitespace is collapsed; control characters and
    terminal escape sequences are removed (:func:`strip_control`).
    """
    if not text:
        return ""
    text = strip_control(unicodedata.normalize("NFC", text))
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = latex_to_text(text)
    text = _SPACES.sub(" ", text)
    text = re.sub(r"\s*\n\s*", " ", text)
    return text.strip()


def title_key(title: str) -> str:
    """Normalised title used to recognise the same paper in two files."""
    t = unicodedata.normalize("NFKD", normalize_text(title)).lower()
    t = "".join(ch for ch in t if not unicodedata.combining(ch))
    t = re.sub(r"[^0-9a-z]+", " ", t)
    return " ".join(t.split())


def paper_id_for_title(title: str) -> str:
    """Stable id for a paper with no arXiv id: ``t:`` plus a hash of the normalised title."""
    return "t:" + hashlib.sha1(title_key(title).encode("utf-8")).hexdigest()[:16]


# Abbreviations after which a period does not end a sentence.
_ABBREV = (
    "e.g",
    "i.e",
    "et al",
    "etc",
    "vs",
    "cf",
    "fig",
    "figs",
    "eq",
    "eqs",
    "sec",
    "no",
    "approx",
    "resp",
    "al",
    "dr",
    "prof",
    "mr",
    "ms",
    "st",
    "ref",
    "refs",
    "tab",
    "vol",
    "pp",
    "ca",
)
_SENT_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences, keeping ``e.g.``, ``et al.``, ``Fig. 3`` and ``3.5`` intact."""
    text = " ".join(text.split())
    if not text:
        return []
    out: list[str] = []
    start = 0
    for m in _SENT_END.finditer(text):
        candidate = text[start : m.start()].rstrip()
        words = candidate.split(" ")
        last = words[-1].strip("([\"'").rstrip(".")
        prev = words[-2] if len(words) > 1 else ""
        initial = len(last) == 1 and last.isupper() and (not prev or prev[:1].isupper())
        if last.lower() in _ABBREV or initial:
            continue  # "e.g. The", "Fig. 2", "J. Smith"
        if candidate:
            out.append(text[start : m.end()].strip())
        start = m.end()
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return out


_WORD = re.compile(r"[A-Za-z][A-Za-z0-9\-]*[A-Za-z0-9]|[A-Za-z]")
_NUMBER = re.compile(r"(?<![\w.])(?<![A-Za-z]-)\d+(?:[.,]\d+)*(?:\s?%)?")
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves paper papers study studies work works propose proposed proposes show shows shown
    present presents use uses used using based approach method methods new results result
    one two three via well may might however thus also many much""".split()
)


_STEMMERS = threading.local()


def stem(word: str) -> str:
    """A lower-cased word's English (Snowball/Porter2) stem from PyStemmer, the package's one
    stemmer: "studies" -> "studi", "quantization" and "quantize" -> "quantiz". BM25
    (:mod:`assistant.index.lexical`, whose index on disk depends on it), evidence scoring, the
    verifier and polarity all compare words through it. A stemmer is not thread-safe: each
    thread has its own."""
    stemmer = getattr(_STEMMERS, "stemmer", None)
    if stemmer is None:
        import Stemmer

        stemmer = _STEMMERS.stemmer = Stemmer.Stemmer("english")
    return str(stemmer.stemWord(word))


def content_terms(text: str) -> set[str]:
    """Stems (:func:`stem`) of the lower-cased content words (stopwords removed)."""
    terms = set()
    for w in _WORD.findall(text):
        lw = w.lower()
        if lw in STOPWORDS or len(lw) < 2:
            continue
        terms.add(stem(lw))
    return terms


def numbers_in(text: str) -> set[str]:
    """Numbers as written (``96.38%``, ``1,000``), normalised for comparison. A number that
    is part of a name (``ResNet-50``, ``GPT-2``, ``top-1``) is not one: otherwise a claimed
    "50%" would find support in "ResNet-50"."""
    return {n.replace(" ", "").replace(",", "") for n in _NUMBER.findall(text)}
