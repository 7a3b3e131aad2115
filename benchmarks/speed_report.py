"""The speed benchmark's report: the block rows summarised per build, and the Markdown tables.

:func:`summarize` turns ``speed.json``'s blocks into p50/p90s, ratios to the first build
(of the p50s, and paired: the median over questions of the ratio on the same question) and
the follow-up figures; :func:`markdown` renders the whole report as ``speed.md``. Figures that
were not measured show as :data:`benchmarks.common.NOT_RUN`.
"""

from __future__ import annotations

from typing import Any

from benchmarks.common import fmt, percentile, ratio

__all__ = ["summarize", "markdown"]

TARGET_TTFT_S = 3.0
TARGET_RATIO = 0.6
TARGET_FOLLOW_UP_S = 1.5
KINDS = ("fact", "multi", "unanswerable")
MODES = ("first", "reused", "cold", "condensed")


def _s(value: float | None) -> str:
    """Seconds, or the not-run marker without a unit."""
    return fmt(value) if value is None else f"{value:.2f} s"


def _pct(rows: list[dict[str, Any]], key: str, q: float = 50) -> float | None:
    return percentile([r[key] for r in rows if r.get(key) is not None], q)


def _figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    called = [r for r in rows if r.get("ttft_s") is not None]
    out: dict[str, Any] = {"n": len(rows), "model_called": len(called)}
    for key in ("ttft_s", "answer_s"):
        out[f"{key}_p50"] = _pct(rows, key)
        out[f"{key}_p90"] = _pct(rows, key, 90)
    for key in ("prompt_tokens", "prompt_eval_tokens", "cached_tokens", "prompt_tok_s",
                "gen_tok_s"):  # fmt: skip
        out[f"{key}_p50"] = _pct(called, key)
    out["by_kind_ttft_p50"] = {
        kind: _pct([r for r in called if r.get("type") == kind], "ttft_s") for kind in KINDS
    }
    return out


def _paired(a: list[dict[str, Any]], b: list[dict[str, Any]], key: str) -> float | None:
    """Median over the questions both answered of a / b (same question, same key)."""
    by_id = {r["id"]: r for r in b if r.get(key)}
    return percentile(
        [r[key] / by_id[r["id"]][key] for r in a if r.get(key) and r["id"] in by_id], 50
    )


def _rows(report: dict[str, Any], build: str, system: str) -> list[dict[str, Any]]:
    return [
        r for blk in report["blocks"] if blk["build"] == build for r in blk["rows"]
        if r["system"] == system
    ]  # fmt: skip


def _follow_ups(report: dict[str, Any], chosen: str) -> dict[str, Any]:
    rows = [r for blk in report["blocks"] if blk["build"] == chosen for r in blk["follow_ups"]]
    out: dict[str, Any] = {}
    for mode in MODES:
        mine = [r for r in rows if r["mode"] == mode]
        out[mode] = _figures(mine)
        if mode == "reused":
            out[mode]["continued"] = sum(1 for r in mine if r.get("continued"))
    by_mode = {m: {r["pair"]: r for r in rows if r["mode"] == m} for m in MODES}
    for other in ("cold", "condensed"):
        pairs = [
            (r, by_mode[other][pid]) for pid, r in by_mode["reused"].items()
            if pid in by_mode[other] and r.get("ttft_s") and by_mode[other][pid].get("ttft_s")
        ]  # fmt: skip
        out[f"reused_over_{other}_paired_p50"] = percentile(
            [a["ttft_s"] / b["ttft_s"] for a, b in pairs], 50
        )
    p50 = out["reused"]["ttft_s_p50"]
    out["meets_target"] = p50 is not None and p50 <= TARGET_FOLLOW_UP_S
    return out


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """Per-build figures, ratios to the first build, stock llama-index, and follow-ups."""
    names, chosen = report["config"]["builds"], report["config"]["chosen"]
    first = names[0]
    per = {n: _figures(_rows(report, n, "ours")) for n in names}
    ratios = {}
    for n in names[1:]:
        ratios[n] = {
            "ttft_p50": ratio(per[n]["ttft_s_p50"], per[first]["ttft_s_p50"]),
            "ttft_paired": _paired(
                _rows(report, n, "ours"), _rows(report, first, "ours"), "ttft_s"
            ),
            "answer_p50": ratio(per[n]["answer_s_p50"], per[first]["answer_s_p50"]),
            "answer_paired": _paired(
                _rows(report, n, "ours"), _rows(report, first, "ours"), "answer_s"
            ),
        }
    stock = _rows(report, chosen, "baseline")
    ours = _rows(report, chosen, "ours")
    c = per.get(chosen, {})
    loads = [blk["loadavg_1min_before"] for blk in report["blocks"]]
    return {
        "per_build": per,
        "ratios_to_first": ratios,
        "stock": _figures(stock)
        | {
            "ours_over_stock_ttft_paired": _paired(ours, stock, "ttft_s"),
            "ours_over_stock_answer_paired": _paired(ours, stock, "answer_s"),
        },
        "follow_ups": _follow_ups(report, chosen),
        "loadavg_range": [min(loads), max(loads)] if loads else None,
        "targets": {
            "ttft_p50_s": TARGET_TTFT_S,
            "ratio_to_first": TARGET_RATIO,
            "follow_up_ttft_p50_s": TARGET_FOLLOW_UP_S,
            "chosen_meets_ttft": (c.get("ttft_s_p50") or 1e9) <= TARGET_TTFT_S,
            "chosen_meets_ratio": (ratios.get(chosen, {}).get("ttft_p50") or 1e9) <= TARGET_RATIO,
        },
    }


