#!/usr/bin/env python3
"""Ingest benchmark: our incremental ingest against a plain llama-index + Chroma pipeline.

    python benchmarks/ingest.py                                  # sample, 2000, 20000 papers
    python benchmarks/ingest.py --sizes sample,500 --out /tmp/r  # a quick run
    python benchmarks/ingest.py --sizes sample,2000,20000 --baseline-warm-max 2000

For each collection (``sample`` = the bundled sample pages; a number = that many synthetic
arXiv-style papers from ``benchmarks/synth.py``), four steps run interleaved, each in a fresh
child process so that its peak memory is its own:

- ours cold: ``assistant.ingest.pipeline.ingest`` into a new temporary index;
- baseline cold: ``VectorStoreIndex.from_documents`` (one Document per paper, title + abstract,
  llama-index's default node parser) into a ChromaVectorStore in a new temporary Chroma folder;
- ours warm: the same files again into the same index (embeds nothing);
- baseline warm: ``from_documents`` again into the same store (it has no incremental mode, so
  it embeds and adds everything again).

Both use the same embedder object (all-MiniLM-L6-v2, CPU), loaded before the clock starts.
Which system goes first alternates between collections, so drift in machine load does not
always favour one. Writes ``ingest.json`` and ``ingest.md`` to ``--out`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.common import (  # noqa: E402
    RESULTS_DIR,
    StepFailed,
    exit_on_sigterm,
    fmt,
    log,
    machine_info,
    parse_sizes,
    peak_rss_mb,
    ratio,
    run_child,
    write_report,
)

SYSTEMS = ("ours", "baseline")


# --- one measured step (runs in a child process) ----------------------------------------------
def _baseline(inputs: list[str], store: Path, embedder: Any) -> tuple[int, int, int]:
    """Plain llama-index: one Document per paper into a ChromaVectorStore.

    Returns (papers, chunks embedded, chunks in the store)."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from assistant.ingest.readers import default_sample_paths, read_paths

    papers = read_paths(inputs or default_sample_paths()).papers
    documents = [
        Document(
            id_=p.paper_id,
            text=f"{p.title}\n{p.abstract}",
            metadata={"paper_id": p.paper_id},
            # Embed exactly title + abstract, as ours does.
            excluded_embed_metadata_keys=["paper_id"],
        )
        for p in papers
    ]
    client = chromadb.PersistentClient(
        path=str(store), settings=ChromaSettings(anonymized_telemetry=False)
    )
    collection = client.get_or_create_collection("baseline")
    before = collection.count()
    VectorStoreIndex.from_documents(
        documents,
        storage_context=StorageContext.from_defaults(
            vector_store=ChromaVectorStore(chroma_collection=collection)
        ),
        embed_model=embedder.as_llama_index(),
    )
    after = collection.count()
    return len(papers), after - before, after


def run_step(system: str, inputs: list[str], store: Path, result: Path) -> None:
    """Time one ingest of ``inputs`` into ``store`` by ``system``; write a JSON result."""
    started = time.perf_counter()
    # Heavy imports and the model load happen before the clock, the same for both systems.
    import chromadb  # noqa: F401
    import llama_index.core  # noqa: F401
    import llama_index.vector_stores.chroma  # noqa: F401
    import torch

    from assistant.index.embeddings import load_embedder
    from assistant.settings import Settings

    settings = Settings(index_dir=store)
    embedder = load_embedder(settings)
    load_seconds = time.perf_counter() - started

    t0, c0 = time.perf_counter(), time.process_time()
    if system == "ours":
        from assistant.ingest.pipeline import ingest

        report = ingest(inputs or None, settings, embedder=embedder)
        papers, embedded, chunks = report.papers_total, report.chunks_written, report.chunks_total
    else:
        papers, embedded, chunks = _baseline(inputs, store, embedder)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    out = {
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "load_seconds": round(load_seconds, 3),
        "n_papers": papers,
        "chunks_embedded": embedded,
        "chunks": chunks,
        "vm_hwm_mb": peak_rss_mb(),
        "torch_threads": torch.get_num_threads(),
    }
    result.write_text(json.dumps(out))


