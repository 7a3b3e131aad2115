"""The SciFact collection of an eval run: the 182 gold abstracts of the SciFact claims,
indexed as a collection of their own, which the yes/no questions of
evals/data/scifact_yesno.jsonl are asked about."""

from __future__ import annotations

import json
import logging
import time

from assistant.ingest.pipeline import ingest_papers
from assistant.ingest.readers import read_paths
from assistant.settings import Settings
from assistant.text import title_key

from .cases import DATA_DIR, read_jsonl
from .run import Run, settings_fingerprint

__all__ = ["CLAIMS", "scifact_abstracts", "scifact_settings"]

logger = logging.getLogger(__name__)

CLAIMS = "scifact_claims.jsonl"


def scifact_abstracts() -> dict[str, tuple[str, str]]:
    """Title key -> (title, abstract) of every claim's gold abstract, in file order."""
    abstracts: dict[str, tuple[str, str]] = {}
    for row in read_jsonl(DATA_DIR / CLAIMS):
        gold = row["gold_ctx"][0]
        abstracts.setdefault(title_key(gold["title"]), (gold["title"], gold["text"]))
    return abstracts


def scifact_settings(run: Run) -> Settings:
    """Index the gold abstracts (cached by settings); the settings that read that index."""
    abstracts = scifact_abstracts()
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
