"""Answering a yes/no question: the verdict the finding gives it, asked of the local model.

The rules of :mod:`assistant.answer.polarity` read negation and direction; the model reads the
finding as a reader would ("remains susceptible to the CW attack" answers "does it hold up?"
with no). :func:`model_verdict` asks it, with the one finding sentence and the question
(prompts/verdict.txt), for one word: yes, no or unclear. The assistant's system prompt comes
first, so the local model reuses what it keeps cached of it and reads only the new part.
"""

from __future__ import annotations

import logging
import re

from assistant.errors import LLMError
from assistant.llm.base import ChatModel
from assistant.prompts import load_prompt

__all__ = ["model_verdict", "parse_verdict"]

log = logging.getLogger(__name__)

_REPLY = re.compile(r"^[\W_]*(yes|no|unclear|mixed|partly)\b", re.IGNORECASE)


def parse_verdict(reply: str) -> str | None:
    """``yes``, ``no`` or ``mixed`` from the model's reply; None for unclear or unparsable."""
    m = _REPLY.match(reply or "")
    if not m:
        return None
    word = m.group(1).lower()
    return {"yes": "yes", "no": "no", "mixed": "mixed", "partly": "mixed"}.get(word)


def model_verdict(llm: ChatModel, question: str, finding: str, system: str) -> str | None:
    """The model's verdict on ``question`` from the ``finding`` sentence (None: unclear, or
    the model failed: the caller falls back to the rules)."""
    messages = [
        {"role": "system", "content": system},
        {
            "role": "user",
            "content": load_prompt("verdict").render(question=question, finding=finding),
        },
    ]
    try:
        reply = llm.complete(messages, max_tokens=3, temperature=0.0)
    except LLMError as exc:
        log.warning("no verdict from the model: %s", exc)
        return None
    return parse_verdict(reply)
