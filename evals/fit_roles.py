"""Fit the sentence-role classifier on the calibration half, measure it on the validation half.

    python -m evals fit-roles              # fit, print the validation figures
    python -m evals fit-roles --write      # ... and write assistant/answer/roles.json

Data: evals/data/sentence_roles.jsonl, every sentence of 418 abstracts (sample collection and
SciFact) labelled background, aim, method, result, conclusion or other, each abstract in the
half of its paper. The model (:class:`assistant.answer.roles.RoleModel`) is a multinomial
logistic regression (scikit-learn, L2, balanced class weights) over the sentence's embedding
and the hand features of :func:`assistant.answer.roles.role_features`. The report gives, on the
validation half only, accuracy and per-role precision and recall for the model and for the
rules alone, and the two figures the answer stage relies on: how often a sentence called a
finding (result or conclusion) is one, and how often an aim or background sentence is called a
finding.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.answer.roles import (
    FINDING_ROLES,
    ROLES,
    WEIGHTS_FILE,
    RoleModel,
    role_features,
    rule_roles,
)
from assistant.index.embeddings import Embedder

from .cases import DATA_DIR

__all__ = ["fit_roles", "role_report"]

ROLES_FILE = "sentence_roles.jsonl"


@dataclass
class _Half:
    x: np.ndarray
    y: np.ndarray
    sentences: list[list[str]]
    """Per abstract, for the rules."""
    labels: list[list[str]]


def _load(embedder: Embedder, path: Path) -> dict[str, _Half]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    halves: dict[str, _Half] = {}
    for split in ("calibration", "validation"):
        mine = [r for r in rows if r["split"] == split]
        flat = [s for r in mine for s in r["sentences"]]
        vectors = np.asarray(embedder.embed(flat), dtype=np.float32)
        feats = np.vstack([role_features(r["sentences"]) for r in mine])
        y = np.array([ROLES.index(label) for r in mine for label in r["roles"]])
        halves[split] = _Half(
            np.hstack([vectors, feats]),
            y,
            [r["sentences"] for r in mine],
            [r["roles"] for r in mine],
        )
    return halves


def _scores(truth: list[str], pred: list[str]) -> dict[str, Any]:
    pairs = list(zip(truth, pred, strict=True))
    per_role = {}
    for role in ROLES:
        tp = sum(t == p == role for t, p in pairs)
        n_pred = sum(p == role for _, p in pairs)
        n_true = sum(t == role for t, _ in pairs)
        per_role[role] = {
            "precision": round(tp / n_pred, 3) if n_pred else None,
            "recall": round(tp / n_true, 3) if n_true else None,
            "n": n_true,
        }
    called = [(t, p) for t, p in pairs if p in FINDING_ROLES]
    setup = [(t, p) for t, p in pairs if t in ("aim", "background")]
    return {
        "accuracy": round(sum(t == p for t, p in pairs) / len(pairs), 3),
        "finding_precision": round(sum(t in FINDING_ROLES for t, _ in called) / len(called), 3),
        "aim_or_background_called_finding": round(
            sum(p in FINDING_ROLES for _, p in setup) / len(setup), 3
        ),
        "per_role": per_role,
        "confusion": dict(Counter(f"{t}->{p}" for t, p in pairs if t != p).most_common(8)),
    }


def fit_roles(embedder: Embedder, *, c: float = 1.0) -> tuple[RoleModel, dict[str, Any]]:
    """Fit on calibration; the report measures the model and the rules on validation."""
    from sklearn.linear_model import LogisticRegression

    halves = _load(embedder, DATA_DIR / ROLES_FILE)
    cal, val = halves["calibration"], halves["validation"]
    clf = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
    clf.fit(cal.x, cal.y)
    model = RoleModel(
        coef=clf.coef_.astype(np.float32),
        intercept=clf.intercept_.astype(np.float32),
        embed_model=embedder.model_id,
        fitted_on=f"evals/data/{ROLES_FILE}, calibration half ({len(cal.y)} sentences)",
    )
    truth = [ROLES[k] for k in val.y]
    predicted = [ROLES[int(k)] for k in clf.predict(val.x)]
    rules = [role for sents in val.sentences for role in rule_roles(sents)]
    report = {
        "fitted_on": model.fitted_on,
        "validation_sentences": len(val.y),
        "model": _scores(truth, predicted),
        "rules": _scores(truth, rules),
        "c": c,
    }
    return model, report


def role_report(report: dict[str, Any]) -> str:
    lines = [f"fitted on {report['fitted_on']}; measured on {report['validation_sentences']} "
             "validation sentences"]  # fmt: skip
    for name in ("model", "rules"):
        r = report[name]
        lines.append(
            f"{name:6} accuracy {r['accuracy']:.3f}  finding precision {r['finding_precision']:.3f}"
            f"  aim/background called a finding {r['aim_or_background_called_finding']:.3f}"
        )
        lines.append(
            "       "
            + "  ".join(
                f"{role} P{v['precision'] if v['precision'] is not None else '-'}"
                f"/R{v['recall'] if v['recall'] is not None else '-'}"
                for role, v in r["per_role"].items()
            )
        )
    return "\n".join(lines)


def write_weights(model: RoleModel, path: Path = WEIGHTS_FILE) -> Path:
    path.write_text(model.to_json() + "\n", encoding="utf-8")
    return path
