"""What an eval run asks: the questions of a dataset as typed cases, their halves, a mixed
selection of them.

Two datasets, both described in evals/data/README.md: ``sample`` (evals/data/sample_qa.jsonl,
questions over the bundled sample collection) and ``scifact`` (evals/data/scifact_yesno.jsonl,
the SciFact claims as yes/no questions over their gold abstracts). Every case belongs to a
half, ``calibration`` (what may be tuned on) or ``validation`` (only measured).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from assistant.errors import InputError

__all__ = [
    "DATA_DIR",
    "DATASETS",
    "SPLITS",
    "TYPES",
    "Case",
    "read_cases",
    "select_cases",
    "file_sha256",
    "read_jsonl",
]

DATA_DIR = Path(str(resources.files("evals") / "data"))
DATASETS = {"sample": "sample_qa.jsonl", "scifact": "scifact_yesno.jsonl"}
SPLITS = ("all", "calibration", "validation")
TYPES = ("fact", "yesno", "multi", "compare", "unanswerable")


@dataclass(frozen=True)
class Case:
    """One question with what a correct answer holds."""

    id: str
    dataset: str
    type: str
    """``fact``, ``yesno``, ``multi``, ``compare`` or ``unanswerable``."""
    question: str
    split: str
    """``calibration`` or ``validation``: the half of the papers it is about."""
    gold_titles: tuple[str, ...] = ()
    key_facts: tuple[str, ...] = ()
    style: str = ""
    """``named`` or ``paraphrased`` (facts, yes/no, comparisons)."""
    verdict: str | None = None
    """``yes``, ``no`` or ``mixed`` (yes/no questions)."""
    evidence: tuple[tuple[str, int], ...] = ()
    """(title, 1-based sentence in evals/data/sentence_roles.jsonl) that state the answer."""
    near_miss: bool | None = None
    near_title: str = ""
    ambiguous: bool = False
    """A SciFact question whose abstract does not decide it as the claim's label says."""
    notes: str = field(default="", compare=False)

    @property
    def answerable(self) -> bool:
        return self.type != "unanswerable"

    @property
    def stratum(self) -> str:
        """What a small selection mixes: the type, and for yes/no questions the verdict."""
        return f"{self.type}/{self.verdict}" if self.verdict else self.type

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, "", (), False)}

    @classmethod
    def from_row(cls, row: dict[str, Any], dataset: str, where: str = "") -> Case:
        """A case from one line of a dataset file; an unusable line is an InputError that
        names it (``where``) and says what is wrong."""
        kind = row.get("type") or ("yesno" if dataset == "scifact" else None)
        question = row.get("question")
        if kind not in TYPES or not isinstance(question, str) or not question.strip():
            raise InputError(
                f"{where or dataset}: a case needs a type ({', '.join(TYPES)}) and a question; "
                "fix the line (evals/data/README.md describes the fields)"
            )
        split = row.get("split")
        if split not in SPLITS[1:]:
            digest = hashlib.sha1(str(row.get("id")).encode()).digest()
            split = "calibration" if digest[0] % 2 == 0 else "validation"
        evidence = tuple(
            (str(t), int(n)) for t, n in row.get("evidence") or [] if isinstance(n, int)
        )
        return cls(
            id=str(row.get("id") or where),
            dataset=dataset,
            type=kind,
            question=question,
            split=split,
            gold_titles=tuple(row.get("gold_titles") or ()),
            key_facts=tuple(row.get("key_facts") or ()),
            style=str(row.get("style") or ""),
            verdict=row.get("verdict"),
            evidence=evidence,
            near_miss=row.get("near_miss"),
            near_title=str(row.get("near_title") or ""),
            ambiguous=bool(row.get("ambiguous")),
            notes=str(row.get("notes") or ""),
        )


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise InputError(f"{path}:{n} is not JSON ({exc}); fix the line") from None
    return rows


def read_cases(dataset: str, data_dir: Path = DATA_DIR) -> list[Case]:
    """Every case of ``dataset`` (see :data:`DATASETS`), in file order."""
    if dataset not in DATASETS:
        raise InputError(f"unknown dataset {dataset!r}; choose from {sorted(DATASETS)}")
    path = data_dir / DATASETS[dataset]
    cases = [
        Case.from_row(row, dataset, f"{path}:{n}") for n, row in enumerate(read_jsonl(path), 1)
    ]
    ids = [c.id for c in cases]
    if len(set(ids)) != len(ids):
        raise InputError(f"{path}: repeated case ids; every id must be unique")
    return cases


def select_cases(cases: Sequence[Case], limit: int | None) -> list[Case]:
    """The first ``limit`` cases taken round-robin over their strata (file order within
    each), so a small limit still covers every type and verdict; all of them for None."""
    if limit is None or limit >= len(cases):
        return list(cases)
    groups: dict[str, list[Case]] = {}
    for case in cases:
        groups.setdefault(case.stratum, []).append(case)
    picked: list[Case] = []
    depth = 0
    while len(picked) < limit:
        for items in groups.values():
            if depth < len(items) and len(picked) < limit:
                picked.append(items[depth])
        depth += 1
    return picked
