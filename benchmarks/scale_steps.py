"""The measured steps of ``benchmarks/scale.py``, each run in its own process.

A ``query`` step may run today's code (another checkout first on ``sys.path``), so it uses
only what both have: ``Settings``, ``load_embedder``, ``PaperIndex``, ``Assistant`` and the
retriever's ``dense``/``bm25`` methods. Everything else imports this checkout's code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# Imported now, before a ``query`` step puts another checkout first on ``sys.path``
# (``benchmarks`` is a namespace package: later imports would look there first).
from benchmarks.query_steps import time_parts

REPO_ROOT = Path(__file__).resolve().parent.parent
WARMUP_QUESTION = "Which papers propose a new attention mechanism for transformers?"
ONNX_ID = "all-MiniLM-L6-v2-onnx-int8"


def pct(values: list[float], q: float, scale: float = 1.0) -> float | None:
    import numpy as np

    return round(float(np.percentile(values, q)) * scale, 2) if values else None


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def folder_mb(path: Path, exclude: str | None = None) -> float:
    total = 0
    for p in path.rglob("*"):
        if p.is_file() and not (exclude and exclude in p.relative_to(path).parts):
            total += p.stat().st_size
    return round(total / 2**20, 1)


# --- build ------------------------------------------------------------------------------------
def step_build_sample(p: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.query_steps import build_sample

    return build_sample(p)


def step_build_big(p: dict[str, Any]) -> dict[str, Any]:
    """The synthetic collection (its lexical index is measured by ``step_lexical``)."""
    from benchmarks.query_steps import build_synthetic

    out = build_synthetic(p | {"lexical": False})
    out["disk_mb"] = {"chroma": folder_mb(Path(p["index_dir"]), exclude="lexical")}
    return out


# --- query: first question and latency, today's code or ours ----------------------------------
def _settings(p: dict[str, Any]) -> Any:
    from assistant.settings import Settings

    kw: dict[str, Any] = {"index_dir": Path(p["index_dir"])}
    if p.get("chroma_url"):
        kw["chroma_url"] = p["chroma_url"]
    if p["who"] == "ours":
        kw["lexical_dir"] = Path(p["lexical_dir"])  # the server's collection: same id, same files
    return Settings(**kw)


def step_query(p: dict[str, Any]) -> dict[str, Any]:
    import assistant
    from assistant.answer.engine import Assistant
    from assistant.index.embeddings import load_embedder

    settings = _settings(p)
    embedder = load_embedder(settings)
    embedder.embed(["warm up the embedder"])
    rss = {"before_index": rss_mb()}
    t = time.perf_counter()
    a = Assistant(settings, embed_model=embedder)
    n_first = len(a.retrieve(WARMUP_QUESTION))
    first_s = time.perf_counter() - t
    rss["after_first_question"] = rss_mb()
    times: list[float] = []
    for _ in range(p["rounds"]):
        for q in p["questions"]:
            t = time.perf_counter()
            a.retrieve(q)
            times.append(time.perf_counter() - t)
    parts = time_parts(a.retriever, embedder, p["questions"][:20])
    rss["end"] = rss_mb()
    return {
        "code_path": str(Path(assistant.__file__).parent),
        "first_question_s": round(first_s, 3),
        "first_question_sources": n_first,
        "p50_ms": pct(times, 50, 1000),
        "p95_ms": pct(times, 95, 1000),
        "mean_ms": round(1000 * sum(times) / len(times), 2),
        "n": len(times),
        "parts_p50_ms": {k: pct(v, 50, 1000) for k, v in parts.items()},
        "rss_mb": rss,
    }


# --- lexical: keeping it in step at ingest ------------------------------------------------------
def step_lexical(p: dict[str, Any]) -> dict[str, Any]:
    """From scratch (read from Chroma), rebuilt from the token store, then an incremental run."""
    import shutil

    from assistant.index.chroma import PaperIndex
    from assistant.index.embeddings import load_embedder
    from assistant.index.lexical import MANIFEST, LexicalIndex
    from assistant.ingest.pipeline import ingest
    from assistant.settings import Settings
    from benchmarks.synth import write_jsonl

    settings = Settings(index_dir=Path(p["index_dir"]))
    shutil.rmtree(settings.lexical_path(), ignore_errors=True)
    out: dict[str, Any] = {}
    for name in ("from_chroma", "rebuild_from_store"):
        lexical = LexicalIndex.for_settings(settings)
        if name == "rebuild_from_store":
            (lexical.folder / MANIFEST).unlink()  # forces a rebuild; the store is complete
        rss0 = rss_mb()
        out[name] = lexical.refresh(PaperIndex(settings)).__dict__
        out[name]["rss_growth_mb"] = round(rss_mb() - rss0, 1)
    lex = settings.lexical_path()
    out["disk_mb"] = {
        "lexical_total": folder_mb(lex),
        "token_store": round((lex / "tokens.sqlite").stat().st_size / 2**20, 1),
    }

    calls: list[dict[str, Any]] = []
    original = LexicalIndex.refresh

    def timed(self: Any, index: Any) -> Any:
        stats = original(self, index)
        calls.append(stats.__dict__)
        return stats

    LexicalIndex.refresh = timed  # type: ignore[method-assign]
    embedder = load_embedder(settings)
    # Another seed on each run (so a re-run changes papers), the same for the same state.
    seed = p["seed"] + PaperIndex(settings).collection.count()
    jsonl = write_jsonl(Path(p["index_dir"]).parent / "add.jsonl", p["add"], seed=seed)
    t = time.perf_counter()
    report = ingest([jsonl], settings, embedder=embedder)
    return out | {
        "incremental": {
            "papers": p["add"],
            "seconds": round(time.perf_counter() - t, 2),
            "chunks_written": report.chunks_written,
            "chunks_total": report.chunks_total,
            "lexical_refresh": calls[-1] if calls else None,
        },
    }


# --- onnx: quality and throughput ----------------------------------------------------------------
def _retrieval_quality(assistant: Any, cases: list[tuple[str, set[str]]]) -> dict[str, Any]:
    from assistant.text import title_key
    from evals import metrics as M

    hit1, ndcg = [], []
    for q, gold in cases:
        ranked = [title_key(s.title) for s in assistant.retrieve(q, top_k=10)]
        hit1.append(M.hit_rate_at_k(ranked, gold, 1))
        ndcg.append(M.ndcg_at_k(ranked, gold, 10))
    return {"n": len(cases), "hit@1": M.mean(hit1), "ndcg@10": M.mean(ndcg)}


def step_quality(p: dict[str, Any]) -> dict[str, Any]:
    from assistant.answer.engine import Assistant
    from assistant.index.embeddings import load_embedder
    from assistant.ingest.pipeline import ingest
    from assistant.settings import Settings
    from assistant.text import title_key

    work = Path(p["work"])
    data = REPO_ROOT / "evals" / "data"
    out: dict[str, Any] = {"model": p["model"]}
    sample = Settings(index_dir=work / "sample", embed_model=p["model"])
    embedder = load_embedder(sample)
    t = time.perf_counter()
    rep = ingest(None, sample, embedder=embedder, rebuild=True)
    out["ingest_sample"] = {
        "papers": rep.papers_total,
        "seconds": round(time.perf_counter() - t, 2),
    }
    rows = [json.loads(x) for x in (data / "sample_qa.jsonl").read_text().splitlines() if x]
    cases = [
        (r["question"], {title_key(t) for t in r["gold_titles"]})
        for r in rows
        if r.get("gold_titles")
    ]
    out["sample"] = _retrieval_quality(Assistant(sample, embed_model=embedder), cases)

    claims = [json.loads(x) for x in (data / "scifact_claims.jsonl").read_text().splitlines() if x]
    abstracts = {title_key(c["gold_ctx"][0]["title"]): c["gold_ctx"][0] for c in claims}
    jsonl = work / "scifact.jsonl"
    with jsonl.open("w", encoding="utf-8") as fh:
        for g in abstracts.values():
            fh.write(json.dumps({"title": g["title"], "abstract": g["text"]}) + "\n")
    sci = sample.model_copy(update={"index_dir": work / "scifact", "collection": "scifact"})
    t = time.perf_counter()
    rep = ingest([jsonl], sci, embedder=embedder, rebuild=True)
    out["ingest_scifact"] = {
        "papers": rep.papers_total,
        "seconds": round(time.perf_counter() - t, 2),
    }
    cases = [(c["input"], {title_key(c["gold_ctx"][0]["title"])}) for c in claims]
    out["scifact"] = _retrieval_quality(Assistant(sci, embed_model=embedder), cases)
    return out


def step_throughput(p: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from assistant.index.embeddings import load_embedder
    from assistant.ingest.readers import default_sample_paths, read_paths
    from assistant.settings import Settings

    papers = read_paths(default_sample_paths()).papers[: p["texts"]]
    texts = [f"{x.title}\n{x.abstract}" for x in papers]
    models = {
        "torch": load_embedder(Settings()),
        "onnx": load_embedder(Settings(embed_model=ONNX_ID)),
    }
    for m in models.values():
        m.embed(texts[:8])
    secs: dict[str, list[float]] = {k: [] for k in models}
    vecs: dict[str, Any] = {}
    for r in range(p["rounds"]):
        for name in list(models) if r % 2 == 0 else list(models)[::-1]:
            t = time.perf_counter()
            vecs[name] = models[name].embed(texts, batch_size=64)
            secs[name].append(time.perf_counter() - t)
    cos = (vecs["torch"] * vecs["onnx"]).sum(axis=1)
    rate = {k: round(len(texts) / float(np.median(v)), 2) for k, v in secs.items()}
    return {
        "texts": len(texts),
        "rounds": p["rounds"],
        "texts_per_s": rate,
        "ratio_onnx_over_torch": round(rate["onnx"] / rate["torch"], 3),
        "cosine_torch_onnx": {
            "min": round(float(cos.min()), 4),
            "mean": round(float(cos.mean()), 4),
        },
        "threads": os.cpu_count(),
    }


# --- ray ------------------------------------------------------------------------------------------
def _cli(args: list[str], env: dict[str, str]) -> tuple[dict[str, Any], float]:
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "ingest.py"), *args, "--json", "--quiet"],
        env={**os.environ, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    took = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"ingest.py {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), round(took, 2)


def step_ray(p: dict[str, Any]) -> dict[str, Any]:
    base = {"ASSISTANT_CHROMA_URL": p["chroma_url"], "ASSISTANT_LEXICAL_DIR": p["lexical_dir"]}
    out: dict[str, Any] = {"workers": p["workers"]}
    for name, extra in (("single", []), ("ray", ["--ray"])):
        env = base | {
            "ASSISTANT_COLLECTION": f"bench-{name}",
            "ASSISTANT_RAY_WORKERS": str(p["workers"]),
        }
        rep, took = _cli(extra, env)
        out[name] = {
            "papers": rep["papers_total"],
            "chunks": rep["chunks_written"],
            "wall_s": took,
            "ingest_s": rep["seconds"],
            "papers_per_s": round(rep["papers_total"] / rep["seconds"], 2),
        }
    out["ratio_ray_over_single_s"] = round(out["ray"]["ingest_s"] / out["single"]["ingest_s"], 3)
    return out


STEPS = {
    "build-sample": step_build_sample,
    "build-big": step_build_big,
    "query": step_query,
    "lexical": step_lexical,
    "quality": step_quality,
    "throughput": step_throughput,
    "ray": step_ray,
}
