"""Follow-ups: one about the same papers continues the chat the model already read, and the
model reads only the new question (llama.cpp's own counters say how many prompt tokens it
evaluated); one about other papers is condensed and gets a prompt of its own.

The paths are checked with a scripted model (what each call was sent), the reuse with the real
tiny model in process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from scripted import ScriptedChatModel

from assistant.answer.conversation import refers_back
from assistant.answer.engine import Assistant
from assistant.llm.local import LocalChatModel
from assistant.prompts import load_prompt
from assistant.settings import Settings

ZEROQ_Q = "How does ZeroQ quantize a model without training data?"
ZEROQ_FOLLOW_UP = "What does it distill the data from?"
ZEROQ = "ZeroQ"


@pytest.fixture
def assistant_with(sample_index: Path, embedder: Any):
    def make(llm: Any, **kw: Any) -> Assistant:
        kw.setdefault("top_k", 2)
        return Assistant(Settings(index_dir=sample_index, **kw), llm=llm, embed_model=embedder)

    return make


def test_follow_up_about_the_same_papers_continues_the_chat(assistant_with) -> None:
    llm = ScriptedChatModel(
        [
            "ZeroQ distills data that matches the batch normalization statistics [1].",
            "It distills it from the statistics of the model's batch normalization layers [1].",
        ]
    )
    a = assistant_with(llm)
    first = a.ask(ZEROQ_Q)
    assert first.sources[0].title.startswith(ZEROQ) and first.prompt == llm.calls[0]
    follow = a.chat([first], ZEROQ_FOLLOW_UP)
    assert len(llm.calls) == 2  # no condensing call: the model reads the conversation itself
    sent = llm.calls[1]
    assert sent[: len(first.prompt)] == first.prompt  # the prefix the model already holds
    assert sent[len(first.prompt)] == {"role": "assistant", "content": first.raw_text}
    assert sent[-1] == {
        "role": "user",
        "content": load_prompt("follow_up").render(question=ZEROQ_FOLLOW_UP),
    }
    # the same papers, numbers and sentences as the prompt says
    shown = [(s.paper_id, s.number, s.passages) for s in first.sources]
    assert [(s.paper_id, s.number, s.passages) for s in follow.sources] == shown
    assert follow.citations and follow.citations[0].title.startswith(ZEROQ)
    assert 0 < follow.prompt_tokens < first.prompt_tokens / 3
    assert "condense" not in follow.timings


def test_follow_up_about_other_papers_gets_a_prompt_of_its_own(assistant_with) -> None:
    llm = ScriptedChatModel(
        [
            "ZeroQ distills data that matches the batch normalization statistics [1].",
            "What does GaSNet-II predict besides the spectral class?",  # the condensed question
            "GaSNet-II also predicts the redshift [1].",
        ]
    )
    a = assistant_with(llm)
    first = a.ask(ZEROQ_Q)
    follow = a.chat([first], "And what does GaSNet-II predict besides the spectral class?")
    assert len(llm.calls) == 3
    condense = llm.calls[1]  # the rewrite continues the chat: the cache holds all but its ask
    assert condense[: len(first.prompt)] == first.prompt and "Rewrite" in condense[-1]["content"]
    assert len(llm.calls[2]) == 2 and llm.calls[2][:1] == first.prompt[:1]  # a prompt of its own
    assert "GaSNet-II predict" in llm.calls[2][1]["content"]
    assert "GaSNet" in follow.sources[0].title
    assert "condense" in follow.timings


def test_condensed_follow_up_about_the_same_papers_continues_the_chat(assistant_with) -> None:
    """A follow-up that does not point back is rewritten first; when the rewrite finds the
    same papers, the answer continues the chat too."""
    llm = ScriptedChatModel(
        [
            "ZeroQ distills data that matches the batch normalization statistics [1].",
            ZEROQ_Q,  # the rewrite: the same papers come back
            "It matches batch normalization statistics [1].",
        ]
    )
    a = assistant_with(llm)
    first = a.ask(ZEROQ_Q)
    follow = a.chat([first], "And what else is distilled?")
    assert len(llm.calls) == 3 and "Rewrite" in llm.calls[1][-1]["content"]
    assert llm.calls[2][: len(first.prompt)] == first.prompt
    assert llm.calls[2][-1]["content"] == load_prompt("follow_up").render(question=ZEROQ_Q)
    assert [s.paper_id for s in follow.sources] == [s.paper_id for s in first.sources]


def test_which_follow_ups_point_back() -> None:
    for q in (
        "How does it decide the precision of each layer?",
        "Which of them uses reinforcement learning?",
        "What is its main limitation?",
    ):
        assert refers_back(q), q
    for q in ("And what does GaSNet-II predict besides the spectral class?",
              "Which papers study grokking, and what do they find?",  # asks for papers
              "Is it also used for language models?",  # asks for more than these
              "What about diffusion models?"):  # fmt: skip
        assert not refers_back(q), q


def test_reuse_can_be_turned_off(assistant_with) -> None:
    llm = ScriptedChatModel(
        [
            "ZeroQ distills data that matches the batch normalization statistics [1].",
            "What does ZeroQ distill its synthetic data from?",
            "From batch normalization statistics [1].",
        ]
    )
    a = assistant_with(llm, follow_up_reuse=False)
    a.chat([a.ask(ZEROQ_Q)], ZEROQ_FOLLOW_UP)
    assert len(llm.calls) == 3 and len(llm.calls[2]) == 2  # condensed, then a fresh prompt


def test_follow_up_reuses_the_models_cache(
    sample_index: Path, embedder: Any, tiny_model_path: Path
) -> None:
    """The real tiny model: llama.cpp's counters show the follow-up evaluating only its new
    tokens, and the same messages from an empty cache evaluating all of them."""
    llm = LocalChatModel(tiny_model_path, n_ctx=4096, n_threads=2, name="tiny")
    settings = Settings(index_dir=sample_index, top_k=2, max_tokens=48)
    a = Assistant(settings, llm=llm, embed_model=embedder)
    try:
        first = a.ask(ZEROQ_Q)
        first_call = dict(llm.last_call)
        follow = a.chat([first], ZEROQ_FOLLOW_UP)
        reused = dict(llm.last_call)
        assert follow.prompt[: len(first.prompt)] == first.prompt  # the chat was continued
        # everything the first call read came from the cache...
        assert reused["cached_tokens"] >= first_call["prompt_tokens"] > 300
        # ...and only the reply and the new question were evaluated
        assert reused["prompt_eval_tokens"] < 0.25 * reused["prompt_tokens"]
        llm.llama.reset()  # the same messages from an empty cache
        llm.complete(follow.prompt, max_tokens=4)
        cold = dict(llm.last_call)
        assert cold["prompt_tokens"] == reused["prompt_tokens"]
        assert cold["cached_tokens"] == 0
        assert cold["prompt_eval_tokens"] > 4 * reused["prompt_eval_tokens"]
    finally:
        llm.close()
