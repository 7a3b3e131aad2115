"""The measured step of the speed benchmark: one llama-cpp-python build, one block of questions.

``python benchmarks/speed.py --step block --params JSON --result FILE`` runs :func:`step_block`
in a child whose ``PYTHONPATH`` puts one build's ``llama_cpp`` first (see benchmarks/speed.py
for what is compared and benchmarks/README.md for how each figure is measured). The child:

- loads the preset's GGUF with the assistant's loader (``LocalChatModel``) and the sample
  index, and warms up off the clock (``Assistant.warm_up()``: BM25 built, the system prompt
  in the model's cache, as a running service has it);
- answers its questions through ``Assistant.stream``: time to first token is
  ``answer.timings["first_token"]`` (retrieval, passages, prompt processing), answer time
  ``answer.timings["total"]`` (the whole reply, then verification), and llama.cpp's own
  counters of the call (``LocalChatModel.last_call``: prompt tokens, how many were evaluated,
  generation speed);
- for the questions in ``baseline_ids``, also asks stock llama-index
  (``index.as_query_engine(llm=..., similarity_top_k=5, streaming=True)``) on its own
  instance of the same GGUF, interleaved with ours (who goes first alternates);
- with ``follow_ups``, asks each pair's first question, then its follow-up three ways:
  ``reused`` (right after, the model's cache holding the conversation), ``cold`` (the same
  follow-up after another prompt took the cache: only the system prompt is left) and
  ``condensed`` (``follow_up_reuse=False``: the follow-up is rewritten by the model, then
  gets a prompt of its own, as before reuse).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import log

__all__ = ["STEPS", "step_block"]

WARMUP_QUESTION = "Which papers propose a new attention mechanism for transformers?"


def _counters(model: Any) -> dict[str, Any]:
    c = getattr(model, "last_call", None) or {}
    out = {k: c.get(k) for k in ("prompt_tokens", "prompt_eval_tokens", "cached_tokens")}
    if c.get("prompt_eval_s") and c.get("prompt_eval_tokens"):
        out["prompt_tok_s"] = round(c["prompt_eval_tokens"] / c["prompt_eval_s"], 2)
    if c.get("gen_s") and c.get("gen_tokens"):
        out["gen_tok_s"] = round(c["gen_tokens"] / c["gen_s"], 2)
    return out


def _ours(assistant: Any, question: str, history: list[Any] | None = None) -> dict[str, Any]:
    """One question through ``Assistant.stream``; the row and the final Answer."""
    from assistant.types import Answer

    llm = assistant.llm
    before = getattr(llm, "last_call", None)  # the same object when the model is not called
    answer = None
    for item in assistant.stream(question, history=history):
        if isinstance(item, Answer):
            answer = item
    assert answer is not None
    called = "first_token" in answer.timings
    row: dict[str, Any] = {
        "ttft_s": answer.timings.get("first_token"),
        "answer_s": answer.timings.get("total"),
        "model_called": called,
        "sources": len(answer.sources),
        "answerable": answer.answerable,
        "retrieval_s": answer.timings.get("retrieval"),
        "passages_s": answer.timings.get("passages"),
        "condense_s": answer.timings.get("condense"),
        "text": answer.text,
        "raw_text": answer.raw_text,
    }
    if called and llm.last_call is not before:
        row |= _counters(llm)
    return row | {"_answer": answer}


def _baseline(engine: Any, model: Any, question: str) -> dict[str, Any]:
    """One question through the stock llama-index query engine (streaming)."""
    t = time.perf_counter()
    response = engine.query(question)
    first = None
    text = ""
    for piece in response.response_gen:
        if piece and first is None:
            first = time.perf_counter() - t
        text += piece
    row = {
        "ttft_s": round(first, 4) if first is not None else None,
        "answer_s": round(time.perf_counter() - t, 4),
        "model_called": first is not None,
        "sources": len(response.source_nodes),
        "text": text,
    }
    return row | _counters(model)


def _load(p: dict[str, Any]) -> dict[str, Any]:
    """The systems of the block, loaded and warmed up off the clock."""
    from assistant.answer.engine import Assistant
    from assistant.index.chroma import PaperIndex
    from assistant.index.embeddings import load_embedder
    from assistant.llm.backend import chat_model_from_settings
    from assistant.settings import Settings

    kw: dict[str, Any] = {"n_threads": p.get("n_threads"), "llm_preset": p["preset"]}
    if p.get("model_cache_dir"):
        kw["model_cache_dir"] = Path(p["model_cache_dir"])
    settings = Settings(index_dir=Path(p["index_dir"]), **kw)
    embedder = load_embedder(settings)
    llm = chat_model_from_settings(settings)
    t = time.perf_counter()
    llm.llama  # noqa: B018 - load now, off the clock
    load_s = time.perf_counter() - t
    index = PaperIndex(settings)
    ours = Assistant(settings, llm=llm, embed_model=embedder, index=index)
    ours.warm_up()
    ours.retrieve(WARMUP_QUESTION)
    systems: dict[str, Any] = {"ours": ours, "llm": llm, "load_s": load_s, "settings": settings}
    no_reuse = settings.model_copy(update={"follow_up_reuse": False})
    systems["condensed"] = Assistant(no_reuse, llm=llm, embed_model=embedder, index=index)
    if p.get("baseline_ids"):
        systems |= _load_baseline(settings, embedder, index)
    return systems


def _load_baseline(settings: Any, embedder: Any, index: Any) -> dict[str, Any]:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.prompts.chat_prompts import TEXT_QA_SYSTEM_PROMPT
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from assistant.llm.backend import chat_model_from_settings
    from assistant.llm.llama_index_llm import as_llama_index_llm

    model = chat_model_from_settings(settings)  # its own KV cache
    engine = VectorStoreIndex.from_vector_store(
        ChromaVectorStore(chroma_collection=index.collection), embed_model=embedder.as_llama_index()
    ).as_query_engine(
        llm=as_llama_index_llm(model, max_tokens=settings.max_tokens),
        similarity_top_k=5,
        streaming=True,
    )
    engine.retriever.retrieve(WARMUP_QUESTION)
    hi = [{"role": "system", "content": TEXT_QA_SYSTEM_PROMPT.content}]
    model.complete([*hi, {"role": "user", "content": "Hi"}], max_tokens=1)
    return {"baseline": engine, "baseline_llm": model}


def _evict(assistant: Any) -> None:
    """Another prompt through the model, as another session's question would be: its cache
    keeps only the system prompt every prompt starts with."""
    assistant.llm.complete(assistant._with_system("Question: ready?"), max_tokens=1)


def _follow_up(systems: dict[str, Any], pair: dict[str, Any], k: int) -> list[dict[str, Any]]:
    """A pair's first question, then its follow-up reused, cold and condensed."""
    ours = systems["ours"]
    first = _ours(ours, pair["question"])
    answer = first.pop("_answer")
    rows = [{"mode": "first"} | first]
    reused = _ours(ours, pair["follow_up"], [answer])
    reused["continued"] = "condense" not in reused["_answer"].timings
    rows.append({"mode": "reused"} | reused)
    later = ("cold", "condensed") if k % 2 == 0 else ("condensed", "cold")
    for mode in later:
        if mode == "cold":
            _evict(ours)
            row = _ours(ours, pair["follow_up"], [answer])
        else:
            row = _ours(systems["condensed"], pair["follow_up"], [answer])
        rows.append({"mode": mode} | row)
    for row in rows:
        row.pop("_answer", None)
        row |= {"pair": pair["id"], "question": pair["question"], "follow_up": pair["follow_up"]}
    log(
        f"  follow-up {pair['id']}: "
        + ", ".join(f"{r['mode']} {r['ttft_s']} s" for r in rows)
        + f" (continued: {rows[1]['continued']})"
    )
    return rows


