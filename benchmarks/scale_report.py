"""The Markdown tables of ``benchmarks/scale.py`` (``scale.md``), from its JSON report."""

from __future__ import annotations

from typing import Any

ARXIV = 2_700_000


def _f(x: Any, fmt: str = ".1f") -> str:
    return "n/a" if x is None else format(x, fmt)


def _ratio(a: Any, b: Any) -> str:
    return f"{a / b:.2f}" if a is not None and b else "n/a"


def _machine(r: dict) -> list[str]:
    m = r.get("machine", {})
    return [
        "# Scale benchmark",
        "",
        f"{m.get('date')}, {m.get('cpu_count')} cores ({m.get('cpu_model')}), {m.get('ram_gb')} GB "
        f"RAM, git {m.get('git')}. Load before: `{m.get('uptime_before')}`. The machine was "
        "shared with other engineers' builds and tests: compare the ratios of steps run side by "
        "side, not the absolute times.",
        "",
    ]


def _query(r: dict) -> list[str]:
    rows = r.get("query") or []
    if not rows:
        return []
    b = r.get("build", {}).get("big", {})
    out = [
        f"## Questions at {b.get('chunks', '?')} chunks (hybrid retrieval, `Assistant.retrieve`)",
        "",
        "Each row is a fresh process. First question = open the index and answer one question "
        "(the embedder is loaded before the clock; today's code builds BM25 then). Latency over "
        "the sample questions after that. RSS includes the embedder and libraries (~0.6 GB).",
        "",
        "| backend | code | first question s | p50 ms | p95 ms | RSS after 1st question MB "
        "| peak RSS MB | embed / dense / BM25 p50 ms |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for x in rows:
        parts = " / ".join(_f(v) for v in x["parts_p50_ms"].values())
        out.append(
            f"| {x['backend']} | {x['code']} | {_f(x['first_question_s'], '.2f')} | "
            f"{_f(x['p50_ms'])} | {_f(x['p95_ms'])} | {_f(x['rss_mb']['after_first_question'], '.0f')} "
            f"| {_f(x['peak_rss_mb'], '.0f')} | {parts} |"
        )
    out += ["", "Ratios ours / today (same backend):", ""]
    for backend in ("embedded", "server"):
        pair = {x["code"]: x for x in rows if x["backend"] == backend}
        if {"ours", "today"} <= pair.keys():
            o, t = pair["ours"], pair["today"]
            out.append(
                f"- {backend}: first question {_ratio(o['first_question_s'], t['first_question_s'])}, "
                f"p50 {_ratio(o['p50_ms'], t['p50_ms'])}, p95 {_ratio(o['p95_ms'], t['p95_ms'])}, "
                f"RSS after the first question "
                f"{_ratio(o['rss_mb']['after_first_question'], t['rss_mb']['after_first_question'])}, "
                f"peak RSS {_ratio(o['peak_rss_mb'], t['peak_rss_mb'])}."
            )
    return out + [""]


def _build_and_lexical(r: dict) -> list[str]:
    b = r.get("build", {}).get("big")
    lx = r.get("lexical")
    out = ["## The lexical index at ingest", ""]
    if b:
        out.append(
            f"- The {b['chunks']}-chunk collection was written in "
            f"{_f(b.get('write_chunks_seconds'), '.0f')} s of `write_chunks` "
            f"({_f(b['chunks'] / b['write_chunks_seconds'], '.0f')} chunks/s into embedded "
            f"Chroma); Chroma on disk: {_f(b['disk_mb']['chroma'], '.0f')} MB."
        )
    if lx:
        fc, rb, inc = lx["from_chroma"], lx["rebuild_from_store"], lx["incremental"]
        ref = inc.get("lexical_refresh") or {}
        d = lx["disk_mb"]
        out += [
            f"- From scratch over {fc['chunks']} chunks (every chunk read from Chroma, as the "
            f"first ingest after an upgrade does): {_f(fc['seconds'])} s, of which the BM25 "
            f"build and save {_f(fc['build_seconds'])} s; RSS growth "
            f"{_f(fc['rss_growth_mb'], '.0f')} MB.",
            f"- Rebuilt from the token store (no Chroma reads): {_f(rb['seconds'])} s; RSS "
            f"growth {_f(rb['rss_growth_mb'], '.0f')} MB; peak RSS of that process "
            f"{_f(lx.get('peak_rss_mb'), '.0f')} MB (embedder included).",
            f"- Incremental ingest of {inc['papers']} new or changed papers into it: {_f(inc['seconds'])} s "
            f"in all, of which keeping the lexical index in step {_f(ref.get('seconds'))} s.",
            f"- On disk: lexical index {_f(d['lexical_total'], '.0f')} MB, of which the token "
            f"store {_f(d['token_store'], '.0f')} MB.",
        ]
    return out + [""]


def _onnx(r: dict) -> list[str]:
    o = r.get("onnx")
    if not o:
        return []
    q = o["quality"]
    names = list(q)
    out = [
        "## Embedders: torch MiniLM against the int8 ONNX MiniLM",
        "",
        "| | " + " | ".join(names) + " | difference |",
        "|---|" + "---:|" * (len(names) + 1),
    ]
    for ds in ("sample", "scifact"):
        for metric in ("hit@1", "ndcg@10"):
            vals = [q[n][ds][metric] for n in names]
            out.append(
                f"| {ds} {metric} (n={q[names[0]][ds]['n']}) | "
                + " | ".join(f"{v:.3f}" for v in vals)
                + f" | {vals[-1] - vals[0]:+.3f} |"
            )
    ing = [q[n]["ingest_sample"] for n in names]
    out.append(
        "| ingest sample, papers/s | "
        + " | ".join(f"{i['papers'] / i['seconds']:.1f}" for i in ing)
        + f" | x{(ing[-1]['papers'] / ing[-1]['seconds']) / (ing[0]['papers'] / ing[0]['seconds']):.2f} |"
    )
    out.append(
        "| peak RSS of that process MB | "
        + " | ".join(f"{q[n]['peak_rss_mb']:.0f}" for n in names)
        + " | |"
    )
    t = o.get("throughput")
    if t:
        out += [
            "",
            f"Embedding throughput, the same {t['texts']} sample abstracts, {t['rounds']} interleaved "
            f"rounds: torch {t['texts_per_s']['torch']} texts/s, ONNX {t['texts_per_s']['onnx']} "
            f"texts/s (x{t['ratio_onnx_over_torch']}); cosine between their vectors: min "
            f"{t['cosine_torch_onnx']['min']}, mean {t['cosine_torch_onnx']['mean']}.",
        ]
    return out + [""]


def _ray(r: dict) -> list[str]:
    x = r.get("ray")
    if not x:
        return []
    s, y = x["single"], x["ray"]
    return [
        f"## Ray ingest (sample collection into a `chroma run` server, {x['workers']} actors)",
        "",
        "| | papers | chunks | ingest s | papers/s | process wall s |",
        "|---|---:|---:|---:|---:|---:|",
        f"| single process | {s['papers']} | {s['chunks']} | {s['ingest_s']} | {s['papers_per_s']} | {s['wall_s']} |",
        f"| `--ray` (local) | {y['papers']} | {y['chunks']} | {y['ingest_s']} | {y['papers_per_s']} | {y['wall_s']} |",
        "",
        f"Ratio ray / single (ingest s): {x['ratio_ray_over_single_s']}.",
        "",
    ]


def markdown(report: dict, pct: Any = None) -> str:
    lines = _machine(report) + _query(report) + _build_and_lexical(report)
    lines += _onnx(report) + _ray(report)
    return "\n".join(lines) + "\n"
