"""Fit the verifier's score weights, and measure them on labelled pairs the fit never saw.

    python -m evals fit-verifier                 # judge pairs (fitting half) + SciFact pairs
    python -m evals fit-verifier --no-scifact --out out/fit-verifier

The verifier (:mod:`assistant.answer.verify`) scores how well a source supports a sentence as
``sigmoid(sum_i W_i * f_i + BIAS)``, times ``NUMBER_PENALTY`` when the sentence has a number
the source lacks; a score of at least ``support_threshold`` (0.5) counts as supported. Its
module names each weight ``W_<FEATURE>``. This script reads the features through the
verifier's public :func:`~assistant.answer.verify.support_scores` alone: with every weight and the
bias at 0 it sees the penalty (0.5 or 0.5 x NUMBER_PENALTY), and with one weight at 1 and
the rest at 0 the logit of the score is that feature. It then checks that the shipped weights
reproduce ``support_scores`` from those features, so a verifier whose score has another
form is reported instead of fitted wrongly.

Data:

- ``evals/data/judge_pairs.jsonl`` (40 hand-labelled pairs over the sample collection), split
  by paper: the papers in file order alternate between the fitting half and the held-out
  half (:func:`split_pairs`), so the near-identical supported/unsupported twins on one
  abstract stay together. The sentences of one paper are scored together, as the verifier
  sees the sentences of one answer.
- SciFact pairs (fitting only; ``--no-scifact`` leaves them out): each claim the gold
  abstract supports, against that abstract (supported), and every claim against the gold
  abstract of another claim (unsupported, a seeded derangement). Judge pairs weigh
  ``--judge-weight`` (5) times as much.

The fit is a weighted logistic regression (Newton's method, a small L2 penalty on the
weights) over the pairs the number penalty does not already decide. It prints the weights
next to the shipped ones and the agreement of both with the labels of each half (the shipped
weights' held-out figure is honest only if they were fitted by this script, on this split);
``--out`` also writes them as ``fit-verifier.json``. It never edits assistant/answer/verify.py: paste
the printed lines there.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assistant.answer import verify
from assistant.errors import ConfigError
from assistant.ingest.readers import default_sample_paths, read_paths
from assistant.text import title_key
from assistant.types import Source

from .cases import DATA_DIR

__all__ = [
    "Pairs",
    "Weights",
    "split_pairs",
    "sample_abstracts",
    "judge_pair_features",
    "scifact_pair_features",
    "shipped_weights",
    "fit_logistic",
    "agreement",
    "fit_verifier",
]

logger = logging.getLogger(__name__)

JUDGE_PAIRS = DATA_DIR / "judge_pairs.jsonl"
SCIFACT = DATA_DIR / "scifact_claims.jsonl"
PROBE_TOLERANCE = 2e-3
"""Most difference allowed between support_scores and the score rebuilt from the features."""


@dataclass
class Weights:
    """One set of the verifier's weights: ``W_<name>`` per feature, and the bias."""

    w: dict[str, float]
    bias: float

    def logits(self, features: np.ndarray, names: Sequence[str]) -> np.ndarray:
        return features @ np.array([self.w[n] for n in names]) + self.bias

    def lines(self) -> str:
        """As Python lines for assistant/answer/verify.py."""
        out = [f"{name} = {value:.2f}" for name, value in self.w.items()]
        return "\n".join([*out, f"BIAS = {self.bias:.2f}"])


@dataclass
class Pairs:
    """Scored (sentence, source) pairs: one row of features per pair, and its label."""

    names: list[str]
    """The weight names, in feature column order."""
    features: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    penalised: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    """The sentence has a number the source lacks (the score is multiplied by the penalty)."""
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """What support_scores gave with the shipped weights."""
    kinds: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def extend(self, other: Pairs) -> Pairs:
        if not len(other):
            return self
        if not len(self):
            return other
        return Pairs(
            self.names,
            np.vstack([self.features, other.features]),
            np.concatenate([self.penalised, other.penalised]),
            np.concatenate([self.labels, other.labels]),
            np.concatenate([self.scores, other.scores]),
            self.kinds + other.kinds,
        )


