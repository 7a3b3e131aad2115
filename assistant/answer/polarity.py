"""Answering and verification: which way a sentence points. "is associated" or "is not
associated", "increases" or "reduces", and so the verdict a finding gives a yes/no question.

Similarity and shared terms cannot tell "is" from "is not": "Ankle/arm pressure is predictive
of cardiovascular mortality" shares every word with the finding "Ankle/arm pressure was not
predictive of cardiovascular mortality". Two cheap signals can:

- **negation** of the main claim: "not", "no significant", "did not", "without", "fails to",
  "neither", "unchanged" ... (:func:`negated`);
- **direction**: the question asks whether something *increases*, and the finding says it
  *decreased* (:func:`direction`, pairs of opposite words).

:func:`rule_verdict` gives a yes/no question its verdict from a finding sentence, and
:func:`opposes` tells the verifier that a claim says the opposite of the sentence it rests on.
No language model is called here; where a verdict needs one, :mod:`assistant.answer.engine`
asks the local model (see :func:`assistant.answer.verdict.model_verdict`).
"""

from __future__ import annotations

import re

from assistant.text import content_terms

__all__ = ["decisive", "negated", "negated_terms", "direction", "rule_verdict", "opposes"]

_NEGATION = re.compile(
    r"\b(?:not|no|never|neither|nor|none|cannot|without|unable|lack(?:s|ed|ing)?|absence|"
    r"fail(?:s|ed)? to|insignificant|unchanged|unaffected|irrespective|regardless|"
    r"did ?n[o']t|does ?n[o']t|do ?n[o']t|is ?n[o']t|are ?n[o']t|was ?n[o']t|were ?n[o']t|"
    r"has ?n[o']t|have ?n[o']t|could ?n[o']t|can ?n[o']t|wo ?n[o']t|would ?n[o']t)\b"
    r"|n't\b",
    re.IGNORECASE,
)
_NOT_NEGATION = re.compile(
    # "no longer", "not only", "no more than", "not just", "nonetheless": not a negated claim
    r"\b(?:no longer|not only|not just|not merely|no more than|no less than|not limited to|"
    r"not necessarily|not least|without (?:loss of|sacrificing|compromising|degrad\w+|"
    r"hurting|losing|harming|reducing)|nothing but|whether or not|regardless of)\b",
    re.IGNORECASE,
)
# (up, down): a question asking whether X goes up is answered "no" by a finding that it went
# down. A word ending in "=" is matched whole; the others are stems ("reduc": reduces, reduced).
_OPPOSITES = (
    ("increas", "decreas reduc lower= lowered lowers declin diminish drop fall= falls fell="),
    ("improv", "worsen degrad impair deteriorat hurt= hurts harm= harms harmed"),
    ("higher=", "lower="),
    ("more=", "less= fewer="),
    ("better=", "worse="),
    ("greater=", "smaller= lesser="),
    ("enhanc", "impair suppress diminish"),
    ("promot", "inhibit suppress prevent"),
    ("activat", "inhibit deactivat"),
    ("benefit", "harm= harms harmful"),
    ("gain= gains gained", "loss= losses lose= loses lost="),
    ("rais", "lower="),
    ("elevat", "lower="),
    ("accelerat", "slow= slows slowed delay decelerat"),
    ("faster=", "slower="),
    ("upregulat", "downregulat"),
)
_STEMS: list[tuple[str, int, int, bool]] = [
    (stem.rstrip("="), i, sign, stem.endswith("="))
    for i, (up, down) in enumerate(_OPPOSITES)
    for sign, group in ((1, up), (-1, down))
    for stem in group.split()
]
"""(stem, pair, sign, whole word only); a word may stand in several pairs ("lower")."""
_WORD = re.compile(r"[A-Za-z]+")


def negated(sentence: str) -> bool:
    """Whether the sentence denies its claim ("was not associated", "no significant
    difference", "did not improve", "fails to", "without any access to the data"), an odd
    number of times; the phrases that look like negation but are not ("not only", "no longer",
    "without sacrificing accuracy") do not count."""
    text = _NOT_NEGATION.sub(" ", sentence)
    return len(_NEGATION.findall(text)) % 2 == 1