# --- the driver ---------------------------------------------------------------------------------
def measure(
    collection: str,
    n_papers: int,
    step: str,
    system: str,
    inputs: list[Path],
    store: Path,
    work: Path,
    timeout: float,
) -> dict[str, Any]:
    """Run one step in a fresh process (:func:`benchmarks.common.run_child`); one table row."""
    args = ["--step", system, "--store", str(store), *map(str, inputs)]
    child = run_child(
        Path(__file__).resolve(), args, work, name=system, timeout=timeout, capture_log=True
    )
    if child["n_papers"] != n_papers:
        raise StepFailed(f"step {system} saw {child['n_papers']} papers, expected {n_papers}")
    seconds = child.pop("seconds")
    return {
        "collection": collection,
        "n_papers": child.pop("n_papers"),
        "step": step,
        "system": system,
        "seconds": seconds,
        "papers_per_s": round(n_papers / seconds, 2) if seconds else 0.0,
        "peak_rss_mb": child.pop("peak_rss_mb"),
        "chunks": child.pop("chunks"),
        **child,
    }


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ours / baseline per collection and step (None where a side was not run)."""
    out = []
    keys = []
    for r in rows:
        if (r["collection"], r["step"]) not in keys:
            keys.append((r["collection"], r["step"]))
    for coll, step in keys:
        by = {r["system"]: r for r in rows if r["collection"] == coll and r["step"] == step}
        ours, base = by.get("ours"), by.get("baseline")
        item: dict[str, Any] = {
            "collection": coll,
            "n_papers": (ours or base or {}).get("n_papers"),
            "step": step,
            "ours_seconds": ours and ours["seconds"],
            "baseline_seconds": base and base["seconds"],
            "ours_peak_rss_mb": ours and ours["peak_rss_mb"],
            "baseline_peak_rss_mb": base and base["peak_rss_mb"],
            "ours_chunks": ours and ours["chunks"],
            "baseline_chunks": base and base["chunks"],
            "ours_cpu_seconds": ours and ours["cpu_seconds"],
            "baseline_cpu_seconds": base and base["cpu_seconds"],
            "time_ratio": None,
            "cpu_ratio": None,
            "memory_ratio": None,
        }
        if ours and base:
            item["time_ratio"] = ratio(ours["seconds"], base["seconds"])
            item["cpu_ratio"] = ratio(ours["cpu_seconds"], base["cpu_seconds"])
            item["memory_ratio"] = ratio(ours["peak_rss_mb"], base["peak_rss_mb"])
        out.append(item)
    return out


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Ingest benchmark",
        "",
        f"{m['date']}, {m['cpu_count']} cores ({m['cpu_model']}), {m['ram_gb']} GB RAM, "
        f"Python {m['python']}, torch {m['packages'].get('torch')}, chromadb "
        f"{m['packages'].get('chromadb')}, llama-index-core {m['packages'].get('llama-index-core')}. "
        "Other work shared the cores: compare the ratios, not the absolute times.",
        "",
        "Seconds: wall time of the ingest call only (model loaded and libraries imported before "
        "the clock). CPU: CPU seconds of that call, all threads (less sensitive to other load "
        "on the machine than wall time). Peak RSS: `ru_maxrss` of the step's own child process "
        "(`os.wait4`), which includes the embedding model. Ratio = ours / baseline (below 1: "
        "ours is faster or smaller).",
        "",
        "| collection | papers | step | ours s | baseline s | time ratio | CPU ratio | ours MB "
        "| baseline MB | memory ratio | chunks ours / baseline |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["ratios"]:
        lines.append(
            f"| {r['collection']} | {r['n_papers']} | {r['step']} | {fmt(r['ours_seconds'], '.1f')} "
            f"| {fmt(r['baseline_seconds'], '.1f')} | {fmt(r['time_ratio'], '.3f')} "
            f"| {fmt(r['cpu_ratio'], '.3f')} "
            f"| {fmt(r['ours_peak_rss_mb'], '.0f')} | {fmt(r['baseline_peak_rss_mb'], '.0f')} "
            f"| {fmt(r['memory_ratio'], '.2f')} "
            f"| {fmt(r['ours_chunks'])} / {fmt(r['baseline_chunks'])} |"
        )
    skipped = report["config"].get("skipped") or []
    if skipped:
        lines += ["", "Not run (time budget): " + "; ".join(skipped) + "."]
    lines += [
        "",
        "Warm = the same papers again into the same store. Ours embeds nothing (it compares "
        "content hashes); `from_documents` has no incremental mode, so the baseline embeds "
        "everything again and its store holds every chunk twice.",
        "",
    ]
    return "\n".join(lines)


def _write(report: dict[str, Any], out: Path) -> None:
    report["ratios"] = ratios(report["rows"])
    write_report(report, out, "ingest", markdown)


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    from assistant.ingest.readers import default_sample_paths, read_paths
    from benchmarks.synth import write_jsonl

    report: dict[str, Any] = {
        "machine": machine_info(),
        "config": {
            "sizes": args.sizes,
            "seed": args.seed,
            "baseline_warm_max": args.baseline_warm_max,
            "embed_model": "all-MiniLM-L6-v2 (sentence-transformers, CPU)",
            "peak_memory": "ru_maxrss of each step's child process, from os.wait4",
            "skipped": [],
        },
        "rows": [],
    }
    for n, size in enumerate(args.sizes):
        with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
            work = Path(tmp)
            if size == "sample":
                name, inputs = "sample", []
                n_papers = len(read_paths(default_sample_paths()).papers)
            else:
                name = f"synth-{size}"
                inputs = [write_jsonl(work / f"{name}.jsonl", int(size), args.seed)]
                n_papers = int(size)
            order = SYSTEMS if n % 2 == 0 else SYSTEMS[::-1]
            stores = {s: work / f"store-{s}" for s in SYSTEMS}
            for step in ("cold", "warm"):
                for system in order:
                    if (
                        system == "baseline"
                        and step == "warm"
                        and args.baseline_warm_max is not None
                        and n_papers > args.baseline_warm_max
                    ):
                        report["config"]["skipped"].append(f"baseline warm on {name}")
                        continue
                    log(f"{name} ({n_papers} papers): {system} {step} ...")
                    row = measure(
                        name,
                        n_papers,
                        step,
                        system,
                        inputs,
                        stores[system],
                        work,
                        args.step_timeout,
                    )
                    report["rows"].append(row)
                    log(
                        f"  {row['seconds']:.1f} s, {row['papers_per_s']:.1f} papers/s, "
                        f"peak {row['peak_rss_mb']:.0f} MB, {row['chunks']} chunks "
                        f"({row['chunks_embedded']} embedded)"
                    )
                    _write(report, args.out)
    report["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    _write(report, args.out)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=parse_sizes("sample,2000,20000"),
        help="comma-separated collections: 'sample' and/or numbers of synthetic papers",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="folder for the results")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic papers")
    parser.add_argument(
        "--baseline-warm-max",
        type=int,
        default=None,
        help="skip the baseline's warm step on collections larger than this (time budget)",
    )
    parser.add_argument(
        "--step-timeout", type=float, default=3 * 3600, help="seconds one step may take"
    )
    # Internal: one measured step, run by the driver in a child process.
    parser.add_argument("--step", choices=SYSTEMS, help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("inputs", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step:
        run_step(args.step, args.inputs, args.store, args.result)
        return 0
    exit_on_sigterm()
    report = run_benchmark(args)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
