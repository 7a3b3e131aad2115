"""Answering, last step: from the checked model text to the answer the user sees.

The verifier (:mod:`assistant.answer.verify`) says which sentences of the model's text the sources
support. This module decides what to show, using what the question asks for and how strongly
the sources hold it (:mod:`assistant.answer.evidence`):

- the model's checked text, when it says something the question asks, about a paper that
  mentions what the question names;
- that text plus a quote of the evidence, when it answers only around the question (no
  figure where a figure was asked, only a title) and the evidence is strong;
- quotes of the evidence alone (the extractive floor), when the model's text keeps nothing
  supported or declined, and the evidence is strong: the collection states the answer, so the
  user gets it, marked as a quote;
- for a question about several papers, one line per relevant paper: what the model
  correctly said of it, else its best sentence, quoted;
- otherwise "not in the collection", citing nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from assistant.answer.citations import claim_numbers, place_marks
from assistant.answer.evidence import (
    CONTRIBUTION,
    Assessment,
    SourceEvidence,
    has_figure,
    source_text,
    term_keys,
)
from assistant.answer.question import QuestionShape, coverage_gaps, excluded
from assistant.answer.verify import NO_ANSWER_TEXT, Verified
from assistant.text import content_terms, numbers_in
from assistant.types import Citation, SentenceCheck, Source

__all__ = [
    "best_quotes",
    "extractive_answer",
    "relevant_to_several",
    "compose_answer",
    "Composed",
    "covers",
    "restates_title",
    "QUOTE_LEAD",
]

QUOTE_LEAD = "The abstract says (quoted):"
_TITLE_GLUE = frozenset(
    """paper article title called named entitled introduce introduces introduced
    investigate investigates explore explores examine examines address addresses focus
    focuses discuss discusses describe describes analyse analyses analyze analyzes""".split()
)


@dataclass
class Composed:
    """The answer to show."""

    verified: Verified
    quoted: bool = False
    """Some of the text quotes the abstracts instead of the model's words."""


def restates_title(sentence: str, title: str, question: str = "") -> bool:
    """Whether a sentence says nothing beyond the paper's title and the question ("<title>
    [1].", "Branch-and-bound is used in neural network verification [1]" for a question about
    branch-and-bound in verification)."""
    terms = content_terms(sentence) - _TITLE_GLUE
    known = f"{title} {question}"
    return (
        bool(terms)
        and terms <= content_terms(known)
        and claim_numbers(sentence) <= claim_numbers(known)
    )


def covers(text: str, sentence: str, question: str) -> bool:
    """Whether ``text`` already says what ``sentence`` says for the question: at least half
    of its figures, or, without figures, half of its terms the question does not use."""
    figures = claim_numbers(sentence)
    if figures:
        return len(figures & numbers_in(text)) >= 0.5 * len(figures)
    new = term_keys(sentence) - term_keys(question)
    return not new or len(new & term_keys(text)) >= 0.5 * len(new)


def compose_answer(
    verified: Verified,
    evidence: Sequence[SourceEvidence],
    shape: QuestionShape,
    assessment: Assessment,
    *,
    question: str = "",
    part_best: Sequence[int] = (),
) -> Composed:
    """The answer to show for a checked model text (see the module docstring).

    ``part_best`` holds, for each part of the question, the index of the sentence of the best
    source that answers it (:func:`assistant.answer.evidence.best_for_parts`): with strong evidence,
    those the model's text does not cover are quoted after it.
    """
    if shape.multi and len(evidence) > 1:
        composed = _per_paper(verified, evidence, shape, question)
        if composed is not None:
            return composed
    by_number = {c.number: c for c in verified.citations}
    informative = _informative(verified, by_number, question)
    strong = assessment.level == "strong"
    if informative and not _gaps_of_cited(verified, shape):
        if not strong:
            return Composed(verified if _responsive(informative, shape) else _declined(verified))
        top = _best_source(evidence)
        said = " ".join(s.text for s in informative)
        missing = [
            top.sentences[i] for i in part_best if not covers(said, top.sentences[i], question)
        ]
        if not _responsive(informative, shape):
            missing = missing or best_quotes(top, shape)
        return _with_quotes(verified, top, missing) if missing else Composed(verified)
    if strong:
        return _floor(evidence, shape)
    return Composed(_declined(verified))


