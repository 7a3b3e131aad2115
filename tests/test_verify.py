"""Sentence-level verification of answers, with the real all-MiniLM-L6-v2 embedder.

Sources are built from real abstracts of the sample collection. The model replies are
scripted (that is what is under test: how the verifier treats what a model writes).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.answer.citations import is_refusal, parse_citation_markers
from assistant.answer.verify import (
    NO_ANSWER_TEXT,
    UNSUPPORTED_MARK,
    support_scores,
    verify_answer,
)
from assistant.errors import InputError
from assistant.text import split_sentences
from assistant.types import Source
from evals.fit_verifier import JUDGE_PAIRS, judge_pair_features, sample_abstracts, split_pairs
from evals.judge import load_judge_pairs

REPO = Path(__file__).resolve().parents[1]
GROK = "Deep Networks Always Grok and Here is Why"
NOISE = "Adding Gradient Noise Improves Learning for Very Deep Networks"
POEMS = (
    "Learning meters of Arabic and English poems with Recurrent Neural Networks: "
    "a step forward for language understanding and synthesis"
)


def load_sample_abstracts() -> dict[str, str]:
    """Title -> abstract from data/sample/*.txt (a title line followed by its abstract line)."""
    papers: dict[str, str] = {}
    for path in sorted((REPO / "data" / "sample").glob("*.txt")):
        lines = [x.strip() for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
        for title, abstract in zip(lines, lines[1:], strict=False):
            if len(title) < 300 and len(abstract) > 300 and len(abstract) > 2 * len(title):
                papers.setdefault(title.removeprefix("Subscribe"), abstract)
    return papers


@pytest.fixture(scope="module")
def abstracts() -> dict[str, str]:
    papers = load_sample_abstracts()
    assert {GROK, NOISE, POEMS} <= set(papers)
    return papers


@pytest.fixture(scope="module")
def embed(embedder):
    return embedder


@pytest.fixture
def sources(abstracts: dict[str, str]) -> list[Source]:
    """[1] grokking, [2] gradient noise, [3] poem meters, each with two passages shown."""
    out = []
    for i, (pid, title) in enumerate([("grok", GROK), ("noise", NOISE), ("poems", POEMS)]):
        abstract = abstracts[title]
        out.append(
            Source(
                paper_id=pid,
                title=title,
                abstract=abstract,
                score=0.5,
                url=f"https://example.org/{pid}",
                passages=split_sentences(abstract)[:2],
                number=i + 1,
            )
        )
    return out


def ids(v) -> list[str]:
    return [c.paper_id for c in v.citations]


# --- citation repair ----------------------------------------------------------------------


def test_correct_citation_is_kept(sources, embed):
    raw = (
        "Adding gradient noise during training helps very deep networks avoid overfitting "
        "and reach a lower training loss [2]."
    )
    v = verify_answer(raw, sources, embed)
    assert v.answerable
    assert ids(v) == ["noise"]
    assert v.text.endswith("training loss [1].")
    check = v.sentences[0]
    assert check.supported and check.citations == [1] and check.model_citations == [2]
    assert 0.5 <= check.score <= 1
    cit = v.citations[0]
    assert cit.number == 1 and cit.url == "https://example.org/noise"
    assert cit.abstract == sources[1].abstract
    assert cit.snippet in split_sentences(sources[1].abstract)


def test_wrong_citation_number_is_corrected(sources, embed):
    raw = "The recurrent models classify Arabic poem meters with an overall accuracy of 96.38% [1]."
    v = verify_answer(raw, sources, embed)
    assert ids(v) == ["poems"]
    assert v.sentences[0].model_citations == [1]
    assert v.text == (
        "The recurrent models classify Arabic poem meters with an overall accuracy of 96.38% [1]."
    )
    assert "96.38%" in v.citations[0].snippet


def test_missing_citation_is_added(sources, embed):
    raw = "Grokking also appears when training a CNN on CIFAR10 or a ResNet on Imagenette."
    v = verify_answer(raw, sources, embed)
    assert ids(v) == ["grok"]
    assert v.text.endswith("Imagenette [1].")
    assert v.sentences[0].model_citations == []


def test_citation_of_nonexistent_source_is_fixed(sources, embed):
    raw = "Gradient noise gave a 72% relative reduction in error rate on a question-answering task [7]."
    v = verify_answer(raw, sources, embed)
    assert "[7]" not in v.text
    assert ids(v) == ["noise"]
    assert v.text.endswith("task [1].")
    assert v.sentences[0].model_citations == []  # 7 is not a source number


def test_invented_sentence_is_marked_or_dropped(sources, embed):
    raw = (
        "Grokking also appears when training a CNN on CIFAR10 or a ResNet on Imagenette [1]. "
        "The authors trained a 175-billion-parameter transformer on Wikipedia for three months [1]."
    )
    v = verify_answer(raw, sources, embed)
    assert v.answerable
    assert v.text == (
        "Grokking also appears when training a CNN on CIFAR10 or a ResNet on Imagenette [1]. "
        f"The authors trained a 175-billion-parameter transformer on Wikipedia for three months "
        f"{UNSUPPORTED_MARK}."
    )
    assert [s.supported for s in v.sentences] == [True, False]
    assert v.sentences[1].citations == []

    dropped = verify_answer(raw, sources, embed, drop_unsupported=True)
    assert dropped.text == (
        "Grokking also appears when training a CNN on CIFAR10 or a ResNet on Imagenette [1]."
    )
    assert ids(dropped) == ["grok"]
    assert [s.supported for s in dropped.sentences] == [True, False]  # still reported


def test_on_topic_claim_the_abstract_does_not_make_is_unsupported(sources, embed):
    v = verify_answer(
        "Grokking is caused by the use of weight decay in the Adam optimizer [1].", sources, embed
    )
    assert not v.answerable
    assert v.text == NO_ANSWER_TEXT and v.citations == []


def test_wrong_number_is_not_supported(sources, embed):
    right = "The recurrent models classify Arabic poem meters with an overall accuracy of 96.38%."
    wrong = "The recurrent models classify Arabic poem meters with an overall accuracy of 97.4%."
    scores = support_scores([right, wrong], sources, embed)
    assert scores.shape == (2, 3)
    assert ((scores >= 0) & (scores <= 1)).all()
    assert scores[0, 2] >= 0.5 > scores[1, 2]
    assert scores[1].max() < 0.5  # and no other source takes it

    v = verify_answer(f"{wrong} [3]", sources, embed)
    assert not v.answerable and v.citations == []


def test_renumbering_follows_first_appearance(sources, embed):
    raw = (
        "Among the 16 Arabic meters, the recurrent networks reach an overall accuracy of "
        "96.38% [3]. A DNN can become robust to adversarial examples long after it "
        "interpolates the training data, which the authors call delayed robustness [1]. "
        "The poem datasets, with over 1.5 million verses, are publicly available [3]."
    )
    v = verify_answer(raw, sources, embed)
    assert ids(v) == ["poems", "grok"]
    assert [c.number for c in v.citations] == [1, 2]
    assert [s.citations for s in v.sentences] == [[1], [2], [1]]
    assert "96.38% [1]." in v.text and "delayed robustness [2]." in v.text
    assert v.text.endswith("publicly available [1].")


def test_duplicate_citations_collapse(sources, embed):
    v = verify_answer(
        "Adding gradient noise helps very deep networks avoid overfitting [2][2, 2].",
        sources,
        embed,
    )
    assert v.text.endswith("overfitting [1].")
    assert v.sentences[0].citations == [1]


def test_two_equally_good_sources_are_both_cited(sources, embed):
    twin = Source(
        paper_id="noise-copy",
        title=sources[1].title,
        abstract=sources[1].abstract,
        score=0.4,
        number=4,
    )
    raw = (
        "Adding gradient noise helps very deep networks avoid overfitting and lowers training loss."
    )
    v = verify_answer(raw, [*sources, twin], embed)
    assert sorted(ids(v)) == ["noise", "noise-copy"]
    assert v.text.endswith("training loss [1][2].")


# --- refusals and answerability -----------------------------------------------------------


def test_refusal_is_not_answerable(sources, embed):
    raw = "The provided abstracts do not mention the learning rate used to train these models."
    assert is_refusal(raw)
    v = verify_answer(raw, sources, embed)
    assert not v.answerable
    assert v.citations == []
    assert v.text.startswith(NO_ANSWER_TEXT)


def test_all_unsupported_answer_is_not_answerable(sources, embed):
    raw = (
        "The poem classifier was deployed in a mobile app used by thousands of teachers [3]. "
        "Transformers pretrained on web text can translate between many languages [1]."
    )
    v = verify_answer(raw, sources, embed)
    assert not v.answerable
    assert v.text == NO_ANSWER_TEXT
    assert v.citations == []
    assert [s.supported for s in v.sentences] == [False, False]


def test_partial_refusal_keeps_the_supported_part(sources, embed):
    raw = (
        "The sources do not say which optimizer was used. "
        "Gradient noise gave a 72% relative reduction in error rate on a question-answering task [2]."
    )
    assert not is_refusal(raw)
    v = verify_answer(raw, sources, embed)
    assert v.answerable
    assert v.text.startswith("The sources do not say which optimizer was used. Gradient noise")
    assert UNSUPPORTED_MARK not in v.text
    assert len(v.sentences) == 1  # the refusal sentence is passed through, not checked


def test_empty_answer_is_not_answerable(sources, embed):
    v = verify_answer("   ", sources, embed)
    assert not v.answerable and v.text == NO_ANSWER_TEXT


@pytest.mark.parametrize(
    "text",
    [
        "The sources do not mention the batch size.",
        "None of the papers discusses reinforcement learning.",
        "This question cannot be answered from the provided abstracts.",
        "The answer is not covered in the papers.",
        "I don't know.",
        "There is no information about this in the abstracts.",
        "The provided context doesn't provide details about training time.",
    ],
)
def test_is_refusal_patterns(text):
    assert is_refusal(text)


@pytest.mark.parametrize(
    "text",
    [
        "The method does not require labelled data [1].",
        "Grokking occurs long after the training error is near zero.",
        "Adding noise does not hurt accuracy.",
        "",
    ],
)
def test_is_refusal_false_for_claims(text):
    assert not is_refusal(text)


# --- parsing and layout -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean", "numbers"),
    [
        ("Noise helps [1].", "Noise helps.", [1]),
        ("Noise helps [1, 2].", "Noise helps.", [1, 2]),
        ("Noise helps [1][2].", "Noise helps.", [1, 2]),
        ("Noise helps [1-3].", "Noise helps.", [1, 2, 3]),
        ("Noise helps [1–2].", "Noise helps.", [1, 2]),
        ("Noise helps [Source 2].", "Noise helps.", [2]),
        ("Noise helps [Sources 1 and 3].", "Noise helps.", [1, 3]),
        ("Noise helps (1).", "Noise helps.", [1]),
        ("Noise helps (Source 2), often.", "Noise helps, often.", [2]),
        ("Noise helps 【2】.", "Noise helps.", [2]),
        ("Source 1: Noise helps.", "Noise helps.", [1]),
        ("According to [2], noise helps.", "Noise helps.", [2]),
        ("[2]: Noise helps.", "Noise helps.", [2]),
        ("-5 dB of noise helps [2].", "-5 dB of noise helps.", [2]),
        ("Noise helps [1]. In [2], depth matters.", "Noise helps. Depth matters.", [1, 2]),
        ("Noise helps. [1]", "Noise helps.", [1]),
        ("Noise helps [7].", "Noise helps.", []),
        (
            "It has two parts: (1) an encoder and (2) a decoder.",
            "It has two parts: (1) an encoder and (2) a decoder.",
            [],
        ),
        ("Values lie in [0, 1] here [2].", "Values lie in [0, 1] here.", [2]),
        ("Smith (2023) said so.", "Smith (2023) said so.", []),
    ],
)
def test_marker_formats(raw, clean, numbers):
    text, markers = parse_citation_markers(raw, [1, 2, 3])
    assert text == clean
    assert [n for m in markers for n in m.numbers] == numbers


def test_marker_formats_through_the_verifier(sources, embed):
    raw = (
        "Source 3: Among the 16 Arabic meters, the recurrent networks reach an overall accuracy "
        "of 96.38%.\n"
        "Gradient noise gave a 72% relative reduction in error rate on a question-answering "
        "task (2).\n"
        "Grokking also appears when training a CNN on CIFAR10 or a ResNet on Imagenette 【1】. "
        "According to [2], adding gradient noise helps very deep networks avoid overfitting."
    )
    v = verify_answer(raw, sources, embed)
    assert [s.model_citations for s in v.sentences] == [[3], [2], [1], [2]]
    assert ids(v) == ["poems", "noise", "grok"]
    assert v.text.splitlines() == [
        "Among the 16 Arabic meters, the recurrent networks reach an overall accuracy of 96.38% [1].",
        "Gradient noise gave a 72% relative reduction in error rate on a question-answering task [2].",
        "Grokking also appears when training a CNN on CIFAR10 or a ResNet on Imagenette [3]. "
        "Adding gradient noise helps very deep networks avoid overfitting [2].",
    ]


def test_markdown_layout_and_filler_are_kept(sources, embed):
    raw = (
        "Here is what the papers say:\n\n"
        "- Gradient noise gave a 72% relative reduction in error rate on a question-answering "
        "task [2].\n"
        "- Grokking also appears when training a CNN on CIFAR10 or a ResNet on Imagenette [1].\n\n"
        "References:\n[1] Deep Networks Always Grok and Here is Why\n[2] Adding Gradient Noise"
    )
    v = verify_answer(raw, sources, embed)
    assert v.text == (
        "Here is what the papers say:\n\n"
        "- Gradient noise gave a 72% relative reduction in error rate on a question-answering "
        "task [1].\n"
        "- Grokking also appears when training a CNN on CIFAR10 or a ResNet on Imagenette [2]."
    )
    assert len(v.sentences) == 2  # the filler line is not checked
    assert ids(v) == ["noise", "grok"]


def test_model_source_lines_are_removed(sources, embed):
    raw = (
        "Gradient noise gave a 72% relative reduction in error rate on a question-answering "
        "task. Both help.\nSources: [2], [1]"
    )
    v = verify_answer(raw, sources, embed)
    assert v.text == (
        "Gradient noise gave a 72% relative reduction in error rate on a question-answering "
        "task [1]. Both help."
    )
    assert ids(v) == ["noise"]


def test_deterministic(sources, embed):
    raw = (
        "Grokking also appears when training a CNN on CIFAR10 or a ResNet on Imagenette. "
        "Noise lets a 20-layer fully-connected network train with plain gradient descent [1]."
    )
    first = verify_answer(raw, sources, embed)
    second = verify_answer(raw, sources, embed)
    assert first == second


def test_bad_input_is_rejected_with_a_remedy(sources, embed):
    with pytest.raises(InputError, match="threshold"):
        verify_answer("Noise helps [1].", sources, embed, threshold=50)
    sources[1].number = 1
    with pytest.raises(InputError, match="numbered"):
        verify_answer("Noise helps [1].", sources, embed)


# --- calibration --------------------------------------------------------------------------


def test_agreement_on_hand_labelled_pairs_the_fit_never_saw(embed):
    """The 0.5 threshold agrees with the labels of the held-out half of
    evals/data/judge_pairs.jsonl (whole papers; ``python -m evals fit-verifier`` fits the
    weights on the other half and prints both agreements).

    The held-out half is unseen once verify.py's weights come from that script. The weights
    shipped at the time of writing were fitted on all 40 pairs: 0.86 on this half (18/21),
    where weights fitted on the other half alone reach 0.90. Wrong numbers are always caught;
    the misses are on-topic contradictions, overclaims and swapped datasets, which word and
    vector overlap cannot see.
    """
    _, held = split_pairs(load_judge_pairs(JUDGE_PAIRS))
    pairs = judge_pair_features(held, sample_abstracts(), embed)
    assert len(pairs) >= 20 and {True, False} == set(pairs.labels.tolist())
    supported = pairs.scores >= 0.5
    for ok, kind, score in zip(supported == pairs.labels, pairs.kinds, pairs.scores, strict=True):
        if kind in ("wrong_number", "correct_number", "paraphrase", "summary"):
            assert ok, (kind, float(score))
    agree = int((supported == pairs.labels).sum())
    assert agree / len(pairs) >= 0.8, f"agreement {agree}/{len(pairs)}"


# --- what similarity cannot see: the binding of a figure, the direction of a claim -----------


def _one(abstracts: dict[str, str], start: str) -> Source:
    title = next(t for t in abstracts if t.startswith(start))
    return Source(paper_id="p", title=title, abstract=abstracts[title], score=0.5, number=1)


def test_a_figure_bound_to_another_setting_is_not_supported(abstracts, embed) -> None:
    # 80.66% is in the abstract, for ERM on the clean data; on ImageNet-100 CUDA it is 8.96%
    cuda = [_one(abstracts, "CUDA: Convolution-based Unlearnable Datasets")]
    wrong = (
        "A ResNet-18 trained with ERM on ImageNet-100 CUDA reaches 80.66% clean test accuracy [1]."
    )
    right = "A ResNet-18 trained with ERM on ImageNet-100 CUDA reaches only 8.96% clean test accuracy [1]."
    clean = "ERM on the clean training data reaches a clean test accuracy of 80.66% [1]."
    v = verify_answer(f"{wrong}\n{right}\n{clean}", cuda, embed)
    assert [s.supported for s in v.sentences] == [False, True, True]


def test_an_on_topic_claim_that_says_the_opposite_is_not_supported(abstracts, embed) -> None:
    zeroq = [_one(abstracts, "ZeroQ: A Novel Zero Shot Quantization Framework")]
    v = verify_answer(
        "ZeroQ needs a small set of calibration data to quantize a network [1].\n"
        "ZeroQ quantizes a network without any access to the training or validation data [1].",
        zeroq,
        embed,
    )
    assert [s.supported for s in v.sentences] == [False, True]
