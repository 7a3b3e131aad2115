"""What an eval run records, as typed data that the runner writes and the report reads.

One :class:`Record` per case: the case itself and, per system (``assistant``, ``baseline``), a
:class:`SystemRecord` with the answer, what it cited and quoted, the judge's verdicts on its
sentences, timings and the scores the metrics gave. ``report.json`` holds them as plain JSON
(:meth:`Record.to_dict`); :meth:`Record.from_dict` reads them back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .cases import Case

__all__ = ["JudgedSentence", "SystemRecord", "Record"]


@dataclass
class JudgedSentence:
    """The judge's verdicts on one sentence of an answer."""

    text: str
    n_cited: int
    supported_by_citations: bool
    supported_by_retrieved: bool


@dataclass
class SystemRecord:
    """One system's answer to one case."""

    answer: str = ""
    answerable: bool = False
    error: str | None = None
    top_titles: list[str] = field(default_factory=list)
    """Title keys of its top retrieved papers, best first."""
    cited_titles: list[str] = field(default_factory=list)
    passages: list[str] = field(default_factory=list)
    """The text of each source the model was shown."""
    evidence: list[tuple[str, str]] = field(default_factory=list)
    """(title, sentence) the answer quotes or cites as its evidence."""
    evidence_roles: list[str | None] = field(default_factory=list)
    """The hand-labelled role of each evidence sentence (None: not labelled)."""
    verdict: str | None = None
    """The yes/no verdict the answer states (:func:`evals.metrics.answer_verdict`)."""
    evidence_level: str = ""
    quoted: bool = False
    prompt_tokens: int = 0
    raw_text: str = ""
    decision: dict[str, Any] = field(default_factory=dict)
    """Why the assistant answered as it did (:attr:`assistant.types.Answer.decision`)."""
    sentences: list[JudgedSentence] = field(default_factory=list)
    latency_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SystemRecord:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        known["sentences"] = [JudgedSentence(**s) for s in d.get("sentences") or []]
        known["evidence"] = [tuple(e) for e in d.get("evidence") or []]
        return cls(**known)


@dataclass
class Record:
    case: Case
    systems: dict[str, SystemRecord]

    def to_dict(self) -> dict[str, Any]:
        return {
            "case": self.case.to_dict(),
            "systems": {k: asdict(v) for k, v in self.systems.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Record:
        c = dict(d["case"])
        for key in ("gold_titles", "key_facts"):
            c[key] = tuple(c.get(key) or ())
        c["evidence"] = tuple(tuple(e) for e in c.get("evidence") or ())
        return cls(Case(**c), {k: SystemRecord.from_dict(v) for k, v in d["systems"].items()})
