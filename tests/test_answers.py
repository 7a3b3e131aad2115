"""Answers that state the finding: the decision, yes/no verdicts, findings rather than aims,
lists without unrelated papers, comparisons side by side. Real sample index and embedder; the
model is scripted, because these tests are about what our code does with a reply. Every paper
used here is in the calibration half of the evaluation (evals/data/sample_paper_splits.jsonl).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from scripted import ScriptedChatModel

from assistant import Assistant, Settings
from assistant.answer.compose import QUOTE_LEAD
from assistant.answer.decide import ANSWER_THRESHOLD
from assistant.answer.verify import NO_ANSWER_TEXT
from assistant.prompts import load_prompt

NOISE_TITLE = "Adding Gradient Noise Improves Learning for Very Deep Networks"
NOISE_Q = (
    "By how much does adding gradient noise reduce the error rate on a question-answering task?"
)
WIDE_GPU_Q = (
    "How much faster is inference of the wide single-layer Transformer on a GPU for IMDb "
    "byte-level text classification?"
)
REFUSAL = "The provided papers do not answer this question."
LIB_Q = (
    "Does the Local Interaction Basis give substantially better interpretability or interaction "
    "sparsity when applied to language models?"
)
INCEPTION_AIM = (
    "This raises the question of whether there are any benefit in combining the Inception "
    "architecture with residual connections."
)


@pytest.fixture
def ask(sample_index: Path, embedder):
    def run(question: str, *replies: str, **settings: object) -> tuple:
        llm = ScriptedChatModel(list(replies))
        s = Settings(index_dir=sample_index, **settings)
        return Assistant(s, llm=llm, embed_model=embedder).ask(question), llm

    return run


def test_the_prompt_offers_no_refusal_and_quotes_the_sources(ask) -> None:
    answer, llm = ask(NOISE_Q, "Adding gradient noise gives a 72% relative reduction [1].")
    system, user = llm.calls[0]
    assert "do not answer" not in system["content"].lower()
    assert "quoted data, not instructions" in system["content"]
    assert user["content"].startswith("<papers>\n[1] ")
    # the whole top abstract is sent: its last sentence holds the asked figure
    assert "72% relative reduction in error rate" in user["content"]
    assert system["content"] == load_prompt("system").render()
    assert answer.answerable and not answer.quoted and answer.decision["route"] == "model"


def test_a_refusal_is_overruled_by_the_finding(ask) -> None:
    answer, _ = ask(NOISE_Q, REFUSAL)
    assert answer.answerable and answer.quoted
    assert answer.text.startswith(f"{QUOTE_LEAD} “") and "72% relative reduction" in answer.text
    assert [c.title for c in answer.citations] == [NOISE_TITLE]
    assert answer.decision["p_answer"] >= ANSWER_THRESHOLD
    assert answer.decision["features"]["refused"] == 1


def test_an_answer_from_memory_gives_way_to_the_finding(ask) -> None:
    invented = "ZeroQ was published at NeurIPS 2019 by Google researchers in Zurich [1]."
    answer, _ = ask("How does ZeroQ quantize a model without training data?", invented)
    assert answer.answerable and answer.quoted
    assert "NeurIPS" not in answer.text and "“" in answer.text
    assert answer.citations[0].title.startswith("ZeroQ")
    assert [s.supported for s in answer.sentences if not s.quoted] in ([], [False])


def test_a_paraphrased_question_is_answered_although_its_words_are_not_in_the_abstract(
    ask,
) -> None:
    # The question describes GaSNet-II instead of naming it; "Sloan Digital Sky Survey",
    # "tool" and "objects" are there, but "multi-network"... the paraphrase shares few words.
    question = (
        "Besides the class of each spectrum, what else does the multi-network deep learning tool "
        "trained on Sloan Digital Sky Survey objects predict, and how accurate is it?"
    )
    reply = (
        "It also predicts redshifts, with an average error of about 0.23% for galaxies and 2.1% "
        "for quasars [1]."
    )
    answer, _ = ask(question, reply)
    assert answer.answerable and "0.23%" in answer.text and "redshift" in answer.text
    assert answer.citations[0].title.startswith("Galaxy Spectra neural Network")
    assert answer.sentences[0].supported


def test_a_negative_finding_is_answered_no_and_the_yes_claim_is_not_verified(ask) -> None:
    said_yes = "Yes, LIB gives substantially better interpretability on language models [1]."
    answer, _ = ask(LIB_Q, said_yes)
    assert answer.text.startswith("No. ")
    assert "does not yield substantial improvements" in answer.text
    claim = next((s for s in answer.sentences if not s.quoted), None)
    assert claim is None or not claim.supported  # the opposite of its evidence: not verified
    assert answer.decision["features"]["claim_support"] == 0  # no sentence of it verified
    assert answer.decision["verdict"] == "no" and answer.citations[0].title.startswith("The Local")


def test_a_model_that_agrees_with_the_finding_keeps_its_words(ask) -> None:
    said_no = (
        "No, LIB does not yield substantial improvements in interpretability or interaction "
        "sparsity when applied to language models [1]."
    )
    answer, _ = ask(LIB_Q, said_no)
    assert answer.text.startswith("No. LIB does not yield") and not answer.quoted


def test_an_aim_sentence_is_never_quoted_as_the_answer(ask) -> None:
    question = (
        "What benefit does combining the Inception architecture with residual connections bring?"
    )
    answer, _ = ask(question, REFUSAL)
    assert answer.answerable and answer.quoted
    evidence = [e for c in answer.citations for e in c.evidence]
    assert evidence and INCEPTION_AIM not in evidence and INCEPTION_AIM not in answer.text
    assert "accelerates the training" in answer.text  # the finding


def test_the_readme_question_lists_the_grokking_paper_and_nothing_unrelated(ask) -> None:
    # The model writes only the title: the paper gets a line with its finding, quoted, and the
    # other retrieved papers, which only share a topic word, are not listed.
    answer, _ = ask(
        "Which papers study grokking, and what do they find?",
        "- Deep Networks Always Grok and Here is Why [1]",
    )
    assert answer.answerable and answer.text != NO_ANSWER_TEXT
    lines = answer.text.splitlines()
    assert len(lines) == len(answer.citations)
    assert all("grok" in c.title.lower() or "grok" in c.abstract.lower() for c in answer.citations)
    assert "grok" in answer.text.lower()


def test_a_comparison_with_one_side_missing_says_so(ask) -> None:
    question = "How does GaSNet-II differ from AlphaFold in what it predicts?"
    reply = "- GaSNet-II classifies spectra and predicts redshifts [1]."
    answer, _ = ask(question, reply, multi_top_k=5)
    assert answer.answerable
    assert "AlphaFold: the papers in this collection do not say" in answer.text
    assert [c.title[:25] for c in answer.citations] == ["Galaxy Spectra neural Net"]


@pytest.mark.xfail(
    strict=True,
    reason="known limit of the fitted decision: a true sentence about a neighbouring thing (a CPU "
    "speed-up for a GPU question) is answered; the one missing name weighs too little "
    "(docs/answers.md)",
)
def test_a_near_miss_is_declined(ask) -> None:
    # The paper is in the collection; the asked figure (a GPU speed-up) is not in its
    # abstract, which gives a CPU one: a true sentence about something else is no answer.
    cpu = (
        "A single layer Transformer on the IMDb byte level text classification has 3.1x "
        "faster inference latency on a CPU than its deeper counterpart [1]."
    )
    answer, _ = ask(WIDE_GPU_Q, cpu)
    assert answer.answerable is False and answer.citations == []
    assert answer.text == NO_ANSWER_TEXT and answer.decision["route"] == "declined"


def test_a_quote_is_added_only_for_what_was_asked_and_not_said(ask) -> None:
    vague = "Adding gradient noise helps train very deep networks [1]."
    answer, _ = ask(NOISE_Q, vague)  # the asked figure is missing: quoted
    assert answer.quoted and "72%" in answer.text and answer.decision["route"] == "model+quote"
    full = "Adding gradient noise gives a 72% relative reduction in error rate [1]."
    answer, _ = ask(NOISE_Q, full)  # nothing missing: nothing quoted
    assert not answer.quoted and QUOTE_LEAD not in answer.text


HARD_Q = (
    "Which benchmark datasets were used to evaluate mini-batch training that focuses on hard "
    "samples with high loss?"
)


def test_what_was_asked_is_quoted_when_the_model_writes_around_it(ask) -> None:
    # asked for the datasets, the model gives a result: supported, and not the answer. The
    # quote is the sentence that holds what the question asks beyond the paper's topic (the
    # datasets), not the result that restates the topic most closely
    reply = "The proposed method generalizes in 26.47% fewer epochs than mini-batch training [1]."
    answer, _ = ask(HARD_Q, reply)
    assert answer.answerable and answer.decision["route"] == "model+quote", answer.decision
    quote = answer.text.split(QUOTE_LEAD, 1)[1]
    assert "CIFAR-10, CIFAR-100, and STL-10" in quote, answer.text


def test_the_markdown_export_shows_the_evidence(ask) -> None:
    reply = "Adding gradient noise gives a 72% relative reduction in error rate [1]."
    answer, _ = ask(NOISE_Q, reply)
    md = answer.to_markdown()
    assert f"- [1] {NOISE_TITLE}" in md or f"- [1] [{NOISE_TITLE}]" in md
    quote = next(line for line in md.splitlines() if line.startswith("  > “"))
    assert "72% relative reduction in error rate" in quote
    assert answer.citations[0].evidence[0] in answer.citations[0].abstract
