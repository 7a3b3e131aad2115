"""Reading the question and weighing the evidence (assistant.answer.evidence), on real abstracts
and the real embedder."""

from __future__ import annotations

import pytest

from assistant.answer.compose import finding_quotes
from assistant.answer.evidence import PassagePlan, assess, score_sources, select_passages
from assistant.answer.question import (
    compared_sides,
    coverage_gaps,
    missing_names,
    question_kind,
    question_shape,
)
from assistant.types import Source

NOISE = Source(
    paper_id="2004.00001",
    title="Adding Gradient Noise Improves Learning for Very Deep Networks",
    abstract=(
        "Deep feedforward and recurrent networks have achieved impressive results in many "
        "perception and language processing applications. This success is partially "
        "attributed to architectural innovations such as convolutional and long short-term "
        "memory networks. The main motivation for these architectural innovations is that "
        "they capture better domain knowledge, and importantly are easier to optimize than "
        "more basic architectures. Recently, more complex architectures such as Neural Turing "
        "Machines and Memory Networks have been proposed for tasks including question "
        "answering and general computation, creating a new set of optimization challenges. "
        "In this paper, we discuss a low-overhead and easy-to-implement technique of adding "
        "gradient noise which we find to be surprisingly effective when training these very "
        "deep architectures. The technique not only helps to avoid overfitting, but also can "
        "result in lower training loss. This method alone allows a fully-connected 20-layer "
        "deep network to be trained with standard gradient descent, even starting from a poor "
        "initialization. We see consistent improvements for many complex models, including a "
        "72% relative reduction in error rate over a carefully-tuned baseline on a challenging "
        "question-answering task, and a doubling of the number of accurate binary "
        "multiplication models learned across 7,000 random restarts."
    ),
    score=1.0,
)
TABULAR = Source(
    paper_id="t:tabular",
    title="Tabular Transformers Revisited",
    abstract=(
        "We benchmark eleven tabular models on 30 datasets. Tuned gradient boosted trees "
        "remain the strongest. Transformers close the gap on large datasets."
    ),
    score=0.5,
)


@pytest.mark.parametrize(
    ("question", "figure", "multi"),
    [
        ("How much does adding gradient noise reduce the error rate?", True, False),
        ("What FID does LayerSync reach on ImageNet 256x256?", True, False),
        ("How many GPU-days does the RC-DARTS search take?", True, False),
        ("What accuracy does HAWQ reach on ImageNet?", True, False),
        ("How does ZeroQ quantize a model without training data?", False, False),
        ("Which papers study neural collapse, and what setting does each analyse?", False, True),
        # a comparison reads several papers (one per side) even when one could hold both
        ("How does direct preference optimization compare with RLHF?", False, True),
        ("Which studies use weather radar, and what does each find?", False, True),
        ("Does the flatness of minima predict how well transformers generalize?", False, False),
    ],
)
def test_question_shape(question: str, figure: bool, multi: bool) -> None:
    shape = question_shape(question)
    assert shape.wants_figure is figure
    assert shape.multi is multi


def test_names_and_measures_of_a_question() -> None:
    shape = question_shape(
        "How much faster is inference of the wide single-layer Transformer on a GPU for IMDb?"
    )
    assert {"gpu", "imdb"} <= shape.names and "faster" in shape.metrics
    shape = question_shape("What relative L2 error does DGNO reach on the Darcy flow benchmark?")
    assert {"dgno", "darcy"} <= shape.names and not shape.metrics  # "error" is too common
    assert "what" not in question_shape("What is HAWQ?").names


def test_missing_names_compares_spellings_and_acronyms() -> None:
    text = "We use 260k Sloan Digital Sky Survey spectra. It reaches 68% top1 on Tiny ImageNet."
    assert missing_names({"sdss", "top-1", "tiny-imagenet", "imagenet"}, text) == []
    assert missing_names({"gpu", "cityscapes"}, "3.1x faster inference on a CPU") == [
        "cityscapes",
        "gpu",
    ]


