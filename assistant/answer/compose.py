"""Answering, last step: from the checked model text to the answer the user sees.

The verifier (:mod:`assistant.answer.verify`) says which sentences of the model's text the
abstracts support; :mod:`assistant.answer.decide` says whether the collection answers the
question at all. This module writes the answer:

- a **yes/no question** opens with its verdict ("Yes.", "No.", "Partly."), taken from the
  finding that decides it, then the finding: the model's checked sentences when they agree
  with it, else the finding quoted, cited;
- a **question about one paper** gets the model's checked text; a quote of the finding is
  added only when it holds what was asked and not said (the asked figure, a part of the
  question the text leaves out), and stands alone when the model's text keeps nothing
  supported (the collection states the answer, so the user gets it, marked as a quote);
- questions about **several papers** and **comparisons** are written by
  :mod:`assistant.answer.several`;
- otherwise "not in the collection", citing nothing.

Quotes are findings (results, conclusions), never the study's aim or background, and lose a
structured abstract's label ("RESULTS").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from assistant.answer.citations import claim_numbers, place_marks
from assistant.answer.decide import (
    ANSWER_THRESHOLD,
    AnswerFeatures,
    answer_features,
    answer_probability,
    best_source,
)
from assistant.answer.evidence import SourceEvidence, has_figure, key_share, term_keys
from assistant.answer.question import QuestionShape, question_shape
from assistant.answer.roles import SETUP_ROLES, strip_section_label
from assistant.answer.verify import NO_ANSWER_TEXT, Verified
from assistant.text import content_terms, numbers_in
from assistant.types import Citation, SentenceCheck, Source

__all__ = [
    "Composed",
    "QUOTE_LEAD",
    "VERDICT_LEADS",
    "compose_answer",
    "covers",
    "quote_line",
    "quoted",
    "restates_title",
    "citation_for",
    "declined",
    "finding_quotes",
    "informative",
]

QUOTE_LEAD = "The abstract says:"
VERDICT_LEADS = {"yes": "Yes.", "no": "No.", "mixed": "Partly."}
_TITLE_GLUE = frozenset(
    """paper article title called named entitled introduce introduces introduced
    investigate investigates explore explores examine examines address addresses focus
    focuses discuss discusses describe describes analyse analyses analyze analyzes""".split()
)
_LEADING_VERDICT = re.compile(r"^\s*(yes|no|partly|partially)\b[\s,.:;!-]*", re.IGNORECASE)


@dataclass
class Composed:
    """The answer to show, and why."""

    verified: Verified
    quoted: bool = False
    """Some of the text quotes the abstracts instead of the model's words."""
    decision: dict[str, Any] = field(default_factory=dict)
    """What decided it: the features, the probability that the collection answers, the
    route taken (``model``, ``model+quote``, ``quote``, ``verdict``, ``per-paper``,
    ``per-side``, ``declined``)."""


def restates_title(sentence: str, title: str, question: str = "") -> bool:
    """Whether a sentence says nothing beyond the paper's title and the question ("<title>
    [1].", "Branch-and-bound is used in neural network verification [1]" for a question about
    branch-and-bound in verification)."""
    terms = content_terms(sentence) - {t for w in _TITLE_GLUE for t in content_terms(w)}
    known = f"{title} {question}"
    return (
        bool(terms)
        and terms <= content_terms(known)
        and claim_numbers(sentence) <= claim_numbers(known)
    )


def covers(text: str, sentence: str, question: str) -> bool:
    """Whether ``text`` already says what ``sentence`` says for the question: at least half
    of its figures, or, without figures, half of its terms the question does not use (a
    sentence with no new term adds nothing)."""
    figures = claim_numbers(sentence)
    if figures:
        return len(figures & numbers_in(text)) >= 0.5 * len(figures)
    new = term_keys(sentence) - term_keys(question)
    return len(new) < 2 or len(new & term_keys(text)) >= 0.5 * len(new)


def quoted(sentence: str) -> str:
    """A sentence as it is quoted: without a structured abstract's label."""
    return strip_section_label(sentence)


def quote_line(quotes: Sequence[str], number: int) -> str:
    return " ".join(f"“{quoted(q)}”" for q in quotes) + f" [{number}]"


def citation_for(number: int, source: Source, quotes: Sequence[str]) -> Citation:
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


def declined(verified: Verified, decision: dict[str, Any]) -> Composed:
    return Composed(
        Verified(text=NO_ANSWER_TEXT, sentences=verified.sentences, answerable=False),
        decision=decision | {"route": "declined"},
    )


def informative(verified: Verified, question: str) -> list[SentenceCheck]:
    """Supported sentences that say more than the question and the title of a paper they
    cite."""
    if not verified.answerable:
        return []
    by_number = {c.number: c for c in verified.citations}
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


