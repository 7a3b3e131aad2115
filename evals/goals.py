"""The goals of "answers that state the finding" (issue 20), before against after: one table
from two reports, each goal with its target, the two values and how many cases scored it.

    python -m evals goals out/evals/before out/evals/after
    python -m evals goals A B C --labels "before,after,after (all)"

Multi-paper and comparison questions are pooled (weighted by the cases each scored); time to
first token is over the questions where the model was called.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from assistant.errors import InputError

from .report import load_report

__all__ = ["GOALS", "goal_values", "goals_table"]

Agg = dict[str, Any]


def _metric(dataset: str, name: str, kind: str | None = None) -> Callable[[dict], tuple]:
    def read(aggs: dict) -> tuple[float | None, int]:
        a = aggs.get(dataset, {}).get("assistant")
        if not a:
            return None, 0
        if kind is not None:
            a = a.get("by_type", {}).get(kind)
            if not a:
                return None, 0
        return a["metrics"].get(name), a["n_scored"].get(name, 0)

    return read


def _pooled(dataset: str, name: str, kinds: tuple[str, ...]) -> Callable[[dict], tuple]:
    def read(aggs: dict) -> tuple[float | None, int]:
        total, n = 0.0, 0
        for kind in kinds:
            value, count = _metric(dataset, name, kind)(aggs)
            if value is not None and count:
                total, n = total + value * count, n + count
        return (total / n if n else None), n

    return read


def _first_token(dataset: str) -> Callable[[dict], tuple]:
    def read(aggs: dict) -> tuple[float | None, int]:
        a = aggs.get(dataset, {}).get("assistant")
        lat = (a or {}).get("latency", {}).get("first_token") or {}
        return lat.get("p50"), lat.get("n", 0)

    return read


GOALS: list[tuple[str, str, Callable[[dict], tuple]]] = [
    ("key facts, fact questions (sample)", ">= 0.92", _metric("sample", "key_fact_recall", "fact")),
    ("answerable declined (sample)", "<= 0.04", _metric("sample", "false_decline_rate")),
    ("answerable declined (SciFact)", "<= 0.04", _metric("scifact", "false_decline_rate")),
    ("unanswerable declined (sample)", ">= 0.92", _metric("sample", "correct_decline_rate")),
    ("yes/no verdict agrees (sample)", ">= 0.85", _metric("sample", "verdict_agrees")),
    ("yes/no verdict agrees (SciFact claims)", ">= 0.85", _metric("scifact", "verdict_agrees")),
    (
        "evidence is a result or conclusion (sample)",
        ">= 0.90",
        _metric("sample", "evidence_is_finding"),
    ),  # fmt: skip
    (
        "evidence is a result or conclusion (SciFact)",
        ">= 0.90",
        _metric("scifact", "evidence_is_finding"),
    ),  # fmt: skip
    (
        "multi and comparison: every needed paper cited",
        ">= 0.85",
        _pooled("sample", "all_gold_cited", ("multi", "compare")),
    ),  # fmt: skip
    (
        "multi and comparison: no unrelated paper listed",
        ">= 0.85",
        _pooled("sample", "no_unrelated_cited", ("multi", "compare")),
    ),  # fmt: skip
    (
        "fact: an appended quote adds a key fact the text lacks",
        "",
        _metric("sample", "quote_adds_fact", "fact"),
    ),  # fmt: skip
    ("first token p50, s (sample)", "no worse", _first_token("sample")),
    ("first token p50, s (SciFact)", "no worse", _first_token("scifact")),
]


def goal_values(report: dict) -> list[tuple[str, str, float | None, int]]:
    aggs = report["aggregates"]
    return [(name, target, *read(aggs)) for name, target, read in GOALS]


def _cell(value: float | None, n: int) -> str:
    return "–" if value is None else f"{value:.3f} ({n})" if n else f"{value:.3f}"


def goals_table(reports: Sequence[Path], labels: Sequence[str] = ("before", "after")) -> str:
    """One column per report (``labels`` name them; "before", "after" for two)."""
    if len(labels) != len(reports):
        raise InputError(
            f"--labels: {len(reports)} reports need {len(reports)} labels, got {len(labels)}"
        )
    columns = [goal_values(load_report(path)) for path in reports]
    rows = [
        "| goal | target | " + " | ".join(labels) + " |",
        "|---|---|" + "---:|" * len(labels),
    ]
    for i, (name, target, *_) in enumerate(columns[0]):
        cells = " | ".join(_cell(col[i][2], col[i][3]) for col in columns)
        rows.append(f"| {name} | {target} | {cells} |")
    return "\n".join(rows) + "\n\n(in brackets: the cases that scored it)\n"
