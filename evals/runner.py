"""The evaluation runner: questions through the assistant and the baseline, then scores.

A run has three phases per dataset, so that latencies are clean and judging is cheap:

1. *answer*: every question through the assistant (and the baseline), timed;
2. *judge*: every (passage, sentence) pair any metric needs is sent to the judge, grouped by
   passage (a local model then evaluates each passage once);
3. *score*: the functions of :mod:`evals.metrics` and :mod:`evals.findings`, reading the
   judge's memo, into one :class:`~evals.records.Record` per case.

Datasets (:mod:`evals.cases`): ``sample`` (evals/data/sample_qa.jsonl over the bundled sample
collection) and ``scifact`` (evals/data/scifact_yesno.jsonl, the SciFact claims as yes/no
questions over their 182 gold abstracts, indexed as a collection of their own). Both go through
the whole assistant; the same scores apply to both.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone
from functools import partial
from typing import Any

from assistant.answer.compose import QUOTE_LEAD
from assistant.answer.engine import Assistant
from assistant.errors import AssistantError, InputError, LLMUnavailableError
from assistant.index.embeddings import Embedder, load_embedder
from assistant.ingest.pipeline import ingest_papers
from assistant.ingest.readers import ReadResult, default_sample_paths, read_paths
from assistant.llm.backend import chat_model_from_settings
from assistant.llm.base import ChatModel
from assistant.settings import Settings
from assistant.text import title_key
from assistant.types import Answer

from . import metrics as M
from .baseline import DESCRIPTION as BASELINE_DESCRIPTION
from .baseline import Baseline
from .cases import DATA_DIR, DATASETS, SPLITS, Case, file_sha256, read_cases, select_cases
from .findings import RoleIndex, answer_verdict, role_shares
from .judge import (
    NO_NLI_NOTE,
    Judge,
    judge_agreement,
    judge_model,
    load_judge_pairs,
    premise_text,
)
from .records import JudgedSentence, Record, SystemRecord
from .report import aggregate
from .run import (
    RANK_K,
    Output,
    ProgressFactory,
    Run,
    RunConfig,
    progress_bar,
    retrieval_scores,
    settings_fingerprint,
)
from .scifact import scifact_settings

__all__ = ["RunConfig", "run_eval", "DATA_DIR", "DATASETS", "SPLITS", "score_output"]

logger = logging.getLogger(__name__)

JUDGE_PAIRS = "judge_pairs.jsonl"
ROLES = "sentence_roles.jsonl"
ASSISTANT_DESCRIPTION = (
    "Assistant: dense + BM25 fusion, passage selection, verified citations, answers from "
    "the findings"
)


# --- one answer -------------------------------------------------------------------------------


def _assistant_output(assistant: Assistant, question: str) -> Output:
    started = time.perf_counter()
    answer = None
    for item in assistant.stream(question):  # streamed, so time to first token is measured
        if isinstance(item, Answer):
            answer = item
    if answer is None:
        raise AssistantError("the assistant's stream ended without an answer")
    out = Output(latency=time.perf_counter() - started)
    out.ranked = [title_key(s.title) for s in assistant.retrieve(question, top_k=RANK_K)]
    by_number = {c.number: c for c in answer.citations}
    out.text, out.answerable, out.timings = answer.text, answer.answerable, dict(answer.timings)
    out.extra = {
        "evidence_level": answer.evidence_level,
        "quoted": answer.quoted,
        "prompt_tokens": answer.prompt_tokens,
        "raw_text": answer.raw_text,
        "decision": getattr(answer, "decision", {}),  # older code (a before run) has none
    }
    out.retrieved = list(dict.fromkeys(premise_text(s.title, s.abstract) for s in answer.sources))
    out.passages = [" ".join(s.passages) for s in answer.sources]
    out.cited = [title_key(c.title) for c in answer.citations]
    out.evidence = [(c.title, e) for c in answer.citations for e in c.evidence]
    if answer.answerable:  # a declined answer shows no claim: nothing to check
        out.sentences = [
            M.CitedSentence(
                s.text,
                [
                    premise_text(by_number[n].title, by_number[n].abstract)
                    for n in s.citations
                    if n in by_number
                ],
            )
            for s in answer.sentences
        ]
    return out


def _baseline_output(baseline: Baseline, question: str) -> Output:
    started = time.perf_counter()
    answer = baseline.ask(question)
    out = Output(latency=time.perf_counter() - started)
    out.ranked = [title_key(r.title) for r in baseline.retrieve(question, top_k=RANK_K)]
    out.text, out.answerable, out.timings = answer.text, answer.answerable, answer.timings
    out.retrieved = list(dict.fromkeys(s.premise for s in answer.sources))
    out.passages = list(out.retrieved)
    if answer.answerable:
        out.cited = list(
            dict.fromkeys(
                title_key(answer.sources[n - 1].title) for _, refs in answer.sentences for n in refs
            )
        )
        out.sentences = [
            M.CitedSentence(text, [answer.sources[n - 1].premise for n in refs])
            for text, refs in answer.sentences
        ]
    return out


def _guarded(fn: Callable[[], Output], what: str) -> Output:
    try:
        return fn()
    except LLMUnavailableError:
        raise  # the server is gone: every later question would fail too
    except AssistantError as exc:
        logger.warning("%s failed: %s", what, exc)
        return Output(error=f"{type(exc).__name__}: {exc}")


# --- its scores -------------------------------------------------------------------------------


def _answer_scores(out: Output, case: Case, roles: RoleIndex) -> dict[str, float]:
    """What the judge-free metrics say of one answer."""
    gold = {title_key(t) for t in case.gold_titles}
    scores = retrieval_scores(out.ranked, gold)
    facts = list(case.key_facts)
    scores["key_fact_recall"] = M.key_fact_recall(out.text, facts) if facts else M.NAN
    # Was the sentence holding each key fact sent to the model at all?
    scores["evidence_recall"] = M.key_fact_recall(" ".join(out.passages), facts) if facts else M.NAN
    # A quote appended after the model's text: did it add a key fact the text lacked?
    head, lead, _ = (out.text or "").partition(f"\n\n{QUOTE_LEAD.rstrip(':')}")
    if facts and lead and head.strip():
        scores["quote_adds_fact"] = float(
            scores["key_fact_recall"] > M.key_fact_recall(head, facts)
        )
    cited = set(out.cited)
    scores["gold_cited"] = len(gold & cited) / len(gold) if gold else M.NAN
    scores["all_gold_cited"] = float(gold <= cited) if gold else M.NAN
    several = case.type in ("multi", "compare")
    scores["no_unrelated_cited"] = float(cited <= gold) if several and out.answerable else M.NAN
    if case.type == "yesno":
        scores["states_verdict"] = float(answer_verdict(out.text) is not None)
        scores["verdict_agrees"] = float(answer_verdict(out.text) == case.verdict)
    if case.answerable and out.answerable:
        finding, setup = role_shares([roles.role(t, e) for t, e in out.evidence])
        scores["evidence_is_finding"], scores["evidence_is_aim_or_background"] = finding, setup
    return scores


def score_output(
    out: Output, case: Case, judge: Judge | None, roles: RoleIndex
) -> tuple[dict[str, float], list[JudgedSentence]]:
    """The scores of one answer and, per sentence, what the judge said about it (no judge:
    the judge-free scores only)."""
    if out.error:
        return {}, []
    scores = _answer_scores(out, case, roles)
    if judge is None:
        return scores, []
    cit = M.citation_scores(out.sentences, judge)
    scores["citation_recall"] = cit["citation_recall"]
    scores["citation_precision"] = cit["citation_precision"]
    scores["faithfulness"] = M.faithfulness([s.text for s in out.sentences], out.retrieved, judge)
    details = [
        JudgedSentence(
            text=s.text,
            n_cited=len(s.cited),
            supported_by_citations=bool(s.cited)
            and judge(M.PASSAGE_SEPARATOR.join(s.cited), s.text),
            supported_by_retrieved=any(judge(p, s.text) for p in out.retrieved),
        )
        for s in out.sentences
    ]
    return scores, details


def _system_record(out: Output, case: Case, run: Run, roles: RoleIndex) -> SystemRecord:
    scores, sentences = score_output(out, case, run.judge, roles)
    return SystemRecord(
        answer=out.text,
        answerable=out.answerable,
        error=out.error,
        top_titles=out.ranked[:5],
        cited_titles=out.cited,
        passages=out.passages,
        evidence=out.evidence,
        evidence_roles=[roles.role(t, e) for t, e in out.evidence],
        verdict=answer_verdict(out.text),
        evidence_level=str(out.extra.get("evidence_level", "")),
        quoted=bool(out.extra.get("quoted", False)),
        prompt_tokens=int(out.extra.get("prompt_tokens", 0) or 0),
        raw_text=str(out.extra.get("raw_text", "")),
        decision=dict(out.extra.get("decision") or {}),
        sentences=sentences,
        latency_s=round(out.latency, 4),
        timings=out.timings,
        scores=scores,
    )


# --- one dataset ------------------------------------------------------------------------------


def _sample_settings(run: Run, papers: ReadResult) -> Settings:
    settings = run.settings.model_copy(
        update={
            "index_dir": run.config.sample_index_dir
            or run.config.cache_dir / f"sample-index-{settings_fingerprint(run.settings)}"
        }
    )
    started = time.perf_counter()
    report = ingest_papers(papers, settings, embedder=run.embedder)
    run.indexes["sample"] = f"{settings.describe_index()} ({settings.collection})"
    logger.info("sample index %s: %d papers", settings.index_dir, report.papers_total)
    run.timed("sample_index", started)
    return settings


def _run_dataset(run: Run, name: str, cases: list[Case], settings: Settings) -> list[Record]:
    """Every case through each system, then judged and scored."""
    assistant = Assistant(settings, llm=run.llm, embed_model=run.embedder)
    assistant.warm_up()
    baseline = (
        Baseline(settings, llm=run.llm, embedder=run.embedder) if run.config.baseline else None
    )
    outputs: list[dict[str, Output]] = []
    started = time.perf_counter()
    bar = progress_bar(run.progress, len(cases), f"{name}: answering")
    try:
        for case in cases:
            q = case.question
            row = {"assistant": _guarded(partial(_assistant_output, assistant, q), case.id)}
            if baseline is not None:
                row["baseline"] = _guarded(partial(_baseline_output, baseline, q), case.id)
            outputs.append(row)
            bar.update()
    finally:
        bar.close()
    run.timed(f"{name}_answering", started)
    run.judge_all([o for row in outputs for o in row.values()], name)
    started = time.perf_counter()
    roles = RoleIndex(DATA_DIR / ROLES)
    records = [
        Record(case, {system: _system_record(out, case, run, roles) for system, out in row.items()})
        for case, row in zip(cases, outputs, strict=True)
    ]
    run.timed(f"{name}_scoring", started)
    return records


# --- the run ----------------------------------------------------------------------------------


def _settings_dump(settings: Settings) -> dict[str, Any]:
    return settings.model_dump(mode="json", exclude={"openai_api_key"})


def run_eval(
    settings: Settings,
    config: RunConfig,
    *,
    llm: ChatModel | None = None,
    embedder: Embedder | None = None,
    judge: Judge | None = None,
    progress: ProgressFactory | None = None,
) -> dict[str, Any]:
    """Run the datasets of ``config``; returns the report (see evals/report.py for its files)."""
    unknown = [d for d in config.datasets if d not in DATASETS]
    if unknown:
        raise InputError(f"unknown dataset(s) {unknown}; choose from {sorted(DATASETS)}")
    started_at = datetime.now(timezone.utc)
    started = time.perf_counter()
    config.out_dir.mkdir(parents=True, exist_ok=True)
    config.cache_dir.mkdir(parents=True, exist_ok=True)
    if config.split not in SPLITS:
        raise InputError(f"unknown split {config.split!r}; choose from {', '.join(SPLITS)}")
    run = _start_run(settings, config, llm, embedder, judge, progress)

    sample_papers = read_paths(default_sample_paths())
    datasets_meta: dict[str, Any] = {}
    records: dict[str, list[Record]] = {}
    aggregates: dict[str, Any] = {}
    for name in dict.fromkeys(config.datasets):
        cases, datasets_meta[name] = _dataset_cases(name, config)
        if name == "sample":
            settings_ = _sample_settings(run, sample_papers)
        else:
            settings_ = scifact_settings(run)
        records[name] = _run_dataset(run, name, cases, settings_)
        aggregates[name] = aggregate(records[name], run.systems)
        datasets_meta[name]["index"] = run.indexes.get(name)

    agreement = None
    if run.judge is not None and config.judge_pairs != 0:
        agreement = _judge_agreement(run, run.judge, sample_papers, datasets_meta)

    return {
        "created": started_at.isoformat(timespec="seconds"),
        "out_dir": str(config.out_dir),
        "settings": _settings_dump(settings),
        **_run_description(run),
        "datasets": datasets_meta,
        "judge": _judge_description(run),
        "llm_cache": str(config.llm_cache) if config.llm_cache else None,
        "judge_agreement": agreement,
        "aggregates": aggregates,
        "records": {name: [r.to_dict() for r in recs] for name, recs in records.items()},
        "timings": {"total_s": round(time.perf_counter() - started, 3), "phases": run.phases},
    }


def _start_run(
    settings: Settings,
    config: RunConfig,
    llm: ChatModel | None,
    embedder: Embedder | None,
    judge: Judge | None,
    progress: ProgressFactory | None,
) -> Run:
    """The models of the run: the judge first (a bad one fails before anything slow)."""
    llm = llm or chat_model_from_settings(settings)  # loads on first use
    if config.judge_answers and judge is None:  # before anything slow: fails at once if bad
        judge = Judge(judge_model(settings, config.judge, preset=config.judge_preset, reuse=llm))
    if not config.judge_answers:
        judge = None
    if config.llm_cache is not None:
        from .llm_cache import CachedChatModel

        llm = CachedChatModel(llm, config.llm_cache)
    embedder = embedder or load_embedder(settings)
    return Run(settings, config, llm, embedder, judge, progress)


def _dataset_cases(name: str, config: RunConfig) -> tuple[list[Case], dict[str, Any]]:
    """The cases the run uses of a dataset, and what the report says of them."""
    path = DATA_DIR / DATASETS[name]
    every = read_cases(name)
    mine = every if config.split == "all" else [c for c in every if c.split == config.split]
    cases = select_cases(mine, config.limit)
    meta = {
        "file": f"evals/data/{path.name}",
        "sha256": file_sha256(path),
        "n_total": len(every),
        "n_used": len(cases),
        "split": config.split,
    }
    logger.info("%s: %d of %d cases", name, len(cases), len(every))
    return cases, meta


def _judge_agreement(
    run: Run, judge: Judge, sample_papers: ReadResult, datasets_meta: dict[str, Any]
) -> dict[str, Any]:
    """How often the judge agrees with the hand-labelled pairs (noted in ``datasets_meta``)."""
    t = time.perf_counter()
    pairs_path = DATA_DIR / JUDGE_PAIRS
    all_pairs = load_judge_pairs(pairs_path)
    pairs = all_pairs[: run.config.judge_pairs]
    papers = {title_key(p.title): (p.title, p.abstract) for p in sample_papers.papers}
    agreement = judge_agreement(judge, pairs, papers).to_dict()
    datasets_meta["judge_pairs"] = {
        "file": f"evals/data/{JUDGE_PAIRS}",
        "sha256": file_sha256(pairs_path),
        "n_total": len(all_pairs),
        "n_used": len(pairs),
    }
    run.timed("judge_agreement", t)
    return agreement


def _run_description(run: Run) -> dict[str, Any]:
    """The report's "models" and "systems"."""
    baseline = run.config.baseline
    return {
        "models": {
            "assistant": run.llm.name,
            "baseline": run.llm.name if baseline else None,
            "judge": run.judge.model.name if run.judge is not None else None,
            "embedder": run.embedder.model_id,
        },
        "systems": {
            "assistant": ASSISTANT_DESCRIPTION,
            "baseline": BASELINE_DESCRIPTION if baseline else None,
        },
    }


def _judge_description(run: Run) -> dict[str, Any]:
    judge = run.judge
    if judge is None:
        return {"kind": None, "note": "judge-free run (--no-judge): no entailment judgements"}
    return {
        "kind": run.config.judge,
        "model": judge.model.name,
        "prompts": ["prompts/judge.txt"],
        "max_tokens": judge.max_tokens,
        "stats": judge.stats.to_dict(),
        "note": NO_NLI_NOTE,
    }