SCOPE_WORDS = 4
"""Content words after a negation that it denies ("not correlate well with", "without any
access to the training data")."""


def negated_terms(sentence: str) -> set[str]:
    """The content terms a negation of the sentence covers: the first :data:`SCOPE_WORDS`
    content words after each negation cue (folded as :func:`assistant.text.content_terms`
    folds them)."""
    text = _NOT_NEGATION.sub(" ", sentence)
    out: set[str] = set()
    for m in _NEGATION.finditer(text):
        words = content_terms_in_order(text[m.end() : m.end() + 120])
        out.update(words[:SCOPE_WORDS])
    return out


def content_terms_in_order(text: str) -> list[str]:
    """The content terms of ``text`` in the order they come."""
    return [t for w in _WORD.findall(text) for t in content_terms(w)]


def direction(sentence: str) -> dict[int, int]:
    """Which way the sentence's comparative words point, per pair of opposites of
    ``_OPPOSITES``: {pair index: +1 (up: increases, higher, more, improves) or -1 (down)}. A
    pair whose words point both ways in the sentence is left out."""
    seen: dict[int, set[int]] = {}
    for word in _WORD.findall(sentence.lower()):
        for stem, pair, sign, whole in _STEMS:
            if word == stem or (not whole and word.startswith(stem)):
                seen.setdefault(pair, set()).add(sign)
    return {pair: signs.pop() for pair, signs in seen.items() if len(signs) == 1}


def _flipped(a: str, b: str) -> bool:
    """Whether ``b`` points the other way from ``a`` on a pair of opposites both use."""
    da, db = direction(a), direction(b)
    return any(pair in db and db[pair] != sign for pair, sign in da.items())


def _scoped_disagreement(a: str, b: str) -> bool | None:
    """Whether one sentence denies terms both use and the other denies none of them (True:
    "X was not predictive of Y" against "X is predictive of Y"); False when both deny some
    (two negative statements: their scopes are too rough to compare further); None when
    neither denies a term they share."""
    shared = content_terms(a) & content_terms(b)
    na, nb = negated_terms(a) & shared, negated_terms(b) & shared
    if not (na or nb):
        return None
    return not (na and nb)


def rule_verdict(question: str, finding: str) -> str:
    """``yes`` or ``no``: the verdict a finding sentence gives a yes/no question. A term they
    share that the finding denies and the question does not ("Is X predictive of Y?", "X was
    not predictive of Y") means no; without such a term, the parity of their negations
    ("no significant change ..."); a direction the other way ("Does X increase Y?", "X
    reduced Y") flips it. A question asked in the negative ("Is X not ...?") flips with it."""
    scoped = _scoped_disagreement(question, finding)
    disagree = (negated(question) != negated(finding)) if scoped is None else scoped
    if _flipped(question, finding):
        disagree = not disagree
    return "no" if disagree else "yes"


def decisive(question: str, finding: str) -> bool:
    """Whether :func:`rule_verdict` reads its verdict off the terms themselves (a term they
    share denied in one of them only, or a direction the other way) rather than off the parity
    of their negations alone: the verdicts the rules get right most often."""
    return _scoped_disagreement(question, finding) is not None or _flipped(question, finding)


MIN_SHARED_TERMS = 3
"""Content terms a claim and a source sentence must share to be about the same thing."""


def opposes(claim: str, evidence: str) -> bool:
    """Whether ``claim`` says the opposite of the ``evidence`` sentence about the same thing
    (at least :data:`MIN_SHARED_TERMS` content terms in common): terms they share denied in
    one of them only ("Sharpness correlated well with generalization" against "sharpness does
    not correlate well with generalization"; "needs a small set of calibration data" against
    "without any access to the training or validation data"), or the same comparison going
    the other way ("X increased Y" against "X reduced Y")."""
    if len(content_terms(claim) & content_terms(evidence)) < MIN_SHARED_TERMS:
        return False
    return bool(_scoped_disagreement(claim, evidence)) or _flipped(claim, evidence)
