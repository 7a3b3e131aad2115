"""Answering questions about several papers: lists, one finding per paper, and comparisons,
one finding per side.

- **A list** ("Which papers ... and what does each find?") holds the papers that
  :func:`assistant.answer.decide.paper_probability` keeps: those whose own best finding answers
  the question, or that a supported sentence of the model's text cites, never a paper that
  only shares a topic word. Each gets one line: what the model correctly said of it, else its
  best finding, quoted.
- **A comparison** ("How do A and B differ in X?") is answered side by side: for each side the
  paper that matches its description best, with its finding on the asked point; a side that no
  retrieved paper matches is said to be not in the collection, instead of declining the whole
  question. When both sides turn out to be one paper, the caller answers it as a question about
  one paper.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from assistant.answer.citations import place_marks
from assistant.answer.compose import (
    Composed,
    citation_for,
    declined,
    finding_quotes,
    informative,
    quote_line,
)
from assistant.answer.decide import PAPER_THRESHOLD, paper_features, paper_probability
from assistant.answer.evidence import SourceEvidence
from assistant.answer.question import QuestionShape, excluded
from assistant.answer.verify import Verified
from assistant.types import Citation, SentenceCheck

__all__ = ["per_paper", "per_side", "side_papers", "side_similarity", "SIDE_MIN_SIMILARITY"]

SIDE_MIN_SIMILARITY = 0.35
"""How close a paper must come to a side's description (cosine with its title or best
sentence) to stand for that side."""


def _said_per_paper(verified: Verified, question: str) -> dict[str, list[SentenceCheck]]:
    """The model's informative supported sentences, by the paper each cites first."""
    by_number = {c.number: c for c in verified.citations}
    said: dict[str, list[SentenceCheck]] = {}
    for s in informative(verified, question):
        for n in s.citations[:1]:
            said.setdefault(by_number[n].paper_id, []).append(s)
    return said


def _line(
    number: int,
    ev: SourceEvidence,
    own: list[SentenceCheck],
    by_number: dict[int, Citation],
    shape: QuestionShape,
    label: str = "",
) -> tuple[str, Citation, list[SentenceCheck], bool]:
    """One paper's line: what the model said of it (renumbered), else its finding quoted."""
    src = ev.source
    head = f"{label}: " if label else ""
    if own:
        old = by_number[own[0].citations[0]]
        quotes = old.evidence or ([old.snippet] if old.snippet else [])
        body = " ".join(place_marks(s.text, f"[{number}]") for s in own)
        checks = [SentenceCheck(s.text, True, [number], s.score, s.model_citations) for s in own]
        return f"- {head}{body}", citation_for(number, src, quotes), checks, False
    quotes = finding_quotes(ev, shape, limit=1)
    body = f"{src.title}: {quote_line(quotes, number)}" if not label else quote_line(quotes, number)
    checks = [SentenceCheck(q, True, [number], 1.0, [], quoted=True) for q in quotes]
    return f"- {head}{body}", citation_for(number, src, quotes), checks, True


def per_paper(
    verified: Verified,
    evidence: Sequence[SourceEvidence],
    shape: QuestionShape,
    question: str,
    decision: dict[str, Any],
) -> Composed | None:
    """One line per paper that answers the question; None when no paper does."""
    said = _said_per_paper(verified, question)
    by_number = {c.number: c for c in verified.citations}
    cited = {i for i, ev in enumerate(evidence) if ev.source.paper_id in said}
    features = paper_features(evidence, shape, cited, question)
    probs = [paper_probability(f) for f in features]
    keep = [
        i
        for i, ev in enumerate(evidence)
        if probs[i] >= PAPER_THRESHOLD and not excluded(shape, ev.source.title)
    ]
    decision = decision | {
        "papers": [
            {"title": ev.source.title, "p": round(p, 4), **f.to_dict()}
            for ev, p, f in zip(evidence, probs, features, strict=True)
        ]
    }
    if not keep:
        return None
    lines, citations, checks, any_quote = [], [], [], False
    for number, i in enumerate(keep, start=1):
        line, cit, chk, was_quote = _line(
            number, evidence[i], said.get(evidence[i].source.paper_id, []), by_number, shape
        )
        lines.append(line)
        citations.append(cit)
        checks += chk
        any_quote |= was_quote
    return Composed(
        Verified(text="\n".join(lines), citations=citations, sentences=checks),
        quoted=any_quote,
        decision=decision | {"route": "per-paper"},
    )


def side_papers(side_similarity: Sequence[Sequence[float]]) -> list[int | None]:
    """For each side, the index of the paper that stands for it: the most similar one that
    reaches :data:`SIDE_MIN_SIMILARITY`, two sides never sharing a paper (the closer match
    wins); None for a side no paper matches. When one paper is the closest to both sides, both
    get it: the comparison is inside that paper (the caller answers it as one)."""
    n_sides = len(side_similarity)
    firsts = [
        max(range(len(row)), key=row.__getitem__)
        if len(row) and max(row) >= SIDE_MIN_SIMILARITY
        else None
        for row in side_similarity
    ]
    if n_sides > 1 and firsts[0] is not None and len(set(firsts)) == 1:
        return list(firsts)
    pairs = sorted(
        ((sim, s, i) for s in range(n_sides) for i, sim in enumerate(side_similarity[s])),
        reverse=True,
    )
    chosen: list[int | None] = [None] * n_sides
    used: set[int] = set()
    for sim, s, i in pairs:
        if sim >= SIDE_MIN_SIMILARITY and chosen[s] is None and i not in used:
            chosen[s] = i
            used.add(i)
    return chosen


def per_side(
    verified: Verified,
    evidence: Sequence[SourceEvidence],
    shape: QuestionShape,
    question: str,
    sides: Sequence[int | None],
    decision: dict[str, Any],
) -> Composed:
    """One line per side of a comparison: its paper's finding on the asked point, or that the
    collection does not say (see the module docstring)."""
    said = _said_per_paper(verified, question)
    by_number = {c.number: c for c in verified.citations}
    lines, citations, checks, any_quote, number = [], [], [], False, 0
    for label, i in zip(shape.sides, sides, strict=True):
        if i is None:
            lines.append(f"- {label}: the papers in this collection do not say.")
            continue
        number += 1
        ev = evidence[i]
        line, cit, chk, was_quote = _line(
            number, ev, said.get(ev.source.paper_id, []), by_number, shape, label=label
        )
        lines.append(line)
        citations.append(cit)
        checks += chk
        any_quote |= was_quote
    decision = decision | {"sides": list(sides)}
    if not citations:
        return declined(verified, decision)
    return Composed(
        Verified(text="\n".join(lines), citations=citations, sentences=checks),
        quoted=any_quote,
        decision=decision | {"route": "per-side"},
    )


def side_similarity(
    sides: Sequence[str], evidence: Sequence[SourceEvidence], embed: Callable[[list[str]], Any]
) -> list[list[float]]:
    """[side][paper]: how close each paper comes to each side's description (its title or
    its closest sentence; the sentences are cached from scoring)."""
    out = []
    for side in sides:
        row = []
        for ev in evidence:
            vecs = embed([side, ev.source.title, *ev.sentences])
            row.append(float((vecs[1:] @ vecs[0]).max()))
        out.append(row)
    return out
