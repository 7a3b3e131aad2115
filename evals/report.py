"""The files a run leaves in its out dir, and the comparison of two runs.

- ``report.json``: everything (settings, models, data versions, per-question records,
  aggregates per system, judge agreement, timings). Undefined scores (``nan``) are written
  as ``null``, so the file is strict JSON.
- ``report.md``: the tables a person reads (metrics x systems), the judge's agreement with
  hand labels, and the worst cases.
- ``metrics.png``, ``latency.png``: bars per metric and system; per-question latency.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from assistant.errors import InputError

from . import metrics as M
from .cases import TYPES
from .records import Record, SystemRecord

__all__ = [
    "aggregate",
    "json_safe",
    "write_report",
    "render_markdown",
    "plot_charts",
    "load_report",
    "compare_reports",
    "summary",
]

logger = logging.getLogger(__name__)

TITLES = {"sample": "Sample collection questions", "scifact": "SciFact claims as yes/no questions"}
NOTES = [
    "Retrieval: each system's top 10 for the question (assistant: `retrieve`, hybrid with "
    "its relevance cut-off, so it may return fewer; baseline: dense top-10 chunks), papers "
    "matched to `gold_titles` by normalised title; unanswerable questions have no gold.",
    "Citation recall/precision (ALCE) and faithfulness are judged on answered questions "
    "only (a declined answer shows no claim), over the sentences that make a claim "
    "(assistant: its verifier's claims; baseline: every sentence with content words that "
    "is not a refusal). Premises are title + abstract (baseline: the cited source chunk).",
    "key_fact_recall: share of key facts found in the answer text (normalised substring); "
    "a declined answerable question scores 0. verdict_agrees: the answer opens with the "
    "yes/no/mixed verdict of the label (a declined or verdict-less answer disagrees). "
    "evidence_is_finding / _is_aim_or_background: of the sentences an answered question "
    "quotes or cites as evidence, the share whose hand-labelled role "
    "(evals/data/sentence_roles.jsonl) is a result or conclusion / an aim or background. "
    "no_unrelated_cited: a multi-paper or comparison answer cites no paper outside the gold "
    "set. quote_adds_fact: of the answers that append a quote of the abstract after the "
    "model's text, the share where the quote holds a key fact the text lacks. Latency: wall "
    "time of one answer.",
]
LOWER_IS_BETTER = {"false_decline_rate", "evidence_is_aim_or_background"}
RETRIEVAL_METRICS = ("hit@1", "hit@5", "hit@10", "mrr", "ndcg@10")
METRICS = (
    *RETRIEVAL_METRICS,
    *("key_fact_recall", "evidence_recall", "quote_adds_fact", "gold_cited", "all_gold_cited"),
    *("no_unrelated_cited", "states_verdict", "verdict_agrees"),
    *("evidence_is_finding", "evidence_is_aim_or_background"),
    *("citation_recall", "citation_precision", "faithfulness"),
)


def aggregate(records: Sequence[Record], systems: Sequence[str]) -> dict:
    """Per system: macro averages of the per-case scores (undefined ones left out and
    counted in ``n_scored``), abstention rates and latency summaries; the same per question
    type (``by_type``), and per half when both halves ran (``by_split``)."""
    out: dict[str, Any] = {}
    for system in systems:
        rows = [r for r in records if system in r.systems]
        out[system] = _aggregate_rows(rows, system)
        out[system]["by_type"] = _by_type(rows, system)
        splits = sorted({r.case.split for r in rows})
        if len(splits) > 1:  # both halves ran: each one's own table (validation: reported)
            out[system]["by_split"] = {
                s: _by_type([r for r in rows if r.case.split == s], system) for s in splits
            }
    return out


def _by_type(rows: Sequence[Record], system: str) -> dict[str, Any]:
    types = [t for t in TYPES if any(r.case.type == t for r in rows)]
    return {t: _aggregate_rows([r for r in rows if r.case.type == t], system) for t in types}


def _latency(ok: Sequence[SystemRecord]) -> dict[str, Any]:
    stages = sorted({k for r in ok for k in r.timings})
    first = [r.timings["first_token"] for r in ok if "first_token" in r.timings]
    return {
        "total": dict(M.latency_summary([r.latency_s for r in ok])),
        "first_token": dict(M.latency_summary(first)),
        "stages_mean": {k: M.mean([r.timings[k] for r in ok if k in r.timings]) for k in stages},
    }


def _aggregate_rows(rows: Sequence[Record], system: str) -> dict[str, Any]:
    ok = [r for r in rows if not r.systems[system].error]
    results = [r.systems[system] for r in ok]
    means, counts = {}, {}
    for name in METRICS:
        values = [res.scores.get(name, M.NAN) for res in results]
        counts[name] = sum(1 for v in values if v is not None and not math.isnan(v))
        if counts[name]:
            means[name] = M.mean([v for v in values if v is not None], skip_nan=True)
    abst = M.abstention_scores([res.answerable for res in results], [r.case.answerable for r in ok])
    for rate, n in (
        ("correct_decline_rate", "n_unanswerable"),
        ("false_decline_rate", "n_answerable"),
    ):
        if abst[n]:  # type: ignore[literal-required]
            means[rate], counts[rate] = abst[rate], abst[n]  # type: ignore[literal-required]
    out = {
        "n": len(rows),
        "n_errors": len(rows) - len(ok),
        "metrics": means,
        "n_scored": counts,
        "latency": _latency(results),
    }
    tokens = [res.prompt_tokens for res in results if res.prompt_tokens]
    if tokens:  # what the model read beyond its cached system prompt (assistant only)
        out["prompt_tokens"] = dict(M.latency_summary(tokens))
        out["quoted_answers"] = sum(1 for res in results if res.quoted)
    return out


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by ``None`` (tuples become lists)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The one-line summary the CLI prints last: aggregates and judge agreement."""
    agreement = report.get("judge_agreement") or {}
    return json_safe(
        {
            "out": report.get("out_dir"),
            "aggregates": report.get("aggregates", {}),
            "judge_agreement": {
                k: v for k, v in agreement.items() if k not in ("records", "by_kind")
            },
        }
    )


