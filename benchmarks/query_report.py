"""The query benchmark's report: model-step rows summarised, and the Markdown tables.

:func:`summarize_llm` turns the rows of one ``llm`` step into p50s and paired ratios;
:func:`markdown` renders a whole report (``query.json``) as ``query.md``. Figures that were
not measured show as :data:`benchmarks.common.NOT_RUN`.
"""

from __future__ import annotations

from typing import Any

from benchmarks.common import fmt, percentile

__all__ = ["summarize_llm", "markdown"]


def _p50(rows: list[dict[str, Any]], key: str) -> float | None:
    return percentile([r[key] for r in rows if r.get(key) is not None], 50)


def summarize_llm(res: dict[str, Any], target_s: float) -> dict[str, Any]:
    """Per-system p50s and the ours / baseline ratios over the questions both answered."""
    rows = res["rows"]
    keep = ("preset", "model", "n_threads", "load_s", "skipped_for_time")
    out: dict[str, Any] = {k: res[k] for k in keep}
    for name in ("ours", "baseline"):
        mine = [r for r in rows if r["system"] == name and r.get("ttft_s") is not None]
        out[name] = {"n": len(mine), "ttft_p50_s": _p50(mine, "ttft_s")}
        for key in ("prefill", "retrieval", "passages"):
            out[name][f"{key}_p50_s"] = _p50(mine, f"{key}_s")
        out[name]["prompt_tokens_p50"] = _p50(mine, "prompt_tokens")
        out[name]["gen_tok_s_p50"] = _p50(mine, "gen_tok_s")
    pairs: dict[int, dict[str, Any]] = {}
    for r in rows:
        if r.get("ttft_s") is not None:
            pairs.setdefault(r["i"], {})[r["system"]] = r
    both = [v for v in pairs.values() if len(v) == 2]
    out["paired_questions"] = len(both)
    out["ttft_ratio_paired_p50"] = percentile(
        [v["ours"]["ttft_s"] / v["baseline"]["ttft_s"] for v in both], 50
    )
    out["prompt_tokens_ratio_paired_p50"] = percentile(
        [v["ours"]["prompt_tokens"] / v["baseline"]["prompt_tokens"] for v in both], 50
    )
    out["target_ttft_s"] = target_s
    p50 = out["ours"]["ttft_p50_s"]
    out["meets_target"] = p50 is not None and p50 < target_s
    return out


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: the machine, retrieval latency, then time to first token."""
    lines = _header(report) + _retrieval(report)
    if report["llm"]:
        lines += _first_token(report)
    return "\n".join(lines) + "\n"


def _header(report: dict[str, Any]) -> list[str]:
    m, pk = report["machine"], report["machine"]["packages"]
    return [
        "# Query benchmark",
        "",
        f"{m['date']}, {m['cpu_count']} cores ({m['cpu_model']}), {fmt(m['ram_gb'])} GB RAM, "
        f"Python {m['python']}, chromadb {pk.get('chromadb')}, llama-index-core "
        f"{pk.get('llama-index-core')}, llama-cpp-python {pk.get('llama-cpp-python')}. Load "
        f"before: `{m['uptime_before']}`; after: `{m.get('uptime_after', '')}`. Other work "
        "shared the cores: compare the ratios (interleaved runs), not the absolute times.",
        "",
    ]


def _retrieval(report: dict[str, Any]) -> list[str]:
    c = report["config"]
    k = c["candidate_k"]
    lines = [
        f"## Retrieval latency ({c['questions']} questions x {c['rounds']} rounds, warm-up excluded)",
        "",
        f"Ours = `Assistant.retrieve(q)` (top_k={c['top_k']}): embed + dense top {k} + BM25 top "
        f"{k} + RRF + fold into papers + fetch their chunks. Baseline = llama-index "
        "`VectorStoreIndex.from_vector_store(ChromaVectorStore(col)).as_retriever("
        "similarity_top_k=5).retrieve(q)`: embed + dense top 5. Same collection, same embedder; "
        "ratio = ours / baseline.",
        "",
        "| collection | chunks | ours p50 ms | ours p95 ms | baseline p50 ms | baseline p95 ms "
        "| p50 ratio | p95 ratio | paired ratio p50 | index load s | BM25 build s | BM25 MB "
        "| peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["retrieval"]:
        o, b = r["ours"], r["baseline"]
        lines.append(
            f"| {r['collection']} | {r['chunks']} | {fmt(o['p50_ms'], '.1f')} "
            f"| {fmt(o['p95_ms'], '.1f')} | {fmt(b['p50_ms'], '.1f')} | {fmt(b['p95_ms'], '.1f')} "
            f"| {fmt(r['ratio_p50'], '.2f')} | {fmt(r['ratio_p95'], '.2f')} "
            f"| {fmt(r['paired_ratio_p50'], '.2f')} | {r['index_load_s']:.2f} "
            f"| {r['bm25_build_s']:.2f} | {fmt(r['bm25_rss_mb'], '.0f')} "
            f"| {fmt(r['peak_rss_mb'], '.0f')} |"
        )
    lines += [
        "",
        "Synthetic collections: the sample chunks (real vectors) plus generated papers "
        "(`benchmarks/synth.py`) whose vectors are random mixtures of real sample vectors plus "
        "noise, written with `PaperIndex.write_chunks`. Latency does not depend on how good the "
        "vectors are; retrieval quality on them means nothing. Index load = open the collection + "
        "the first vector query (Chroma loads the vector index then). BM25 MB = RSS growth while "
        "building BM25 (ours only). Peak RSS = the whole measuring process (embedder included). "
        "Paired ratio = p50 of ours / baseline per question (robust to drifting load).",
        "",
    ]
    for r in report["retrieval"]:
        parts = ", ".join(f"{k} {fmt(v, '.1f')} ms" for k, v in r["ours_parts_p50_ms"].items())
        lines.append(f"- {r['collection']}: ours' parts (p50, run alone): {parts}.")
    for b in report["builds"]:
        if "synthetic_chunks" in b:
            lines.append(
                f"- {b['collection']} built in {b['seconds']:.0f} s ({b['write_chunks_seconds']:.0f} s "
                f"of it in `write_chunks`, 1-min load {b['loadavg_1min_before']})"
                + (", by an earlier run with the same `--work`." if b.get("reused") else ".")
            )
    return lines


def _first_token(report: dict[str, Any]) -> list[str]:
    c = report["config"]
    target = f"{c['target_ttft_s']:.0f}"
    lines = [
        "",
        f"## Local model: time to first token (sample collection, answers capped at "
        f"{c['max_tokens']} tokens)",
        "",
        "Ours = `Assistant.stream(q)` (`answer.timings['first_token']`: retrieval, passage "
        "selection and prompt processing). Baseline = llama-index `as_query_engine(llm=..., "
        "similarity_top_k=5, streaming=True)`, clock from `query()` to the first streamed "
        "token. Each side has its own instance of the same GGUF. Prompt tokens: the model's "
        "tokenizer over the messages (+4 per message). Ratios: p50 of per-question ours / "
        f"baseline over the questions both ran. The target (ours' p50 under {target} s) is set "
        f"for the default preset, `{c['default_preset']}`. llama.cpp threads: "
        f"{c.get('n_threads') or 'all cores (the default)'}.",
        "",
        "| preset | ours TTFT p50 s (n) | baseline TTFT p50 s (n) | TTFT ratio | ours prompt tok "
        "| baseline prompt tok | prompt ratio | gen tok/s ours / baseline | load s | ours < "
        f"{target} s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["llm"]:
        o, b = r["ours"], r["baseline"]
        lines.append(
            f"| {r['preset']} | {fmt(o['ttft_p50_s'], '.2f')} ({o['n']}) | "
            f"{fmt(b['ttft_p50_s'], '.2f')} ({b['n']}) | {fmt(r['ttft_ratio_paired_p50'], '.2f')} "
            f"| {fmt(o['prompt_tokens_p50'], '.0f')} | {fmt(b['prompt_tokens_p50'], '.0f')} "
            f"| {fmt(r['prompt_tokens_ratio_paired_p50'], '.2f')} | {fmt(o['gen_tok_s_p50'], '.1f')} / "
            f"{fmt(b['gen_tok_s_p50'], '.1f')} | {r['load_s']:.1f} | "
            f"{'met' if r['meets_target'] else 'missed'} |"
        )
    lines.append("")
    for r in report["llm"]:
        o, b = r["ours"], r["baseline"]
        skipped = ", ".join(r["skipped_for_time"]) or "none"
        lines.append(
            f"- {r['preset']} (`{r['model']}`, n_threads={r['n_threads']}): ours' first token = "
            f"retrieval {fmt(o['retrieval_p50_s'], '.2f')} s + passage selection "
            f"{fmt(o['passages_p50_s'], '.2f')} s + prompt processing "
            f"{fmt(o['prefill_p50_s'], '.2f')} s (p50s); the baseline's prompt processing "
            f"{fmt(b['prefill_p50_s'], '.2f')} s. Not run, over the time budget: {skipped}."
        )
    return lines
