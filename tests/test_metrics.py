"""Unit tests for evals.metrics on hand-made cases with hand-computed values."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from assistant.errors import InputError
from evals.metrics import (
    CitedSentence,
    abstention_scores,
    citation_precision,
    citation_recall,
    citation_scores,
    contains_fact,
    faithfulness,
    hit_rate_at_k,
    key_fact_recall,
    latency_summary,
    mean,
    ndcg_at_k,
    recall_at_k,
    reciprocal_rank,
)

REPO = Path(__file__).resolve().parents[1]

# --- mean ---


def test_mean_of_values() -> None:
    assert mean([1.0, 2.0, 4.0]) == pytest.approx(7 / 3)
    assert mean(iter([0.5])) == 0.5


def test_mean_empty_is_nan() -> None:
    assert math.isnan(mean([]))


def test_mean_nan_propagates_unless_skipped() -> None:
    assert math.isnan(mean([1.0, float("nan")]))
    assert mean([1.0, float("nan"), 0.0], skip_nan=True) == 0.5
    assert math.isnan(mean([float("nan")], skip_nan=True))


# --- retrieval ---


def test_hit_rate_at_k() -> None:
    ranked = ["a", "b", "c"]
    assert hit_rate_at_k(ranked, {"c"}, k=2) == 0.0
    assert hit_rate_at_k(ranked, {"c"}, k=3) == 1.0
    assert hit_rate_at_k(ranked, ["x", "a"], k=1) == 1.0
    assert hit_rate_at_k([], {"a"}, k=5) == 0.0


def test_duplicates_count_once_and_do_not_use_up_k() -> None:
    # Two chunks of paper "a", then "b": the top 2 distinct papers are a, b.
    assert hit_rate_at_k(["a", "a", "b"], {"b"}, k=2) == 1.0
    assert recall_at_k(["a", "a", "b"], {"a", "b"}, k=2) == 1.0
    assert ndcg_at_k(["a", "a"], {"a"}, k=10) == 1.0  # not 1 + 1/log2(3)
    assert reciprocal_rank(["x", "x", "b"], {"b"}) == 0.5


def test_reciprocal_rank() -> None:
    assert reciprocal_rank(["a", "b", "c"], {"c", "b"}) == 0.5
    assert reciprocal_rank(["a", "b", "c"], {"a"}) == 1.0
    assert reciprocal_rank(["a", "b", "c"], {"z"}) == 0.0
    assert reciprocal_rank([], {"z"}) == 0.0
    assert reciprocal_rank([str(i) for i in range(100)], {"99"}) == 0.01  # no cut-off


def test_recall_at_k() -> None:
    ranked = ["a", "c", "b", "d"]
    gold = {"a", "b", "x"}
    assert recall_at_k(ranked, gold, k=1) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, gold, k=2) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, gold, k=3) == pytest.approx(2 / 3)
    assert recall_at_k(ranked, gold, k=100) == pytest.approx(2 / 3)


def test_ndcg_gold_at_ranks_1_and_3_of_2_golds() -> None:
    # DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3) = 1.6309297535714575
    value = ndcg_at_k(["g1", "x", "g2", "y"], {"g1", "g2"}, k=10)
    assert value == pytest.approx((1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)))
    assert value == pytest.approx(0.9197207891481876)


def test_ndcg_cutoff_and_ideal() -> None:
    assert ndcg_at_k(["g1", "g2"], {"g1", "g2"}) == 1.0
    assert ndcg_at_k(["x", "g1"], {"g1"}, k=10) == pytest.approx(0.6309297535714575)
    assert ndcg_at_k(["x", "g1"], {"g1"}, k=1) == 0.0
    # Ideal DCG holds min(len(gold), k) = 2 ones, so two golds in the top 2 are perfect.
    assert ndcg_at_k(["g1", "g2", "x"], {"g1", "g2", "g3"}, k=2) == 1.0
    # Three golds, one found at rank 1, k = 3: 1 / (1 + 1/log2(3) + 1/log2(4)) = 1 / 2.1309...
    assert ndcg_at_k(["g1", "x", "y"], {"g1", "g2", "g3"}, k=3) == pytest.approx(
        0.46927872602275644
    )


def test_retrieval_empty_gold_is_nan() -> None:
    for value in (
        hit_rate_at_k(["a"], set(), k=1),
        reciprocal_rank(["a"], []),
        recall_at_k(["a"], (), k=1),
        ndcg_at_k(["a"], set()),
    ):
        assert math.isnan(value)


@pytest.mark.parametrize("k", [0, -1, 1.5, True])
def test_retrieval_bad_k(k: object) -> None:
    with pytest.raises(InputError, match="k must be"):
        hit_rate_at_k(["a"], {"a"}, k=k)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        ndcg_at_k(["a"], {"a"}, k=k)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        recall_at_k(["a"], {"a"}, k=k)  # type: ignore[arg-type]


# --- ALCE citation quality ---

STOPWORDS = {"a", "an", "and", "are", "is", "of", "on", "the", "was", "with"}


def _content_words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower())) - STOPWORDS


def word_judge(premise: str, hypothesis: str) -> bool:
    """Deterministic judge: every content word of the hypothesis occurs in the premise."""
    return _content_words(hypothesis) <= _content_words(premise)


class CountingJudge:
    """The word judge, counting how often it is asked (to bound the memoised call count)."""

    def __init__(self) -> None:
        self.pairs: list[tuple[str, str]] = []

    def __call__(self, premise: str, hypothesis: str) -> bool:
        self.pairs.append((premise, hypothesis))
        return word_judge(premise, hypothesis)


A = "Model X reaches 90 accuracy on ImageNet."
A2 = "On ImageNet, model X reaches an accuracy of 90."
B = "Model X was trained on eight GPUs."
C = "Cats are mammals."

S_SINGLE = CitedSentence("Model X reaches 90 accuracy.", [A])
S_JOINT = CitedSentence("Model X reaches 90 accuracy and was trained on eight GPUs.", [A, B])
S_OVERCITE = CitedSentence("Model X reaches 90 accuracy.", [A, C])
S_UNCITED = CitedSentence("Model X is great.", [])
S_UNSUPPORTED = CitedSentence("Model X reaches 99 accuracy.", [A, B])


def test_judge_fixture_behaves() -> None:
    assert word_judge(A, S_SINGLE.text)
    assert not word_judge(A, S_JOINT.text)
    assert word_judge(A + "\n" + B, S_JOINT.text)
    assert not word_judge(A + "\n" + B, S_UNSUPPORTED.text)


def test_single_supported_citation() -> None:
    scores = citation_scores([S_SINGLE], word_judge)
    assert scores["citation_recall"] == 1.0
    assert scores["citation_precision"] == 1.0
    assert scores["n_citations"] == 1


def test_one_irrelevant_citation_among_two_gives_precision_half() -> None:
    scores = citation_scores([S_OVERCITE], word_judge)
    assert scores["citation_recall"] == 1.0
    assert scores["citation_precision"] == 0.5
    assert scores["n_irrelevant_citations"] == 1
    assert scores["n_relevant_citations"] == 1


def test_citations_needed_jointly_are_all_relevant() -> None:
    # Neither A nor B alone supports the sentence, and neither can be dropped.
    scores = citation_scores([S_JOINT], word_judge)
    assert scores["citation_recall"] == 1.0
    assert scores["citation_precision"] == 1.0


def test_three_citations_one_unnecessary() -> None:
    # A and B are each needed (dropping either breaks support); C is not: precision 2/3.
    sentence = CitedSentence(S_JOINT.text, [A, B, C])
    scores = citation_scores([sentence], word_judge)
    assert scores["citation_precision"] == pytest.approx(2 / 3)
    assert scores["n_irrelevant_citations"] == 1


def test_redundant_citations_that_each_entail_are_both_relevant() -> None:
    # ALCE condition (a): a citation that entails the sentence on its own is never irrelevant.
    scores = citation_scores([CitedSentence(S_SINGLE.text, [A, A2])], word_judge)
    assert scores["citation_precision"] == 1.0


def test_uncited_sentence_recall_zero_and_no_precision_contribution() -> None:
    scores = citation_scores([S_SINGLE, S_UNCITED], word_judge)
    assert scores["citation_recall"] == 0.5
    assert scores["citation_precision"] == 1.0  # denominator holds S_SINGLE's citation only
    assert scores["n_cited_sentences"] == 1


def test_answer_without_any_citation_has_precision_zero_as_in_alce() -> None:
    scores = citation_scores([S_UNCITED, S_UNCITED], word_judge)
    assert scores["citation_recall"] == 0.0
    assert scores["citation_precision"] == 0.0
    assert scores["n_citations"] == 0
    assert scores["judge_calls"] == 0


def test_unsupported_sentence_citations_count_as_imprecise() -> None:
    scores = citation_scores([S_UNSUPPORTED], word_judge)
    assert scores["citation_recall"] == 0.0
    assert scores["citation_precision"] == 0.0
    assert scores["n_citations"] == 2
    # Mixed with a supported one: 1 precise citation out of 1 + 2.
    mixed = citation_scores([S_SINGLE, S_UNSUPPORTED], word_judge)
    assert mixed["citation_precision"] == pytest.approx(1 / 3)
    assert mixed["citation_recall"] == 0.5


def test_whole_answer() -> None:
    answer = [S_SINGLE, S_JOINT, S_OVERCITE, S_UNCITED, S_UNSUPPORTED]
    scores = citation_scores(answer, word_judge)
    # Supported: S_SINGLE, S_JOINT, S_OVERCITE -> 3/5.
    assert scores["citation_recall"] == pytest.approx(0.6)
    # Citations: 1 + 2 + 2 + 0 + 2 = 7; relevant: 1 + 2 + 1 + 0 + 0 = 4.
    assert scores["citation_precision"] == pytest.approx(4 / 7)
    assert scores["n_sentences"] == 5
    assert scores["n_cited_sentences"] == 4
    assert scores["n_supported_sentences"] == 3
    assert scores["n_citations"] == 7
    assert scores["n_relevant_citations"] == 4
    assert scores["n_irrelevant_citations"] == 1
    assert citation_recall(answer, word_judge) == scores["citation_recall"]
    assert citation_precision(answer, word_judge) == scores["citation_precision"]


def test_judge_calls_are_memoised() -> None:
    judge = CountingJudge()
    scores = citation_scores([S_OVERCITE, S_OVERCITE], judge)
    # "A\nC" jointly, A alone, C alone; "the others of C" is A alone again (cached); the
    # repeated sentence costs nothing. Without memoising this would be 8 calls.
    assert len(judge.pairs) == 3
    assert len(set(judge.pairs)) == 3
    assert scores["judge_calls"] == 3
    assert scores["citation_precision"] == 0.5


def test_judge_calls_bounded_by_2c_plus_1() -> None:
    judge = CountingJudge()
    answer = [S_SINGLE, S_JOINT, S_OVERCITE, S_UNCITED, S_UNSUPPORTED]
    citation_scores(answer, judge)
    bound = sum(2 * len(s.cited) + 1 for s in answer if s.cited)
    assert len(judge.pairs) == len(set(judge.pairs))
    assert len(judge.pairs) <= bound
    # A single-citation sentence needs exactly one call.
    single = CountingJudge()
    citation_scores([S_SINGLE], single)
    assert single.pairs == [(A, S_SINGLE.text)]


def test_joint_premise_joins_passages_with_newline_in_citation_order() -> None:
    judge = CountingJudge()
    citation_scores([S_JOINT], judge)
    assert judge.pairs[0] == (A + "\n" + B, S_JOINT.text)


def test_at_most_citations() -> None:
    scores = citation_scores([S_OVERCITE], word_judge, at_most_citations=1)
    assert scores["n_citations"] == 1
    assert scores["citation_precision"] == 1.0
    # Truncating the joint citations loses support.
    cut = citation_scores([S_JOINT], word_judge, at_most_citations=1)
    assert cut["citation_recall"] == 0.0
    with pytest.raises(InputError, match="at_most_citations"):
        citation_scores([S_JOINT], word_judge, at_most_citations=0)


def test_citation_scores_empty_answer_is_nan_and_calls_nothing() -> None:
    judge = CountingJudge()
    scores = citation_scores([], judge)
    assert math.isnan(scores["citation_recall"])
    assert math.isnan(scores["citation_precision"])
    assert scores["n_sentences"] == 0
    assert judge.pairs == []


# --- faithfulness ---


def test_faithfulness() -> None:
    sentences = [
        "Model X reaches 90 accuracy.",  # A
        "Model X was trained on eight GPUs.",  # B
        S_JOINT.text,  # only A + B together: not supported by any single abstract
        "Cats are reptiles.",  # nothing
    ]
    assert faithfulness(sentences, [A, B, C], word_judge) == 0.5
    assert faithfulness(sentences[:2], [A, B], word_judge) == 1.0


def test_faithfulness_edge_cases_and_memo() -> None:
    assert math.isnan(faithfulness([], [A], word_judge))
    assert faithfulness(["Model X reaches 90 accuracy."], [], word_judge) == 0.0
    judge = CountingJudge()
    assert faithfulness(["Cats are mammals."] * 3, [A, C], judge) == 1.0
    assert judge.pairs == [(A, "Cats are mammals."), (C, "Cats are mammals.")]


# --- key facts ---


@pytest.mark.parametrize(
    ("answer", "fact"),
    [
        ("The accuracy is 96.38 %.", "96.38%"),
        ("The accuracy is 96.38%.", "96.38 %"),
        (r"reaches $96.38\%$ on the test set", "96.38%"),
        ("reaches 96.38% on the test set", r"96.38\%"),
        ("reaches 96.38％ overall", "96.38%"),  # full-width percent sign
        ("trained on IMAGENETTE", "Imagenette"),
        ("the new concept of delayed\n   robustness", "delayed robustness"),
        ("It has 2553 samples.", "2,553 samples"),
        ("It has 2,553 samples.", "2553 samples"),
        ("a ratio of 0.50", "0.5"),
        ("a 1 MB model", "1MB"),
        ("a 20 - layer network", "20-layer"),
        (r"the F\_1 score", "f_1 score"),
        (r"a 10\,000-image set", "10,000-image"),
    ],
)
def test_contains_fact_matches(answer: str, fact: str) -> None:
    assert contains_fact(answer, fact)


@pytest.mark.parametrize(
    ("answer", "fact"),
    [
        ("accuracy of 96.38%", "96.3%"),  # numbers compare whole, not as prefixes
        ("accuracy of 96.38%", "6.38%"),
        ("across 18 abilities", "8 abilities"),
        ("values 1 2", "12"),
        ("state of the art", "stateof the art"),  # whitespace between words still matters
        ("accuracy of 97.4%", "96.38%"),
    ],
)
def test_contains_fact_rejects(answer: str, fact: str) -> None:
    assert not contains_fact(answer, fact)


def test_key_fact_recall() -> None:
    answer = "LLMEval^2 has 15 tasks and 2553 samples across 18 abilities."
    facts = ["15 tasks", "8 abilities", "2,553 samples"]
    assert key_fact_recall(answer, facts) == pytest.approx(2 / 3)
    assert key_fact_recall(answer, ["15 TASKS"]) == 1.0
    assert key_fact_recall("", ["15 tasks"]) == 0.0
    assert math.isnan(key_fact_recall(answer, []))


@pytest.mark.parametrize("fact", ["", "   ", "$ $", r"\textbf{}"])
def test_empty_key_fact_is_an_input_error(fact: str) -> None:
    with pytest.raises(InputError, match="empty after normalisation"):
        key_fact_recall("anything", [fact])


def test_every_sample_key_fact_occurs_in_the_sample_collection() -> None:
    """The eval data promises each key fact is in its abstract (after undoing LaTeX escapes)."""
    corpus = "\n".join(
        p.read_text(encoding="utf-8") for p in sorted(REPO.glob("data/sample/*.txt"))
    )
    cases = [
        json.loads(line)
        for line in (REPO / "evals/data/sample_qa.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    facts = [fact for case in cases for fact in case["key_facts"]]
    assert len(facts) > 50
    assert key_fact_recall(corpus, facts) == 1.0


# --- verdicts ---


def test_abstention_scores() -> None:
    answered = [False, True, False, True, False]
    should = [False, False, True, True, True]
    scores = abstention_scores(answered, should)
    assert scores["correct_decline_rate"] == 0.5  # declined 1 of 2 unanswerable
    assert scores["false_decline_rate"] == pytest.approx(2 / 3)  # declined 2 of 3 answerable
    assert scores["n_unanswerable"] == 2
    assert scores["n_answerable"] == 3
    assert scores["n_correct_declines"] == 1
    assert scores["n_false_declines"] == 2


def test_abstention_scores_empty_groups_are_nan() -> None:
    scores = abstention_scores([True, True], [True, True])
    assert math.isnan(scores["correct_decline_rate"])
    assert scores["false_decline_rate"] == 0.0
    empty = abstention_scores([], [])
    assert math.isnan(empty["correct_decline_rate"]) and math.isnan(empty["false_decline_rate"])
    assert empty["n_answerable"] == empty["n_unanswerable"] == 0
    with pytest.raises(InputError):
        abstention_scores([True], [])


# --- latency ---


def test_latency_summary_linear_interpolation() -> None:
    summary = latency_summary([4.0, 1.0, 3.0, 2.0])
    assert summary["n"] == 4
    assert summary["mean"] == 2.5
    assert summary["p50"] == 2.5  # halfway between 2 and 3
    assert summary["p95"] == pytest.approx(3.85)  # h = 3 * 0.95 = 2.85 -> 3 + 0.85 * (4 - 3)
    assert summary["max"] == 4.0


def test_latency_summary_agrees_with_numpy() -> None:
    values = [0.31, 2.5, 1.7, 9.9, 0.05, 4.4, 3.3, 1.1, 7.0, 0.8, 2.2]
    summary = latency_summary(values)
    assert summary["p50"] == pytest.approx(float(np.percentile(values, 50)))
    assert summary["p95"] == pytest.approx(float(np.percentile(values, 95)))


def test_latency_summary_edge_cases() -> None:
    one = latency_summary([5.0])
    assert one == {"n": 1, "mean": 5.0, "p50": 5.0, "p95": 5.0, "max": 5.0}
    empty = latency_summary([])
    assert empty["n"] == 0
    assert all(math.isnan(v) for v in (empty["mean"], empty["p50"], empty["p95"], empty["max"]))
    for bad in ([-0.1], [float("nan")], [float("inf")]):
        with pytest.raises(InputError, match="finite"):
            latency_summary(bad)
