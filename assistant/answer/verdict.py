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
from collections.abc import Sequence

from assistant.answer.evidence import SourceEvidence
from assistant.answer.polarity import decisive, rule_verdict
from assistant.errors import LLMError
from assistant.llm.base import ChatModel
from assistant.prompts import load_prompt

__all__ = ["finding_verdicts", "model_verdict", "parse_verdict"]

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


def finding_verdicts(
    question: str, evidence: Sequence[SourceEvidence], judge: ChatModel | None
) -> dict[str, str | bool | None]:
    """The verdict the best paper's finding gives a yes/no question (``verdict``): the
    ``judge`` model's reading of it when there is a judge and it gives one, else the rules'
    (:func:`assistant.answer.polarity.rule_verdict`); both readings are kept for the record
    (``verdict_rules``, ``verdict_model``), with whether the rules read it off the terms
    (``rules_decisive``, :func:`assistant.answer.polarity.decisive`). Empty without a
    finding."""
    top = max(evidence, key=lambda ev: ev.best_score) if evidence else None
    if top is None or top.best_finding() < 0:
        return {}
    finding = top.sentences[top.best_finding()]
    out: dict[str, str | bool | None] = {
        "verdict_rules": rule_verdict(question, finding),
        "rules_decisive": decisive(question, finding),
    }
    if judge is not None:
        system = load_prompt("system").render()
        out["verdict_model"] = model_verdict(judge, question, finding, system)
    out["verdict"] = out.get("verdict_model") or out["verdict_rules"]
    return out
