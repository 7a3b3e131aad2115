"""Answering, step 2: what a question asks for, read from the question alone.

Does it ask for a figure ("how much", "what accuracy"), about several papers ("which papers
... and what does each"), which paper ("which paper proposes"), several things at once; which
of its words are names an abstract must contain to answer it (acronyms, mixed case, words with
digits), which measures it asks for by name, and what it sets aside ("as opposed to ...").
:mod:`assistant.answer.evidence` then scores the retrieved sentences against this shape.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from assistant.text import content_terms

__all__ = [
    "KINDS",
    "QuestionShape",
    "question_shape",
    "question_kind",
    "compared_sides",
    "coverage_gaps",
    "question_parts",
    "missing_names",
    "names_in",
]

# --- the question ----------------------------------------------------------------------------
_FIGURE_WORDS = (
    r"accuracy|accuracies|score|scores|error|errors|rate|rates|speed-?ups?|reduction|"
    r"improvement|gain|gains|percentage|fraction|proportion|share|perplexity|bleu|rouge|fid|"
    r"f1|auc|map|miou|iou|latency|throughput|size|sizes|parameters|params|flops|top-1|top-5|"
    r"precision|recall|ratio|cost|energy|memory|time|times|steps|epochs|tokens|samples|"
    r"number|count|margin|drop|increase|decrease|sparsity|compression|bits?|bit-width|"
    r"mae|mse|rmse|psnr|ssim|auroc|wer|cer|speed|faster|slower|larger|smaller|"
    r"points?|pp|percent"
)
_WANTS_FIGURE = re.compile(
    r"\bhow (?:much|many|large|big|fast|long|small|often|accurate|deep|wide|high|low)\b"
    r"|\bby how\b|\bto what (?:extent|degree)\b"
    rf"|\b(?:what|which)\b(?:\s+[\w\-^]+){{0,4}}?\s+(?:{_FIGURE_WORDS})\b",
    re.IGNORECASE,
)
_MULTI = re.compile(
    r"\b(?:which|what|any|other|several|both|all|the)\s+(?:\w+\s+){0,2}(?:papers|studies|works|"
    r"articles|publications)\b|\b(?:papers|studies|works) (?:that|which|on|about|using)\b"
    r"|\beach (?:paper|study|work)\b|\bacross (?:the )?(?:papers|studies)\b",
    re.IGNORECASE,
)
_AUXILIARY = (
    r"(?:does|do|did|is|are|was|were|can|could|has|have|had|will|would|should|may|might|must)"
)
_YES_NO = re.compile(
    # "Does X ...?", and after leading phrases: "In patients with X, does Y ...?", "If X is
    # trained stage by stage, each stage ..., can ...?"; not a request ("Can you list ...")
    rf"^\s*(?!(?:what|which|how|who|whom|whose|where|why)\b)(?:[^?]{{0,240}}?,\s*)?"
    rf"{_AUXILIARY}\b(?!\s+(?:you|we|i)\b)",
    re.IGNORECASE,
)
_COMPARE = re.compile(
    # two studies side by side (one study comparing two settings is a fact or yes/no question;
    # when both sides turn out to be one paper, it is answered as one)
    r"\bboth\b[^?]*\beach\b|\bthe other\b|\beach of (?:the|these) two\b"
    r"|\b(?:two|2) (?:[\w-]+ ){0,2}(?:methods|approaches|papers|studies|works|models|techniques"
    r"|systems|frameworks|algorithms)\b|\bwhich of (?:the|these) two\b"
    r"|^\s*how (?:do|does|did)\b[^?]+\b(?:differ|compare)\b",
    re.IGNORECASE,
)
_ASKS_PAPER = re.compile(
    r"^\W*which (?:[\w-]+ ){0,2}(?:paper|study|work|article|publication|method|model|"
    r"approach|technique|framework|algorithm|architecture|system)s?\b(?! (?:is|are|do|does)\b)"
    r"|\b(?:which|what) (?:paper|study|work|article|publication)\b",
    re.I,
)
"""A question that asks which paper (or which method, model, approach...: named by a paper)."""
_SECOND_ASK = re.compile(
    r"(?:,|;|\band\b)\s+(?:\w+\s+){0,2}?(?:what|which|how|who|where|when|why|whether|does|do|"
    r"did|is|are)\b",
    re.IGNORECASE,
)
_ASKS = re.compile(
    r"\b(?:what|which|how|who|whom|whose|where|when|why|whether|does|do|did|is|are|was|were|"
    r"can|could)\b",
    re.IGNORECASE,
)
_SET_ASIDE = re.compile(
    r"\b(?:as opposed to|rather than|other than|excluding|except for|not about)\s+([^,;()?]+)",
    re.IGNORECASE,
)


_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-^./+]*[A-Za-z0-9+]|[A-Za-z0-9]")
_SENTENCE_START = re.compile(r"(?:^|[.?!:;]\s+|\(\s*)$")
_QUESTION_WORDS = frozenset(
    "what which how who whom whose where when why does do did is are was were can could "
    "should would will has have had in on for by from with and or of the a an to i".split()
)
_METRIC_GROUPS = (
    "bleu",
    "rouge",
    "fid",
    "perplexity",
    "miou iou",
    "map",
    "auc auroc",
    "f1",
    "wer cer",
    "psnr ssim",
    "mae mse rmse",
    "latency throughput speed speed-up speedup speedups faster accelerate accelerates "
    "acceleration quicker",
    "memory footprint",
    "energy joules power",
    "gpu gpus",
    "gpu-hours gpu-days",
    "flops",
)
METRIC_SYNONYMS: dict[str, frozenset[str]] = {
    term: frozenset(group.split()) for group in _METRIC_GROUPS for term in group.split()
}
"""Measures a question may ask for by name, each with the words an abstract may state it in:
an abstract that uses none of them does not state that measure."""
METRIC_TERMS = frozenset(METRIC_SYNONYMS)


def _compress(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def names_in(question: str) -> frozenset[str]:
    """Words of the question written as names: acronyms and mixed case ("HAWQ", "LLaMA-2"),
    words that start with letters and hold digits ("WMT16", "GTA5"), capitalised words inside
    the sentence ("Darcy")."""
    out = set()
    for m in _TOKEN.finditer(question):
        word = m.group(0).rstrip(".")
        if word.endswith("'s"):
            word = word[:-2]
        # "ImageNet-pretrained" names ImageNet; "ResNet-50", "GaSNet-II" stay whole
        word = re.sub(r"(?<=[A-Za-z0-9])-[a-z]+$", "", word)
        letters = [c for c in word if c.isalpha()]
        if not letters or word.lower() in _QUESTION_WORDS:
            continue
        inner_caps = any(c.isupper() for c in word[1:])
        # "WMT16", "GPT-2", "ResNet-50" are names; "20-layer", "256x256", "4-bit" are not
        mixed_digits = word[0].isalpha() and any(c.isdigit() for c in word) and len(letters) >= 2
        capitalised = word[0].isupper() and not _SENTENCE_START.search(question[: m.start()])
        if inner_caps or mixed_digits or capitalised:
            out.add(word.lower())
    return frozenset(out)


def _initials_match(acronym: str, words: list[str]) -> bool:
    """Whether consecutive words spell the acronym ("SDSS": Sloan Digital Sky Survey)."""
    target = acronym.lower()
    content = [w for w in words if w.lower() not in ("of", "and", "the", "for", "-", "&")]
    initials = "".join(w[0].lower() for w in content if w)
    return len(target) >= 2 and target in initials


def missing_names(names: Sequence[str] | frozenset[str], text: str) -> list[str]:
    """The names (see :class:`QuestionShape`) that ``text`` does not contain, comparing
    letters and digits only ("top1" is "top-1", "Tiny ImageNet" is "Tiny-ImageNet"), plurals
    folded, and an acronym matching the initials of words in the text."""
    words = re.findall(r"[A-Za-z0-9][A-Za-z0-9\-^+]*", text)
    compressed = [_compress(w) for w in words]
    grams = set(compressed)
    for n in (2, 3):
        grams |= {"".join(compressed[i : i + n]) for i in range(len(compressed) - n + 1)}
    missing = []
    for name in sorted(names):
        c = _compress(name)
        if not c or c in grams or c.rstrip("s") in grams or c + "s" in grams:
            continue
        if name.isalpha() and len(name) <= 6 and _initials_match(name, words):
            continue
        missing.append(name)
    return missing


KINDS = ("fact", "yesno", "multi", "compare")


@dataclass(frozen=True)
class QuestionShape:
    """What kind of answer the question wants."""

    wants_figure: bool
    """It asks for a number: how much, how many, what accuracy, what speed-up..."""
    multi: bool
    """It asks about several papers ("which papers", "studies that", "each paper")."""
    asks_paper: bool
    """It asks which paper ("which paper proposes..."): the title is part of the answer."""
    several_asks: bool
    """It asks more than one thing ("how does X work, and how much does it improve..."): an
    answer to one part is an answer."""
    terms: frozenset[str]
    """Its content terms (see :func:`assistant.text.content_terms`)."""
    names: frozenset[str]
    """Words written as names (acronyms, mixed case, digits, capitalised inside the sentence:
    "HAWQ", "LLaMA-2", "WMT16", "Darcy"), lower-cased: what the question is about, which an
    abstract must contain to answer it."""
    metrics: frozenset[str]
    """Measures asked for by name ("FID", "speed-up", "GPU hours"; see METRIC_TERMS)."""
    excluded: tuple[frozenset[str], ...] = ()
    """Content terms of what the question sets aside ("as opposed to X", "rather than X")."""
    kind: str = "fact"
    """``yesno`` ("Does X improve Y?": the answer opens with a verdict), ``compare`` (two
    studies side by side), ``multi`` (several papers) or ``fact``."""
    sides: tuple[str, ...] = ()
    """For a comparison, the two things compared, as the question describes them (empty
    when the question does not say them apart)."""


def question_shape(question: str) -> QuestionShape:
    """Read what the question asks for (see :class:`QuestionShape`)."""
    terms = content_terms(question)
    words = {w.lower() for w in _TOKEN.findall(question)}
    yes_no = bool(_YES_NO.match(question))
    kind = question_kind(question)
    return QuestionShape(
        wants_figure=bool(_WANTS_FIGURE.search(question))
        and not (yes_no and not re.search(r"\bhow (?:much|many)\b", question, re.I)),
        multi=kind in ("multi", "compare"),
        asks_paper=bool(_ASKS_PAPER.search(question)),
        several_asks=bool(_SECOND_ASK.search(question)),
        terms=frozenset(terms),
        names=names_in(question),
        metrics=frozenset(w for w in words | terms if w in METRIC_TERMS),
        excluded=tuple(frozenset(content_terms(m.group(1))) for m in _SET_ASIDE.finditer(question)),
        kind=kind,
        sides=compared_sides(question) if kind == "compare" else (),
    )


def question_kind(question: str) -> str:
    """``multi`` when it asks about several papers; ``compare`` when it sets two studies side
    by side ("How do A and B differ", "Both A and B ...: what does each", "Two methods: one
    ..., the other ..."); ``yesno`` when it asks whether (an auxiliary verb opens its main
    clause: "Does ...", "In older adults, is ..."); else ``fact``. A yes/no question that
    compares inside one study ("Does X outperform Y?") is ``yesno``."""
    if _MULTI.search(question):
        return "multi"
    if _YES_NO.match(question):
        return "yesno"
    if _COMPARE.search(question):
        return "compare"
    return "fact"


_SIDE_PATTERNS = (
    # "How does A differ from B in ...?", "How does A compare with/to B ...?"
    re.compile(
        r"\bhow (?:does|do|did) (?P<a>.+?) (?:differ|compare) (?:from|with|to|against) (?P<b>.+?)"
        r"(?:\s+(?:in|on|when|for|regarding|with respect to|as to)\b|[,?]|$)",
        re.I,
    ),
    # "How do A and B differ ...", "How do A and B compare ..."
    re.compile(r"\bhow (?:do|did) (?P<a>.+?) and (?P<b>.+?) (?:differ|compare)\b", re.I),
    # "Both A and B ...", "A and B both ..."
    re.compile(
        r"\bboth (?P<a>.+?) and (?P<b>.+?)(?= (?:learn|use|work|draw|change|claim|\w+s)\b|[,.:?])",
        re.I,
    ),
    re.compile(r"^(?P<a>.+?) and (?P<b>.+?) both\b", re.I),
    # "...: one ..., the other ..."
    re.compile(r"\bone (?P<a>.+?)[,;] (?:and )?the other (?P<b>.+?)(?:[.:?;]|$)", re.I),
    # "A versus B", "A vs. B"
    re.compile(r"(?P<a>[^,.:;?]+?) (?:versus|vs\.?) (?P<b>[^,.:;?]+)", re.I),
)


def compared_sides(question: str) -> tuple[str, ...]:
    """The two things a comparison sets side by side, as the question words them; empty
    when no pattern finds both."""
    for pattern in _SIDE_PATTERNS:
        m = pattern.search(question)
        if m:
            a, b = (" ".join(m.group(g).split()).strip(" ,;:") for g in ("a", "b"))
            if len(a.split()) >= 1 and len(b.split()) >= 1 and a.lower() != b.lower():
                return (a, b)
    return ()


def excluded(shape: QuestionShape, title: str) -> bool:
    """Whether a paper's title is what the question sets aside (all of its terms)."""
    terms = content_terms(title)
    return any(ex and ex <= terms for ex in shape.excluded)


