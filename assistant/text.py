"""Small text utilities shared by ingest, retrieval and verification, and the helpers for what
leaves the assistant (safe and redacted URLs, Markdown made inert)."""

from __future__ import annotations

import hashlib
import re
import threading
import unicodedata
from urllib.parse import quote, urlsplit, urlunsplit

from assistant.latex import latex_to_text

__all__ = [
    "normalize_text",
    "strip_control",
    "compat_fold",
    "join_lines",
    "safe_url",
    "redact_url",
    "escape_markdown",
    "title_key",
    "paper_id_for_title",
    "split_sentences",
    "content_terms",
    "stem",
    "numbers_in",
]

_SPACES = re.compile(r"[^\S\n]+")
_NEWLINES = re.compile(r" ?\n[\n ]*")


# Terminal escape sequences (CSI "\x1b[31m", OSC "\x1b]0;title\x07", two-byte "\x1bc"), then any
# other control character. Whitespace controls become spaces; the rest go.
_ANSI = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]{0,512}(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[PX^_][^\x1b\x9c]{0,512}(?:\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)
_CONTROL_SPACE = re.compile(r"[\x0b\x0c\x1c-\x1f\x85\u2028\u2029]")
FORMAT_CHARS = (
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    "\U000e0020-\U000e007f"
)
"""Unicode's format characters (category Cf, as a regex class body): soft hyphen, zero-width
space and joiners, word joiner, byte-order mark, bidirectional controls, tag characters...
Invisible, so they can hide a word from a pattern ("Ig\\u200bnore") or smuggle text."""
_CONTROL = re.compile(rf"[\x00-\x08\x0e-\x1f\x7f-\x9f{FORMAT_CHARS}\ud800-\udfff]")


def strip_control(text: str) -> str:
    """``text`` without control characters: terminal escape sequences are removed whole,
    vertical tab, form feed and Unicode line separators become spaces, and other C0/C1
    controls, bidirectional overrides, every other format character (Cf: zero-width space
    and joiners, soft hyphen, word joiner, BOM, tag characters) and lone surrogates (a JSON
    ``"\\ud800"``: no UTF-8 encoder takes them) are dropped. Tab, newline and carriage
    return stay."""
    if not text:
        return ""
    text = _ANSI.sub("", text)
    text = _CONTROL_SPACE.sub(" ", text)
    return _CONTROL.sub("", text)


_KEPT_FORMS = re.compile(
    "[\u00aa\u00b2-\u00b3\u00b9-\u00ba\u02b0-\u02b8\u02e0-\u02e4\u10fc\u1d2c-\u1d2e"
    "\u1d30-\u1d3a\u1d3c-\u1d4d\u1d4f-\u1d6a\u1d78\u1d9b-\u1dbf\u2070-\u2071"
    "\u2074-\u208e\u2090-\u209c\u2120\u2122\u2c7c-\u2c7d\u2d6f\u3192-\u319f"
    "\ua69c-\ua69d\ua770\ua7f2-\ua7f4\ua7f8-\ua7f9\uab5c-\uab5f\uab69"
    "\U00010781-\U00010785\U00010787-\U000107b0\U000107b2-\U000107ba"
    "\U0001f16a-\U0001f16c]+"
)
"""Superscript and subscript letters and digits (``10⁻³``, ``m²``, ``x₁``): NFKC would make
them plain (``10-3``, ``m2``) and change what a number says, so :func:`compat_fold` keeps them."""


def compat_fold(text: str) -> str:
    """``text`` in Unicode NFKC (full-width letters, ligatures, mathematical alphanumerics and
    look-alike compatibility forms become their plain letters), except superscripts and
    subscripts, which keep their meaning (``10⁻³`` stays, it is not ``10-3``)."""
    if unicodedata.is_normalized("NFKC", text):
        return text
    parts = _KEPT_FORMS.split(text)
    if len(parts) == 1:
        return unicodedata.normalize("NFKC", text)
    kept = _KEPT_FORMS.findall(text)
    out = [unicodedata.normalize("NFKC", parts[0])]
    for k, part in zip(kept, parts[1:]):
        out += [unicodedata.normalize("NFC", k), unicodedata.normalize("NFKC", part)]
    return "".join(out)


# --- what leaves the assistant: URLs and Markdown (see assistant.safety) -----------------
_MARKDOWN_SPECIAL = re.compile(r"[\\`*_\[\]!<>&|]")


def escape_markdown(text: str) -> str:
    """``text`` as literal characters in a Markdown file: backslash before every character
    that could start a link, an image, emphasis, code or a table (``![x](url)`` stays
    characters, nothing loads), and ``<``/``>``/``&`` as entities (no HTML, no autolink)."""
    entities = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}
    return _MARKDOWN_SPECIAL.sub(lambda m: entities.get(m.group(), "\\" + m.group()), text or "")


