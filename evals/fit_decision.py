"""Fit the answer decision's weights on the calibration half of an eval run.

    python -m evals run --split calibration --no-judge --no-baseline --out out/evals/cal
    python -m evals fit-decision out/evals/cal

The assistant records, with every answer, the features its decision weighed
(:attr:`assistant.types.Answer.decision`, :mod:`assistant.answer.decide`). This script reads
them from a run's report.json, calibration cases only, and fits two logistic models with
scikit-learn (L2, balanced classes):

- **answer or decline**: the features of :class:`~assistant.answer.decide.AnswerFeatures`,
  labelled by whether the case is answerable (near misses and off-topic questions are not);
  the threshold is the one that decides the most calibration questions right, or with ``--min-decline`` the lowest probability that
  still declines that share of the unanswerable calibration questions;
- **list a paper or not** (questions about several papers): the features of
  :class:`~assistant.answer.decide.PaperFeatures`, labelled by whether the paper is a gold one;
  the threshold maximises the share of questions with every gold paper listed plus the share
  with no other paper listed (both are goals; the lowest threshold on a tie: a missed paper
  costs the reader more than an extra one).

It prints the weights and thresholds to paste into assistant/answer/decide.py, with their
figures on the calibration half; it never edits the module. The validation half is measured
by the next full run, never fitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from assistant.answer.decide import AnswerFeatures, PaperFeatures
from assistant.text import title_key

from .records import Record
from .report import load_report

__all__ = ["fit_decision", "decision_summary"]


def _defaults(cls: type) -> dict[str, float]:
    """Each feature's default: what a run recorded before the feature existed is read as."""
    return {f.name: f.default for f in fields(cls) if isinstance(f.default, float)}


def _answer_rows(records: list[Record]) -> tuple[np.ndarray, np.ndarray]:
    names = [f.name for f in fields(AnswerFeatures)]
    defaults = _defaults(AnswerFeatures)
    x, y = [], []
    for r in records:
        feats = r.systems["assistant"].decision.get("features")
        if r.case.split != "calibration" or not feats:
            continue
        x.append([feats[n] if n in feats else defaults[n] for n in names])
        y.append(1 if r.case.answerable else 0)
    return np.array(x, dtype=float), np.array(y)


