"""Answers that say what the papers say: refusals overruled by evidence, the extractive
floor, near misses declined, evidence shown. Real sample index and embedder; the model is
scripted, because these tests are about what our code does with a reply."""

from __future__ import annotations

from pathlib import Path

import pytest
from scripted import ScriptedChatModel

from assistant import Assistant, Settings
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


@pytest.fixture
def ask(sample_index: Path, embedder):
    def run(question: str, reply: str) -> tuple:
        llm = ScriptedChatModel([reply])
        a = Assistant(Settings(index_dir=sample_index), llm=llm, embed_model=embedder)
        return a.ask(question), llm

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


def test_an_answer_in_the_top_abstract_is_given_when_the_model_refuses(ask) -> None:
    answer, _ = ask(NOISE_Q, REFUSAL)
    assert answer.answerable and answer.quoted and answer.evidence_level == "strong"
    assert "72% relative reduction" in answer.text
    assert answer.text.startswith("The abstract says (quoted): “")
    assert [c.title for c in answer.citations] == [NOISE_TITLE]
    assert answer.citations[0].evidence and all(
        q in answer.citations[0].abstract for q in answer.citations[0].evidence
    )


def test_the_extractive_floor_replaces_an_answer_from_memory(ask) -> None:
    invented = "ZeroQ was published at NeurIPS 2019 by Google researchers in Zurich [1]."
    answer, _ = ask("How does ZeroQ quantize a model without training data?", invented)
    assert answer.answerable and answer.quoted
    assert "NeurIPS" not in answer.text and "“" in answer.text
    assert answer.citations[0].title.startswith("ZeroQ")
    assert answer.citations[0].evidence[0] in answer.text


def test_a_near_miss_is_declined(ask) -> None:
    # The paper is in the collection; the asked figure (a GPU speed-up) is not in its
    # abstract, which gives a CPU one. A true sentence about something else is no answer.
    cpu = (
        "A single layer Transformer on the IMDb byte level text classification has 3.1x "
        "faster inference latency on a CPU than its deeper counterpart [1]."
    )
    answer, _ = ask(WIDE_GPU_Q, cpu)
    assert answer.answerable is False and answer.citations == []
    assert answer.text == NO_ANSWER_TEXT
    answer, _ = ask(WIDE_GPU_Q, REFUSAL)  # weak evidence: no quotes either
    assert answer.answerable is False and not answer.quoted and answer.evidence_level == "weak"


def test_the_answer_must_give_the_asked_figure(ask) -> None:
    vague = "Adding gradient noise helps train very deep networks [1]."
    answer, _ = ask(NOISE_Q, vague)
    # supported but not what was asked: the evidence is strong, so the figure is quoted
    assert answer.quoted and "72%" in answer.text


def test_a_title_alone_is_no_answer(ask) -> None:
    answer, _ = ask(NOISE_Q, f"{NOISE_TITLE} [1].")
    assert answer.quoted and "72%" in answer.text


def test_the_markdown_export_shows_the_evidence(ask) -> None:
    reply = "Adding gradient noise gives a 72% relative reduction in error rate [1]."
    answer, _ = ask(NOISE_Q, reply)
    assert answer.answerable and not answer.quoted
    md = answer.to_markdown()
    assert f"- [1] {NOISE_TITLE}" in md or f"- [1] [{NOISE_TITLE}]" in md
    quote = next(line for line in md.splitlines() if line.startswith("  > “"))
    assert "72% relative reduction in error rate" in quote
    assert answer.citations[0].evidence[0] in answer.citations[0].abstract


BAB_Q = (
    "Which papers use branch-and-bound (BaB), the neural network verification technique, and "
    "what do they use it for?"
)


def test_several_papers_get_one_finding_each_not_titles(ask) -> None:
    # The model only lists titles: each paper gets a line with what its abstract says, quoted.
    titles = (
        "- Neural Network Verification with Branch-and-Bound for General Nonlinearities [1]\n"
        "- Efficiently Computing Local Lipschitz Constants of Neural Networks via Bound "
        "Propagation [2]"
    )
    answer, _ = ask(BAB_Q, titles)
    assert answer.answerable and answer.quoted
    lines = answer.text.splitlines()
    assert len(lines) == len(answer.citations) >= 2
    for c, line in zip(answer.citations, lines):
        assert line.startswith(f"- {c.title}: “") and line.endswith(f"[{c.number}]")
        assert all(q in c.abstract for q in c.evidence)
    assert "GenBaB" in answer.text  # the sentence that names what the paper contributes
    # What the model says correctly of a paper is kept, in its line.
    said = "GenBaB conducts BaB on general nonlinearities to verify neural networks [1]."
    answer, _ = ask(BAB_Q, f"- {said}\n- {titles.splitlines()[1]}")
    assert answer.text.splitlines()[0] == f"- {said}"