def compose_answer(
    verified: Verified,
    evidence: Sequence[SourceEvidence],
    shape: QuestionShape,
    *,
    question: str,
    raw_text: str = "",
    claim_similarity: float = 0.0,
    verdict: str | None = None,
    rules_decisive: bool = False,
    written_verdict: bool = True,
    part_best: Sequence[tuple[str, int]] = (),
    note: dict[str, Any] | None = None,
    features: AnswerFeatures | None = None,
) -> Composed:
    """The answer to show for a checked model text (see the module docstring).

    ``claim_similarity``: the closest supported sentence of the model's text to the question
    (cosine); ``verdict``: for a yes/no question, the verdict of its finding (the rules', or
    the verdict judge's), ``rules_decisive``: the rules read it off the terms, and
    ``written_verdict``: the model's own yes/no, when it wrote one, is the answer's unless none
    of its sentences is supported and the rules are decisive (see :func:`_yes_no`); ``part_best``:
    each part of the question with the sentence of the best paper that answers it
    (:func:`assistant.answer.evidence.best_for_parts`); ``note``: kept in the decision's record;
    ``features``: the decision's features when the caller has them already.
    """
    note = dict(note or {})
    if not evidence:
        return declined(verified, note | {"p_answer": 0.0})
    if features is None:
        features = answer_features(verified, evidence, shape, claim_similarity, raw_text)
    p = answer_probability(features)
    decision: dict[str, Any] = note | {"features": features.to_dict(), "p_answer": round(p, 4)}
    if p < ANSWER_THRESHOLD:
        return declined(verified, decision)
    if shape.kind == "yesno":
        said = written_verdict_of(raw_text) if written_verdict else None
        claims = informative(verified, question)
        if said is not None and (claims or not rules_decisive or verdict is None):
            verdict, decision["verdict_from"] = said, "answer"
        elif verdict in VERDICT_LEADS:
            decision["verdict_from"] = "finding"
        if verdict in VERDICT_LEADS:
            return _yes_no(verified, evidence, verdict, question, decision)
    claims = informative(verified, question)
    top = best_source(evidence)
    if not claims:
        return _floor(top, shape, decision, question)
    missing = _not_said(verified, claims, top, shape, question, part_best, claim_similarity)
    if missing:
        return _with_quotes(verified, top, missing, decision | {"route": "model+quote"})
    return Composed(verified, decision=decision | {"route": "model"})


# --- yes/no ---------------------------------------------------------------------------------
def written_verdict_of(text: str) -> str | None:
    """The yes/no (``yes``, ``no``, ``mixed`` for "partly") a text opens with, or None."""
    m = _LEADING_VERDICT.match(text or "")
    if not m:
        return None
    said = m.group(1).lower()
    return {"partially": "mixed", "partly": "mixed"}.get(said, said)


def _yes_no(
    verified: Verified,
    evidence: Sequence[SourceEvidence],
    verdict: str,
    question: str,
    decision: dict[str, Any],
) -> Composed:
    """The verdict, then the model's checked sentences when they agree with it (the yes/no
    its checked text opens with, if any, is the verdict's), else the finding quoted."""
    lead = VERDICT_LEADS[verdict]
    claims = informative(verified, question)
    said = written_verdict_of(verified.text)
    agrees = said is None or said == verdict
    decision = decision | {"verdict": verdict, "verdict_written": said}
    if claims and agrees:
        body = _LEADING_VERDICT.sub("", verified.text, count=1).strip()
        body = body[:1].upper() + body[1:]
        text = f"{lead} {body}"
        return Composed(
            Verified(text, verified.citations, verified.sentences, answerable=True),
            decision=decision | {"route": "verdict"},
        )
    top = best_source(evidence)
    finding = top.best_finding()
    quote = [top.sentences[finding]]
    text = f"{lead} {QUOTE_LEAD} {quote_line(quote, 1)}"
    checks = [SentenceCheck(q, True, [1], 1.0, [], quoted=True) for q in quote]
    return Composed(
        Verified(text, [citation_for(1, top.source, quote)], checks),
        quoted=True,
        decision=decision | {"route": "verdict+quote"},
    )


# --- one paper --------------------------------------------------------------------------------
def finding_quotes(ev: SourceEvidence, shape: QuestionShape, *, limit: int = 2) -> list[str]:
    """The sentences of one paper to quote for the question, in abstract order: its most
    relevant finding (never its aim or background); when a figure is asked for and that has
    none, the most relevant finding or other non-setup sentence that has one; otherwise the
    next finding when it scores within 0.15 of the first (the answer often spans two)."""
    if not ev.sentences:
        return []
    first = ev.best_finding()
    picked = [first]
    usable = [
        i for i in ev.ranked() if i != first and (not ev.roles or ev.roles[i] not in SETUP_ROLES)
    ]
    if limit > 1 and usable:
        if shape.wants_figure and not ev.has_figure[first]:
            picked += [i for i in usable if ev.has_figure[i]][:1]
        else:
            near = [i for i in ev.findings() if i != first]
            if near and ev.scores[near[0]] >= ev.scores[first] - 0.15:
                picked.append(near[0])
    return [ev.sentences[i] for i in sorted(picked)]


ASK_WEIGHT = 0.5
"""Weight of the share of the question's own ask (:func:`ask_terms`) a sentence contains, in
:func:`ask_score` (cosine similarity weighs 1)."""