# --- the parts of the decision ---------------------------------------------------------------
def _informative(
    verified: Verified, by_number: dict[int, Citation], question: str
) -> list[SentenceCheck]:
    """Supported sentences that say more than the question and the title of a paper they
    cite."""
    if not verified.answerable:
        return []
    return [
        s
        for s in verified.sentences
        if s.supported
        and not all(
            restates_title(s.text, by_number[n].title, question)
            for n in s.citations
            if n in by_number
        )
    ]


def _responsive(claims: Sequence[SentenceCheck], shape: QuestionShape) -> bool:
    """Whether the claims give what was asked: a figure when one was asked for, unless the
    question asks several things and this answers one of them."""
    if shape.wants_figure and not shape.several_asks:
        return any(has_figure(s.text) for s in claims)
    return True


def _gaps_of_cited(verified: Verified, shape: QuestionShape) -> list[str]:
    """Names and measures of the question that none of the cited papers mentions: the answer
    is then about something else than what was asked."""
    text = " ".join(f"{c.title}. {c.abstract}" for c in verified.citations)
    return coverage_gaps(shape, text)


def _declined(verified: Verified) -> Verified:
    return Verified(text=NO_ANSWER_TEXT, sentences=verified.sentences, answerable=False)


# --- building texts with quotes ------------------------------------------------------------
def _citation(number: int, source: Source, quotes: list[str]) -> Citation:
    return Citation(
        number=number,
        paper_id=source.paper_id,
        title=source.title,
        url=source.url,
        snippet=quotes[0] if quotes else "",
        score=1.0,
        abstract=source.abstract,
        evidence=list(quotes),
    )


def _quote_line(quotes: Sequence[str], number: int) -> str:
    return " ".join(f"“{q}”" for q in quotes) + f" [{number}]"


def _best_source(evidence: Sequence[SourceEvidence]) -> SourceEvidence:
    return max(evidence, key=lambda ev: ev.best_score)


def _floor(evidence: Sequence[SourceEvidence], shape: QuestionShape) -> Composed:
    """The best evidence, quoted and cited; with its title when the question asks which paper."""
    top = _best_source(evidence)
    quotes = best_quotes(top, shape)
    lead = f"The paper is “{top.source.title}” [1]. " if shape.asks_paper else ""
    text = f"{lead}{QUOTE_LEAD} {_quote_line(quotes, 1)}"
    checks = [SentenceCheck(q, True, [1], 1.0, []) for q in quotes]
    return Composed(
        Verified(text=text, citations=[_citation(1, top.source, quotes)], sentences=checks),
        quoted=True,
    )


def _with_quotes(verified: Verified, top: SourceEvidence, quotes: Sequence[str]) -> Composed:
    """The model's checked text, then the evidence that holds what it left out, quoted."""
    quotes = [q for q in dict.fromkeys(quotes) if q not in verified.text]
    if not quotes:
        return Composed(verified)
    quotes = sorted(quotes, key=top.sentences.index)
    citations = list(verified.citations)
    number = next((c.number for c in citations if c.paper_id == top.source.paper_id), None)
    if number is None:
        number = len(citations) + 1
        citations.append(_citation(number, top.source, list(quotes)))
    else:
        cit = citations[number - 1]
        cit.evidence = list(dict.fromkeys([*cit.evidence, *quotes]))
    text = f"{verified.text}\n\n{QUOTE_LEAD} {_quote_line(quotes, number)}"
    checks = [*verified.sentences, *(SentenceCheck(q, True, [number], 1.0, []) for q in quotes)]
    return Composed(Verified(text=text, citations=citations, sentences=checks), quoted=True)


