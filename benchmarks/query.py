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

Every measurement runs in a child process (``--step``), so its peak RSS is its own. Writes
``query.json`` and ``query.md`` to ``--out`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.common import child_env  # noqa: E402

QA_FILE = REPO_ROOT / "evals" / "data" / "sample_qa.jsonl"
WARMUP_QUESTION = "Which papers propose a new attention mechanism for transformers?"
BATCH_PAPERS = 2000
NOISE_SIGMA = 0.025  # per dimension; the noise vector's norm is about 0.5
PACKAGES = (
    "torch",
    "sentence-transformers",
    "chromadb",
    "llama-index-core",
    "llama-index-vector-stores-chroma",
    "bm25s",
    "llama_cpp_python",
    "numpy",
)


# --- small helpers -------------------------------------------------------------------------------
def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _pct(values: list[float], q: float, scale: float = 1.0) -> float | None:
    import numpy as np

    return round(float(np.percentile(values, q)) * scale, 2) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


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


# --- building the collections (child steps) ------------------------------------------------------
def build_sample(p: dict[str, Any]) -> dict[str, Any]:
    """Ingest the bundled sample collection normally (real embeddings)."""
    from assistant.embeddings import load_embedder
    from assistant.ingest import ingest
    from assistant.settings import Settings

    settings = Settings(index_dir=Path(p["index_dir"]))
    embedder = load_embedder(settings)
    t = time.perf_counter()
    report = ingest(None, settings, embedder=embedder)
    return {
        "seconds": round(time.perf_counter() - t, 2),
        "chunks": report.chunks_total,
        "papers": report.papers_total,
        "chunks_embedded": report.chunks_written,
    }


def synthetic_vectors(base: Any, n: int, rng: Any) -> Any:
    """``n`` unit vectors: Dirichlet-weighted mixtures of 3 rows of ``base`` plus noise."""
    import numpy as np

    idx = rng.integers(0, len(base), size=(n, 3))
    weights = rng.dirichlet(np.ones(3), size=n).astype(np.float32)
    vecs = np.einsum("nk,nkd->nd", weights, base[idx])
    vecs += rng.normal(0.0, NOISE_SIGMA, size=vecs.shape).astype(np.float32)
    return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def build_synthetic(p: dict[str, Any]) -> dict[str, Any]:
    """The sample chunks (real vectors) plus synthetic chunks up to ``n_chunks`` in all."""
    import numpy as np

    from assistant.index import PaperIndex, chunk_paper
    from assistant.settings import Settings
    from assistant.types import Paper
    from benchmarks.synth import synth_records

    t0 = time.perf_counter()
    sample = PaperIndex(Settings(index_dir=Path(p["sample_dir"]))).collection.get(
        include=["embeddings", "documents", "metadatas"]
    )
    base = np.asarray(sample["embeddings"], dtype=np.float32)
    n_sample, need = len(sample["ids"]), p["n_chunks"] - len(sample["ids"])
    if need <= 0:
        raise SystemExit(f"size {p['n_chunks']} must exceed the sample's {n_sample} chunks")
    settings = Settings(index_dir=Path(p["index_dir"]))
    index = PaperIndex(settings)
    index.drop()
    col = index.open(create_with_dim=base.shape[1])
    for s in range(0, n_sample, 1000):
        col.add(
            ids=sample["ids"][s : s + 1000],
            embeddings=base[s : s + 1000],
            documents=sample["documents"][s : s + 1000],
            metadatas=sample["metadatas"][s : s + 1000],
        )
    rng = np.random.default_rng(p["seed"])
    records = synth_records(need, p["seed"])
    written, papers, write_s = 0, 0, 0.0
    for start in range(0, len(records), BATCH_PAPERS):
        chunks = []
        for rec in records[start : start + BATCH_PAPERS]:
            paper = Paper(
                paper_id=f"synth-{rec['id']}",
                title=rec["title"],
                abstract=rec["abstract"],
                authors=rec["authors"],
                date=rec["update_date"],
                categories=rec["categories"],
            )
            cs = chunk_paper(paper, settings, [])
            if written + len(chunks) + len(cs) > need:
                break
            chunks += cs
            papers += 1
        if not chunks:
            break
        t = time.perf_counter()
        index.write_chunks(chunks, synthetic_vectors(base, len(chunks), rng))
        write_s += time.perf_counter() - t
        written += len(chunks)
        _log(f"  wrote {written + n_sample} / {p['n_chunks']} chunks")
    index.touch()
    if p.get("lexical", True):  # what ingest does at its end: the BM25 index questions use
        from assistant.lexical import LexicalIndex

        LexicalIndex.for_settings(settings).refresh(index)
    return {
        "seconds": round(time.perf_counter() - t0, 2),
        "write_chunks_seconds": round(write_s, 2),
        "chunks": col.count(),
        "papers": papers + len({m["paper_id"] for m in sample["metadatas"]}),
        "sample_chunks": n_sample,
        "synthetic_chunks": written,
    }


# --- retrieval latency (child step) --------------------------------------------------------------
def time_parts(ret: Any, embedder: Any, questions: list[str]) -> dict[str, list[float]]:
    """Seconds of each part of retrieval alone, per question: embed, dense top k, BM25 top k."""
    k = ret.settings.candidate_k
    parts: dict[str, list[float]] = {"embed": [], "dense": [], "bm25": []}
    for q in questions:
        t = time.perf_counter()
        vec = embedder.embed([q])[0]
        parts["embed"].append(time.perf_counter() - t)
        t = time.perf_counter()
        ret.dense(vec, k, None)
        parts["dense"].append(time.perf_counter() - t)
        t = time.perf_counter()
        ret.bm25(q, k, None)
        parts["bm25"].append(time.perf_counter() - t)
    return parts


def step_retrieval(p: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    from llama_index.core import VectorStoreIndex
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from assistant.assistant import Assistant
    from assistant.embeddings import load_embedder
    from assistant.index import PaperIndex
    from assistant.settings import Settings

    settings = Settings(index_dir=Path(p["index_dir"]))
    embedder = load_embedder(settings)
    embedder.embed(["warm up the embedder"])
    rss = {"after_model": _rss_mb()}
    t = time.perf_counter()
    index = PaperIndex(settings)
    col = index.open()
    chunks = col.count()
    open_s = time.perf_counter() - t
    t = time.perf_counter()  # Chroma loads the vector index on the first vector query
    probe = np.random.default_rng(0).normal(size=embedder.dim).astype(np.float32)
    col.query(query_embeddings=[(probe / np.linalg.norm(probe)).tolist()], n_results=1)
    first_vector_query_s = time.perf_counter() - t
    rss["after_index_load"] = _rss_mb()

    assistant = Assistant(settings, embed_model=embedder, index=index)
    t = time.perf_counter()
    assistant.retriever.ensure_ready()
    bm25_s = time.perf_counter() - t
    rss["after_bm25_build"] = _rss_mb()
    baseline = VectorStoreIndex.from_vector_store(
        ChromaVectorStore(chroma_collection=col), embed_model=embedder.as_llama_index()
    ).as_retriever(similarity_top_k=5)

    first: dict[str, float] = {}
    systems = {
        "ours": lambda q: len(assistant.retrieve(q)),
        "baseline": lambda q: len(baseline.retrieve(q)),
    }
    for name, fn in systems.items():
        t = time.perf_counter()
        fn(WARMUP_QUESTION)
        first[name] = round(time.perf_counter() - t, 4)

    times: dict[str, list[float]] = {"ours": [], "baseline": []}
    found: dict[str, list[int]] = {"ours": [], "baseline": []}
    paired: list[float] = []
    for r in range(p["rounds"]):
        for i, q in enumerate(p["questions"]):
            order = ("ours", "baseline") if (i + r) % 2 == 0 else ("baseline", "ours")
            took = {}
            for name in order:
                t = time.perf_counter()
                found[name].append(systems[name](q))
                took[name] = time.perf_counter() - t
                times[name].append(took[name])
            paired.append(took["ours"] / took["baseline"])

    # Where ours spends its time (not interleaved; p50 over the same questions).
    parts = time_parts(assistant.retriever, embedder, p["questions"][:10])
    rss["end"] = _rss_mb()
    out: dict[str, Any] = {
        "chunks": chunks,
        "questions": len(p["questions"]),
        "rounds": p["rounds"],
        "index_open_s": round(open_s, 4),
        "first_vector_query_s": round(first_vector_query_s, 4),
        "index_load_s": round(open_s + first_vector_query_s, 4),
        "bm25_build_s": round(bm25_s, 4),
        "first_query_s": first,
        "rss_mb": rss,
        "bm25_rss_mb": round(rss["after_bm25_build"] - rss["after_index_load"], 1),
        "ours_parts_p50_ms": {k: _pct(v, 50, 1000) for k, v in parts.items()},
        "paired_ratio_p50": _pct(paired, 50),
    }
    for name in systems:
        out[name] = {
            "p50_ms": _pct(times[name], 50, 1000),
            "p95_ms": _pct(times[name], 95, 1000),
            "mean_ms": round(1000 * sum(times[name]) / len(times[name]), 2),
            "n": len(times[name]),
            "results_p50": _pct(found[name], 50),
            "empty": sum(1 for x in found[name] if x == 0),
        }
    out["ratio_p50"] = _ratio(out["ours"]["p50_ms"], out["baseline"]["p50_ms"])
    out["ratio_p95"] = _ratio(out["ours"]["p95_ms"], out["baseline"]["p95_ms"])
    return out


# --- time to first token (child step) ------------------------------------------------------------
def _timed_model_class() -> type:
    from assistant.llm import ChatModel

    class TimedModel(ChatModel):
        """A chat model that records each call's messages and the time of every piece."""

        def __init__(self, inner: ChatModel) -> None:
            self.inner, self.calls = inner, []
            self.name, self.context_window = inner.name, inner.context_window

        def stream(self, messages: list[dict[str, str]], **kw: Any) -> Iterator[str]:
            call: dict[str, Any] = {"messages": messages, "start": time.perf_counter(), "times": []}
            call["text"] = ""
            self.calls.append(call)
            for piece in self.inner.stream(messages, **kw):
                call["times"].append(time.perf_counter())
                call["text"] += piece
                yield piece

        def count_tokens(self, text: str) -> int:
            return self.inner.count_tokens(text)

    return TimedModel


def _call_stats(model: Any, call: dict[str, Any]) -> dict[str, Any]:
    times = call["times"]
    gen_tokens = model.count_tokens(call["text"])
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return {
        "prompt_tokens": model.count_message_tokens(call["messages"]),
        "prefill_s": round(times[0] - call["start"], 3) if times else None,
        "gen_tokens": gen_tokens,
        "gen_tok_s": round((gen_tokens - 1) / span, 2) if span > 0 and gen_tokens > 1 else None,
    }


def step_llm(p: dict[str, Any]) -> dict[str, Any]:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.prompts.chat_prompts import TEXT_QA_SYSTEM_PROMPT
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from assistant.assistant import Assistant
    from assistant.embeddings import load_embedder
    from assistant.index import PaperIndex
    from assistant.llm import as_llama_index_llm, chat_model_from_settings
    from assistant.prompts import load_prompt
    from assistant.settings import Settings
    from assistant.types import Answer

    kw: dict[str, Any] = {"n_threads": p.get("n_threads")}
    if p.get("model_cache_dir"):
        kw["model_cache_dir"] = Path(p["model_cache_dir"])
    settings = Settings(
        index_dir=Path(p["index_dir"]), llm_preset=p["preset"], max_tokens=p["max_tokens"], **kw
    )
    embedder = load_embedder(settings)
    raw = {
        "ours": chat_model_from_settings(settings),
        "baseline": chat_model_from_settings(settings),
    }
    t = time.perf_counter()
    raw["ours"].llama  # noqa: B018 - load now, off the clock
    load_s = time.perf_counter() - t
    raw["baseline"].llama  # noqa: B018 - the same file again (page cache; mmap shared)
    timed = {k: _timed_model_class()(m) for k, m in raw.items()}
    index = PaperIndex(settings)
    assistant = Assistant(settings, llm=timed["ours"], embed_model=embedder, index=index)
    assistant.warm_up()
    engine = VectorStoreIndex.from_vector_store(
        ChromaVectorStore(chroma_collection=index.collection), embed_model=embedder.as_llama_index()
    ).as_query_engine(
        llm=as_llama_index_llm(timed["baseline"], max_tokens=p["max_tokens"]),
        similarity_top_k=5,
        streaming=True,
    )
    # Warm-up, off the clock: first retrieval of each, and each model's own system prompt in
    # its prompt cache (what a running service has after its first question).
    assistant.retrieve(WARMUP_QUESTION)
    engine.retriever.retrieve(WARMUP_QUESTION)
    hi = {"role": "user", "content": "Hi"}
    raw["ours"].complete(
        [{"role": "system", "content": load_prompt("system").render()}, hi], max_tokens=1
    )
    raw["baseline"].complete(
        [{"role": "system", "content": TEXT_QA_SYSTEM_PROMPT.content}, hi], max_tokens=1
    )

    def run_ours(q: str) -> dict[str, Any]:
        n_calls = len(timed["ours"].calls)
        answer = None
        for item in assistant.stream(q):
            if isinstance(item, Answer):
                answer = item
        if answer is None or len(timed["ours"].calls) == n_calls:
            return {"ttft_s": None, "note": "no paper retrieved: no model call"}
        row = {"ttft_s": answer.timings.get("first_token"), "sources": len(answer.sources)}
        row["retrieval_s"] = answer.timings.get("retrieval")
        row["passages_s"] = answer.timings.get("passages")
        return row | _call_stats(raw["ours"], timed["ours"].calls[-1])

    def run_baseline(q: str) -> dict[str, Any]:
        t = time.perf_counter()
        response = engine.query(q)
        for _ in response.response_gen:
            pass
        call = timed["baseline"].calls[-1]
        ttft = call["times"][0] - t if call["times"] else None
        row = {"ttft_s": round(ttft, 4) if ttft is not None else None}
        row["sources"] = len(response.source_nodes)
        return row | _call_stats(raw["baseline"], call)

    # Phase 1: the paired questions, interleaved (who goes first alternates); phase 2: ours
    # alone on the rest. A phase starts no new question after budget_s (its first always runs).
    n_pairs = min(p["baseline_questions"], len(p["questions"]))
    pairs = [(i, ("baseline", "ours") if i % 2 else ("ours", "baseline")) for i in range(n_pairs)]
    alone = [(i, ("ours",)) for i in range(n_pairs, len(p["questions"]))]
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    for phase in (pairs, alone):
        started = time.perf_counter()
        for k, (i, names) in enumerate(phase):
            if k and time.perf_counter() - started > p["budget_s"]:
                skipped += [f"{name} q{i}" for name in names]
                continue
            for name in names:
                q = p["questions"][i]
                row = {"question": q, "system": name, "i": i}
                row |= run_ours(q) if name == "ours" else run_baseline(q)
                rows.append(row)
                _log(
                    f"  {p['preset']} {name} q{i}: ttft {row['ttft_s']} s, {row.get('prompt_tokens')} tok"
                )
    return {
        "preset": p["preset"],
        "model": raw["ours"].name,
        "n_threads": raw["ours"].n_threads,
        "load_s": round(load_s, 2),
        "rows": rows,
        "skipped_for_time": skipped,
    }


def summarize_llm(res: dict[str, Any], target_s: float) -> dict[str, Any]:
    """Per-system p50s and the ours / baseline ratios over the questions both answered."""
    rows = res["rows"]
    keep = ("preset", "model", "n_threads", "load_s", "skipped_for_time")
    out: dict[str, Any] = {k: res[k] for k in keep}
    for name in ("ours", "baseline"):
        mine = [r for r in rows if r["system"] == name and r.get("ttft_s") is not None]
        out[name] = {
            "n": len(mine),
            "ttft_p50_s": _pct([r["ttft_s"] for r in mine], 50),
            "prefill_p50_s": _pct([r["prefill_s"] for r in mine], 50),
            "prompt_tokens_p50": _pct([r["prompt_tokens"] for r in mine], 50),
            "gen_tok_s_p50": _pct([r["gen_tok_s"] for r in mine if r["gen_tok_s"]], 50),
            "retrieval_p50_s": _pct([r["retrieval_s"] for r in mine if "retrieval_s" in r], 50),
            "passages_p50_s": _pct([r["passages_s"] for r in mine if "passages_s" in r], 50),
        }
    pairs = {}
    for r in rows:
        if r.get("ttft_s") is not None:
            pairs.setdefault(r["i"], {})[r["system"]] = r
    both = [v for v in pairs.values() if len(v) == 2]
    out["paired_questions"] = len(both)
    out["ttft_ratio_paired_p50"] = _pct(
        [v["ours"]["ttft_s"] / v["baseline"]["ttft_s"] for v in both], 50
    )
    out["prompt_tokens_ratio_paired_p50"] = _pct(
        [v["ours"]["prompt_tokens"] / v["baseline"]["prompt_tokens"] for v in both], 50
    )
    out["target_ttft_s"] = target_s
    p50 = out["ours"]["ttft_p50_s"]
    out["meets_target"] = p50 is not None and p50 < target_s
    return out


# --- the driver ----------------------------------------------------------------------------------
STEPS = {"build-sample": build_sample, "build-synthetic": build_synthetic}
STEPS |= {"retrieval": step_retrieval, "llm": step_llm}


def run_child(step: str, params: dict[str, Any], work: Path) -> dict[str, Any]:
    """Run one step in a fresh process; adds its peak RSS (``ru_maxrss`` from ``wait4``)."""
    result = work / f"{step}-{time.monotonic_ns()}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--step", step]
    cmd += ["--params", json.dumps(params), "--result", str(result)]
    load = os.getloadavg()[0]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=child_env())  # its log goes to our stderr
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0 or not result.is_file():
        raise RuntimeError(f"step {step} failed (exit {code}): {' '.join(cmd)[:300]}")
    out = json.loads(result.read_text())
    out["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)  # Linux: KiB
    out["process_s"] = round(time.perf_counter() - t, 2)
    out["loadavg_1min_before"] = round(load, 2)
    return out


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_info() -> dict[str, Any]:
    info = {"cpu_model": ""}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            info["cpu_model"] = line.split(":", 1)[1].strip()
            break
    mem = next(
        x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal:")
    )
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
    ).stdout.strip()
    return info | {
        "cpu_count": os.cpu_count(),
        "ram_gb": round(int(mem.split()[1]) / 1024**2, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
        "git": commit,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "uptime_before": _uptime(),
    }


def _default_preset() -> str:
    from assistant.settings import Settings

    return str(Settings.model_fields["llm_preset"].default)


def _fmt(v: Any, spec: str = "") -> str:
    return "–" if v is None else format(v, spec)


def markdown(report: dict[str, Any]) -> str:
    m, c = report["machine"], report["config"]
    lines = [
        "# Query benchmark",
        "",
        f"{m['date']}, {m['cpu_count']} cores ({m['cpu_model']}), {m['ram_gb']} GB RAM, Python "
        f"{m['python']}, chromadb {m['packages'].get('chromadb')}, llama-index-core "
        f"{m['packages'].get('llama-index-core')}, llama-cpp-python "
        f"{m['packages'].get('llama_cpp_python')}. Load before: `{m['uptime_before']}`; after: "
        f"`{m.get('uptime_after', '')}`. Other work shared the cores: compare the ratios "
        "(interleaved runs), not the absolute times.",
        "",
        f"## Retrieval latency ({c['questions']} questions x {c['rounds']} rounds, warm-up excluded)",
        "",
        "Ours = `Assistant.retrieve(q)`: embed + dense top 30 + BM25 top 30 + RRF + fold into "
        "papers + fetch their chunks. Baseline = llama-index `VectorStoreIndex.from_vector_store("
        "ChromaVectorStore(col)).as_retriever(similarity_top_k=5).retrieve(q)`: embed + dense top "
        "5. Same collection, same embedder; ratio = ours / baseline.",
        "",
        "| collection | chunks | ours p50 ms | ours p95 ms | baseline p50 ms | baseline p95 ms "
        "| p50 ratio | p95 ratio | paired ratio p50 | index load s | BM25 build s | BM25 MB "
        "| peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["retrieval"]:
        lines.append(
            f"| {r['collection']} | {r['chunks']} | {r['ours']['p50_ms']:.1f} | {r['ours']['p95_ms']:.1f} "
            f"| {r['baseline']['p50_ms']:.1f} | {r['baseline']['p95_ms']:.1f} | {_fmt(r['ratio_p50'], '.2f')} "
            f"| {_fmt(r['ratio_p95'], '.2f')} | {_fmt(r['paired_ratio_p50'], '.2f')} "
            f"| {r['index_load_s']:.2f} | {r['bm25_build_s']:.2f} "
            f"| {r['bm25_rss_mb']:.0f} | {r['peak_rss_mb']:.0f} |"
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
        parts = ", ".join(f"{k} {_fmt(v, '.1f')} ms" for k, v in r["ours_parts_p50_ms"].items())
        lines.append(f"- {r['collection']}: ours' parts (p50, run alone): {parts}.")
    for b in report["builds"]:
        if "synthetic_chunks" in b:
            lines.append(
                f"- {b['collection']} built in {b['seconds']:.0f} s ({b['write_chunks_seconds']:.0f} s "
                f"of it in `write_chunks`, 1-min load {b['loadavg_1min_before']})"
                + (", by an earlier run with the same `--work`." if b.get("reused") else ".")
            )
    if report["llm"]:
        lines += [
            "",
            f"## Local model: time to first token (sample collection, answers capped at "
            f"{c['max_tokens']} tokens)",
            "",
            "Ours = `Assistant.stream(q)` (`answer.timings['first_token']`: retrieval, passage "
            "selection and prompt processing). Baseline = llama-index `as_query_engine(llm=..., "
            "similarity_top_k=5, streaming=True)`, clock from `query()` to the first streamed "
            "token. Each side has its own instance of the same GGUF. Prompt tokens: the model's "
            "tokenizer over the messages (+4 per message). Ratios: p50 of per-question ours / "
            "baseline over the questions both ran. The target (ours' p50 under "
            f"{c['target_ttft_s']:.0f} s) is set for the default preset, `{_default_preset()}`. "
            f"llama.cpp threads: {c.get('n_threads') or 'all cores (the default)'}.",
            "",
            "| preset | ours TTFT p50 s (n) | baseline TTFT p50 s (n) | TTFT ratio | ours prompt tok "
            "| baseline prompt tok | prompt ratio | gen tok/s ours / baseline | load s | ours < "
            f"{c['target_ttft_s']:.0f} s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in report["llm"]:
            o, b = r["ours"], r["baseline"]
            lines.append(
                f"| {r['preset']} | {_fmt(o['ttft_p50_s'], '.2f')} ({o['n']}) | "
                f"{_fmt(b['ttft_p50_s'], '.2f')} ({b['n']}) | {_fmt(r['ttft_ratio_paired_p50'], '.2f')} "
                f"| {_fmt(o['prompt_tokens_p50'], '.0f')} | {_fmt(b['prompt_tokens_p50'], '.0f')} "
                f"| {_fmt(r['prompt_tokens_ratio_paired_p50'], '.2f')} | {_fmt(o['gen_tok_s_p50'], '.1f')} / "
                f"{_fmt(b['gen_tok_s_p50'], '.1f')} | {r['load_s']:.1f} | "
                f"{'met' if r['meets_target'] else 'missed'} |"
            )
        lines.append("")
        for r in report["llm"]:
            o, b = r["ours"], r["baseline"]
            skipped = ", ".join(r["skipped_for_time"]) or "none"
            lines.append(
                f"- {r['preset']} (`{r['model']}`, n_threads={r['n_threads']}): ours' first token = "
                f"retrieval {_fmt(o['retrieval_p50_s'], '.2f')} s + passage selection "
                f"{_fmt(o['passages_p50_s'], '.2f')} s + prompt processing "
                f"{_fmt(o['prefill_p50_s'], '.2f')} s (p50s); the baseline's prompt processing "
                f"{_fmt(b['prefill_p50_s'], '.2f')} s. Not run, over the time budget: {skipped}."
            )
    return "\n".join(lines) + "\n"


def _write(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "query.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "query.md").write_text(markdown(report))


def _built(index_dir: Path, spec: dict[str, Any]) -> dict[str, Any] | None:
    """The build record of an index built earlier with the same spec (``--work``), or None."""
    marker = index_dir / "bench-built.json"
    if not marker.is_file():
        return None
    stored = json.loads(marker.read_text())
    return stored["build"] if stored.get("spec") == spec else None


def run_benchmark(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    started = time.perf_counter()
    questions = load_questions(args.questions)
    llm_questions = load_questions(args.llm_questions, answerable=True)
    report: dict[str, Any] = {
        "machine": machine_info(),
        "config": {
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
            "ours": "Assistant.retrieve: top_k=4 papers from dense top 30 + BM25 top 30 (RRF)",
            "baseline": "llama-index VectorStoreIndex.from_vector_store(...).as_retriever(similarity_top_k=5)",
            "synthetic_vectors": "mixtures of 3 real sample-chunk vectors (Dirichlet weights) plus "
            f"N(0, {NOISE_SIGMA}) noise per dimension, L2-normalised; latency does not depend on "
            "embedding quality",
        },
        "builds": [],
        "retrieval": [],
        "llm": [],
    }
    sample_dir = args.sample_index or work / "sample"
    if args.sample_index is None:
        _log("building the sample collection (real embeddings) ...")
        report["builds"].append(
            {"collection": "sample"}
            | run_child("build-sample", {"index_dir": str(sample_dir)}, work)
        )
    for size in args.sizes:
        index_dir, name = sample_dir, "sample"
        if size != "sample":
            name, index_dir = f"synth-{size}", work / f"synth-{size}"
            spec = {"n_chunks": int(size), "seed": args.seed, "sample": str(sample_dir)}
            build = _built(index_dir, spec)
            if build is not None:
                build["reused"] = True
            else:
                _log(f"building {name} with write_chunks ...")
                params = {"index_dir": str(index_dir), "sample_dir": str(sample_dir)}
                params |= {"n_chunks": int(size), "seed": args.seed}
                build = {"collection": name} | run_child("build-synthetic", params, work)
                marker = {"spec": spec, "build": build}
                (index_dir / "bench-built.json").write_text(json.dumps(marker))
            report["builds"].append(build)
        _log(f"retrieval latency on {name} ...")
        params = {"index_dir": str(index_dir), "questions": questions, "rounds": args.rounds}
        row = {"collection": name} | run_child("retrieval", params, work)
        report["retrieval"].append(row)
        _log(f"  ours p50 {row['ours']['p50_ms']} ms, baseline p50 {row['baseline']['p50_ms']} ms")
        _write(report, args.out)
    for preset in args.presets:
        _log(f"time to first token, preset {preset} ...")
        params = {"index_dir": str(sample_dir), "preset": preset, "questions": llm_questions}
        params |= {"baseline_questions": args.baseline_llm_questions, "max_tokens": args.max_tokens}
        params["model_cache_dir"] = str(args.model_cache_dir) if args.model_cache_dir else None
        params |= {"n_threads": args.n_threads, "budget_s": args.llm_budget}
        res = run_child("llm", params, work)
        summary = summarize_llm(res, args.target_ttft)
        report["llm"].append(summary | {"peak_rss_mb": res["peak_rss_mb"], "rows": res["rows"]})
        _write(report, args.out)
    report["machine"]["uptime_after"] = _uptime()
    report["machine"]["run_seconds"] = round(time.perf_counter() - started, 1)
    _write(report, args.out)
    return report


def _log(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def _parse_list(text: str, allowed: tuple[str, ...] | None = None) -> list[str]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    for s in items:
        ok = s in allowed if allowed else (s == "sample" or (s.isdigit() and int(s) > 0))
        if not ok:
            raise argparse.ArgumentTypeError(f"{s!r} is not one of {allowed or 'sample, N'}")
    return items


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=_parse_list,
        default=["sample", "20000", "100000"],
        help="collections: 'sample' and/or numbers of chunks",
    )
    parser.add_argument(
        "--presets",
        type=lambda s: _parse_list(s, ("tiny", "small", "base")),
        default=["small", "base"],
        help="local model presets ('' for none)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results", help="folder for the results")
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
    args = parser.parse_args(argv)
    if args.max_tokens < 16:
        parser.error("--max-tokens must be at least 16 (the assistant's settings ask for it)")
    if args.step:
        result = STEPS[args.step](json.loads(args.params))
        args.result.write_text(json.dumps(result))
        return 0
    if args.work:
        args.work.mkdir(parents=True, exist_ok=True)
        report = run_benchmark(args, args.work)
    else:
        with tempfile.TemporaryDirectory(prefix="query-bench-") as tmp:
            report = run_benchmark(args, Path(tmp))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