# --- the data -----------------------------------------------------------------------------------
def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def split_pairs(
    pairs: Sequence[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(fitting, held-out) halves of the judge pairs: whole papers, alternating in file order."""
    order = list(dict.fromkeys(p["abstract_title"] for p in pairs))
    held = set(order[1::2])
    return (
        [p for p in pairs if p["abstract_title"] not in held],
        [p for p in pairs if p["abstract_title"] in held],
    )


def sample_abstracts() -> dict[str, tuple[str, str]]:
    """``title_key(title)`` -> (title, abstract) of the sample collection, as ingested."""
    papers = read_paths(default_sample_paths()).papers
    return {title_key(p.title): (p.title, p.abstract) for p in papers}


# --- features, read through support_scores ------------------------------------------------------
def weight_names() -> list[str]:
    """The verifier's feature weights (module constants ``W_*``), in a fixed order."""
    names = sorted(n for n in vars(verify) if n.startswith("W_"))
    if not names or not hasattr(verify, "BIAS") or not hasattr(verify, "NUMBER_PENALTY"):
        raise ConfigError(
            "assistant.answer.verify has no W_* weights, BIAS or NUMBER_PENALTY any more; update "
            "evals/fit_verifier.py to the verifier's new score"
        )
    return names


def shipped_weights() -> Weights:
    """The weights assistant/answer/verify.py ships."""
    return Weights({n: float(getattr(verify, n)) for n in weight_names()}, float(verify.BIAS))


@contextlib.contextmanager
def _verifier_weights(weights: Weights) -> Iterator[None]:
    saved = shipped_weights()
    try:
        for name, value in weights.w.items():
            setattr(verify, name, value)
        verify.BIAS = weights.bias
        yield
    finally:
        for name, value in saved.w.items():
            setattr(verify, name, value)
        verify.BIAS = saved.bias


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _features(sentences: list[str], source: Source, embed: Any) -> tuple[np.ndarray, ...]:
    """(features [n, k], penalised [n], shipped scores [n]) of ``sentences`` against ``source``."""
    names = weight_names()
    zero = {n: 0.0 for n in names}

    def score(weights: Weights) -> np.ndarray:
        with _verifier_weights(weights):
            return verify.support_scores(sentences, [source], embed)[:, 0]

    penalised = score(Weights(zero, 0.0)) < 0.5 - 1e-6
    columns = []
    for name in names:
        probe = score(Weights(zero | {name: 1.0}, 0.0))
        probe = np.where(penalised, probe / verify.NUMBER_PENALTY, probe)
        columns.append(_logit(probe))
    return (
        np.stack(columns, axis=1),
        penalised,
        verify.support_scores(sentences, [source], embed)[:, 0],
    )


def _score(weights: Weights, pairs: Pairs) -> np.ndarray:
    p = 1.0 / (1.0 + np.exp(-weights.logits(pairs.features, pairs.names)))
    return np.where(pairs.penalised, p * verify.NUMBER_PENALTY, p)


def _check_rebuilt(pairs: Pairs) -> None:
    """The shipped weights must give back support_scores from the features."""
    if not len(pairs):
        return
    worst = float(np.max(np.abs(_score(shipped_weights(), pairs) - pairs.scores)))
    if worst > PROBE_TOLERANCE:
        raise ConfigError(
            f"the verifier's score is not sigmoid(sum W_i f_i + BIAS) [x NUMBER_PENALTY] of the "
            f"probed features (off by {worst:.4f}); update evals/fit_verifier.py to its new form"
        )


def judge_pair_features(
    pairs: Sequence[dict[str, Any]], abstracts: dict[str, tuple[str, str]], embed: Any
) -> Pairs:
    """Features of judge pairs; the sentences of one paper are scored together."""
    out = Pairs(weight_names())
    by_title: dict[str, list[dict[str, Any]]] = {}
    for row in pairs:
        by_title.setdefault(row["abstract_title"], []).append(row)
    for title, group in by_title.items():
        if title_key(title) not in abstracts:
            raise ConfigError(f"judge pair paper {title!r} is not in the sample collection")
        real_title, abstract = abstracts[title_key(title)]
        src = Source(paper_id="x", title=real_title, abstract=abstract, score=1.0, number=1)
        feats, penalised, scores = _features([r["sentence"] for r in group], src, embed)
        labels = np.array([bool(r["supported"]) for r in group])
        kinds = [str(r.get("kind", "")) for r in group]
        out = out.extend(Pairs(out.names, feats, penalised, labels, scores, kinds))
    _check_rebuilt(out)
    return out


def scifact_pair_features(embed: Any, *, limit: int | None = None, seed: int = 0) -> Pairs:
    """Features of SciFact pairs: supported claims against their gold abstract, and every
    claim against another claim's gold abstract (unsupported)."""
    rows = _read_jsonl(SCIFACT)[:limit]
    gold = [r["gold_ctx"][0] for r in rows]
    others = list(range(len(rows)))
    rng = random.Random(seed)
    while len(rows) > 1 and any(i == j for i, j in enumerate(others)):
        rng.shuffle(others)
    out = Pairs(weight_names())
    for i, row in enumerate(rows):
        cases = [(gold[others[i]], False, "scifact_random")] if len(rows) > 1 else []
        if row["answer"] == "true":
            cases.append((gold[i], True, "scifact_supported"))
        for ctx, label, kind in cases:
            src = Source(
                paper_id="s", title=ctx["title"], abstract=ctx["text"], score=1.0, number=1
            )
            feats, penalised, scores = _features([row["input"]], src, embed)
            out = out.extend(Pairs(out.names, feats, penalised, np.array([label]), scores, [kind]))
    _check_rebuilt(out)
    return out


# --- the fit ------------------------------------------------------------------------------------
def fit_logistic(
    x: np.ndarray, y: np.ndarray, weight: np.ndarray, *, l2: float = 1e-3, steps: int = 100
) -> tuple[np.ndarray, float]:
    """Weighted logistic regression by Newton's method: (coefficients, intercept)."""
    n, k = x.shape
    xb = np.hstack([x, np.ones((n, 1))])
    beta = np.zeros(k + 1)
    ridge = np.diag([l2] * k + [0.0]) * weight.sum()
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(xb @ beta)))
        grad = xb.T @ (weight * (p - y)) + ridge @ beta
        hess = (xb * (weight * p * (1 - p))[:, None]).T @ xb + ridge + 1e-9 * np.eye(k + 1)
        delta = np.linalg.solve(hess, grad)
        beta -= delta
        if np.max(np.abs(delta)) < 1e-8:
            break
    return beta[:k], float(beta[k])