def question_parts(question: str) -> list[str]:
    """The question cut where it asks its next thing ("How large is X, and what accuracy does
    it reach?" gives two parts); one part when it asks one thing."""
    cuts = [m.start() for m in _SECOND_ASK.finditer(question)]
    bounds = [0, *cuts, len(question)]
    pieces = [question[a:b].strip(" ,;") for a, b in zip(bounds, bounds[1:])]
    parts: list[str] = []
    carry = ""
    for piece in pieces:  # a piece that asks nothing ("In a long run of tasks") joins the next
        text = f"{carry} {piece}".strip() if carry else piece
        if _ASKS.search(piece) and len(text.split()) >= 3:
            parts.append(text)
            carry = ""
        else:
            carry = text
    if carry and parts:
        parts[-1] = f"{parts[-1]} {carry}"
    return parts or [question]


def coverage_gaps(shape: QuestionShape, text: str) -> list[str]:
    """What the question names, or asks for by name, that ``text`` never mentions: a paper
    that lacks them is about something else ("GPU" asked, "CPU" stated). A measure counts as
    mentioned when any of its synonyms is ("faster": "speed-up", "accelerates"...)."""
    gaps = missing_names(shape.names - shape.metrics, text)
    for metric in sorted(shape.metrics):
        if len(missing_names(METRIC_SYNONYMS[metric], text)) == len(METRIC_SYNONYMS[metric]):
            gaps.append(metric)
    return sorted(gaps)
