"""Measure who reads a yes/no verdict off a finding better: the rules or the local model.

    python -m evals verdicts --split calibration      # decide on this half
    python -m evals verdicts --split validation       # then only report this one

For every yes/no question with its evidence (evals/data/sample_qa.jsonl and
scifact_yesno.jsonl), the gold finding sentences (evals/data/sentence_roles.jsonl) are given
to :func:`assistant.answer.polarity.rule_verdict` and to
:func:`assistant.answer.verdict.model_verdict`, and each verdict is compared with the label.
This isolates reading the verdict from finding the sentence (the full evaluation measures
both together). Writes verdicts-<split>.json and .md into ``--out``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from assistant.answer.polarity import rule_verdict
from assistant.answer.verdict import model_verdict
from assistant.llm.base import ChatModel
from assistant.prompts import load_prompt

from .cases import DATA_DIR, read_cases

__all__ = ["measure_verdicts", "render_verdicts"]


def _findings() -> dict[str, list[str]]:
    rows = [
        json.loads(x) for x in (DATA_DIR / "sentence_roles.jsonl").read_text().splitlines() if x
    ]
    return {r["title"]: r["sentences"] for r in rows}


def measure_verdicts(llm: ChatModel, split: str) -> dict[str, Any]:
    sentences = _findings()
    system = load_prompt("system").render()
    rows = []
    started = time.perf_counter()
    for dataset in ("sample", "scifact"):
        for case in read_cases(dataset):
            if case.type != "yesno" or (split != "all" and case.split != split):
                continue
            finding = " ".join(
                sentences[t][n - 1]
                for t, n in case.evidence
                if t in sentences and n <= len(sentences[t])
            )
            if not finding:
                continue
            model = model_verdict(llm, case.question, finding, system)
            rule = rule_verdict(case.question, finding)
            rows.append(
                {
                    "id": case.id,
                    "dataset": dataset,
                    "label": case.verdict,
                    "ambiguous": case.ambiguous,
                    "rules": rule,
                    "model": model,
                    "model_else_rules": model or rule,
                }
            )
    seconds = time.perf_counter() - started
    summary: dict[str, Any] = {}
    for group, keep in (("all", lambda r: True), ("unambiguous", lambda r: not r["ambiguous"])):
        mine = [r for r in rows if keep(r)]
        summary[group] = {
            "n": len(mine),
            **{
                who: round(sum(r[who] == r["label"] for r in mine) / len(mine), 3) if mine else None
                for who in ("rules", "model", "model_else_rules")
            },
            "model_unclear": sum(r["model"] is None for r in mine),
            "labels": dict(Counter(r["label"] for r in mine)),
        }
    return {
        "split": split,
        "model": llm.name,
        "seconds": round(seconds, 1),
        "summary": summary,
        "rows": rows,
    }


def render_verdicts(report: dict[str, Any]) -> str:
    lines = [
        f"# Yes/no verdicts from the gold finding: rules against the model ({report['split']})",
        "",
        f"Model `{report['model']}`; {report['seconds']} s. Accuracy against the label:",
        "",
        "| questions | n | rules | model | model, else rules | model unclear |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for group, s in report["summary"].items():
        lines.append(
            f"| {group} | {s['n']} | {s['rules']} | {s['model']} | {s['model_else_rules']} | "
            f"{s['model_unclear']} |"
        )
    return "\n".join(lines) + "\n"


def write_verdicts(report: dict[str, Any], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"verdicts-{report['split']}.json").write_text(json.dumps(report, indent=2) + "\n")
    md = out / f"verdicts-{report['split']}.md"
    md.write_text(render_verdicts(report))
    return md
