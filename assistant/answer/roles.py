"""Answering, step 3a: the role of every sentence of a retrieved abstract (background, aim,
method, result, conclusion, other).

An answer's evidence is what a study found, not what it set out to do: "We aimed to evaluate
the effect of surgery on lipid levels" resembles the question "Does surgery lower lipid
levels?" more than the sentence that answers it ("Lipid levels did not change after
surgery"). :func:`sentence_roles` tells them apart from what a reader sees: a structured
abstract's labels (``RESULTS``, ``Conclusions:``), cue phrases ("we aimed", "we propose", "these
results suggest"), the sentence's position, its figures, and its meaning (the sentence
embedding the evidence step computes anyway). A multinomial logistic model combines them; its
weights (``roles.json``) are fitted by ``python -m evals fit-roles`` on the calibration half of
evals/data/sentence_roles.jsonl and measured on the validation half.

No language model is called: one matrix product per question.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from assistant.answer.citations import claim_numbers

__all__ = [
    "ROLES",
    "FINDING_ROLES",
    "SETUP_ROLES",
    "RoleModel",
    "role_features",
    "section_of",
    "sentence_roles",
    "strip_section_label",
]

ROLES = ("background", "aim", "method", "result", "conclusion", "other")
FINDING_ROLES = frozenset({"result", "conclusion"})
"""What a study found: the evidence an answer rests on."""
SETUP_ROLES = frozenset({"aim", "background"})
"""What a study set out to do, or what was known before it: never quoted as its answer."""
WEIGHTS_FILE = Path(__file__).with_name("roles.json")

_SECTIONS = {
    "background": "BACKGROUND|INTRODUCTION|CONTEXT|IMPORTANCE|RATIONALE|MOTIVATION",
    "aim": "OBJECTIVES?|AIMS?|PURPOSE|GOALS?|AIMS? AND OBJECTIVES|STUDY QUESTION",
    "method": (
        "METHODS?(?! AND FINDINGS)|MATERIALS? AND METHODS|DESIGN|STUDY DESIGN|SETTINGS?|PARTICIPANTS|PATIENTS"
        "|SUBJECTS|MEASUREMENTS?|INTERVENTIONS?|MAIN OUTCOME MEASURES?|OUTCOME MEASURES?"
        "|EXPOSURES?|DATA SOURCES|STUDY SELECTION|DATA EXTRACTION|APPROACH|EXPERIMENTAL DESIGN"
    ),
    "result": "RESULTS?|FINDINGS|METHODS AND FINDINGS|MAIN RESULTS|KEY RESULTS|OBSERVATIONS",
    "conclusion": (
        "CONCLUSIONS?|INTERPRETATION|IMPLICATIONS|SIGNIFICANCE|DISCUSSION|SUMMARY"
        "|CONCLUSIONS? AND RELEVANCE|CLINICAL RELEVANCE"
    ),
}
_SECTION_NAMES = "|".join(f"(?P<{role}>{names})" for role, names in _SECTIONS.items())
# "RESULTS Of the 32,441 samples..." (PubMed as plain text), "CONCLUSIONS: ...", "Results: ..."
_SECTION_CAPS = re.compile(rf"^\s*(?:{_SECTION_NAMES})(?:\s*[:.\-–—]\s*|\s+(?=[A-Z0-9(\"“]))")
_SECTION_COLON = re.compile(rf"^\s*(?:{_SECTION_NAMES})\s*:\s*", re.IGNORECASE)

_CUES: dict[str, str] = {
    "aim": (
        r"\b(?:we|this (?:study|paper|work|trial|review|article)) (?:aim|aimed|sought|seek|set out|"
        r"intend|wanted)\b|\b(?:the )?(?:aim|goal|objective|purpose)s? (?:of|was|is|were)\b"
        r"|\bto (?:investigate|evaluate|assess|examine|determine|explore|test|compare|study)"
        r" (?:whether|if|the|how)\b|\bwe (?:investigate|ask|examine|explore|study) (?:whether|if|how)\b"
        r"|\b(?:here|in this (?:paper|work|study)),? we (?:investigate|study|examine|explore|ask|address)\b"
    ),
    "method": (
        r"\bwe (?:propose|introduce|present|develop|design|train|use|used|employ|apply|adopt|"
        r"construct|build|formulate|leverage|conducted|performed|collected|recruited|randomi[sz]ed|"
        r"analy[sz]ed|measured|enrolled)\b|\b(?:were|was) (?:randomi[sz]ed|enrolled|recruited|"
        r"assigned|measured|collected|analy[sz]ed|followed|treated|included)\b|\bconsists? of\b"
        r"|\b(?:our|the proposed) (?:method|approach|model|framework|algorithm|architecture)\b"
    ),
    "result": (
        r"\b(?:we (?:find|found|show|showed|observe|observed|demonstrate|demonstrated|report)|"
        r"results? (?:show|showed|demonstrate|indicate|suggest|reveal)|experiments? (?:show|"
        r"demonstrate|on)|outperform\w*|achiev\w+|improv\w+|reduc\w+|increas\w+|decreas\w+|"
        r"associated with|significant\w*|compared (?:with|to)|higher|lower|better|worse|"
        r"no (?:significant )?(?:difference|change|effect|association)|did not|was not|were not|"
        r"odds ratio|hazard ratio|relative risk|confidence interval|p\s*[<=>]|\d+(?:\.\d+)?\s?%)"
    ),
    "conclusion": (
        r"\b(?:in conclusion|to conclude|we conclude|these (?:results|findings|data|observations)"
        r" (?:suggest|indicate|show|demonstrate|support|provide|highlight|imply)|this (?:suggests|"
        r"indicates|shows)|(?:our|the) (?:results|findings) (?:suggest|indicate|highlight|support)"
        r"|taken together|overall|collectively|may (?:be|have|provide|help|offer|serve)|"
        r"could (?:be|help|provide)|should be|promising|implications?|paves? the way|opens? (?:up|"
        r"new)|future (?:work|research|studies))\b"
    ),
    "background": (
        r"\b(?:is|are|has been|have been) (?:widely|commonly|increasingly|often|a|an|the|one of)\b"
        r"|\b(?:recent|recently|previous|prior|existing|traditional|conventional|current|"
        r"however|despite|although|remains?|challeng\w*|limited|little is known|unclear|"
        r"important|crucial|essential|plays? (?:a|an) )"
    ),
    "other": (
        r"https?://|github|\bcode (?:is|and|will be)\b|available (?:at|online|from)|"
        r"\bregistered\b|clinicaltrials\.gov|\bfunded\b|\bgrant\b|\bNCT\d+"
    ),
}
_CUE_RES = {role: re.compile(pattern, re.IGNORECASE) for role, pattern in _CUES.items()}
_N_HAND = len(_SECTIONS) + 1 + 4 + len(_CUES) + 2
"""Hand features: section one-hot (five kinds and none), position (4), cue families, figures (2)."""


def section_of(sentence: str) -> str | None:
    """The role a structured abstract's label at the start of ``sentence`` gives
    (``RESULTS Of the ...`` -> ``result``), or None."""
    m = _SECTION_CAPS.match(sentence) or _SECTION_COLON.match(sentence)
    if not m:
        return None
    return next(role for role, text in m.groupdict().items() if text)


def strip_section_label(sentence: str) -> str:
    """``sentence`` without a leading structured-abstract label (what is quoted to a
    reader: "Of the 32,441 samples ...", not "RESULTS Of the 32,441 samples ...")."""
    m = _SECTION_CAPS.match(sentence) or _SECTION_COLON.match(sentence)
    return sentence[m.end() :].lstrip() if m and sentence[m.end() :].strip() else sentence


def role_features(sentences: Sequence[str]) -> np.ndarray:
    """The hand features of each sentence of one abstract, in order: the section it is in (a
    label applies until the next one), where it stands, which cue families it matches, and
    whether it states a figure."""
    n = len(sentences)
    out = np.zeros((n, _N_HAND), dtype=np.float32)
    section: str | None = None
    kinds = list(_SECTIONS)
    for i, s in enumerate(sentences):
        section = section_of(s) or section
        col = kinds.index(section) if section else len(kinds)
        out[i, col] = 1.0
        base = len(kinds) + 1
        rel = i / (n - 1) if n > 1 else 0.0
        out[i, base : base + 4] = (rel, float(i == 0), float(i == n - 1), float(i == n - 2))
        base += 4
        for k, role in enumerate(_CUES):
            out[i, base + k] = 1.0 if _CUE_RES[role].search(s) else 0.0
        base += len(_CUES)
        numbers = claim_numbers(s)
        out[i, base : base + 2] = (float(bool(numbers)), float("%" in s))
    return out


@dataclass(frozen=True)
class RoleModel:
    """Multinomial logistic weights over [sentence embedding, hand features]."""

    coef: np.ndarray
    """[len(ROLES), dim + hand features]"""
    intercept: np.ndarray
    embed_model: str
    """The embedder the weights were fitted with (its vectors are part of the input)."""
    fitted_on: str = ""

    def probabilities(self, vectors: np.ndarray, sentences: Sequence[str]) -> np.ndarray:
        """[n, len(ROLES)] role probabilities of the sentences of one abstract."""
        if not len(sentences):
            return np.zeros((0, len(ROLES)))
        x = np.hstack([np.asarray(vectors, dtype=np.float32), role_features(sentences)])
        z = x @ self.coef.T + self.intercept
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def to_json(self) -> str:
        return json.dumps(
            {
                "roles": list(ROLES),
                "embed_model": self.embed_model,
                "fitted_on": self.fitted_on,
                "intercept": [round(float(v), 5) for v in self.intercept],
                "coef": [[round(float(v), 5) for v in row] for row in self.coef],
            }
        )


@lru_cache(maxsize=1)
def load_role_model(path: Path = WEIGHTS_FILE) -> RoleModel | None:
    """The shipped weights, or None when there are none (roles then come from the rules:
    :func:`rule_roles`)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if data.get("roles") != list(ROLES):
        return None
    return RoleModel(
        coef=np.asarray(data["coef"], dtype=np.float32),
        intercept=np.asarray(data["intercept"], dtype=np.float32),
        embed_model=str(data.get("embed_model", "")),
        fitted_on=str(data.get("fitted_on", "")),
    )


def rule_roles(sentences: Sequence[str]) -> list[str]:
    """Roles from labels, cues and position alone (no fitted weights)."""
    out: list[str] = []
    section: str | None = None
    n = len(sentences)
    for i, s in enumerate(sentences):
        section = section_of(s) or section
        if section:
            out.append(section)
            continue
        hits = [
            role
            for role in ("other", "aim", "conclusion", "result", "method")
            if _CUE_RES[role].search(s)
        ]
        if hits:
            out.append(hits[0])
        elif i == 0:
            out.append("background")
        elif i == n - 1:
            out.append("conclusion")
        else:
            out.append("method")
    return out


def sentence_roles(
    sentences: Sequence[str], vectors: np.ndarray | None = None, *, embed_model: str = ""
) -> list[str]:
    """The role of each sentence of one abstract (see the module docstring): the fitted
    model when its weights match the embedder that made ``vectors``, else the rules."""
    model = load_role_model()
    if model is None or vectors is None or (embed_model and model.embed_model != embed_model):
        return rule_roles(sentences)
    p = model.probabilities(vectors, sentences)
    return [ROLES[int(k)] for k in p.argmax(axis=1)]
