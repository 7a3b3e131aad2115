"""Metrics of what an answer states: its yes/no verdict, and the role of the sentences it
quotes or cites as evidence (a finding, or the study's aim or background).

- :func:`answer_verdict` reads the verdict an answer opens with ("Yes.", "No, ...", "Mixed:",
  "Partly ..."); a declined answer states none.
- :class:`RoleIndex` holds the hand-labelled role of every sentence of the abstracts in
  evals/data/sentence_roles.jsonl and finds the role of an evidence sentence, matched by its
  normalised text (whatever the splitter of the day cut).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from assistant.answer.verify import NO_ANSWER_TEXT
from assistant.text import title_key

__all__ = ["FINDING", "SETUP", "RoleIndex", "answer_verdict", "role_shares"]

FINDING = frozenset({"result", "conclusion"})
SETUP = frozenset({"aim", "background"})

_VERDICT = re.compile(
    r"^[\W_]*(yes|no|mixed|partly|partially|in part|not stated|not clear|unclear)\b", re.I
)
_WORDS = re.compile(r"[a-z0-9]+")


def answer_verdict(text: str) -> str | None:
    """``yes``, ``no`` or ``mixed`` when the answer opens with one ("partly" and "in part"
    are mixed); None when it declines, states that it is not stated, or opens otherwise."""
    t = (text or "").strip()
    if not t or t.startswith(NO_ANSWER_TEXT):
        return None
    m = _VERDICT.match(t)
    if not m:
        return None
    word = m.group(1).lower()
    if word in ("yes", "no"):
        return word
    return "mixed" if word in ("mixed", "partly", "partially", "in part") else None


def _words(text: str) -> list[str]:
    return _WORDS.findall(text.lower())


class RoleIndex:
    """The labelled roles of the sentences of the abstracts in a sentence_roles.jsonl."""

    def __init__(self, path: Path) -> None:
        self._by_title: dict[str, list[tuple[list[str], str]]] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                self._by_title[title_key(row["title"])] = [
                    (_words(s), role)
                    for s, role in zip(row["sentences"], row["roles"], strict=True)
                ]

    def role(self, title: str, sentence: str) -> str | None:
        """The role of ``sentence`` of ``title``'s abstract: the labelled sentence that shares
        the most of its words, when that is at least 60% of both (a splitter of another day
        may have cut it differently); None when the abstract is not labelled or none fits."""
        rows = self._by_title.get(title_key(title))
        words = _words(sentence)
        if not rows or not words:
            return None
        best, best_score = None, 0.0
        bag = set(words)
        for labelled, role in rows:
            if labelled == words:
                return role
            shared = len(bag & set(labelled))
            score = min(shared / len(bag), shared / max(1, len(set(labelled))))
            if score > best_score:
                best, best_score = role, score
        return best if best_score >= 0.6 else None


def role_shares(roles: Sequence[str | None]) -> tuple[float, float]:
    """(share of findings, share of aim or background) among the labelled evidence
    sentences of one answer; nan for both when none is labelled."""
    known = [r for r in roles if r is not None]
    if not known:
        return float("nan"), float("nan")
    return (
        sum(r in FINDING for r in known) / len(known),
        sum(r in SETUP for r in known) / len(known),
    )
