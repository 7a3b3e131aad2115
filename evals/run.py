"""What one eval run holds: its configuration, the models it shares across datasets, and
each system's output reduced to what the metrics read."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.index.embeddings import Embedder
from assistant.llm.base import ChatModel
from assistant.settings import Settings

from . import metrics as M
from .judge import (
    Judge,
    JudgeKind,
)

SYSTEMS = ("assistant", "baseline")
RANK_K = 10
ProgressFactory = Callable[[int, str], Any]


@dataclass
class RunConfig:
    """What to run; the CLI builds it from its flags."""

    out_dir: Path
    cache_dir: Path
    datasets: Sequence[str] = ("sample", "scifact")
    limit: int | None = None
    judge: JudgeKind = "local"
    judge_preset: str | None = None
    baseline: bool = True
    sample_index_dir: Path | None = None
    judge_pairs: int | None = None
    """How many labelled pairs to check the judge on (None: all, 0: none)."""
    judge_answers: bool = True
    """False: the judge-free mode (retrieval, key facts, declines, evidence recall, cited gold
    papers, latency), minutes instead of hours; no judge model is loaded."""
    split: str = "all"
    """Which half of the questions: calibration, validation or all (evals/data/README.md)."""
    llm_cache: Path | None = None
    """A file of cached model replies (development only: answers are replayed, so latencies
    of replayed answers mean nothing)."""


@dataclass
class Output:
    """One system's answer, reduced to what the metrics read."""

    text: str = ""
    answerable: bool = False
    ranked: list[str] = field(default_factory=list)  # title keys, best first
    sentences: list[M.CitedSentence] = field(default_factory=list)
    retrieved: list[str] = field(default_factory=list)  # premises the model was shown
    passages: list[str] = field(default_factory=list)  # the text of the sources sent
    cited: list[str] = field(default_factory=list)  # title keys of the cited papers
    evidence: list[tuple[str, str]] = field(default_factory=list)  # (title, sentence) quoted/cited
    extra: dict[str, Any] = field(default_factory=dict)  # diagnostics kept in the record
    latency: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def settings_fingerprint(settings: Settings) -> str:
    blob = json.dumps(settings.index_fingerprint(), sort_keys=True).encode()
    return hashlib.sha1(blob).hexdigest()[:8]


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(progress: ProgressFactory | None, total: int, desc: str) -> Any:
    return progress(total, desc) if progress is not None and total else _NoBar()


class Run:
    """State shared by the datasets of one run."""

    def __init__(
        self,
        settings: Settings,
        config: RunConfig,
        llm: ChatModel,
        embedder: Embedder,
        judge: Judge | None,
        progress: ProgressFactory | None,
    ) -> None:
        self.settings, self.config, self.llm = settings, config, llm
        self.embedder, self.judge, self.progress = embedder, judge, progress
        self.phases: dict[str, float] = {}
        self.indexes: dict[str, str] = {}
        self.systems = SYSTEMS if config.baseline else SYSTEMS[:1]

    def timed(self, name: str, started: float) -> None:
        self.phases[name] = round(self.phases.get(name, 0.0) + time.perf_counter() - started, 3)

    def judge_all(self, outputs: list[Output], name: str) -> None:
        if self.judge is None:
            return
        pairs = {
            (premise, s.text)
            for out in outputs
            for s in out.sentences
            for premise in {*out.retrieved, *s.cited}
        }
        started = time.perf_counter()
        bar = progress_bar(self.progress, len(pairs), f"{name}: judging")
        try:
            self.judge.prefetch(pairs, on_done=bar.update)
        finally:
            bar.close()
        self.timed(f"{name}_judging", started)


def retrieval_scores(ranked: list[str], gold: set[str]) -> dict[str, float]:
    return {
        "hit@1": M.hit_rate_at_k(ranked, gold, 1),
        "hit@5": M.hit_rate_at_k(ranked, gold, 5),
        "hit@10": M.hit_rate_at_k(ranked, gold, 10),
        "mrr": M.reciprocal_rank(ranked, gold),
        "ndcg@10": M.ndcg_at_k(ranked, gold, 10),
    }
