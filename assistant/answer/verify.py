"""Answering, after the model: check every sentence of its answer against the retrieved abstracts.

Small local models cite badly and sometimes answer from memory. :func:`verify_answer` reads
the model's sentences and citation markers (:mod:`assistant.answer.citations`), scores each sentence
against each source with cheap, deterministic signals (embedding similarity, shared content
terms, matching numbers), keeps the citations the sources support, adds missing ones, marks
or drops sentences no source supports, and renumbers the cited papers 1..m in order of first
appearance.

No language model is called here: this runs on every answer and must stay fast.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from assistant.answer.citations import (
    AnswerSentence,
    AnswerUnit,
    claim_numbers,
    is_filler,
    is_refusal_sentence,
    parse_answer,
    place_marks,
    short_reason,
)
from assistant.answer.polarity import opposes
from assistant.answer.question import missing_names, names_in
from assistant.answer.roles import SETUP_ROLES, rule_roles
from assistant.errors import InputError
from assistant.text import content_terms, normalize_text, numbers_in, split_sentences
from assistant.types import Citation, SentenceCheck, Source

__all__ = ["UNSUPPORTED_MARK", "NO_ANSWER_TEXT", "Verified", "verify_answer", "support_scores"]

log = logging.getLogger(__name__)

Embed = Callable[[list[str]], np.ndarray]

UNSUPPORTED_MARK = "[unverified]"
NO_ANSWER_TEXT = "The papers in this collection do not answer this question."

# --- score model -------------------------------------------------------------------------
# score = sigmoid(W_SIM * sim + W_TERMS * terms + BIAS), times NUMBER_PENALTY when a number in
# the sentence is not in the source. sim: best cosine (all-MiniLM-L6-v2) between the sentence
# and the title or an abstract sentence; terms: share of the sentence's content terms found in
# the source. Fitted by logistic regression on evals/data/judge_pairs.jsonl (weighted 5x) plus
# SciFact claims (supported claim vs its abstract, any claim vs a random abstract), so 0.5 is
# the decision boundary. On judge_pairs: 20/20 supported kept, 13/20 unsupported rejected
# (all wrong numbers caught; contradictions and overclaims on the right topic are not).
W_SIM = 8.0
W_TERMS = 3.8
BIAS = -7.3
NUMBER_PENALTY = 0.3
"""Factor applied when the sentence has a number the source lacks (keeps it under 0.5), or
binds a figure of the source to what that figure's sentence does not say."""
OPPOSED_PENALTY = 0.3
"""Factor applied when the sentence says the opposite of the source sentence most like it
("is associated" against "was not associated": :func:`assistant.answer.polarity.opposes`)."""
SECOND_CITATION_MARGIN = 0.05
EXTRA_UNITS = 4
"""Abstract sentences embedded per source (besides the title) when no passages are given."""
MAX_PASSAGE_UNITS = 3
"""Passages (sentences the model was shown) embedded per source."""
EXTRA_UNITS_WITH_PASSAGES = 1
"""Other abstract sentences embedded per source when passages are given."""
MIN_SHARED_TERMS = 1


# --- scoring -------------------------------------------------------------------------------
def _num_key(n: str) -> str:
    n = n.rstrip("%")
    if "." in n:
        n = n.rstrip("0").rstrip(".")
    return n


@dataclass
class _SourceView:
    """What the scorer needs from one source, computed once per answer."""

    title: str
    sentences: list[str]
    """Abstract sentences."""
    shown: set[int]
    """Indexes of the sentences the model was shown (``Source.passages``)."""
    sentence_stems: list[set[str]]
    stems: set[str]
    numbers: set[str]
    sentence_numbers: list[set[str]]
    everywhere: frozenset[str]
    """Names the paper uses throughout (its title's, or those of half its sentences): a claim
    need not find them beside a figure."""
    setup: frozenset[str]
    """Sentences that state what was known before the study or what it set out to do (their
    role by :func:`assistant.answer.roles.rule_roles`): a claim that denies them does not deny
    the paper ("most existing methods require the training data" is not what ZeroQ found)."""


def _stems(text: str) -> set[str]:
    return content_terms(text)


