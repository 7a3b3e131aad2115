"""A handful of end-to-end answers on the default preset (the real 1.5B model, in process).

These check what a researcher sees: the right paper is cited for a question about it, and a
question the collection cannot answer is declined with no citations.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant import Assistant, Settings
from assistant.llm.backend import chat_model_from_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def default_assistant(sample_index: Path, embedder, model_cache: Path) -> Assistant:
    settings = Settings(index_dir=sample_index, model_cache_dir=model_cache)
    assert settings.llm_preset == "base"
    return Assistant(settings, llm=chat_model_from_settings(settings), embed_model=embedder)


@pytest.mark.parametrize(
    ("question", "title_start", "fact"),
    [
        (
            "What does GaSNet-II predict besides the spectral class?",
            "Galaxy Spectra neural Network",
            "redshift",
        ),
        ("How long does ZeroQ take to quantize a model?", "ZeroQ", "30"),
        (
            "By how much does adding gradient noise reduce the error rate on a "
            "question-answering task?",
            "Adding Gradient Noise",
            "72%",
        ),
        (
            "Which quantization method uses second-order Hessian information to pick bit precision per layer?",
            "HAWQ",
            "Hessian",
        ),
    ],
)
def test_default_model_cites_the_right_paper(
    default_assistant: Assistant, question: str, title_start: str, fact: str
) -> None:
    answer = default_assistant.ask(question)
    assert answer.answerable, answer.raw_text
    titles = [c.title for c in answer.citations]
    assert any(t.startswith(title_start) for t in titles), (titles, answer.raw_text)
    assert fact.lower() in answer.text.lower()
    # Citation numbers are consecutive and every marker in the text is a listed citation.
    assert [c.number for c in answer.citations] == list(range(1, len(answer.citations) + 1))
    for c in answer.citations:
        assert f"[{c.number}]" in answer.text


@pytest.mark.parametrize(
    "question",
    [
        "What is the boiling point of water on Mars?",
        # near misses: the paper is there, the asked figure is not (no FID in MaskGIT's
        # abstract; a CPU speed-up, not a GPU one): the fitted decision's known limit
        # (docs/answers.md); they are answered with the closest finding quoted
        pytest.param(
            "What FID does MaskGIT reach on ImageNet 256x256?",
            marks=pytest.mark.xfail(reason="near miss: the decision's known limit"),
        ),
        pytest.param(
            "How much faster is inference of the wide single-layer Transformer on a GPU for "
            "IMDb byte-level text classification?",
            marks=pytest.mark.xfail(reason="near miss: the decision's known limit"),
        ),
    ],
)
def test_default_model_declines_what_the_collection_does_not_hold(
    default_assistant: Assistant, question: str
) -> None:
    answer = default_assistant.ask(question)
    assert answer.answerable is False, (answer.raw_text, answer.text)
    assert answer.citations == []


def test_default_model_answers_a_question_about_several_papers(
    default_assistant: Assistant,
) -> None:
    answer = default_assistant.ask(
        "Which papers use branch-and-bound (BaB), the neural network verification technique, "
        "and what do they use it for?"
    )
    assert answer.answerable, answer.raw_text
    titles = [c.title for c in answer.citations]
    for start in ("Neural Network Verification with Branch-and-Bound", "Efficiently Computing"):
        assert any(t.startswith(start) for t in titles), (titles, answer.text)
    # one line per paper, each with its own citation and more than its title
    lines = [x for x in answer.text.splitlines() if x.startswith("- ")]
    assert len(lines) == len(answer.citations)
    for c, line in zip(answer.citations, lines):
        assert f"[{c.number}]" in line and len(line) > len(c.title) + 15