def test_a_gap_is_what_the_abstract_never_mentions() -> None:
    gpu = question_shape("How much faster is a 20-layer network on a GPU?")
    assert coverage_gaps(gpu, NOISE.abstract) == ["faster", "gpu"]
    assert coverage_gaps(gpu, "It runs on a GPU and accelerates training 3x.") == []
    assert (
        coverage_gaps(question_shape("How much does the noise reduce the error?"), NOISE.abstract)
        == []
    )


def test_passages_keep_the_whole_top_abstract_and_the_best_of_the_others(embedder) -> None:
    question = "By how much does adding gradient noise reduce the error rate on question answering?"
    sources = [Source(**vars(NOISE)), Source(**vars(TABULAR))]
    shape = question_shape(question)
    evidence = score_sources(question, sources, embedder.embed, shape)
    select_passages(evidence, shape, lambda text: len(text.split()), PassagePlan())
    # whole but for its two least relevant sentences without a figure
    top = sources[0].passages
    assert len(top) == len(evidence[0].sentences) - 2
    assert any("72% relative reduction" in p for p in top) and any("20-layer" in p for p in top)
    assert len(sources[1].passages) == 2
    # too long to send whole: the best sentences, and the figure the best one announces
    select_passages(evidence, shape, lambda text: 10_000, PassagePlan(top_sentences=1))
    assert any("72% relative reduction" in p for p in sources[0].passages)
    assert len(sources[0].passages) <= 2


def test_strong_evidence_and_its_quotes(embedder) -> None:
    question = "How much does adding gradient noise reduce the error rate?"
    sources = [Source(**vars(NOISE)), Source(**vars(TABULAR))]
    shape = question_shape(question)
    evidence = score_sources(question, sources, embedder.embed, shape)
    verdict = assess(evidence, shape)
    assert verdict.level == "strong", verdict.reasons
    best = max(evidence, key=lambda ev: ev.best_score)
    assert best.source.paper_id == NOISE.paper_id
    quotes = finding_quotes(best, shape)
    assert any("72% relative reduction" in q for q in quotes)
    assert all(best.roles[best.sentences.index(q)] not in ("aim", "background") for q in quotes)


def test_a_near_miss_is_weak_evidence(embedder) -> None:
    # the paper is there, the asked measure is not: "GPU" never appears in it
    question = "How many GPU hours does training the 20-layer network with gradient noise take?"
    sources = [Source(**vars(NOISE))]
    shape = question_shape(question)
    verdict = assess(score_sources(question, sources, embedder.embed, shape), shape)
    assert verdict.level == "weak" and "gpu" in verdict.gaps
    assert assess([], shape).level == "none"


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("Does the treatment lower serum lipid levels in sleep apnea patients?", "yesno"),
        ("In older adults, is ankle/arm pressure predictive of mortality?", "yesno"),
        ("When a model is updated without re-indexing, does it stay compatible?", "yesno"),
        ("Can you list the papers on pruning?", "multi"),
        ("Which papers study grokking, and what do they find?", "multi"),
        ("How do RandAugment and Attentive CutMix differ in what they augment?", "compare"),
        ("Both MaskGIT and MDT predict masked tokens: what speed-up does each claim?", "compare"),
        ("Two methods train each block with a helper: one ..., the other ...?", "compare"),
        ("What does GaSNet-II predict besides the spectral class?", "fact"),
        ("How much faster is inference on a CPU than on a GPU?", "fact"),
        ("What did the study find when comparing NAS methods against random sampling?", "fact"),
    ],
)
def test_the_kind_of_question(question: str, kind: str) -> None:
    assert question_kind(question) == kind


def test_the_sides_of_a_comparison() -> None:
    assert compared_sides("How does GaSNet-II differ from AlphaFold in what it predicts?") == (
        "GaSNet-II",
        "AlphaFold",
    )
    assert compared_sides("How do RandAugment and Attentive CutMix differ in what they do?") == (
        "RandAugment",
        "Attentive CutMix",
    )
    assert compared_sides("What does each do?") == ()