def _views(sources: Sequence[Source]) -> list[_SourceView]:
    views = []
    for src in sources:
        abstract = normalize_text(src.abstract)
        title = normalize_text(src.title)
        sentences = split_sentences(abstract)
        passages = [q for q in (normalize_text(p) for p in src.passages) if q]
        extra = [p for p in dict.fromkeys(passages) if p not in abstract]
        shown = {k for k, x in enumerate(sentences) if any(x in p or p in x for p in passages)}
        shown |= set(range(len(sentences), len(sentences) + len(extra)))
        body = " ".join([title, abstract, *extra])
        every = sentences + extra
        views.append(
            _SourceView(
                title=title,
                sentences=every,
                shown=shown,
                sentence_stems=[_stems(x) for x in every],
                stems=_stems(body),
                numbers={_num_key(n) for n in numbers_in(body)},
                sentence_numbers=[{_num_key(n) for n in numbers_in(x)} for x in every],
                everywhere=_paper_names(title, every),
                setup=frozenset(
                    x
                    for x, r in zip(sentences, rule_roles(sentences), strict=True)
                    if r in SETUP_ROLES
                ),
            )
        )
    return views


def _paper_names(title: str, sentences: Sequence[str]) -> frozenset[str]:
    counts: dict[str, int] = {}
    for x in sentences:
        for name in names_in(x):
            counts[name] = counts.get(name, 0) + 1
    common = {n for n, c in counts.items() if c >= max(2, len(sentences) / 2)}
    return frozenset(names_in(title) | common)


def _figure_context(view: _SourceView, k: int, figures: set[str]) -> str:
    """Sentence ``k`` with its neighbours that state no other figure than the claim's
    (they often name the setting: "For instance, training a ResNet-18 on ImageNet-100 ...",
    "This result won the 1st place on ILSVRC 2015"); a neighbour with figures of its own
    binds its names to those."""
    near = [
        view.sentences[m]
        for m in (k - 1, k, k + 1)
        if 0 <= m < len(view.sentences)
        and (m == k or {_num_key(x) for x in claim_numbers(view.sentences[m])} <= figures)
    ]
    return " ".join(near)


def unbound_figure(claim: str, view: _SourceView) -> bool:
    """Whether a figure of ``claim`` stands in the source only in sentences that lack a name
    the claim binds to it: "a ResNet-18 trained with ERM on ImageNet-100 CUDA reaches
    80.66%" when the sentence with 80.66% is about ERM on the clean data. Names the paper
    uses throughout are not required; figures the source lacks are the number penalty's."""
    bound = names_in(claim) - view.everywhere
    if not bound:
        return False
    figures = {_num_key(x) for x in numbers_in(claim)}
    for n in {_num_key(x) for x in claim_numbers(claim)}:
        holders = [k for k, nums in enumerate(view.sentence_numbers) if n in nums]
        if holders and all(
            missing_names(bound, _figure_context(view, k, figures)) for k in holders
        ):
            return True
    return False


def _select_units(claims: Sequence[str], view: _SourceView) -> list[str]:
    """The texts of one source to embed: the title and the sentences claims may rest on.

    Embedding every abstract sentence is the slow part on a small CPU, so per source only
    the title, up to MAX_PASSAGE_UNITS of the passages the model was shown and a few other
    abstract sentences are embedded, taking for each claim in turn the sentence that shares
    the most content terms with it.
    """
    ranked: list[list[int]] = []
    for claim in claims:
        cs = _stems(claim)
        overlaps = [len(cs & ss) for ss in view.sentence_stems]
        order = sorted(range(len(overlaps)), key=lambda k: (-overlaps[k], k))
        ranked.append([k for k in order if overlaps[k] >= MIN_SHARED_TERMS])
    picked: list[int] = []  # round robin over the claims
    for depth in range(max((len(r) for r in ranked), default=0)):
        picked += [r[depth] for r in ranked if depth < len(r) and r[depth] not in picked]
    extra = EXTRA_UNITS_WITH_PASSAGES if view.shown else EXTRA_UNITS
    units = [view.title] if view.title else []
    units += [view.sentences[k] for k in picked if k in view.shown][:MAX_PASSAGE_UNITS]
    units += [view.sentences[k] for k in picked if k not in view.shown][:extra]
    return units


EMBED_CHUNK = 8
"""Texts per embed call, grouped by length: padding a short sentence to the longest one in a
large batch costs more than the extra calls (about 40% less CPU time here)."""


