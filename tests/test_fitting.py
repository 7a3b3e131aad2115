"""The scripts that fit and measure the answer stage on the calibration half: the decision
(evals/fit_decision.py) and the yes/no verdict readers (evals/verdicts.py)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from scripted import ScriptedChatModel

from evals.cases import Case
from evals.fit_decision import decision_summary, fit_decision
from evals.records import Record, SystemRecord
from evals.report import json_safe
from evals.verdicts import measure_verdicts


def _record(i: int, answerable: bool, split: str, rng: random.Random) -> Record:
    lift = 0.25 if answerable else 0.0
    features = {
        "finding_similarity": 0.3 + lift + rng.uniform(-0.1, 0.1),
        "best_similarity": 0.35 + lift + rng.uniform(-0.1, 0.1),
        "claim_support": rng.uniform(0.5, 1.0),
        "claim_similarity": 0.4 + rng.uniform(-0.1, 0.1),
        "gap_share": 0.0 if answerable else rng.choice([0.0, 0.5]),
        "figure_missing": 0.0,
        "refused": 0.0,
    }
    kind = "fact" if answerable else "unanswerable"
    case = Case(id=f"c{i}", dataset="sample", type=kind, question="q?", split=split)
    result = SystemRecord(answerable=True, decision={"features": features, "p_answer": 0.5})
    return Record(case, {"assistant": result})


def test_the_decision_is_fitted_on_calibration_answers_only(tmp_path: Path) -> None:
    rng = random.Random(0)
    records = [_record(i, i % 3 != 0, "calibration", rng) for i in range(90)]
    # validation cases, all mislabelled on purpose: a fit that read them would be pulled off
    records += [_record(100 + i, i % 2 == 0, "validation", rng) for i in range(60)]
    for r in records[90:]:
        r.systems["assistant"].decision["features"]["finding_similarity"] = 0.9
    report = {"records": {"sample": [r.to_dict() for r in records]}}
    (tmp_path / "report.json").write_text(json.dumps(json_safe(report)))
    fit = fit_decision(tmp_path, min_decline=0.9)
    assert fit["n"] == 90
    assert fit["answer_weights"]["finding_similarity"] > 0
    assert fit["calibration"]["unanswerable_declined"] >= 0.9
    assert fit["calibration"]["answerable_declined"] <= 0.2
    assert "ANSWER_THRESHOLD = " in decision_summary(fit)


def test_verdicts_are_measured_on_the_gold_findings() -> None:
    always_no = ScriptedChatModel(lambda messages: "No.")
    report = measure_verdicts(always_no, "calibration")
    rows = report["rows"]
    assert rows and {r["label"] for r in rows} >= {"yes", "no"}
    share_no = sum(r["label"] == "no" for r in rows) / len(rows)
    assert abs(report["summary"]["all"]["model"] - share_no) < 1e-3  # it always says no
    assert 0.0 < report["summary"]["all"]["rules"] < 1.0
    prompt = always_no.calls[0][1]["content"]
    assert "Finding:" in prompt and rows[0]["id"]


def test_a_figure_asked_for_a_setting_the_paper_never_names_weighs_against_answering() -> None:
    from dataclasses import replace

    from assistant.answer.decide import AnswerFeatures, answer_probability

    base = AnswerFeatures(0.6, 0.6, 0.9, 0.6, 0.5, 0.0, 0.0)
    assert answer_probability(replace(base, figure_gap=0.5)) < answer_probability(base)