def write_report(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write report.json, report.md and the charts into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    safe = json_safe(report)
    paths = {"json": out_dir / "report.json", "markdown": out_dir / "report.md"}
    paths["json"].write_text(
        json.dumps(safe, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    for chart in plot_charts(safe, out_dir):
        paths[chart.stem] = chart
    paths["markdown"].write_text(render_markdown(safe, charts=paths), encoding="utf-8")
    return paths


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _metric_rows(agg: dict[str, Any], systems: list[str]) -> list[str]:
    names = list(dict.fromkeys(n for s in systems for n in agg[s]["metrics"]))
    rows = [
        "| metric | " + " | ".join(systems) + " | scored |",
        "|---|" + "---:|" * len(systems) + "---:|",
    ]
    for name in names:
        label = f"{name} (lower is better)" if name in LOWER_IS_BETTER else name
        vals = [_fmt(agg[s]["metrics"].get(name)) for s in systems]
        scored = "/".join(str(agg[s]["n_scored"].get(name, "")) for s in systems)
        rows.append(f"| {label} | " + " | ".join(vals) + f" | {scored} |")
    for key in ("total", "first_token"):
        if all(key in agg[s].get("latency", {}) for s in systems):
            for stat in ("mean", "p50", "p95"):
                vals = [_fmt(agg[s]["latency"][key].get(stat), 2) for s in systems]
                rows.append(f"| latency {key} {stat} (s) | " + " | ".join(vals) + " | |")
    stages = sorted({k for s in systems for k in agg[s].get("latency", {}).get("stages_mean", {})})
    for stage in stages:
        vals = [_fmt(agg[s]["latency"]["stages_mean"].get(stage), 2) for s in systems]
        rows.append(f"| stage {stage} mean (s) | " + " | ".join(vals) + " | |")
    return rows


BY_TYPE_METRICS = (
    "key_fact_recall",
    "evidence_recall",
    "quote_adds_fact",
    "verdict_agrees",
    "states_verdict",
    "evidence_is_finding",
    "evidence_is_aim_or_background",
    "gold_cited",
    "all_gold_cited",
    "no_unrelated_cited",
    "citation_recall",
    "citation_precision",
    "faithfulness",
    "false_decline_rate",
    "correct_decline_rate",
    "hit@1",
)


def _by_split_rows(agg: dict[str, Any], system: str) -> list[str]:
    """The per-type table again for each half of the sample questions (calibration: the
    thresholds were tuned on it; validation: never tuned on)."""
    lines: list[str] = []
    for split, by_type in (agg.get("by_split") or {}).items():
        lines += _by_type_rows({"by_type": by_type}, f"{system}, {split} split")
    return lines


def _by_type_rows(agg: dict[str, Any], system: str) -> list[str]:
    """One table per system: the main metrics per question type."""
    by_type = agg.get("by_type") or {}
    if not by_type:
        return []
    types = list(by_type)
    lines = [
        f"By question type ({system}; n = "
        + ", ".join(f"{t} {by_type[t]['n']}" for t in types)
        + "):",
        "",
        "| metric | " + " | ".join(types) + " |",
        "|---|" + "---:|" * len(types),
    ]
    for name in BY_TYPE_METRICS:
        vals = [by_type[t]["metrics"].get(name) for t in types]
        if all(v is None or (isinstance(v, float) and not math.isfinite(v)) for v in vals):
            continue
        lines.append(f"| {name} | " + " | ".join(_fmt(v) for v in vals) + " |")
    for key in ("first_token", "total"):
        vals = [by_type[t]["latency"].get(key, {}).get("p50") for t in types]
        lines.append(f"| latency {key} p50 (s) | " + " | ".join(_fmt(v, 2) for v in vals) + " |")
    if any("prompt_tokens" in by_type[t] for t in types):
        vals = [by_type[t].get("prompt_tokens", {}).get("p50") for t in types]
        lines.append("| prompt tokens p50 | " + " | ".join(_fmt(v, 0) for v in vals) + " |")
        vals = [by_type[t].get("quoted_answers") for t in types]
        lines.append("| quoted answers | " + " | ".join(_fmt(v) for v in vals) + " |")
    return [*lines, ""]


def _excerpt(text: str, n: int = 160) -> str:
    text = " ".join((text or "").split()).replace("|", "\\|")
    return text if len(text) <= n else text[: n - 1] + "…"


def _worst(records: Sequence[Record], system: str, n: int = 5) -> list[str]:
    """The answers a reader should look at: lowest key-fact recall, wrong verdicts,
    unanswerable questions answered, errors."""
    rows = [r for r in records if system in r.systems]
    ok = [r for r in rows if not r.systems[system].error]
    lines: list[str] = []

    def kfr(r: Record) -> float:
        v = r.systems[system].scores.get("key_fact_recall")
        return v if v is not None and not math.isnan(v) else 1.0

    worst = sorted([r for r in ok if r.case.key_facts and r.case.answerable], key=kfr)[:n]
    if worst:
        lines += [
            f"Lowest key-fact recall ({system}):",
            "",
            "| id | type | key facts | answer |",
            "|---|---|---:|---|",
        ]
        for r in worst:
            lines.append(
                f"| {r.case.id} | {r.case.type} | {_fmt(kfr(r), 2)} | "
                f"{_excerpt(r.systems[system].answer)} |"
            )
        lines.append("")
    wrong = [r for r in ok if r.case.verdict and r.systems[system].verdict != r.case.verdict]
    if wrong:
        lines += [
            f"Wrong or missing verdicts ({system}, {len(wrong)}; first {min(n, len(wrong))}):",
            "",
            "| id | label | stated | answer |",
            "|---|---|---|---|",
        ]
        for r in wrong[:n]:
            res = r.systems[system]
            lines.append(
                f"| {r.case.id} | {r.case.verdict} | {res.verdict or '–'} | {_excerpt(res.answer)} |"
            )
        lines.append("")
    answered = [r.case.id for r in ok if not r.case.answerable and r.systems[system].answerable]
    if answered:
        lines += [f"Unanswerable questions answered anyway ({system}): {', '.join(answered)}", ""]
    errors = [f"{r.case.id} ({r.systems[system].error})" for r in rows if r.systems[system].error]
    if errors:
        lines += [f"Errors ({system}): {'; '.join(errors)}", ""]
    return lines


def render_markdown(report: dict[str, Any], charts: dict[str, Path] | None = None) -> str:
    """The readable summary of a (JSON-safe) report."""
    models = report.get("models", {})
    lines = [
        "# Evaluation report",
        "",
        f"Created {report.get('created')}; took {_fmt(report.get('timings', {}).get('total_s'), 0)} s.",
        "",
        f"- assistant: {report.get('systems', {}).get('assistant')}; model `{models.get('assistant')}`",
        f"- baseline: {report.get('systems', {}).get('baseline') or 'not run (--no-baseline)'}",
        f"- judge: `{models.get('judge')}` ({report.get('judge', {}).get('kind')}); "
        f"embedder `{models.get('embedder')}`",
        "",
        "| data | file | sha256 | used |",
        "|---|---|---|---:|",
    ]
    for name, meta in report.get("datasets", {}).items():
        lines.append(
            f"| {name} | {meta['file']} | `{meta['sha256'][:12]}` | {meta['n_used']} of {meta['n_total']} |"
        )
    lines.append("")
    for name, agg in report.get("aggregates", {}).items():
        systems = list(agg)
        n = agg[systems[0]]["n"] if systems else 0
        lines += [f"## {TITLES.get(name, name)} ({n})", "", *_metric_rows(agg, systems), ""]
        for system in systems:
            lines += _by_type_rows(agg[system], system)
            lines += _by_split_rows(agg[system], system)

    lines += [*(f"- {note}" for note in NOTES), ""]
    lines += [
        "Rates are averaged over the cases where they are defined (column *scored*, per system); "
        "'–' means no case defines it.",
        "",
    ]
    judge = report.get("judge", {})
    agreement = report.get("judge_agreement")
    lines += ["## The judge", "", judge.get("note", ""), ""]
    stats = judge.get("stats", {})
    if judge.get("model"):
        lines += [
            f"Model `{judge.get('model')}`, max_tokens {judge.get('max_tokens')}, temperature 0: "
            f"{stats.get('calls')} calls, {stats.get('unparsed')} unparsable replies, "
            f"{_fmt(stats.get('seconds'), 0)} s.",
            "",
        ]
    if agreement:
        lines += [
            f"Agreement with {agreement['n']} hand-labelled pairs (evals/data/judge_pairs.jsonl; "
            "positive = supported):",
            "",
            "| accuracy | precision | recall | specificity | unparsable |",
            "|---:|---:|---:|---:|---:|",
            f"| {_fmt(agreement['accuracy'])} | {_fmt(agreement['precision'])} | "
            f"{_fmt(agreement['recall'])} | {_fmt(agreement['specificity'])} | {agreement['n_unparsed']} |",
            "",
            "By kind: "
            + ", ".join(f"{k} {_fmt(v, 2)}" for k, v in agreement.get("by_kind", {}).items()),
            "",
        ]
    lines += ["## Worst cases", ""]
    for name, recs in report.get("records", {}).items():
        typed = [Record.from_dict(r) for r in recs]
        for system in report.get("aggregates", {}).get(name, {}):
            lines += _worst(typed, system)
    if charts:
        lines += ["## Charts", ""]
        lines += [f"![{k}]({p.name})" for k, p in charts.items() if p.suffix == ".png"]
        lines.append("")
    return "\n".join(lines)


def plot_charts(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """metrics.png (rates per system) and latency.png (per-question latency per system)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths: list[Path] = []
    aggs = report.get("aggregates", {})
    if aggs:
        fig, axes = plt.subplots(1, len(aggs), figsize=(6 * len(aggs), 5), squeeze=False)
        for ax, (name, agg) in zip(axes[0], aggs.items()):
            systems = list(agg)
            names = list(dict.fromkeys(m for s in systems for m in agg[s]["metrics"]))
            height = 0.8 / max(1, len(systems))
            for i, system in enumerate(systems):
                vals = [agg[system]["metrics"].get(m) for m in names]
                ys = [j + i * height for j in range(len(names))]
                ax.barh(
                    ys, [v if v is not None else 0.0 for v in vals], height=height, label=system
                )
                for y, v in zip(ys, vals):
                    if v is None:
                        ax.text(0.01, y, "n/a", va="center", fontsize=7)
            ax.set_yticks([j + height * (len(systems) - 1) / 2 for j in range(len(names))])
            ax.set_yticklabels(names)
            ax.invert_yaxis()
            ax.set_xlim(0, 1)
            ax.set_title(TITLES.get(name, name))
            ax.legend(loc="lower right")
        fig.tight_layout()
        paths.append(out_dir / "metrics.png")
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    panels = {}
    for name, recs in report.get("records", {}).items():
        typed = [Record.from_dict(r) for r in recs]
        series = {
            system: [
                r.systems[system].latency_s
                for r in typed
                if system in r.systems and not r.systems[system].error
            ]
            for system in aggs.get(name, {})
        }
        if any(series.values()):
            panels[name] = series
    if panels:
        fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
        for ax, (name, series) in zip(axes[0], panels.items()):
            ax.hist(list(series.values()), bins=20, label=list(series))
            ax.set_xlabel("seconds per answer")
            ax.set_ylabel("cases")
            ax.set_title(TITLES.get(name, name))
            ax.legend()
        fig.tight_layout()
        paths.append(out_dir / "latency.png")
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    return paths


def load_report(path: Path) -> dict[str, Any]:
    """A report.json, given itself or the folder holding it."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read {path} ({exc}); give a report.json or its folder") from None
    except ValueError as exc:
        raise InputError(f"{path} is not a report.json ({exc})") from None


def compare_reports(a: dict[str, Any], b: dict[str, Any]) -> str:
    """A text table of every aggregate metric in A and B and the difference B - A."""
    lines = [
        f"A: {a.get('created')} {a.get('models', {}).get('assistant')}",
        f"B: {b.get('created')} {b.get('models', {}).get('assistant')}",
        "",
        f"{'dataset':<8} {'system':<10} {'metric':<22} {'A':>8} {'B':>8} {'B-A':>8}",
    ]
    aa, ab = a.get("aggregates", {}), b.get("aggregates", {})
    for name in dict.fromkeys([*aa, *ab]):
        for system in dict.fromkeys([*aa.get(name, {}), *ab.get(name, {})]):
            ma = aa.get(name, {}).get(system, {})
            mb = ab.get(name, {}).get(system, {})
            rows = {m: (ma.get("metrics", {}).get(m), mb.get("metrics", {}).get(m))
                    for m in dict.fromkeys([*ma.get("metrics", {}), *mb.get("metrics", {})])}  # fmt: skip
            for key in ("total", "first_token"):
                la = ma.get("latency", {}).get(key, {}).get("mean")
                lb = mb.get("latency", {}).get(key, {}).get("mean")
                if la is not None or lb is not None:
                    rows[f"latency_{key}_mean_s"] = (la, lb)
            for metric, (va, vb) in rows.items():
                diff = (
                    vb - va
                    if isinstance(va, (int, float)) and isinstance(vb, (int, float))
                    else None
                )
                sign = "+" if diff is not None and diff > 0 else ""
                lines.append(
                    f"{name:<8} {system:<10} {metric:<22} {_fmt(va):>8} {_fmt(vb):>8} "
                    f"{(sign + _fmt(diff)) if diff is not None else '–':>8}"
                )
    return "\n".join(lines)