def _embed_by_length(embed: Embed, texts: list[str]) -> np.ndarray:
    """Embed texts in small batches of similar length; rows in the order given."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: np.ndarray | None = None
    for start in range(0, len(order), EMBED_CHUNK):
        idx = order[start : start + EMBED_CHUNK]
        vecs = np.asarray(embed([texts[i] for i in idx]), dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape[0] != len(idx):
            raise InputError(
                f"the embedder returned shape {vecs.shape} for {len(idx)} texts; "
                "pass an embed function that returns one row per text"
            )
        if out is None:
            out = np.zeros((len(texts), vecs.shape[1]), dtype=np.float32)
        out[idx] = vecs
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def _score_matrix(
    sentences: Sequence[str], views: Sequence[_SourceView], embed: Embed
) -> tuple[np.ndarray, list[list[str]], np.ndarray]:
    """Scores [n_sentences, n_sources], the texts embedded per source, and per pair the index
    of the best abstract sentence among them."""
    n, k = len(sentences), len(views)
    scores = np.zeros((n, k), dtype=np.float64)
    best_unit = np.zeros((n, k), dtype=np.int64)
    units = [_select_units(sentences, v) for v in views]
    flat = [u for us in units for u in us]
    if n == 0 or not flat:
        return scores, units, best_unit
    # the assistant passes a caching embedder (assistant.index.embeddings.MemoEmbed): the source
    # sentences were embedded for passage selection already, only the claims are new
    vectors = _embed_by_length(embed, [*sentences, *flat])
    sims = vectors[:n] @ vectors[n:].T
    pos = 0
    for j, view in enumerate(views):
        width = len(units[j])
        if width == 0:
            continue
        block = sims[:, pos : pos + width]
        pos += width
        best_sim = block.max(axis=1)
        # The snippet is the abstract sentence most like the claim, preferring one that holds
        # the claim's numbers; the title counts for the score only.
        skip = 1 if view.title and width > 1 else 0
        unit_numbers = [{_num_key(x) for x in numbers_in(u)} for u in units[j]]
        for i, sentence in enumerate(sentences):
            scores[i, j] = _combine(float(best_sim[i]), sentence, view)
            wanted = {_num_key(x) for x in claim_numbers(sentence)}
            bonus = np.array([0.3 if wanted and wanted <= un else 0.0 for un in unit_numbers])
            best_unit[i, j] = int((block[i] + bonus)[skip:].argmax()) + skip
            if _opposed(sentence, units[j], block[i], skip, view.setup):
                scores[i, j] = round(scores[i, j] * OPPOSED_PENALTY, 4)
            elif wanted and unbound_figure(sentence, view):
                scores[i, j] = round(scores[i, j] * NUMBER_PENALTY, 4)
    return scores, units, best_unit


OPPOSED_SIMILARITY_MARGIN = 0.1
"""The sentences a claim rests on, for the polarity check: those within this cosine of the
one most like it (not every sentence on the topic: a background sentence may deny what the
paper then shows)."""


def _opposed(
    claim: str, units: Sequence[str], sims: np.ndarray, skip: int, setup: frozenset[str]
) -> bool:
    """Whether the claim says the opposite of a sentence of the source it rests on (not one
    that only states the background or the aim)."""
    if len(units) <= skip:
        return False
    top = float(sims[skip:].max())
    return any(
        opposes(claim, u)
        for u, sim in zip(units[skip:], sims[skip:])
        if sim >= top - OPPOSED_SIMILARITY_MARGIN and u not in setup
    )


def _term_share(sentence: str, view: _SourceView) -> float:
    stems = _stems(sentence)
    if not stems:
        return 0.0
    return len(stems & view.stems) / len(stems)


def _combine(sim: float, sentence: str, view: _SourceView) -> float:
    z = W_SIM * sim + W_TERMS * _term_share(sentence, view) + BIAS
    score = 1.0 / (1.0 + math.exp(-z))
    wanted = {_num_key(x) for x in claim_numbers(sentence)}
    if wanted - view.numbers:
        score *= NUMBER_PENALTY
    return round(score, 4)


def support_scores(sentences: list[str], sources: list[Source], embed: Embed) -> np.ndarray:
    """How well each source supports each sentence: an array [n_sentences, n_sources] in 0..1.

    Combines the best cosine similarity between the sentence and the source's title or one
    of its sentences (the passages shown to the model and the abstract sentences sharing
    most words with the claims), the share of the sentence's content terms found in the
    source, and a strong penalty when the sentence has a number (other than a small
    integer) the source lacks. The new texts are embedded in one call; source sentences
    are cached per embedder. 0.5 separates supported from unsupported.
    """
    scores, _, _ = _score_matrix(sentences, _views(sources), embed)
    return scores


# --- the verifier --------------------------------------------------------------------------
@dataclass
class Verified:
    """The checked answer."""

    text: str
    """Final answer text with consecutive [1], [2] markers."""
    citations: list[Citation] = field(default_factory=list)
    """Exactly the cited papers, numbered as in ``text``, in order of first appearance."""
    sentences: list[SentenceCheck] = field(default_factory=list)
    """One verdict per sentence that makes a claim (filler and refusals are not checked)."""
    answerable: bool = True


def _source_numbers(sources: Sequence[Source]) -> list[int]:
    nums = [s.number for s in sources]
    if all(n == 0 for n in nums):
        return list(range(1, len(sources) + 1))
    if any(n <= 0 for n in nums) or len(set(nums)) != len(nums):
        raise InputError(
            f"sources must be numbered 1..n without repeats, got {nums}; "
            "set Source.number as in the prompt before verifying"
        )
    return nums


def verify_answer(
    raw_text: str,
    sources: list[Source],
    embed: Embed,
    *,
    threshold: float = 0.5,
    drop_unsupported: bool = False,
) -> Verified:
    """Check each sentence of the model's answer against the sources and fix its citations.

    Model citations a sentence's source supports (score >= ``threshold``) are kept; when none
    survives, the best source (and a second within 0.05) is cited if it reaches the
    threshold; otherwise the sentence gets :data:`UNSUPPORTED_MARK` (or is dropped with
    ``drop_unsupported``). Sentences without content and refusals pass through uncited.
    Citations are renumbered 1..m in order of first appearance. When the answer is a refusal
    or no sentence is supported, ``answerable`` is False and the text is
    :data:`NO_ANSWER_TEXT`.
    """
    t0 = time.perf_counter()
    if not 0.0 <= threshold <= 1.0:
        raise InputError(
            f"threshold must be within 0..1, got {threshold}; set ASSISTANT_SUPPORT_THRESHOLD"
        )
    numbers = _source_numbers(sources)
    units = parse_answer(raw_text or "", numbers)
    claims = _claims(units)
    views = _views(sources)
    scores, units_of, best_unit = _score_matrix([c.text for c in claims], views, embed)
    for i, s in enumerate(claims):
        s.keep = _kept_citations(s, scores[i], numbers, threshold)
        s.score = float(scores[i].max()) if len(scores[i]) else 0.0
        s.supported = bool(s.keep)

    if not any(s.supported for s in claims):
        log.debug("verify: no supported sentence (%d claims)", len(claims))
        return _unanswerable(units, claims)

    cited = _Renumbering(numbers, views, scores, units_of, best_unit)
    text, checks = _rewrite(units, cited, drop_unsupported)
    citations = cited.citations(dict(zip(numbers, sources, strict=True)))
    log.debug(
        "verify: %d claims, %d supported, %d cited papers in %.3fs",
        len(claims),
        sum(s.supported for s in claims),
        len(citations),
        time.perf_counter() - t0,
    )
    return Verified(text=text, citations=citations, sentences=checks, answerable=True)


def _claims(units: list[AnswerUnit]) -> list[AnswerSentence]:
    """Mark refusals and filler; number and return the sentences that make a claim."""
    claims: list[AnswerSentence] = []
    for unit in units:
        for s in unit.sentences:
            if is_refusal_sentence(s.text):
                s.kind = "refusal"
            elif is_filler(s.text):
                s.kind = "filler"
            else:
                s.index = len(claims)
                claims.append(s)
    return claims


def _kept_citations(
    s: AnswerSentence, row: np.ndarray, numbers: list[int], threshold: float
) -> list[int]:
    """The model's citations the row supports, else the best source (and a close second)."""
    col = {n: j for j, n in enumerate(numbers)}
    kept = [n for n in s.model_cites if row[col[n]] >= threshold]
    if not kept and len(row):
        order = np.argsort(-row, kind="stable")
        best = int(order[0])
        if row[best] >= threshold:
            kept = [numbers[best]]
            if len(order) > 1:
                second = int(order[1])
                if row[second] >= threshold and row[best] - row[second] <= SECOND_CITATION_MARGIN:
                    kept.append(numbers[second])
    return kept


