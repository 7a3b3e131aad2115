"""What a question asks for, and which sentences of the retrieved abstracts hold it.

Three steps of answering rest on this module:

- :func:`question_shape` reads the question: does it ask for a figure ("how much", "what
  accuracy"), about several papers ("which papers ... and what does each"), and which of its
  terms are specific enough that an abstract must contain them to answer it.
- :func:`score_sources` scores every sentence of every source against the question (embedding
  similarity, shared terms, and a figure when one is asked for), and
  :func:`select_passages` chooses what the model reads: the whole abstract of the best source
  when it fits the token budget (the answering sentence is then never dropped), the best
  sentences of the others, each kept with its neighbour when that one carries the figure.
- :func:`assess` says how strongly the sources hold the answer, before the model writes
  anything: ``none`` (nothing relevant: decline without calling the model), ``weak`` or
  ``strong``. With strong evidence the model is never offered a refusal, and when its text
  keeps nothing the verifier supports, the best evidence sentences are quoted instead
  (:func:`extractive_answer`).

Everything here is deterministic and cheap (one embedding call per question); no language
model is called.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .citations import claim_numbers
from .text import content_terms, split_sentences
from .types import Source

__all__ = [
    "QuestionShape",
    "SourceEvidence",
    "Assessment",
    "question_shape",
    "score_sources",
    "select_passages",
    "assess",
    "coverage_gaps",
    "best_quotes",
    "best_for_parts",
    "question_parts",
    "extractive_answer",
    "relevant_to_several",
    "has_figure",
    "missing_names",
    "source_text",
]

Embed = Callable[[list[str]], np.ndarray]

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
_YES_NO = re.compile(
    r"^\s*(?:does|do|did|is|are|was|were|can|could|has|have|had|will|would|should)\b", re.I
)
_ASKS_PAPER = re.compile(r"\b(?:which|what) (?:paper|study|work|article|publication)\b", re.I)
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
_SPELLED_FIGURE = re.compile(
    r"\b(?:half|twice|double[ds]?|triple[ds]?|thrice|third|quarter|dozens?|hundreds?|"
    r"thousands?|millions?|billions?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|"
    r"twelve|twenty|thirty|forty|fifty|percent|fold)\b",
    re.IGNORECASE,
)


def has_figure(text: str) -> bool:
    """Whether a sentence states a figure: a number other than a small plain integer, or a
    quantity in words ("half of the training set", "twice as fast", "one octave")."""
    return bool(claim_numbers(text)) or bool(_SPELLED_FIGURE.search(text))


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


def _names(question: str) -> frozenset[str]:
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


def question_shape(question: str) -> QuestionShape:
    """Read what the question asks for (see :class:`QuestionShape`)."""
    terms = content_terms(question)
    words = {w.lower() for w in _TOKEN.findall(question)}
    yes_no = bool(_YES_NO.match(question))
    return QuestionShape(
        wants_figure=bool(_WANTS_FIGURE.search(question))
        and not (yes_no and not re.search(r"\bhow (?:much|many)\b", question, re.I)),
        multi=bool(_MULTI.search(question)),
        asks_paper=bool(_ASKS_PAPER.search(question)),
        several_asks=bool(_SECOND_ASK.search(question)),
        terms=frozenset(terms),
        names=_names(question),
        metrics=frozenset(w for w in words | terms if w in METRIC_TERMS),
        excluded=tuple(frozenset(content_terms(m.group(1))) for m in _SET_ASIDE.finditer(question)),
    )


def excluded(shape: QuestionShape, title: str) -> bool:
    """Whether a paper's title is what the question sets aside (all of its terms)."""
    terms = content_terms(title)
    return any(ex and ex <= terms for ex in shape.excluded)


# --- sentences ---------------------------------------------------------------------------------
CONTRIBUTION = re.compile(
    r"\b(?:we|this paper|this work|this study|our)\b[^.]{0,40}\b(?:propose[sd]?|present[sed]*|"
    r"introduce[sd]?|develop(?:s|ed)?|design(?:s|ed)?|call(?:ed)?|name[sd]?|term(?:ed)?)\b"
    r"|\b(?:called|named|termed|dubbed)\s+(?:the\s+)?[A-Z]",
    re.IGNORECASE,
)
"""A sentence that says what a paper contributes or names ("We propose X, a ...", "a scheme
called CIRIM"): preferred when a question about several papers asks what each one does."""
CONTRIBUTION_BONUS = 0.25

FIGURE_BONUS = 0.15
"""Added to a sentence's score when the question asks for a figure and the sentence has one."""
TERM_WEIGHT = 0.5
"""Weight of the share of question terms a sentence contains (similarity weighs 1)."""


def term_keys(text: str) -> set[str]:
    """Content terms cut to their first five letters, so that "reduce" meets "reduction"
    and "accurate" meets "accuracy" (a crude stem that errs on the side of matching)."""
    return {t[:5] for t in content_terms(text)}


