"""Scoring functions for the evaluation suite.

Pure functions on plain values: no model calls, no I/O, no global state. Where a metric needs
an entailment judgement (ALCE citation quality, faithfulness) the judge is passed in as a
function ``judge(premise, hypothesis) -> bool``.

Conventions
-----------
- Every score is a float in ``[0, 1]``.
- A score whose denominator is empty (no gold documents, no key facts, no sentences, no
  unanswerable questions, ...) is *undefined* and returned as ``float("nan")``, never as 0 or 1,
  so that a missing label can not pass for a perfect or a failed result. The runner leaves such
  items out of its averages with ``mean(scores, skip_nan=True)`` and reports how many it left
  out. The one documented exception is ALCE citation precision of an answer that has sentences
  but no citation at all, which ALCE scores 0 (see :func:`citation_scores`).
- The per-answer functions score one answer; the runner averages per answer, then over answers
  (macro average), as ALCE does.
- Bad input (``k < 1``, sequences of different lengths, an empty key fact, a negative latency)
  raises :class:`assistant.errors.InputError`.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypedDict

from assistant.errors import InputError
from assistant.latex import latex_to_text

__all__ = [
    "AbstentionScores",
    "CitationScores",
    "CitedSentence",
    "Judge",
    "LatencySummary",
    "PASSAGE_SEPARATOR",
    "abstention_scores",
    "citation_precision",
    "citation_recall",
    "citation_scores",
    "contains_fact",
    "faithfulness",
    "hit_rate_at_k",
    "key_fact_recall",
    "latency_summary",
    "mean",
    "ndcg_at_k",
    "normalize_for_matching",
    "recall_at_k",
    "reciprocal_rank",
]

logger = logging.getLogger(__name__)

NAN = float("nan")

# --- Averages ---


def mean(values: Iterable[float], *, skip_nan: bool = False) -> float:
    """Arithmetic mean (``math.fsum``); ``nan`` for no values.

    An empty input has no mean, so the result is ``nan`` rather than 0 (a 0 would read as "all
    wrong"). With ``skip_nan=True`` undefined scores (``nan``) are dropped first; otherwise a
    single ``nan`` makes the mean ``nan``, which is how an unfiltered undefined score shows up.
    """
    items = [float(v) for v in values]
    if skip_nan:
        items = [v for v in items if not math.isnan(v)]
    if not items:
        return NAN
    return math.fsum(items) / len(items)


# --- Retrieval (binary relevance; definitions as in pytrec_eval / BEIR) ---


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"k must be a whole number >= 1, got {k!r}; pass e.g. k=10.")


def _top_k(ranked_ids: Sequence[str], k: int) -> list[str]:
    """The first ``k`` *distinct* ids, in rank order.

    Duplicates (several chunks of one paper) keep their first rank only, so a document is
    counted once, as in pytrec_eval, where a run maps each document to one score.
    """
    seen: set[str] = set()
    top: list[str] = []
    for doc_id in ranked_ids:
        if doc_id in seen:
            continue
        seen.add(doc_id)
        top.append(doc_id)
        if len(top) == k:
            break
    return top


def hit_rate_at_k(ranked_ids: Sequence[str], gold_ids: Collection[str], k: int) -> float:
    """1.0 if any gold id is among the first ``k`` distinct ranked ids, else 0.0.

    ``nan`` when ``gold_ids`` is empty (nothing to hit).
    """
    _check_k(k)
    gold = set(gold_ids)
    if not gold:
        return NAN
    return 1.0 if any(doc_id in gold for doc_id in _top_k(ranked_ids, k)) else 0.0


def reciprocal_rank(ranked_ids: Sequence[str], gold_ids: Collection[str]) -> float:
    """``1 / rank`` of the first gold id (ranks from 1, duplicates skipped), 0.0 if none.

    No cut-off, like pytrec_eval's ``recip_rank``. ``nan`` when ``gold_ids`` is empty.
    """
    gold = set(gold_ids)
    if not gold:
        return NAN
    for rank, doc_id in enumerate(_top_k(ranked_ids, len(ranked_ids) or 1), start=1):
        if doc_id in gold:
            return 1.0 / rank
    return 0.0


def recall_at_k(ranked_ids: Sequence[str], gold_ids: Collection[str], k: int) -> float:
    """Share of the gold ids found among the first ``k`` distinct ranked ids.

    ``|gold & top_k| / |gold|`` (pytrec_eval ``recall_k``); ``nan`` when ``gold_ids`` is empty.
    """
    _check_k(k)
    gold = set(gold_ids)
    if not gold:
        return NAN
    found = sum(1 for doc_id in _top_k(ranked_ids, k) if doc_id in gold)
    return found / len(gold)


def ndcg_at_k(ranked_ids: Sequence[str], gold_ids: Collection[str], k: int = 10) -> float:
    """Normalised discounted cumulative gain at ``k`` with binary gains.

    ``DCG = sum over ranks r <= k holding a gold id of 1 / log2(r + 1)``; the ideal DCG puts
    ``min(len(gold), k)`` gold ids at ranks 1, 2, ... (pytrec_eval ``ndcg_cut_k``).
    ``nan`` when ``gold_ids`` is empty.
    """
    _check_k(k)
    gold = set(gold_ids)
    if not gold:
        return NAN
    dcg = sum(
        1.0 / math.log2(rank + 1)
        for rank, doc_id in enumerate(_top_k(ranked_ids, k), start=1)
        if doc_id in gold
    )
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(gold), k) + 1))
    return dcg / ideal


# --- ALCE citation quality (Gao et al. 2023) and faithfulness ---

Judge = Callable[[str, str], bool]
"""``judge(premise_text, hypothesis_sentence) -> True`` when the premise entails the sentence."""

PASSAGE_SEPARATOR = "\n"
"""Joins several cited passages into one premise (ALCE joins its documents with a newline)."""


@dataclass
class CitedSentence:
    """One answer sentence and the passages it cites.

    ``text`` is the sentence with its citation markers removed (ALCE judges
    ``remove_citations(sent)``); ``cited`` holds the cited passages themselves (abstract texts,
    title included if the caller wants it judged), in citation order.
    """

    text: str
    cited: list[str] = field(default_factory=list)


class CitationScores(TypedDict):
    """Result of :func:`citation_scores` for one answer."""

    citation_recall: float  # n_supported_sentences / n_sentences
    citation_precision: float  # n_relevant_citations / n_citations (0.0 when no citations)
    n_sentences: int
    n_cited_sentences: int  # sentences with >= 1 citation
    n_supported_sentences: int  # cited sentences entailed by the union of their citations
    n_citations: int  # all citations judged (after at_most_citations)
    n_relevant_citations: int  # precision numerator
    n_irrelevant_citations: int  # citations of supported sentences found unnecessary
    judge_calls: int  # distinct (premise, hypothesis) pairs sent to the judge


class _MemoJudge:
    """Calls the judge at most once per distinct (premise, hypothesis) pair."""

    def __init__(self, judge: Judge) -> None:
        self._judge = judge
        self._cache: dict[tuple[str, str], bool] = {}

    @property
    def calls(self) -> int:
        return len(self._cache)

    def __call__(self, premise: str, hypothesis: str) -> bool:
        key = (premise, hypothesis)
        if key not in self._cache:
            self._cache[key] = bool(self._judge(premise, hypothesis))
        return self._cache[key]


def citation_scores(
    sentences: Sequence[CitedSentence],
    judge: Judge,
    *,
    at_most_citations: int | None = None,
) -> CitationScores:
    """ALCE citation recall and precision of one answer, with the counts behind them.

    Follows ``compute_autoais(..., citation=True)`` in ``eval.py`` of
    https://github.com/princeton-nlp/ALCE (Gao et al. 2023, arXiv:2305.14627):

    - **Recall** of a sentence is 1 if it cites at least one passage and the concatenation of
      all its cited passages (joined with :data:`PASSAGE_SEPARATOR`) entails it, else 0. The
      answer's recall is the mean over *all* its sentences, uncited ones included.
    - **Precision**: the denominator counts every citation of every cited sentence, supported
      or not. The numerator counts, for supported sentences only: the single citation of a
      one-citation sentence; for a multi-citation sentence, each citation that is not
      *irrelevant*, where a citation is irrelevant if (a) it alone does not entail the sentence
      and (b) the concatenation of the sentence's other citations still does. Citations of an
      unsupported sentence are never counted as precise. An answer with sentences but no
      citation gets precision 0.0 (ALCE: ``entail_prec / total_citations if total_citations >
      0 else 0``).
    - An answer with no sentences gets ``nan`` for both: ALCE skips such outputs.

    ``at_most_citations`` keeps only the first N citations of each sentence (ALCE's command
    line default is 3; ``None`` keeps all). Duplicate citations are kept, as in ALCE.

    The judge is called once per distinct (premise, sentence) pair within this call: a
    one-citation sentence costs one call, a sentence with ``c`` citations at most ``2c + 1``.
    """
    if at_most_citations is not None and (
        isinstance(at_most_citations, bool)
        or not isinstance(at_most_citations, int)
        or at_most_citations < 1
    ):
        raise InputError(
            f"at_most_citations must be None or a whole number >= 1, got {at_most_citations!r}."
        )
    memo = _MemoJudge(judge)
    n_cited = n_supported = n_citations = n_relevant = n_irrelevant = 0
    for sentence in sentences:
        refs = list(sentence.cited)
        if at_most_citations is not None:
            refs = refs[:at_most_citations]
        if not refs:
            continue  # recall 0, no precision contribution
        n_cited += 1
        n_citations += len(refs)
        if not memo(PASSAGE_SEPARATOR.join(refs), sentence.text):
            continue  # unsupported: its citations all count as imprecise
        n_supported += 1
        relevant, irrelevant = _relevance(refs, sentence.text, memo)
        n_relevant += relevant
        n_irrelevant += irrelevant
    n_sentences = len(sentences)
    if n_sentences == 0:
        recall = precision = NAN
    else:
        recall = n_supported / n_sentences
        precision = n_relevant / n_citations if n_citations else 0.0
    logger.debug(
        "citation scores: %d sentences, %d citations, %d judge calls",
        n_sentences,
        n_citations,
        memo.calls,
    )
    return CitationScores(
        citation_recall=recall,
        citation_precision=precision,
        n_sentences=n_sentences,
        n_cited_sentences=n_cited,
        n_supported_sentences=n_supported,
        n_citations=n_citations,
        n_relevant_citations=n_relevant,
        n_irrelevant_citations=n_irrelevant,
        judge_calls=memo.calls,
    )


def _relevance(refs: list[str], text: str, memo: _MemoJudge) -> tuple[int, int]:
    """(relevant, irrelevant) citations of a supported sentence; see :func:`citation_scores`."""
    if len(refs) == 1:
        return 1, 0
    relevant = irrelevant = 0
    for ref in refs:
        if memo(ref, text):  # condition (a) fails: relevant
            relevant += 1
            continue
        others = list(refs)
        others.remove(ref)  # ALCE: subset_exclude.remove(psgs_id)
        if memo(PASSAGE_SEPARATOR.join(others), text):
            irrelevant += 1  # (a) and (b): removing it changes nothing
        else:
            relevant += 1
    return relevant, irrelevant


def citation_recall(sentences: Sequence[CitedSentence], judge: Judge) -> float:
    """ALCE citation recall of one answer; see :func:`citation_scores`."""
    return citation_scores(sentences, judge)["citation_recall"]


def citation_precision(sentences: Sequence[CitedSentence], judge: Judge) -> float:
    """ALCE citation precision of one answer; see :func:`citation_scores`."""
    return citation_scores(sentences, judge)["citation_precision"]


def faithfulness(sentences: Sequence[str], retrieved: Sequence[str], judge: Judge) -> float:
    """Share of answer sentences entailed by at least one retrieved passage on its own.

    Citations are ignored: this asks whether the answer stays within what was retrieved (ALCE's
    AutoAIS without citations and without concatenation: each passage is judged alone, stopping
    at the first that entails). ``nan`` for no sentences; 0.0 for each sentence when nothing was
    retrieved. The judge is called once per distinct (passage, sentence) pair.
    """
    if not sentences:
        return NAN
    memo = _MemoJudge(judge)
    supported = sum(1 for s in sentences if any(memo(passage, s) for passage in retrieved))
    return supported / len(sentences)


# --- Correctness ---

# A number: digits with optional 3-digit comma groups and an optional decimal part.
_NUMBER = re.compile(r"\d+(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")
_MARKERS = re.compile("[\x02\x03]")
_SPACES = re.compile(r"\s+")
# A space next to anything but a letter, digit or underscore (punctuation, %, number markers).
_SPACE_NEAR_SYMBOL = re.compile(r" (?=[^\w ])|(?<=[^\w ]) ")
_NUM_OPEN, _NUM_CLOSE = "\x02", "\x03"


def _canonical_number(match: re.Match[str]) -> str:
    value = Decimal(match.group(0).replace(",", ""))
    return f"{_NUM_OPEN}{format(value.normalize(), 'f')}{_NUM_CLOSE}"


def normalize_for_matching(text: str) -> str:
    """Canonical form used by :func:`contains_fact`, applied to answer and fact alike.

    Steps, in order:

    1. LaTeX made text by the converter ingest uses (:func:`assistant.latex.latex_to_text`:
       ``96.38\\%`` -> ``96.38%``, ``10\\,000`` -> ``10,000``, ``$\\times$`` -> ``×``), so
       a key fact copied from a raw abstract matches what the assistant shows.
    2. Unicode NFKC (full-width ``％`` -> ``%``, no-break space -> space) and control characters
       ``\\x02``/``\\x03`` removed (they mark numbers below).
    3. Case folded (``str.casefold``).
    4. Every number (``\\d+`` with optional ``,ddd`` thousands groups and optional ``.d+``) is
       replaced by its canonical decimal value wrapped in markers: ``2,553`` -> ``2553``,
       ``96.380`` -> ``96.38``, ``1.0`` -> ``1``, ``007`` -> ``7``. The markers stop a number
       from matching inside a longer one (``96.3`` does not match ``96.38``; ``12`` does not
       match ``1 2``). Signs are not part of numbers (``-`` stays punctuation).
    5. Whitespace runs become one space, and a space next to anything other than a letter,
       digit or underscore (punctuation, ``%``, a number) is removed: ``96.38 %`` ==
       ``96.38%``, ``1 MB`` == ``1MB``, ``20 - layer`` == ``20-layer``, but ``state of`` still
       differs from ``stateof``.
    """
    text = _MARKERS.sub("", unicodedata.normalize("NFKC", latex_to_text(text)))
    text = text.casefold()
    text = _NUMBER.sub(_canonical_number, text)
    text = _SPACES.sub(" ", text).strip()
    return _SPACE_NEAR_SYMBOL.sub("", text)


def _needle(fact: str) -> str:
    needle = normalize_for_matching(fact)
    if not needle:
        raise InputError(
            f"Key fact {fact!r} is empty after normalisation; remove it from the case."
        )
    return needle


def contains_fact(answer: str, fact: str) -> bool:
    """True when ``normalize_for_matching(fact)`` is a substring of the normalised answer.

    Raises :class:`InputError` for a fact that normalises to nothing (it would match anything).
    """
    return _needle(fact) in normalize_for_matching(answer)


def key_fact_recall(answer: str, key_facts: Sequence[str]) -> float:
    """Share of ``key_facts`` found in ``answer`` by :func:`contains_fact`.

    Matching: case-insensitive substring after undoing LaTeX escapes and spacing, ignoring
    whitespace next to punctuation, symbols and numbers, with numbers compared by value (see
    :func:`normalize_for_matching` for the exact rule). ``nan`` when there are no key facts.
    """
    if not key_facts:
        return NAN
    haystack = normalize_for_matching(answer)
    found = sum(1 for fact in key_facts if _needle(fact) in haystack)
    return found / len(key_facts)


class AbstentionScores(TypedDict):
    """Result of :func:`abstention_scores`."""

    correct_decline_rate: float  # n_correct_declines / n_unanswerable (nan if none)
    false_decline_rate: float  # n_false_declines / n_answerable (nan if none)
    n_unanswerable: int
    n_answerable: int
    n_correct_declines: int
    n_false_declines: int


def abstention_scores(
    answerable_flags: Sequence[bool], should_answer: Sequence[bool]
) -> AbstentionScores:
    """How well the assistant declines questions the collection cannot answer.

    ``answerable_flags[i]`` is the assistant's decision (True: it answered, False: it declined);
    ``should_answer[i]`` is the gold label (False for an unanswerable question).
    ``correct_decline_rate`` is the share of unanswerable questions declined (higher is
    better); ``false_decline_rate`` the share of answerable ones declined (lower is better).
    A rate with no questions behind it is ``nan``.
    """
    if len(answerable_flags) != len(should_answer):
        raise InputError(
            f"abstention_scores got {len(answerable_flags)} decisions for "
            f"{len(should_answer)} labels; pass one decision per question."
        )
    n_unanswerable = n_answerable = n_correct = n_false = 0
    for answered, gold in zip(answerable_flags, should_answer, strict=True):
        if gold:
            n_answerable += 1
            n_false += not answered
        else:
            n_unanswerable += 1
            n_correct += not answered
    return AbstentionScores(
        correct_decline_rate=n_correct / n_unanswerable if n_unanswerable else NAN,
        false_decline_rate=n_false / n_answerable if n_answerable else NAN,
        n_unanswerable=n_unanswerable,
        n_answerable=n_answerable,
        n_correct_declines=n_correct,
        n_false_declines=n_false,
    )


# --- Latency ---


class LatencySummary(TypedDict):
    """Result of :func:`latency_summary`, in seconds (``nan`` when ``n`` is 0)."""

    n: int
    mean: float
    p50: float
    p95: float
    max: float


def _percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default, Hyndman-Fan type 7)."""
    position = (len(ordered) - 1) * q
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    fraction = position - lower
    return ordered[lower] + (ordered[upper] - ordered[lower]) * fraction


def latency_summary(seconds: Sequence[float]) -> LatencySummary:
    """Count, mean, median, 95th percentile and maximum of latencies in seconds.

    Percentiles use linear interpolation between closest ranks, ``x[floor(h)] + (h -
    floor(h)) * (x[floor(h)+1] - x[floor(h)])`` with ``h = (n - 1) * q`` on the sorted values
    (``numpy.percentile`` default, Excel ``PERCENTILE.INC``). Empty input gives ``n = 0`` and
    ``nan`` elsewhere; a negative or non-finite value raises :class:`InputError`.
    """
    values = [float(s) for s in seconds]
    bad = [v for v in values if not math.isfinite(v) or v < 0]
    if bad:
        raise InputError(
            f"Latencies must be finite and >= 0 seconds, got {bad[:3]}; check the timer."
        )
    if not values:
        return LatencySummary(n=0, mean=NAN, p50=NAN, p95=NAN, max=NAN)
    ordered = sorted(values)
    return LatencySummary(
        n=len(ordered),
        mean=math.fsum(ordered) / len(ordered),
        p50=_percentile(ordered, 0.50),
        p95=_percentile(ordered, 0.95),
        max=ordered[-1],
    )