def step_block(p: dict[str, Any]) -> dict[str, Any]:
    """One build, one block: ours (and stock llama-index) on each question, then follow-ups."""
    import llama_cpp

    from assistant.llm.cpu import library_features

    systems = _load(p)
    rows: list[dict[str, Any]] = []
    for k, q in enumerate(p["questions"]):
        order = ["ours", "baseline"] if q["id"] in p.get("baseline_ids", []) else ["ours"]
        for name in order if k % 2 == 0 else order[::-1]:
            if name == "ours":
                row = _ours(systems["ours"], q["question"])
                row.pop("_answer")
            else:
                row = _baseline(systems["baseline"], systems["baseline_llm"], q["question"])
            rows.append({"system": name, "id": q["id"], "type": q["type"]} | row)
            log(
                f"  {p['build']} {name} {q['id']}: ttft {row['ttft_s']} s, answer {row['answer_s']} s"
            )
    follow: list[dict[str, Any]] = []
    for k, pair in enumerate(p.get("follow_ups", [])):
        follow += _follow_up(systems, pair, k)
    llm = systems["llm"]
    return {
        "build": p["build"],
        "library": str(Path(llama_cpp.__file__).parent),
        "version": llama_cpp.__version__,
        "features": sorted(library_features()),
        "use_extra_bufts": llm.use_extra_bufts,
        "n_threads": llm.n_threads,
        "model": llm.name,
        "max_tokens": systems["settings"].max_tokens,
        "load_s": round(systems["load_s"], 3),
        "rows": rows,
        "follow_ups": follow,
    }


STEPS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {"block": step_block}