@dataclass
class SourceEvidence:
    """One source's sentences scored against the question."""

    source: Source
    sentences: list[str]
    scores: np.ndarray
    """Relevance of each sentence to the question: cosine + TERM_WEIGHT * share of the
    question's term keys (:func:`term_keys`) it contains, + FIGURE_BONUS when a figure is
    asked for and the sentence has one, + CONTRIBUTION_BONUS when the question is about
    several papers and the sentence says what its paper contributes."""
    similarity: np.ndarray
    """Cosine similarity of each sentence to the question."""
    has_figure: list[bool]

    @property
    def best(self) -> int:
        return int(self.scores.argmax()) if len(self.scores) else -1

    @property
    def best_score(self) -> float:
        return float(self.scores.max()) if len(self.scores) else 0.0

    def ranked(self) -> list[int]:
        """Sentence indexes, most relevant first."""
        return [int(i) for i in np.argsort(-self.scores, kind="stable")]


def score_sources(
    question: str, sources: Sequence[Source], embed: Embed, shape: QuestionShape | None = None
) -> list[SourceEvidence]:
    """Every sentence of every source scored against ``question`` (one embedding call)."""
    shape = shape or question_shape(question)
    per_source = [split_sentences(s.abstract) for s in sources]
    flat = [x for sents in per_source for x in sents]
    vecs = embed([question, *flat])
    qv, svecs = vecs[0], vecs[1:]
    q_keys = term_keys(question)
    out: list[SourceEvidence] = []
    pos = 0
    for src, sents in zip(sources, per_source):
        sims = np.asarray(svecs[pos : pos + len(sents)] @ qv, dtype=np.float64)
        pos += len(sents)
        overlap = np.array(
            [len(q_keys & term_keys(x)) / (len(q_keys) or 1) for x in sents], dtype=np.float64
        )
        figures = [has_figure(x) for x in sents]
        scores = sims + TERM_WEIGHT * overlap
        if shape.wants_figure and sents:
            scores = scores + FIGURE_BONUS * np.array(figures, dtype=np.float64)
        if shape.multi and sents:
            says = [bool(CONTRIBUTION.search(x)) for x in sents]
            scores = scores + CONTRIBUTION_BONUS * np.array(says, dtype=np.float64)
        out.append(SourceEvidence(src, sents, scores, sims, figures))
    return out


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


def best_for_parts(question: str, ev: SourceEvidence, embed: Embed) -> list[int]:
    """For each part of the question (:func:`question_parts`), the index of the sentence of
    ``ev`` that answers it best (one more embedding call for the parts)."""
    parts = question_parts(question)
    if not ev.sentences:
        return []
    if len(parts) == 1:
        return [ev.best]
    vecs = embed([*parts, *ev.sentences])
    pv, sv = vecs[: len(parts)], vecs[len(parts) :]
    out = []
    for k, part in enumerate(parts):
        keys = term_keys(part)
        overlap = np.array([len(keys & term_keys(x)) / (len(keys) or 1) for x in ev.sentences])
        score = sv @ pv[k] + TERM_WEIGHT * overlap
        if question_shape(part).wants_figure:
            score = score + FIGURE_BONUS * np.array(ev.has_figure, dtype=np.float64)
        out.append(int(score.argmax()))
    return list(dict.fromkeys(out))


# --- passages ----------------------------------------------------------------------------------
@dataclass
class PassagePlan:
    """How much of each source the model reads."""

    whole_top_tokens: int = 360
    """The best source is sent whole when its abstract is at most this many model tokens..."""
    drop_lowest: int = 2
    """...less its this many least relevant sentences without a figure, when it has six or
    more (on the sample questions 97% of the sentences holding a key fact are kept, for ~35
    fewer tokens)."""
    top_sentences: int = 4
    """Otherwise its best sentences (plus neighbours holding the asked figure)."""
    other_sentences: int = 2
    """Best sentences of every other source."""
    multi_sentences: int = 2
    """Best sentences of every source for a question about several papers."""


def select_passages(
    evidence: Sequence[SourceEvidence],
    shape: QuestionShape,
    count_tokens: Callable[[str], int],
    plan: PassagePlan | None = None,
) -> None:
    """Set ``Source.passages`` of every source: what the model will read, in abstract order."""
    plan = plan or PassagePlan()
    for rank, ev in enumerate(evidence):
        sents = ev.sentences
        if (
            rank == 0
            and not shape.multi
            and count_tokens(ev.source.abstract) <= plan.whole_top_tokens
        ):
            plain = [i for i in ev.ranked() if not ev.has_figure[i]]  # figures are kept
            drop = set(plain[len(plain) - plan.drop_lowest :]) if len(sents) >= 6 else set()
            ev.source.passages = [x for i, x in enumerate(sents) if i not in drop]
            continue
        if shape.multi:
            n = plan.multi_sentences
        else:
            n = plan.top_sentences if rank == 0 else plan.other_sentences
        keep = set(ev.ranked()[:n])
        if shape.wants_figure and not any(ev.has_figure[i] for i in keep):
            # the best sentence often announces a result its neighbour states
            best = ev.best
            for j in (best + 1, best - 1):
                if 0 <= j < len(sents) and ev.has_figure[j]:
                    keep.add(j)
                    break
        ev.source.passages = [sents[i] for i in sorted(keep)]


