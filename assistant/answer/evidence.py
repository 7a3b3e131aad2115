"""Answering, step 3: which sentences of the retrieved abstracts hold what the question asks.

Two steps of answering rest on this module, after the question is read
(:mod:`assistant.answer.question`):

- :func:`score_sources` scores every sentence of every source against the question (embedding
  similarity, shared terms, and a figure when one is asked for), and
  :func:`select_passages` chooses what the model reads: the whole abstract of the best source
  when it fits the token budget (the answering sentence is then never dropped), the best
  sentences of the others, each kept with its neighbour when that one carries the figure.
- :func:`assess` says how strongly the sources hold the answer, before the model writes
  anything: ``none`` (nothing relevant: decline without calling the model), ``weak`` or
  ``strong``. With strong evidence the model is never offered a refusal, and when its text
  keeps nothing the verifier supports, the best evidence sentences are quoted instead
  (:mod:`assistant.answer.compose`).

Everything here is deterministic and cheap (one embedding call per question); no language
model is called.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from assistant.answer.citations import claim_numbers
from assistant.answer.question import (
    QuestionShape,
    coverage_gaps,
    question_parts,
    question_shape,
)
from assistant.answer.roles import FINDING_ROLES, SETUP_ROLES, sentence_roles
from assistant.text import content_terms, split_sentences
from assistant.types import Source

__all__ = [
    "SourceEvidence",
    "Assessment",
    "score_sources",
    "select_passages",
    "assess",
    "best_for_parts",
    "has_figure",
    "source_text",
]

Embed = Callable[[list[str]], np.ndarray]
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
FINDING_BONUS = 0.1
"""Added to the score of a sentence that states what the study found (a result or
conclusion, :mod:`assistant.answer.roles`)."""
SETUP_PENALTY = 0.2
"""Taken from the score of a sentence that states what the study set out to do or what was
known before (its aim or background): it resembles the question, and does not answer it."""
TERM_WEIGHT = 0.5
"""Weight of the share of question terms a sentence contains (similarity weighs 1)."""


def term_keys(text: str) -> set[str]:
    """Content terms (stems) cut to their first five letters, so that the question's words
    meet their derived forms in a sentence: "reduce" meets "reduction", "accurate" meets
    "accuracy" (their stems differ). A looser match than the verifier's, on purpose: this
    only ranks sentences."""
    return {t[:5] for t in content_terms(text)}


def key_share(keys: set[str], text: str) -> float:
    """The share of ``keys`` (:func:`term_keys`) that ``text`` holds (0 for no keys)."""
    return len(keys & term_keys(text)) / len(keys) if keys else 0.0


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
    roles: list[str] = field(default_factory=list)
    """Each sentence's role (background, aim, method, result, conclusion, other)."""

    @property
    def best(self) -> int:
        return int(self.scores.argmax()) if len(self.scores) else -1

    @property
    def best_score(self) -> float:
        return float(self.scores.max()) if len(self.scores) else 0.0

    def ranked(self) -> list[int]:
        """Sentence indexes, most relevant first."""
        return [int(i) for i in np.argsort(-self.scores, kind="stable")]

    def findings(self) -> list[int]:
        """Indexes of the sentences that state a finding (result or conclusion), most
        relevant first."""
        return [i for i in self.ranked() if self.roles and self.roles[i] in FINDING_ROLES]

    def best_finding(self) -> int:
        """The most relevant finding; the most relevant sentence that is not the study's aim
        or background when no sentence is a finding; -1 for an empty abstract."""
        found = self.findings()
        if found:
            return found[0]
        rest = [i for i in self.ranked() if not self.roles or self.roles[i] not in SETUP_ROLES]
        return rest[0] if rest else self.best


def score_sources(
    question: str,
    sources: Sequence[Source],
    embed: Embed,
    shape: QuestionShape | None = None,
    *,
    embed_model: str = "",
) -> list[SourceEvidence]:
    """Every sentence of every source scored against ``question`` (one embedding call), and
    its role read (``embed_model`` names the embedder, whose vectors the role model reads)."""
    shape = shape or question_shape(question)
    per_source = [split_sentences(s.abstract) for s in sources]
    flat = [x for sents in per_source for x in sents]
    vecs = embed([question, *flat])
    qv, svecs = vecs[0], vecs[1:]
    q_keys = term_keys(question)
    out: list[SourceEvidence] = []
    pos = 0
    for src, sents in zip(sources, per_source):
        block = svecs[pos : pos + len(sents)]
        sims = np.asarray(block @ qv, dtype=np.float64)
        pos += len(sents)
        roles = sentence_roles(sents, block, embed_model=embed_model)
        overlap = np.array([key_share(q_keys, x) for x in sents], dtype=np.float64)
        figures = [has_figure(x) for x in sents]
        scores = sims + TERM_WEIGHT * overlap
        if shape.wants_figure and sents:
            scores = scores + FIGURE_BONUS * np.array(figures, dtype=np.float64)
        if shape.multi and sents:
            says = [bool(CONTRIBUTION.search(x)) for x in sents]
            scores = scores + CONTRIBUTION_BONUS * np.array(says, dtype=np.float64)
        if sents:
            scores = scores + np.array(
                [
                    FINDING_BONUS
                    if r in FINDING_ROLES
                    else -SETUP_PENALTY
                    if r in SETUP_ROLES
                    else 0.0
                    for r in roles
                ]
            )
        out.append(SourceEvidence(src, sents, scores, sims, figures, roles))
    return out


def best_for_parts(question: str, ev: SourceEvidence, embed: Embed) -> list[tuple[str, int]]:
    """For each part of the question (:func:`question_parts`), the part and the index of the
    sentence of ``ev`` that answers it best, its role weighed as in :func:`score_sources`
    (one more embedding call for the parts); a sentence that answers two parts is listed
    once."""
    parts = question_parts(question)
    if not ev.sentences:
        return []
    if len(parts) == 1:
        return [(parts[0], ev.best)]
    vecs = embed([*parts, *ev.sentences])
    pv, sv = vecs[: len(parts)], vecs[len(parts) :]
    prior = np.array(
        [
            FINDING_BONUS if r in FINDING_ROLES else -SETUP_PENALTY if r in SETUP_ROLES else 0.0
            for r in (ev.roles or [""] * len(ev.sentences))
        ]
    )
    out: dict[int, str] = {}
    for k, part in enumerate(parts):
        keys = term_keys(part)
        overlap = np.array([key_share(keys, x) for x in ev.sentences])
        score = sv @ pv[k] + TERM_WEIGHT * overlap + prior
        if question_shape(part).wants_figure:
            score = score + FIGURE_BONUS * np.array(ev.has_figure, dtype=np.float64)
        out.setdefault(int(score.argmax()), part)
    return [(part, i) for i, part in out.items()]


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