def redact_url(url: str | None) -> str:
    """``url`` fit to show anyone: no user name or password, no query or fragment (where API
    keys travel); ``""`` for nothing. ``https://u:key@host/v1?key=k`` -> ``https://host/v1``."""
    if not url:
        return ""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(a URL that cannot be parsed)"
    if ":" in host:
        host = f"[{host}]"
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


_URL_SAFE = ":/?#[]@!$&'*+,;=%~-._"
"""Left as they are by :func:`safe_url`; everything else outside [A-Za-z0-9] is %-encoded."""


def safe_url(url: str) -> str | None:
    """``url`` if it is an http(s) URL with a host, %-encoding ``()<>"`` and spaces; else ``None``."""
    url = strip_control(url or "").strip()
    if not url:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # e.g. a malformed IPv6 host
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    return quote(url, safe=_URL_SAFE)


def normalize_text(text: str, *, keep_lines: bool = False) -> str:
    """Readable plain text from an abstract that may carry LaTeX.

    LaTeX goes through :func:`assistant.latex.latex_to_text` (``96.38\\%`` becomes
    ``96.38%``, ``$\\times$`` becomes ``×``, ``\\textbf{x}`` becomes ``x``; other math and
    unknown commands are kept as written); whitespace is collapsed; control and format
    characters and terminal escape sequences are removed (:func:`strip_control`);
    compatibility forms are folded (:func:`compat_fold`: NFKC, superscripts kept). With
    ``keep_lines`` every line break (a run of whitespace holding one) becomes one ``\\n``
    instead of a space: the same text, lines kept apart.
    """
    if not text:
        return ""
    text = compat_fold(strip_control(text))
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = latex_to_text(text)
    text = _SPACES.sub(" ", text)
    text = _NEWLINES.sub("\n" if keep_lines else " ", text)
    return text.strip()


def join_lines(text: str) -> str:
    """Text from :func:`normalize_text` with ``keep_lines`` as it would be without: one line."""
    return text.replace("\n", " ")


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
    """Split prose into sentences, keeping ``e.g.``, ``et al.``, ``Fig. 3`` and ``3.5`` intact.

    Linear in the length of ``text``: each candidate break looks only at the two words
    before it (never at the whole sentence so far), so "A. A. A. ..." costs no more than prose.
    """
    text = " ".join(text.split())
    if not text:
        return []
    out: list[str] = []
    start = 0
    for m in _SENT_END.finditer(text):
        end = m.start()  # text[start:end] ends with [.!?] (and maybe closing quotes)
        while end > start and text[end - 1] == " ":
            end -= 1
        if end == start:
            start = m.end()
            continue
        cut = text.rfind(" ", start, end)
        last = text[(cut + 1 if cut >= 0 else start) : end].strip("([\"'").rstrip(".")
        prev = ""
        if cut > start:
            cut2 = text.rfind(" ", start, cut)
            prev = text[(cut2 + 1 if cut2 >= 0 else start) : cut]
        initial = len(last) == 1 and last.isupper() and (not prev or prev[:1].isupper())
        if last.lower() in _ABBREV or initial:
            continue  # "e.g. The", "Fig. 2", "J. Smith"
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