# --- how strong the evidence is ----------------------------------------------------------------
@dataclass
class Assessment:
    """How strongly the sources hold an answer, before the model writes anything."""

    level: str
    """``strong``, ``weak`` or ``none``."""
    reasons: list[str] = field(default_factory=list)
    best_score: float = 0.0
    gaps: list[str] = field(default_factory=list)
    """Names and measures of the question the best source never mentions."""


STRONG_SIMILARITY = 0.50
"""Cosine similarity between the question and the best sentence of the best source from
which the evidence can be strong. On the calibration split of evals/data/sample_qa.jsonl,
off-topic unanswerable questions stay below it (their best sentence shares only generic
words) and 3 of 27 answerable fact questions fall under it; near misses above it are caught
by the gaps (a name or measure the paper lacks) and the missing figure."""


def coverage_gaps(shape: QuestionShape, text: str) -> list[str]:
    """What the question names, or asks for by name, that ``text`` never mentions: a paper
    that lacks them is about something else ("GPU" asked, "CPU" stated). A measure counts as
    mentioned when any of its synonyms is ("faster": "speed-up", "accelerates"...)."""
    gaps = missing_names(shape.names - shape.metrics, text)
    for metric in sorted(shape.metrics):
        if len(missing_names(METRIC_SYNONYMS[metric], text)) == len(METRIC_SYNONYMS[metric]):
            gaps.append(metric)
    return sorted(gaps)


def source_text(source: Source) -> str:
    return f"{source.title}. {source.abstract}"


def assess(evidence: Sequence[SourceEvidence], shape: QuestionShape) -> Assessment:
    """Strong, weak or no evidence for an answer (see :class:`Assessment`).

    Strong: the best-matching source mentions everything the question names, its best
    sentence is at least STRONG_SIMILARITY close to the question, and, when a figure is
    asked for, one of its three best sentences gives one.
    """
    if not evidence:
        return Assessment("none", ["nothing relevant was retrieved"])
    top = max(evidence, key=lambda ev: ev.best_score)
    reasons = []
    gaps = coverage_gaps(shape, source_text(top.source))
    if gaps:
        reasons.append(f"the best source never mentions {', '.join(gaps)}")
    if shape.wants_figure and not any(top.has_figure[i] for i in top.ranked()[:3]):
        reasons.append("a figure is asked for and the best sentences give none")
    closest = float(top.similarity.max()) if len(top.similarity) else 0.0
    if closest < STRONG_SIMILARITY:
        reasons.append(f"closest sentence similarity {closest:.2f} < {STRONG_SIMILARITY}")
    return Assessment("strong" if not reasons else "weak", reasons, top.best_score, gaps)


# --- the extractive floor ----------------------------------------------------------------------
def best_quotes(ev: SourceEvidence, shape: QuestionShape, *, limit: int = 2) -> list[str]:
    """The sentences of one source to quote for the question, in abstract order.

    The best sentence; when a figure is asked for and it has none, the best of the next two
    that has one; for a question about several papers, the best sentence that says what the
    paper contributes; otherwise the second best when it scores within 0.15 of the first
    (the answer often spans two sentences).
    """
    if not ev.sentences:
        return []
    scores = ev.scores
    ranked = ev.ranked()
    picked = [ranked[0]]
    if limit > 1 and len(ranked) > 1:
        if shape.multi:
            says = [j for j in ranked[1:] if CONTRIBUTION.search(ev.sentences[j])]
            if not CONTRIBUTION.search(ev.sentences[ranked[0]]):
                picked += says[:1]
        elif shape.wants_figure and not ev.has_figure[ranked[0]]:
            with_figure = [j for j in ranked[1:3] if ev.has_figure[j]]
            picked += with_figure[:1]
        elif not shape.multi and scores[ranked[1]] >= scores[ranked[0]] - 0.15:
            picked.append(ranked[1])
    return [ev.sentences[i] for i in sorted(picked)]


def extractive_answer(
    evidence: Sequence[SourceEvidence], shape: QuestionShape
) -> list[tuple[int, str]]:
    """(source index, sentence) to quote when the model's text keeps nothing supported: the
    best quotes (:func:`best_quotes`) of the best source."""
    if not evidence:
        return []
    best = max(range(len(evidence)), key=lambda i: evidence[i].best_score)
    return [(best, q) for q in best_quotes(evidence[best], shape)]


def relevant_to_several(
    evidence: Sequence[SourceEvidence], shape: QuestionShape, cited: set[int]
) -> list[int]:
    """For a question about several papers: indexes of the sources to answer with, in prompt
    order. A source counts when the model cited it in a supported sentence, or when it
    mentions what the question names and its best sentence scores within 0.25 of the best
    source's; either way it must not lack what the question names, nor be what the question
    sets aside ("as opposed to quantum neural networks")."""
    if not evidence:
        return []
    top = max(ev.best_score for ev in evidence)
    keep = []
    for i, ev in enumerate(evidence):
        if coverage_gaps(shape, source_text(ev.source)) or excluded(shape, ev.source.title):
            continue
        if i in cited or ev.best_score >= top - 0.25:
            keep.append(i)
    return keep