def agreement(weights: Weights, pairs: Pairs, threshold: float) -> dict[str, Any]:
    """How often ``score >= threshold`` matches the labels, overall and per kind."""
    if not len(pairs):
        return {"n": 0, "agreement": math.nan, "by_kind": {}}
    right = (_score(weights, pairs) >= threshold) == pairs.labels
    by_kind: dict[str, list[int]] = {}
    for kind, ok in zip(pairs.kinds, right, strict=True):
        by_kind.setdefault(kind, [0, 0])
        by_kind[kind][0] += int(ok)
        by_kind[kind][1] += 1
    return {
        "n": len(pairs),
        "agreement": round(float(right.mean()), 4),
        "by_kind": {k: f"{a}/{b}" for k, (a, b) in sorted(by_kind.items())},
    }


@dataclass
class FitConfig:
    threshold: float = 0.5
    judge_weight: float = 5.0
    scifact: bool = True
    scifact_limit: int | None = None
    seed: int = 0


def fit_verifier(embed: Any, config: FitConfig) -> dict[str, Any]:
    """Fit on the fitting half (plus SciFact), measure on both halves; the report."""
    fit_rows, held_rows = split_pairs(_read_jsonl(JUDGE_PAIRS))
    abstracts = sample_abstracts()
    fit_pairs = judge_pair_features(fit_rows, abstracts, embed)
    held_pairs = judge_pair_features(held_rows, abstracts, embed)
    train = fit_pairs
    weight = np.full(len(fit_pairs), config.judge_weight)
    if config.scifact:
        sci = scifact_pair_features(embed, limit=config.scifact_limit, seed=config.seed)
        train = fit_pairs.extend(sci)
        weight = np.concatenate([weight, np.ones(len(sci))])
    free = ~train.penalised  # the number penalty decides the others whatever the weights
    coef, bias = fit_logistic(train.features[free], train.labels[free].astype(float), weight[free])
    fitted = Weights(dict(zip(train.names, map(float, coef), strict=True)), bias)
    shipped = shipped_weights()
    return {
        "fitted": {**fitted.w, "BIAS": fitted.bias},
        "shipped": {**shipped.w, "BIAS": shipped.bias},
        "number_penalty": float(verify.NUMBER_PENALTY),
        "threshold": config.threshold,
        "data": {
            "judge_pairs": f"evals/data/{JUDGE_PAIRS.name}",
            "fitting_papers": len({r["abstract_title"] for r in fit_rows}),
            "held_out_papers": len({r["abstract_title"] for r in held_rows}),
            "fitting_pairs": len(fit_pairs),
            "held_out_pairs": len(held_pairs),
            "scifact_pairs": len(train) - len(fit_pairs),
            "judge_weight": config.judge_weight,
            "decided_by_number_penalty": int((~free).sum()),
        },
        "agreement": {
            "fitted_on_fitting": agreement(fitted, fit_pairs, config.threshold),
            "fitted_on_held_out": agreement(fitted, held_pairs, config.threshold),
            "shipped_on_fitting": agreement(shipped, fit_pairs, config.threshold),
            "shipped_on_held_out": agreement(shipped, held_pairs, config.threshold),
        },
        "lines": fitted.lines(),
    }


def summary(report: dict[str, Any]) -> str:
    """The report for people."""
    a, d = report["agreement"], report["data"]
    lines = [
        f"fitted on {d['fitting_pairs']} judge pairs ({d['fitting_papers']} papers, weight "
        f"{d['judge_weight']:g}) + {d['scifact_pairs']} SciFact pairs; "
        f"{d['decided_by_number_penalty']} pairs left to the number penalty",
        "",
        "| weight | fitted | shipped |",
        "|---|---:|---:|",
    ]
    for name, value in report["fitted"].items():
        lines.append(f"| {name} | {value:.2f} | {report['shipped'][name]:.2f} |")
    lines += [
        "",
        f"agreement with the labels (score >= {report['threshold']}):",
        "",
        "| weights | fitting half | held-out half |",
        "|---|---:|---:|",
    ]
    for who in ("fitted", "shipped"):
        fit, held = a[f"{who}_on_fitting"], a[f"{who}_on_held_out"]
        lines.append(
            f"| {who} | {fit['agreement']:.2f} (n={fit['n']}) "
            f"| {held['agreement']:.2f} (n={held['n']}) |"
        )
    lines += ["", "held out, fitted weights, per kind: " + str(a["fitted_on_held_out"]["by_kind"])]
    lines += ["", "for assistant/answer/verify.py:", report["lines"]]
    return "\n".join(lines)