# --- Markdown ----------------------------------------------------------------------------------
def _header(report: dict[str, Any]) -> list[str]:
    cfg, cpu, m, s = report["config"], report["cpu"], report["machine"], report["summary"]
    blocks = {(b["build"]): b for b in report["blocks"]}
    any_block = next(iter(blocks.values()), {})
    lines = [
        f"# Speed: {cfg['preset']} preset, {len(cfg['questions'])} questions, "
        f"builds {', '.join(cfg['builds'])}",
        "",
        f"CPU: **{cpu['model']}**, {cpu['cores']} cores, flags {' '.join(cpu['flags'])}. "
        f"{fmt(any_block.get('n_threads'))} llama.cpp threads, answers up to "
        f"{fmt(any_block.get('max_tokens'))} tokens. {m['date']}, git {m['git']}. "
        f"1-minute load average before each child {fmt(s['loadavg_range'])}; "
        f"{m.get('uptime_before', '')} / {m.get('uptime_after', 'running')}.",
        "",
        "Compiled features per build: "
        + "; ".join(
            f"{n}: {' '.join(f for f in b['features'] if f not in ('LLAMAFILE', 'OPENMP'))}"
            f" (use_extra_bufts={b['use_extra_bufts']})"
            for n, b in blocks.items()
        )
        + ".",
        "",
    ]
    return lines


def _main_table(report: dict[str, Any]) -> list[str]:
    s, cfg = report["summary"], report["config"]
    lines = [
        "| system | questions (model called) | first token p50 | p90 | answer p50 | p90 "
        "| prompt tokens p50 | prompt tok/s | gen tok/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    systems = [(f"ours, {n} build", s["per_build"][n]) for n in cfg["builds"]]
    systems.append((f"stock llama-index, {cfg['chosen']} build", s["stock"]))
    for label, f in systems:
        lines.append(
            f"| {label} | {f['n']} ({f['model_called']}) | {_s(f['ttft_s_p50'])} "
            f"| {_s(f['ttft_s_p90'])} | {_s(f['answer_s_p50'])} "
            f"| {_s(f['answer_s_p90'])} | {fmt(f['prompt_tokens_p50'], '.0f')} "
            f"| {fmt(f['prompt_tok_s_p50'], '.1f')} | {fmt(f['gen_tok_s_p50'], '.1f')} |"
        )
    first = cfg["builds"][0]
    for n, r in s["ratios_to_first"].items():
        lines.append(
            f"| {n} / {first} (p50s; paired) | | {fmt(r['ttft_p50'], '.2f')}; "
            f"{fmt(r['ttft_paired'], '.2f')} | | {fmt(r['answer_p50'], '.2f')}; "
            f"{fmt(r['answer_paired'], '.2f')} | | | | |"
        )
    st = s["stock"]
    lines.append(
        f"| ours / stock, {cfg['chosen']} (paired) | | "
        f"{fmt(st['ours_over_stock_ttft_paired'], '.2f')} | | "
        f"{fmt(st['ours_over_stock_answer_paired'], '.2f')} | | | | |"
    )
    lines += ["", "First token p50 by kind (questions where the model was called):", ""]
    lines += ["| system | " + " | ".join(KINDS) + " |", "|---|" + "---:|" * len(KINDS)]
    for label, f in systems:
        cells = " | ".join(_s(f["by_kind_ttft_p50"][k]) for k in KINDS)
        lines.append(f"| {label} | {cells} |")
    return lines


def _follow_up_table(report: dict[str, Any]) -> list[str]:
    fu = report["summary"]["follow_ups"]
    if not fu["first"]["n"]:
        return []
    what = {
        "first": "the pair's first question",
        "reused": "follow-up right after (the cache holds the chat)",
        "cold": "the same follow-up after another prompt took the cache",
        "condensed": "follow-up condensed by the model, own prompt (before reuse)",
    }
    lines = [
        "",
        f"## Follow-ups ({fu['first']['n']} pairs, {report['config']['chosen']} build)",
        "",
        "| mode | n | first token p50 | p90 | prompt tokens p50 | evaluated p50 | from cache p50 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for mode in MODES:
        f = fu[mode]
        lines.append(
            f"| {mode}: {what[mode]} | {f['n']} | {_s(f['ttft_s_p50'])} "
            f"| {_s(f['ttft_s_p90'])} | {fmt(f['prompt_tokens_p50'], '.0f')} "
            f"| {fmt(f['prompt_eval_tokens_p50'], '.0f')} | {fmt(f['cached_tokens_p50'], '.0f')} |"
        )
    lines += [
        "",
        f"Reused / cold, paired p50: {fmt(fu['reused_over_cold_paired_p50'], '.2f')}; reused / "
        f"condensed: {fmt(fu['reused_over_condensed_paired_p50'], '.2f')}. Follow-ups that "
        f"continued the chat: {fu['reused'].get('continued', 0)} of {fu['reused']['n']}.",
    ]
    return lines


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: the machine, the builds and stock llama-index, follow-ups."""
    if "summary" not in report:
        return "# Speed\n\nnot run\n"
    t = report["summary"]["targets"]
    lines = _header(report) + _main_table(report) + _follow_up_table(report)
    lines += [
        "",
        f"Targets: first token p50 <= {t['ttft_p50_s']} s on the chosen build "
        f"({'met' if t['chosen_meets_ttft'] else 'missed'}), <= {t['ratio_to_first']}x the "
        f"first build ({'met' if t['chosen_meets_ratio'] else 'missed'}); follow-up p50 <= "
        f"{t['follow_up_ttft_p50_s']} s "
        f"({'met' if report['summary']['follow_ups']['meets_target'] else 'missed'}).",
    ]
    return "\n".join(lines) + "\n"
