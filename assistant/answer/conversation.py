"""Answering, follow-ups: a question that continues a conversation about the same papers
continues the prompt the model has already read.

A local model on a CPU spends nearly all of its time to first token reading the prompt, and
llama.cpp keeps what it read (the KV cache of the last prompt and its reply): a new prompt
that starts with the same tokens pays only for what follows them. So a follow-up about the
previous turn's papers is asked as the next message of that same chat:

    system prompt | the previous turn's papers and question | the model's reply | the follow-up

The papers keep their numbers and the sentences the model read, so everything before the
follow-up is the prefix the model already holds. Which papers a follow-up is about is decided
in one of two ways (the engine runs them):

- :func:`refers_back`: a short follow-up that points back ("How does it ...", "Which of
  them ...") and asks for no other papers, and names nothing those papers lack
  (:func:`new_names`), is about them: it is asked at once, with no model call before it.
- Otherwise the model rewrites it into a standalone question first, itself as the next
  message of the chat (:func:`condense_messages`, so that rewriting pays only for its own
  few tokens too), and retrieval for the rewrite decides: all its papers among the previous
  ones (:func:`reusable_sources`) continue the chat, any other paper gets a prompt of its own.

Everything here is plain data handling; the engine decides when to use it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

from assistant.answer.question import coverage_gaps, question_shape
from assistant.prompts import load_prompt
from assistant.types import Answer, Source

__all__ = [
    "condense_messages",
    "continued_messages",
    "copied_sources",
    "last_answer",
    "new_names",
    "refers_back",
    "reusable_sources",
]

_POINTS_BACK = re.compile(
    r"\b(?:it|its|they|them|their|these|those|this|the (?:first|second|third|last|former|"
    r"latter)(?: one)?)\b",
    re.IGNORECASE,
)
_ASKS_FOR_MORE = re.compile(
    r"\b(?:papers?|stud(?:y|ies)|works?|articles?|others?|another|else|also|any|is there|"
    r"are there)\b",
    re.IGNORECASE,
)
MAX_BACK_WORDS = 16
"""Follow-ups longer than this are rewritten first, even when they point back."""


def last_answer(history: Sequence[Any] | None) -> Answer | None:
    """The latest earlier turn as an :class:`Answer` that kept the prompt it was answered
    from, or None (no history, chat messages only, or a turn the model never saw)."""
    for item in reversed(list(history or [])):
        answer = item[1] if isinstance(item, (tuple, list)) and len(item) == 2 else item
        if isinstance(answer, Answer):
            return answer if answer.prompt and answer.sources else None
        if isinstance(item, dict) and item.get("role") == "assistant":
            return None  # a plain chat message came last: nothing to continue
    return None


def refers_back(question: str) -> bool:
    """Whether ``question`` can only be read through the conversation: short, pointing back
    (it, they, these, the first one...), and asking for no other papers."""
    return (
        len(question.split()) <= MAX_BACK_WORDS
        and _POINTS_BACK.search(question) is not None
        and _ASKS_FOR_MORE.search(question) is None
    )


def new_names(question: str, previous: Answer) -> list[str]:
    """What ``question`` names (acronyms, datasets, measures) that none of ``previous``'s
    papers mentions: a sign that it is about other papers."""
    text = " ".join(f"{s.title}. {s.abstract}" for s in previous.sources)
    return coverage_gaps(question_shape(question), text)


def reusable_sources(previous: Answer, retrieved: Sequence[Source]) -> list[Source] | None:
    """Copies of ``previous``'s sources (same numbers and passages, same order) when every
    ``retrieved`` paper is among them, else None."""
    shown = {s.paper_id for s in previous.sources}
    if not retrieved or any(s.paper_id not in shown for s in retrieved):
        return None
    return copied_sources(previous)


def copied_sources(previous: Answer) -> list[Source]:
    """``previous``'s sources as the model read them, copied for a new turn."""
    return [dataclasses.replace(s, passages=list(s.passages)) for s in previous.sources]


def _chat(previous: Answer) -> list[dict[str, str]]:
    return [
        *[dict(m) for m in previous.prompt],
        {"role": "assistant", "content": previous.raw_text},
    ]


def continued_messages(previous: Answer, question: str) -> list[dict[str, str]]:
    """``previous``'s prompt, the model's reply to it, then ``question``."""
    follow_up = load_prompt("follow_up").render(question=question)
    return [*_chat(previous), {"role": "user", "content": follow_up}]


def condense_messages(previous: Answer, question: str) -> list[dict[str, str]]:
    """``previous``'s prompt and reply, then the request to rewrite ``question`` so that it
    stands alone (the conversation it needs is the chat above it)."""
    ask = load_prompt("condense_follow_up").render(question=question)
    return [*_chat(previous), {"role": "user", "content": ask}]