def ask_terms(question: str, title: str) -> set[str]:
    """The term keys of what the question asks beyond the paper's topic: its terms less those
    of the paper's title ("what match data was used to train and evaluate a draft
    recommender for battle arena games?" asks for "match data", "train", "evaluate"); all its
    terms when the title holds them all."""
    keys = term_keys(question)
    return (keys - term_keys(title)) or keys


def ask_score(ev: SourceEvidence, question: str) -> np.ndarray:
    """How well each sentence answers what the question asks: its cosine with the question,
    plus ASK_WEIGHT times the share of the question's ask it holds. The cosine alone favours
    the sentences that restate the paper's topic, as the question does."""
    ask = ask_terms(question, ev.source.title)
    return ev.similarity + ASK_WEIGHT * np.array([key_share(ask, x) for x in ev.sentences])


def closest_usable(ev: SourceEvidence, score: np.ndarray | None = None) -> int:
    """The best sentence by ``score`` (:func:`ask_score`; the cosine with the question
    without one) that is not the study's aim or background (-1 for none)."""
    score = ev.similarity if score is None else score
    order = np.argsort(-score, kind="stable").tolist()
    return next((i for i in order if not ev.roles or ev.roles[i] not in SETUP_ROLES), -1)


def _floor(
    top: SourceEvidence, shape: QuestionShape, decision: dict[str, Any], question: str = ""
) -> Composed:
    """The best finding, quoted and cited, after the sentence closest to the question when that
    is another (a method: "which method uses X?"); with the title when the question asks
    which paper."""
    quotes = finding_quotes(top, shape)
    score = ask_score(top, question) if question else top.similarity
    closest, first = closest_usable(top, score), top.best_finding()
    if closest >= 0 and top.sentences[closest] not in quotes and first >= 0:
        if float(score[closest]) > float(score[first]):
            quotes = sorted({top.sentences[closest], top.sentences[first]}, key=top.sentences.index)
    lead = f"The paper is “{top.source.title}” [1]. " if shape.asks_paper else ""
    text = f"{lead}{QUOTE_LEAD} {quote_line(quotes, 1)}"
    checks = [SentenceCheck(q, True, [1], 1.0, [], quoted=True) for q in quotes]
    return Composed(
        Verified(text=text, citations=[citation_for(1, top.source, quotes)], sentences=checks),
        quoted=True,
        decision=decision | {"route": "quote"},
    )


def _not_said(
    verified: Verified,
    claims: Sequence[SentenceCheck],
    top: SourceEvidence,
    shape: QuestionShape,
    question: str,
    part_best: Sequence[tuple[str, int]],
    claim_similarity: float = 1.0,
) -> list[str]:
    """The sentences of the best paper that hold what was asked and the text does not say:
    the asked figure when the text gives none, the answer to each part of the question that
    the text leaves out (a finding or method, never the aim or background, with something the
    question itself does not already say), and, for a question about one thing, the sentence
    that best answers what it asks (:func:`ask_score`; a finding or method) when it answers it
    better than anything the text says (the model wrote around the answer: "what else does it
    predict?" answered with its accuracy, "what data was it trained on?" with its results)."""
    said = " ".join(s.text for s in claims)
    out: list[str] = []
    score = ask_score(top, question)
    closest = closest_usable(top, score)
    ask = ask_terms(question, top.source.title)
    if (
        shape.kind == "fact"
        and closest >= 0
        and float(score[closest]) > claim_similarity + ASK_WEIGHT * key_share(ask, said)
        and not covers(said, top.sentences[closest], question)
    ):
        out.append(top.sentences[closest])
    if shape.wants_figure and not any(has_figure(s.text) for s in claims):
        out += [q for q in finding_quotes(top, shape) if has_figure(q)]
    if len(part_best) > 1:
        for part, i in part_best:
            sentence = top.sentences[i]
            if top.roles and top.roles[i] in SETUP_ROLES:
                continue
            if not covers(said, sentence, question) and (
                not question_shape(part).wants_figure or has_figure(sentence)
            ):
                out.append(sentence)
    return [q for q in dict.fromkeys(out) if quoted(q) not in verified.text]


def _with_quotes(
    verified: Verified, top: SourceEvidence, quotes: Sequence[str], decision: dict[str, Any]
) -> Composed:
    """The model's checked text, then the evidence that holds what it left out, quoted."""
    quotes = sorted(dict.fromkeys(quotes), key=top.sentences.index)
    citations = list(verified.citations)
    number = next((c.number for c in citations if c.paper_id == top.source.paper_id), None)
    if number is None:
        number = len(citations) + 1
        citations.append(citation_for(number, top.source, list(quotes)))
    else:
        cit = citations[number - 1]
        cit.evidence = list(dict.fromkeys([*cit.evidence, *quotes]))
    text = f"{verified.text}\n\n{QUOTE_LEAD} {quote_line(quotes, number)}"
    checks = [
        *verified.sentences,
        *(SentenceCheck(q, True, [number], 1.0, [], quoted=True) for q in quotes),
    ]
    return Composed(
        Verified(text=text, citations=citations, sentences=checks), quoted=True, decision=decision
    )


def place_citation(text: str, number: int) -> str:
    return place_marks(text, f"[{number}]")
