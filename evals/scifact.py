"""The SciFact part of an eval run: an index over the gold abstracts, retrieval and verdicts per claim."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from assistant.answer.engine import Assistant
from assistant.ingest.pipeline import ingest_papers
from assistant.ingest.readers import read_paths
from assistant.settings import Settings
from assistant.text import title_key

from . import metrics as M
from .baseline import Baseline
from .judge import (
    premise_text,
)
from .run import RANK_K, Output, Run, progress_bar, retrieval_scores, settings_fingerprint

# --- scifact ----------------------------------------------------------------------------------

logger = logging.getLogger(__name__)


def run_scifact(
    run: Run, claims: list[dict[str, Any]], all_claims: list[dict[str, Any]]
) -> list[dict]:
    abstracts: dict[str, tuple[str, str]] = {}
    for row in all_claims:
        gold = row["gold_ctx"][0]
        abstracts.setdefault(title_key(gold["title"]), (gold["title"], gold["text"]))
    settings = _scifact_index(run, abstracts)
    outputs = _scifact_retrieve(run, settings, claims)

    def premise_of(out: Output) -> str | None:
        top = out.ranked[0] if out.ranked else None
        return premise_text(*abstracts[top]) if top in abstracts else None

    judge = run.judge
    if judge is not None:
        started = time.perf_counter()
        pairs = {
            (p, row["input"])
            for row, res in zip(claims, outputs)
            for o in res.values()
            if (p := premise_of(o))
        }
        bar = progress_bar(run.progress, len(pairs), "scifact: verdicts")
        try:
            judge.prefetch(pairs, prompt="judge_claim", on_done=bar.update)
        finally:
            bar.close()
        run.timed("scifact_judging", started)

    records = []
    for i, (row, res) in enumerate(zip(claims, outputs)):
        gold_key = title_key(row["gold_ctx"][0]["title"])
        label = str(row["answer"]).strip().lower() == "true"
        rec: dict[str, Any] = {
            "id": row.get("id", f"scifact-{i:03d}"),
            "claim": row["input"],
            "label": label,
            "gold_title": row["gold_ctx"][0]["title"],
        }
        for system, out in res.items():
            premise = premise_of(out)
            verdict = (
                judge.verdict(premise, row["input"], prompt="judge_claim")
                if premise and judge is not None
                else None
            )
            scores = retrieval_scores(out.ranked, {gold_key})
            if judge is not None:
                scores["verdict_accuracy"] = M.verdict_accuracy([verdict], [label])
            rec[system] = {
                "top_titles": out.ranked[:5],
                "top_is_gold": bool(out.ranked) and out.ranked[0] == gold_key,
                "verdict": verdict,
                "latency_s": round(out.latency, 4),
                "scores": scores,
            }
        records.append(rec)
    return records


def _scifact_index(run: Run, abstracts: dict[str, tuple[str, str]]) -> Settings:
    """Index the claims' gold abstracts (cached by settings); the settings that read it."""
    jsonl = run.config.out_dir / "scifact_abstracts.jsonl"
    with jsonl.open("w", encoding="utf-8") as fh:
        for title, text in abstracts.values():
            fh.write(json.dumps({"title": title, "abstract": text}, ensure_ascii=False) + "\n")
    settings = run.settings.model_copy(
        update={
            "index_dir": run.config.cache_dir
            / f"scifact-index-{settings_fingerprint(run.settings)}",
            "collection": "scifact",
        }
    )
    started = time.perf_counter()
    read = read_paths([jsonl])
    if len(read.papers) != len(abstracts):
        logger.warning("scifact: %d abstracts read of %d", len(read.papers), len(abstracts))
    ingest_papers(read, settings, embedder=run.embedder)
    run.indexes["scifact"] = f"{settings.describe_index()} ({settings.collection})"
    run.timed("scifact_index", started)
    return settings


def _scifact_retrieve(
    run: Run, settings: Settings, claims: list[dict[str, Any]]
) -> list[dict[str, Output]]:
    """Each system's ranked titles for each claim, timed."""
    assistant = Assistant(settings, llm=run.llm, embed_model=run.embedder)
    baseline = (
        Baseline(settings, llm=run.llm, embedder=run.embedder) if run.config.baseline else None
    )
    started = time.perf_counter()
    outputs: list[dict[str, Output]] = []
    for row in claims:
        claim, res = row["input"], {}
        t = time.perf_counter()
        res["assistant"] = Output(
            ranked=[title_key(s.title) for s in assistant.retrieve(claim, top_k=RANK_K)]
        )
        res["assistant"].latency = time.perf_counter() - t
        if baseline is not None:
            t = time.perf_counter()
            res["baseline"] = Output(
                ranked=[title_key(r.title) for r in baseline.retrieve(claim, top_k=RANK_K)]
            )
            res["baseline"].latency = time.perf_counter() - t
        outputs.append(res)
    run.timed("scifact_retrieval", started)
    return outputs