def _paper_rows(records: list[Record]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per multi-paper calibration question: (features of each paper, gold or not)."""
    names = [f.name for f in fields(PaperFeatures)]
    defaults = _defaults(PaperFeatures)
    out = []
    for r in records:
        papers = r.systems["assistant"].decision.get("papers")
        if r.case.split != "calibration" or not papers:
            continue
        gold = {title_key(t) for t in r.case.gold_titles}
        x = np.array(
            [[p[n] if n in p else defaults[n] for n in names] for p in papers], dtype=float
        )
        out.append((x, np.array([1 if title_key(p["title"]) in gold else 0 for p in papers])))
    return out


def _threshold_for_declines(p: np.ndarray, y: np.ndarray, min_decline: float) -> float:
    """The lowest threshold that declines at least ``min_decline`` of the unanswerable."""
    neg = np.sort(p[y == 0])
    if not len(neg):
        return 0.5
    k = int(np.ceil(min_decline * len(neg))) - 1
    return float(neg[min(max(k, 0), len(neg) - 1)]) + 1e-6


def _accuracy_threshold(p: np.ndarray, y: np.ndarray) -> float:
    """The threshold that decides the most calibration questions right (answerable answered,
    unanswerable declined), at the calibration half's own mix of the two; the lowest on a tie.
    Questions people ask are mostly answerable, so a decline that throws away an answer costs
    as much as an answer to a question the collection does not hold. Candidates lie halfway
    between neighbouring probabilities, so that rounding the threshold moves no question."""
    values = np.unique(p)
    candidates = [0.0, *((values[1:] + values[:-1]) / 2).tolist(), float(values[-1]) + 1e-3]
    best, best_t = -1.0, 0.5
    for t in candidates:
        acc = float(((p >= t) == (y == 1)).mean())
        if acc > best + 1e-9:
            best, best_t = acc, float(t)
    return best_t


def fit_decision(
    report_path: Path | Sequence[Path], *, min_decline: float | None = None, c: float = 1.0
) -> dict[str, Any]:
    """Fit on the calibration answers of one run or several (a case in several: the last)."""

    records: dict[tuple[str, str], Record] = {}
    for path in [report_path] if isinstance(report_path, Path) else report_path:
        report = load_report(path)
        for name, recs in report["records"].items():
            for r in recs:  # a case in several runs: the last run's answer
                records[(name, r["case"]["id"])] = Record.from_dict(r)
    return _fit(list(records.values()), min_decline, c)


def _fit(records: list[Record], min_decline: float | None, c: float) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    x, y = _answer_rows(records)
    if len(set(y.tolist())) < 2:
        raise ValueError("the run needs answerable and unanswerable calibration questions")
    clf = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(x, y)
    p = clf.predict_proba(x)[:, 1]
    threshold = (
        _accuracy_threshold(p, y)
        if min_decline is None
        else _threshold_for_declines(p, y, min_decline)
    )
    names = [f.name for f in fields(AnswerFeatures)]
    out: dict[str, Any] = {
        "n": int(len(y)),
        "answer_weights": {n: round(float(w), 3) for n, w in zip(names, clf.coef_[0], strict=True)},
        "answer_bias": round(float(clf.intercept_[0]), 3),
        "answer_threshold": round(threshold, 4),
        "calibration": {
            "answerable_declined": round(float((p[y == 1] < threshold).mean()), 3),
            "unanswerable_declined": round(float((p[y == 0] < threshold).mean()), 3),
        },
    }
    papers = _paper_rows(records)
    if papers:
        px = np.vstack([a for a, _ in papers])
        py = np.concatenate([b for _, b in papers])
        if len(set(py.tolist())) == 2:
            pclf = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(px, py)
            pnames = [f.name for f in fields(PaperFeatures)]
            best, best_t, rates = -1.0, 0.5, {}
            for t in np.linspace(0.2, 0.8, 25):
                # both goals count: every gold paper listed, and no other paper listed
                kept = [(pclf.predict_proba(a)[:, 1] >= t, b.astype(bool)) for a, b in papers]
                all_gold = float(np.mean([bool(np.all(k[g])) for k, g in kept]))
                no_other = float(np.mean([not bool(np.any(k[~g])) for k, g in kept]))
                if all_gold + no_other > best + 1e-9:  # the lowest threshold on a tie
                    best, best_t = all_gold + no_other, float(t)
                    rates = {
                        "papers_all_gold": round(all_gold, 3),
                        "papers_no_other": round(no_other, 3),
                    }
            out["paper_weights"] = {
                n: round(float(w), 3) for n, w in zip(pnames, pclf.coef_[0], strict=True)
            }
            out["paper_bias"] = round(float(pclf.intercept_[0]), 3)
            out["paper_threshold"] = round(best_t, 3)
            out["calibration"].update(rates)
    return out


def decision_summary(fit: dict[str, Any]) -> str:
    lines = [
        f"fitted on {fit['n']} calibration answers; on them: {fit['calibration']}",
        "",
        "for assistant/answer/decide.py:",
        f"ANSWER_WEIGHTS = {fit['answer_weights']}",
        f"ANSWER_BIAS = {fit['answer_bias']}",
        f"ANSWER_THRESHOLD = {fit['answer_threshold']}",
    ]
    if "paper_weights" in fit:
        lines += [
            f"PAPER_WEIGHTS = {fit['paper_weights']}",
            f"PAPER_BIAS = {fit['paper_bias']}",
            f"PAPER_THRESHOLD = {fit['paper_threshold']}",
        ]
    return "\n".join(lines)
