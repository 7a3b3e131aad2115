"""The measured steps of the query benchmark; each runs in its own child process.

``python benchmarks/query.py --step NAME --params JSON --result FILE`` calls ``STEPS[NAME]``
with the decoded params and writes what it returns to FILE (see benchmarks/query.py for what
is compared and benchmarks/README.md for how each figure is measured):

- ``build-sample``: ingest the bundled sample collection (real embeddings);
- ``build-synthetic``: the sample chunks plus synthetic chunks with synthetic vectors;
- ``retrieval``: ours against dense-only llama-index on one collection, interleaved;
- ``llm``: time to first token of ours against the stock query engine, on one preset.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import log, percentile, ratio, rss_mb

__all__ = ["STEPS", "WARMUP_QUESTION", "NOISE_SIGMA", "synthetic_vectors"]

WARMUP_QUESTION = "Which papers propose a new attention mechanism for transformers?"
BATCH_PAPERS = 2000
NOISE_SIGMA = 0.025  # per dimension; the noise vector's norm is about 0.5
SYSTEMS = ("ours", "baseline")


# --- building the collections -------------------------------------------------------------------
def build_sample(p: dict[str, Any]) -> dict[str, Any]:
    """Ingest the bundled sample collection normally (real embeddings)."""
    from assistant.index.embeddings import load_embedder
    from assistant.ingest.pipeline import ingest
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


def _copy_sample(sample: dict[str, Any], base: Any, col: Any) -> None:
    """The sample chunks with their real vectors into ``col``."""
    for s in range(0, len(sample["ids"]), 1000):
        col.add(
            ids=sample["ids"][s : s + 1000],
            embeddings=base[s : s + 1000],
            documents=sample["documents"][s : s + 1000],
            metadatas=sample["metadatas"][s : s + 1000],
        )


def _synthetic_batches(need: int, seed: int, settings: Any) -> Iterator[tuple[list[Any], int]]:
    """Chunks of synthetic papers in batches of BATCH_PAPERS papers, ``need`` chunks in all;
    yields (chunks, papers in the batch)."""
    from assistant.index.chunking import chunk_paper
    from assistant.types import Paper
    from benchmarks.synth import synth_records

    records, written = synth_records(need, seed), 0
    for start in range(0, len(records), BATCH_PAPERS):
        chunks, papers = [], 0
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
            return
        written += len(chunks)
        yield chunks, papers


def build_synthetic(p: dict[str, Any]) -> dict[str, Any]:
    """The sample chunks (real vectors) plus synthetic chunks up to ``n_chunks`` in all."""
    import numpy as np

    from assistant.index.chroma import PaperIndex
    from assistant.settings import Settings

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
    _copy_sample(sample, base, col)
    rng = np.random.default_rng(p["seed"])
    written, papers, write_s = 0, 0, 0.0
    for chunks, n_papers in _synthetic_batches(need, p["seed"], settings):
        t = time.perf_counter()
        index.write_chunks(chunks, synthetic_vectors(base, len(chunks), rng))
        write_s += time.perf_counter() - t
        written, papers = written + len(chunks), papers + n_papers
        log(f"  wrote {written + n_sample} / {p['n_chunks']} chunks")
    index.touch()
    if p.get("lexical", True):  # what ingest does at its end: the BM25 index questions use
        from assistant.index.lexical import LexicalIndex

        LexicalIndex.for_settings(settings).refresh(index)
    return {
        "seconds": round(time.perf_counter() - t0, 2),
        "write_chunks_seconds": round(write_s, 2),
        "chunks": col.count(),
        "papers": papers + len({m["paper_id"] for m in sample["metadatas"]}),
        "sample_chunks": n_sample,
        "synthetic_chunks": written,
    }


# --- retrieval latency --------------------------------------------------------------------------
def _load_index(settings: Any, embedder: Any) -> tuple[Any, dict[str, Any]]:
    """Open the index and load its vectors (the first vector query); times and RSS."""
    import numpy as np

    from assistant.index.chroma import PaperIndex

    rss = {"after_model": rss_mb()}
    t = time.perf_counter()
    index = PaperIndex(settings)
    col = index.open()
    chunks = col.count()
    open_s = time.perf_counter() - t
    t = time.perf_counter()  # Chroma loads the vector index on the first vector query
    probe = np.random.default_rng(0).normal(size=embedder.dim).astype(np.float32)
    col.query(query_embeddings=[(probe / np.linalg.norm(probe)).tolist()], n_results=1)
    first_vector_query_s = time.perf_counter() - t
    rss["after_index_load"] = rss_mb()
    return index, {
        "chunks": chunks,
        "index_open_s": round(open_s, 4),
        "first_vector_query_s": round(first_vector_query_s, 4),
        "index_load_s": round(open_s + first_vector_query_s, 4),
        "rss_mb": rss,
    }


def _interleaved(
    systems: dict[str, Callable[[str], int]], questions: list[str], rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[int]], list[float]]:
    """Each question through both systems back to back, the order alternating; returns the
    seconds and result counts per system and the per-question ours / baseline ratios."""
    times: dict[str, list[float]] = {name: [] for name in SYSTEMS}
    found: dict[str, list[int]] = {name: [] for name in SYSTEMS}
    paired: list[float] = []
    for r in range(rounds):
        for i, q in enumerate(questions):
            order = SYSTEMS if (i + r) % 2 == 0 else SYSTEMS[::-1]
            took = {}
            for name in order:
                t = time.perf_counter()
                found[name].append(systems[name](q))
                took[name] = time.perf_counter() - t
                times[name].append(took[name])
            paired.append(took["ours"] / took["baseline"])
    return times, found, paired


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


def _ours_parts(assistant: Any, embedder: Any, questions: list[str]) -> dict[str, float | None]:
    """Where ours spends its time: embed, dense and BM25 alone, p50 ms over ``questions``."""
    parts = time_parts(assistant.retriever, embedder, questions)
    return {k: percentile(v, 50, 1000) for k, v in parts.items()}


def _latency(times: list[float], found: list[int]) -> dict[str, Any]:
    return {
        "p50_ms": percentile(times, 50, 1000),
        "p95_ms": percentile(times, 95, 1000),
        "mean_ms": round(1000 * sum(times) / len(times), 2),
        "n": len(times),
        "results_p50": percentile(found, 50),
        "empty": sum(1 for x in found if x == 0),
    }


def step_retrieval(p: dict[str, Any]) -> dict[str, Any]:
    """Retrieval latency of ours and the dense-only baseline on one collection."""
    from llama_index.core import VectorStoreIndex
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from assistant.answer.engine import Assistant
    from assistant.index.embeddings import load_embedder
    from assistant.settings import Settings

    settings = Settings(index_dir=Path(p["index_dir"]))
    embedder = load_embedder(settings)
    embedder.embed(["warm up the embedder"])
    index, out = _load_index(settings, embedder)
    rss = out["rss_mb"]
    assistant = Assistant(settings, embed_model=embedder, index=index)
    t = time.perf_counter()
    assistant.retriever.ensure_ready()
    out["bm25_build_s"] = round(time.perf_counter() - t, 4)
    rss["after_bm25_build"] = rss_mb()
    baseline = VectorStoreIndex.from_vector_store(
        ChromaVectorStore(chroma_collection=index.collection),
        embed_model=embedder.as_llama_index(),
    ).as_retriever(similarity_top_k=5)
    systems = {
        "ours": lambda q: len(assistant.retrieve(q)),
        "baseline": lambda q: len(baseline.retrieve(q)),
    }
    first = {}
    for name, fn in systems.items():
        t = time.perf_counter()
        fn(WARMUP_QUESTION)
        first[name] = round(time.perf_counter() - t, 4)
    times, found, paired = _interleaved(systems, p["questions"], p["rounds"])
    out["ours_parts_p50_ms"] = _ours_parts(assistant, embedder, p["questions"][:10])
    rss["end"] = rss_mb()
    out |= {
        "top_k": settings.top_k,
        "candidate_k": settings.candidate_k,
        "questions": len(p["questions"]),
        "rounds": p["rounds"],
        "first_query_s": first,
        "bm25_rss_mb": _growth(rss["after_index_load"], rss["after_bm25_build"]),
        "paired_ratio_p50": percentile(paired, 50),
    }
    for name in systems:
        out[name] = _latency(times[name], found[name])
    out["ratio_p50"] = ratio(out["ours"]["p50_ms"], out["baseline"]["p50_ms"])
    out["ratio_p95"] = ratio(out["ours"]["p95_ms"], out["baseline"]["p95_ms"])
    return out


def _growth(before: float | None, after: float | None) -> float | None:
    return round(after - before, 1) if before is not None and after is not None else None


# --- time to first token ------------------------------------------------------------------------
def _timed_model_class() -> type:
    from assistant.llm.base import ChatModel

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


@dataclass
class _FirstToken:
    """Both systems of the model step, loaded and warmed up: ``ask(name, q)`` times one."""

    raw: dict[str, Any]
    """The two LocalChatModel instances (same GGUF), by system."""
    timed: dict[str, Any]
    """The same, wrapped to record each call."""
    assistant: Any
    engine: Any
    load_s: float

    def ask(self, name: str, q: str) -> dict[str, Any]:
        return self._ours(q) if name == "ours" else self._baseline(q)

    def _ours(self, q: str) -> dict[str, Any]:
        from assistant.types import Answer

        n_calls = len(self.timed["ours"].calls)
        answer = None
        for item in self.assistant.stream(q):
            if isinstance(item, Answer):
                answer = item
        if answer is None or len(self.timed["ours"].calls) == n_calls:
            return {"ttft_s": None, "note": "no paper retrieved: no model call"}
        row = {"ttft_s": answer.timings.get("first_token"), "sources": len(answer.sources)}
        row["retrieval_s"] = answer.timings.get("retrieval")
        row["passages_s"] = answer.timings.get("passages")
        return row | _call_stats(self.raw["ours"], self.timed["ours"].calls[-1])

    def _baseline(self, q: str) -> dict[str, Any]:
        t = time.perf_counter()
        response = self.engine.query(q)
        for _ in response.response_gen:
            pass
        call = self.timed["baseline"].calls[-1]
        ttft = call["times"][0] - t if call["times"] else None
        row = {"ttft_s": round(ttft, 4) if ttft is not None else None}
        row["sources"] = len(response.source_nodes)
        return row | _call_stats(self.raw["baseline"], call)


def _first_token_systems(p: dict[str, Any]) -> _FirstToken:
    """Load both systems, each with its own instance of the preset's GGUF, and warm them up
    off the clock: the first retrieval of each, and each model's own system prompt in its
    prompt cache (what a running service has after its first question)."""
    from llama_index.core import VectorStoreIndex
    from llama_index.core.prompts.chat_prompts import TEXT_QA_SYSTEM_PROMPT
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from assistant.answer.engine import Assistant
    from assistant.index.chroma import PaperIndex
    from assistant.index.embeddings import load_embedder
    from assistant.llm.backend import chat_model_from_settings
    from assistant.llm.llama_index_llm import as_llama_index_llm
    from assistant.prompts import load_prompt
    from assistant.settings import Settings

    kw: dict[str, Any] = {"n_threads": p.get("n_threads")}
    if p.get("model_cache_dir"):
        kw["model_cache_dir"] = Path(p["model_cache_dir"])
    settings = Settings(
        index_dir=Path(p["index_dir"]), llm_preset=p["preset"], max_tokens=p["max_tokens"], **kw
    )
    embedder = load_embedder(settings)
    raw = {name: chat_model_from_settings(settings) for name in SYSTEMS}
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
    assistant.retrieve(WARMUP_QUESTION)
    engine.retriever.retrieve(WARMUP_QUESTION)
    hi = {"role": "user", "content": "Hi"}
    system = {"ours": load_prompt("system").render(), "baseline": TEXT_QA_SYSTEM_PROMPT.content}
    for name in SYSTEMS:
        raw[name].complete([{"role": "system", "content": system[name]}, hi], max_tokens=1)
    return _FirstToken(raw, timed, assistant, engine, load_s)


def step_llm(p: dict[str, Any]) -> dict[str, Any]:
    """Time to first token of ours and the stock query engine on one preset.

    Phase 1: the paired questions, interleaved (who goes first alternates); phase 2: ours
    alone on the rest. A phase starts no new question after ``budget_s`` (its first always
    runs); what was skipped is listed.
    """
    bench = _first_token_systems(p)
    n_pairs = min(p["baseline_questions"], len(p["questions"]))
    pairs = [(i, SYSTEMS[::-1] if i % 2 else SYSTEMS) for i in range(n_pairs)]
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
                row = {"question": q, "system": name, "i": i} | bench.ask(name, q)
                rows.append(row)
                tokens = row.get("prompt_tokens")
                log(f"  {p['preset']} {name} q{i}: ttft {row['ttft_s']} s, {tokens} tok")
    return {
        "preset": p["preset"],
        "model": bench.raw["ours"].name,
        "n_threads": bench.raw["ours"].n_threads,
        "load_s": round(bench.load_s, 2),
        "rows": rows,
        "skipped_for_time": skipped,
    }


STEPS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "build-sample": build_sample,
    "build-synthetic": build_synthetic,
    "retrieval": step_retrieval,
    "llm": step_llm,
}