def _per_paper(
    verified: Verified, evidence: Sequence[SourceEvidence], shape: QuestionShape, question: str
) -> Composed | None:
    """One line per relevant paper: what the model correctly said of it, else its best
    sentence, quoted. None when no paper qualifies."""
    by_number = {c.number: c for c in verified.citations}
    informative = _informative(verified, by_number, question)
    said: dict[str, list[SentenceCheck]] = {}
    for s in informative:
        for n in s.citations[:1]:  # a sentence belongs to the paper it cites first
            said.setdefault(by_number[n].paper_id, []).append(s)
    index_of = {ev.source.paper_id: i for i, ev in enumerate(evidence)}
    cited = {index_of[c.paper_id] for c in verified.citations if c.paper_id in index_of}
    keep = relevant_to_several(evidence, shape, cited)
    if not keep:
        return None
    lines, citations, checks = [], [], []
    quoted = False
    for number, i in enumerate(keep, start=1):
        src = evidence[i].source
        own = said.get(src.paper_id, [])
        if own:
            old = by_number[own[0].citations[0]]
            quotes = old.evidence or ([old.snippet] if old.snippet else [])
            body = " ".join(place_marks(s.text, f"[{number}]") for s in own)
            lines.append(f"- {body}")
            checks += [
                SentenceCheck(s.text, True, [number], s.score, s.model_citations) for s in own
            ]
        else:
            quotes = best_quotes(evidence[i], shape)
            lines.append(f"- {src.title}: {_quote_line(quotes, number)}")
            checks += [SentenceCheck(q, True, [number], 1.0, []) for q in quotes]
            quoted = True
        citations.append(_citation(number, src, list(quotes)))
    return Composed(
        Verified(text="\n".join(lines), citations=citations, sentences=checks), quoted=quoted
    )


# --- what to quote -------------------------------------------------------------------------
def best_quotes(ev: SourceEvidence, shape: QuestionShape, *, limit: int = 2) -> list[str]:
    """The sentences of one source to quote for the question, in abstract order.

    The best sentence; when a figure is asked for and it has none, the best of the next two
    that has one; for a question about several papers, the best sentence that says what the
    paper contributes; otherwise the second best when it scores within 0.15 of the first
    (the answer often spans two sentences).
    """
    if not ev.sentences:
        return []
    scores = ev.scores
    ranked = ev.ranked()
    picked = [ranked[0]]
    if limit > 1 and len(ranked) > 1:
        if shape.multi:
            says = [j for j in ranked[1:] if CONTRIBUTION.search(ev.sentences[j])]
            if not CONTRIBUTION.search(ev.sentences[ranked[0]]):
                picked += says[:1]
        elif shape.wants_figure and not ev.has_figure[ranked[0]]:
            with_figure = [j for j in ranked[1:3] if ev.has_figure[j]]
            picked += with_figure[:1]
        elif not shape.multi and scores[ranked[1]] >= scores[ranked[0]] - 0.15:
            picked.append(ranked[1])
    return [ev.sentences[i] for i in sorted(picked)]


def extractive_answer(
    evidence: Sequence[SourceEvidence], shape: QuestionShape
) -> list[tuple[int, str]]:
    """(source index, sentence) to quote when the model's text keeps nothing supported: the
    best quotes (:func:`best_quotes`) of the best source."""
    if not evidence:
        return []
    best = max(range(len(evidence)), key=lambda i: evidence[i].best_score)
    return [(best, q) for q in best_quotes(evidence[best], shape)]


def relevant_to_several(
    evidence: Sequence[SourceEvidence], shape: QuestionShape, cited: set[int]
) -> list[int]:
    """For a question about several papers: indexes of the sources to answer with, in prompt
    order. A source counts when the model cited it in a supported sentence, or when it
    mentions what the question names and its best sentence scores within 0.25 of the best
    source's; either way it must not lack what the question names, nor be what the question
    sets aside ("as opposed to quantum neural networks")."""
    if not evidence:
        return []
    top = max(ev.best_score for ev in evidence)
    keep = []
    for i, ev in enumerate(evidence):
        if coverage_gaps(shape, source_text(ev.source)) or excluded(shape, ev.source.title):
            continue
        if i in cited or ev.best_score >= top - 0.25:
            keep.append(i)
    return keep