def _unanswerable(units: list[AnswerUnit], claims: list[AnswerSentence]) -> Verified:
    """No sentence is supported: the no-answer text (with a lone refusal's short reason)."""
    refusals = [s for u in units for s in u.sentences if s.kind == "refusal"]
    text = NO_ANSWER_TEXT
    if len(refusals) == 1 and not claims and short_reason(refusals[0].text):
        text = f"{NO_ANSWER_TEXT} {refusals[0].text}"
    checks = [SentenceCheck(s.text, False, [], s.score, list(s.model_cites)) for s in claims]
    return Verified(text=text, citations=[], sentences=checks, answerable=False)


class _Renumbering:
    """Answer numbers for the cited sources, in order of first citation, with their evidence."""

    def __init__(
        self,
        numbers: list[int],
        views: list[_SourceView],
        scores: np.ndarray,
        units_of: list[list[str]],
        best_unit: np.ndarray,
    ) -> None:
        self.col = {n: j for j, n in enumerate(numbers)}
        self.views, self.scores, self.units_of, self.best_unit = views, scores, units_of, best_unit
        self.final: dict[int, int] = {}  # prompt number -> answer number
        self.best_for: dict[int, tuple[float, str]] = {}
        self.said_for: dict[int, list[str]] = {}  # prompt number -> supporting sentences

    def cite(self, s: AnswerSentence) -> list[int]:
        """The answer numbers of ``s``'s kept sources (numbering new ones)."""
        mine: list[int] = []
        for n in s.keep:
            self.final.setdefault(n, len(self.final) + 1)
            if self.final[n] not in mine:
                mine.append(self.final[n])
            j = self.col[n]
            sc = float(self.scores[s.index, j])
            unit_text = self.units_of[j][int(self.best_unit[s.index, j])]
            if n not in self.best_for or sc > self.best_for[n][0]:
                self.best_for[n] = (sc, unit_text)
            if unit_text != self.views[j].title:
                self.said_for.setdefault(n, []).append(unit_text)
        return mine

    def citations(self, by_number: dict[int, Source]) -> list[Citation]:
        out = []
        for n, m in sorted(self.final.items(), key=lambda kv: kv[1]):
            src = by_number[n]
            score, snippet = self.best_for[n]
            order = {x: k for k, x in enumerate(self.views[self.col[n]].sentences)}
            said = sorted(set(self.said_for.get(n, [])), key=lambda x: order.get(x, len(order)))
            out.append(
                Citation(
                    number=m,
                    paper_id=src.paper_id,
                    title=src.title,
                    url=src.url,
                    snippet=snippet,
                    score=round(score, 4),
                    abstract=src.abstract,
                    evidence=said,
                )
            )
        return out


def _rewrite(
    units: list[AnswerUnit], cited: _Renumbering, drop_unsupported: bool
) -> tuple[str, list[SentenceCheck]]:
    """The answer text with the new citation marks, and one check per claim."""
    checks: list[SentenceCheck] = []
    pieces: list[str] = []
    for unit in units:
        if not unit.sentences:
            if unit.raw:
                pieces.append(unit.gap_before + unit.prefix + unit.raw)
            continue
        out: list[str] = []
        for s in unit.sentences:
            if s.kind != "claim":
                out.append(s.text)
                continue
            if not s.supported:
                checks.append(SentenceCheck(s.text, False, [], s.score, list(s.model_cites)))
                if not drop_unsupported:
                    out.append(place_marks(s.text, UNSUPPORTED_MARK))
                continue
            mine = cited.cite(s)
            checks.append(SentenceCheck(s.text, True, mine, s.score, list(s.model_cites)))
            out.append(place_marks(s.text, "".join(f"[{m}]" for m in mine)))
        if out:
            pieces.append(unit.gap_before + unit.prefix + " ".join(out))
    return "".join(pieces).strip("\n"), checks
