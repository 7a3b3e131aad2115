#!/usr/bin/env python3
"""Query benchmark: retrieval latency and time to first token, ours against plain llama-index.

    python benchmarks/query.py                       # sample, 20000, 100000 chunks; small, base
    python benchmarks/query.py --sizes sample,2000 --presets tiny --out /tmp/q   # a quick run

1. Retrieval, per collection: ``Assistant.retrieve(q)`` (embed the question, dense top
   ``candidate_k`` + BM25 top ``candidate_k``, RRF fusion, fold chunks into papers) against a
   plain llama-index dense-only retriever over the SAME Chroma collection
   (``VectorStoreIndex.from_vector_store(...).as_retriever(similarity_top_k=5)``), with the
   same embedder object. The two run interleaved per question, alternating which goes first.
   ``sample`` is the bundled sample collection ingested normally (real embeddings). A number
   N is a collection of N chunks: the sample chunks plus synthetic papers from
   ``benchmarks/synth.py`` written with ``PaperIndex.write_chunks`` and synthetic vectors
   (random mixtures of the real sample-chunk vectors plus noise, L2-normalised): embedding
   100k chunks for real takes hours on 2 cores, and search latency does not depend on how
   good the vectors are.
2. Local model, per preset, on the sample collection: time to first token through
   ``Assistant.stream`` (``answer.timings["first_token"]``) against
   ``index.as_query_engine(llm=as_llama_index_llm(model), similarity_top_k=5, streaming=True)``,
   each with its own instance of the same GGUF (so each keeps its own prompt cache), plus
   prompt tokens and generation speed.

Every measurement runs in a child process (``--step``; the steps are in
``benchmarks/query_steps.py``), so its peak RSS is its own. Writes ``query.json`` and
``query.md`` (``benchmarks/query_report.py``) to ``--out`` and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.common import (  # noqa: E402
    RESULTS_DIR,
    exit_on_sigterm,
    in_work_dir,
    log,
    machine_info,
    parse_choices,
    parse_sizes,
    run_child,
    uptime,
    write_report,
)
from benchmarks.query_report import markdown, summarize_llm  # noqa: E402
from benchmarks.query_steps import NOISE_SIGMA, STEPS  # noqa: E402

QA_FILE = REPO_ROOT / "evals" / "data" / "sample_qa.jsonl"


def _spread(items: list[Any], n: int) -> list[Any]:
    """``n`` items spread evenly over ``items`` (all of them when there are fewer)."""
    if n >= len(items):
        return list(items)
    return [items[int(i * len(items) / n)] for i in range(n)]


def load_questions(n: int, *, answerable: bool = False) -> list[str]:
    """``n`` questions spread over evals/data/sample_qa.jsonl (fact, multi, unanswerable)."""
    rows = [json.loads(line) for line in QA_FILE.read_text().splitlines() if line.strip()]
    if answerable:
        rows = [r for r in rows if r["type"] != "unanswerable"]
    return [r["question"] for r in _spread(rows, n)]


def _defaults() -> dict[str, Any]:
    """The settings the measured children run with (they get no ASSISTANT_ variables)."""
    from assistant.settings import Settings

    fields = Settings.model_fields
    return {k: fields[k].default for k in ("top_k", "candidate_k", "llm_preset")}


def _config(
    args: argparse.Namespace, questions: list[str], llm_questions: list[str]
) -> dict[str, Any]:
    d = _defaults()
    return {
        "sizes": args.sizes,
        "presets": args.presets,
        "questions": len(questions),
        "rounds": args.rounds,
        "llm_questions": len(llm_questions),
        "baseline_llm_questions": min(args.baseline_llm_questions, len(llm_questions)),
        "max_tokens": args.max_tokens,
        "llm_budget_s": args.llm_budget,
        "n_threads": args.n_threads,
        "target_ttft_s": args.target_ttft,
        "seed": args.seed,
        "top_k": d["top_k"],
        "candidate_k": d["candidate_k"],
        "default_preset": d["llm_preset"],
        "ours": f"Assistant.retrieve: top_k={d['top_k']} papers from dense top "
        f"{d['candidate_k']} + BM25 top {d['candidate_k']} (RRF)",
        "baseline": "llama-index VectorStoreIndex.from_vector_store(...).as_retriever(similarity_top_k=5)",
        "synthetic_vectors": "mixtures of 3 real sample-chunk vectors (Dirichlet weights) plus "
        f"N(0, {NOISE_SIGMA}) noise per dimension, L2-normalised; latency does not depend on "
        "embedding quality",
    }


def _step(step: str, params: dict[str, Any], work: Path) -> dict[str, Any]:
    """One step of benchmarks/query_steps.py in a fresh child process of this script."""
    args = ["--step", step, "--params", json.dumps(params)]
    return run_child(Path(__file__).resolve(), args, work, name=step)


def _built(index_dir: Path, spec: dict[str, Any]) -> dict[str, Any] | None:
    """The build record of an index built earlier with the same spec (``--work``), or None."""
    marker = index_dir / "bench-built.json"
    if not marker.is_file():
        return None
    stored = json.loads(marker.read_text())
    return stored["build"] if stored.get("spec") == spec else None


def _collection(
    size: str, sample_dir: Path, args: argparse.Namespace, work: Path
) -> tuple[str, Path, dict[str, Any] | None]:
    """(name, index folder, build record or None) of one collection, built if needed."""
    if size == "sample":
        return "sample", sample_dir, None
    name, index_dir = f"synth-{size}", work / f"synth-{size}"
    spec = {"n_chunks": int(size), "seed": args.seed, "sample": str(sample_dir)}
    build = _built(index_dir, spec)
    if build is not None:
        return name, index_dir, build | {"reused": True}
    log(f"building {name} with write_chunks ...")
    params = {"index_dir": str(index_dir), "sample_dir": str(sample_dir)}
    build = {"collection": name} | _step("build-synthetic", params | spec, work)
    (index_dir / "bench-built.json").write_text(json.dumps({"spec": spec, "build": build}))
    return name, index_dir, build


def _first_token(
    preset: str, sample_dir: Path, questions: list[str], args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    log(f"time to first token, preset {preset} ...")
    params = {"index_dir": str(sample_dir), "preset": preset, "questions": questions}
    params |= {"baseline_questions": args.baseline_llm_questions, "max_tokens": args.max_tokens}
    params["model_cache_dir"] = str(args.model_cache_dir) if args.model_cache_dir else None
    params |= {"n_threads": args.n_threads, "budget_s": args.llm_budget}
    res = _step("llm", params, work)
    summary = summarize_llm(res, args.target_ttft)
    return summary | {"peak_rss_mb": res["peak_rss_mb"], "rows": res["rows"]}


def run_benchmark(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    started = time.perf_counter()
    questions = load_questions(args.questions)
    llm_questions = load_questions(args.llm_questions, answerable=True)
    report: dict[str, Any] = {
        "machine": machine_info(),
        "config": _config(args, questions, llm_questions),
        "builds": [],
        "retrieval": [],
        "llm": [],
    }
    sample_dir = args.sample_index or work / "sample"
    if args.sample_index is None:
        log("building the sample collection (real embeddings) ...")
        build = _step("build-sample", {"index_dir": str(sample_dir)}, work)
        report["builds"].append({"collection": "sample"} | build)
    for size in args.sizes:
        name, index_dir, build = _collection(size, sample_dir, args, work)
        if build is not None:
            report["builds"].append(build)
        log(f"retrieval latency on {name} ...")
        params = {"index_dir": str(index_dir), "questions": questions, "rounds": args.rounds}
        row = {"collection": name} | _step("retrieval", params, work)
        report["retrieval"].append(row)
        log(f"  ours p50 {row['ours']['p50_ms']} ms, baseline p50 {row['baseline']['p50_ms']} ms")
        write_report(report, args.out, "query", markdown)
    for preset in args.presets:
        report["llm"].append(_first_token(preset, sample_dir, llm_questions, args, work))
        write_report(report, args.out, "query", markdown)
    report["machine"]["uptime_after"] = uptime()
    report["machine"]["run_seconds"] = round(time.perf_counter() - started, 1)
    write_report(report, args.out, "query", markdown)
    return report


def _parser() -> argparse.ArgumentParser:
    from assistant.llm.presets import preset_names

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=["sample", "20000", "100000"],
        help="collections: 'sample' and/or numbers of chunks",
    )
    parser.add_argument(
        "--presets",
        type=parse_choices(preset_names()),
        default=["small", "base"],
        help="local model presets ('' for none)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="folder for the results")
    parser.add_argument("--questions", type=int, default=50, help="retrieval questions")
    parser.add_argument("--rounds", type=int, default=2, help="passes over the retrieval questions")
    parser.add_argument("--llm-questions", type=int, default=8, help="questions per preset (ours)")
    parser.add_argument(
        "--baseline-llm-questions",
        type=int,
        default=3,
        help="how many of those the baseline also answers (its prompts are long)",
    )
    parser.add_argument("--max-tokens", type=int, default=32, help="answer length cap, both sides")
    parser.add_argument(
        "--llm-budget",
        type=float,
        default=240.0,
        help="seconds per preset for the paired questions, and again for ours alone; questions "
        "after that are skipped (the first of each always runs)",
    )
    parser.add_argument(
        "--n-threads", type=int, help="llama.cpp threads (default: the assistant's, all cores)"
    )
    parser.add_argument("--target-ttft", type=float, default=10.0, help="seconds")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic collections")
    parser.add_argument("--work", type=Path, help="keep the built indexes here and reuse them")
    parser.add_argument("--sample-index", type=Path, help="an existing sample-collection index")
    parser.add_argument("--model-cache-dir", type=Path, help="where assembled preset models live")
    parser.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--params", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.max_tokens < 16:
        parser.error("--max-tokens must be at least 16 (the assistant's settings ask for it)")
    if args.step:
        result = STEPS[args.step](json.loads(args.params))
        args.result.write_text(json.dumps(result))
        return 0
    exit_on_sigterm()
    report = in_work_dir(args.work, "query-bench-", lambda work: run_benchmark(args, work))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
