#!/usr/bin/env python3
"""Speed benchmark: time to first token and answer time of the assistant on two (or more)
llama-cpp-python builds and of stock llama-index, in one run; and follow-ups, cold against
reused.

    python benchmarks/speed.py --build portable=~/.cache/paper-assistant/wheels/portable-0.3.36-* \\
        --build native=~/.cache/paper-assistant/wheels/native-0.3.36-*      # what we ran
    python benchmarks/speed.py --build a=W1 --build b=W2 --preset tiny --questions 6 \\
        --blocks 2 --follow-ups 2 --baseline-questions 2 --out /tmp/speed   # a quick run

Each ``--build NAME=PATH`` is a llama-cpp-python wheel (or a folder holding one, or a folder
where ``llama_cpp`` is importable; see benchmarks/llama_build.py). The first build is the
baseline of the ratios, the last the one whose children also run stock llama-index and the
follow-ups (``--chosen`` to pick another).

The questions (``--questions``, default 31: every third of evals/data/sample_qa.jsonl, fact,
multi-paper and unanswerable ones) are dealt into ``--blocks`` blocks. For each block, every
build runs it in a fresh child process (the order of the builds flips from block to block), so
that load from other work on the machine hits every build alike. In the chosen build's
children, stock llama-index answers ``--baseline-questions`` of them too (spread over the set;
default all), interleaved with ours, and the follow-up pairs of benchmarks/follow_ups.jsonl
(``--follow-ups``, default all 12) are asked three ways (benchmarks/speed_steps.py). Writes
``speed.json`` and ``speed.md`` (benchmarks/speed_report.py) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
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
    run_child,
    uptime,
    write_report,
)
from benchmarks.llama_build import parse_build, prepare_build  # noqa: E402
from benchmarks.query_steps import build_sample  # noqa: E402
from benchmarks.speed_report import markdown, summarize  # noqa: E402
from benchmarks.speed_steps import STEPS  # noqa: E402

QA_FILE = REPO_ROOT / "evals" / "data" / "sample_qa.jsonl"
FOLLOW_UPS = HERE / "follow_ups.jsonl"


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _spread(items: list[Any], n: int) -> list[Any]:
    if n >= len(items):
        return list(items)
    return [items[int(i * len(items) / n)] for i in range(n)]


def load_questions(n: int) -> list[dict[str, str]]:
    """``n`` questions spread evenly over evals/data/sample_qa.jsonl (every kind in it)."""
    rows = _spread(_rows(QA_FILE), n)
    return [{"id": r["id"], "type": r["type"], "question": r["question"]} for r in rows]


def load_follow_ups(n: int) -> list[dict[str, str]]:
    """The first ``n`` pairs of benchmarks/follow_ups.jsonl, with their first question."""
    by_id = {r["id"]: r for r in _rows(QA_FILE)}
    pairs = []
    for row in _rows(FOLLOW_UPS)[:n]:
        first = by_id[row["first"]]
        pairs.append(
            {"id": first["id"], "question": first["question"], "follow_up": row["follow_up"]}
        )
    return pairs


def _cpu() -> dict[str, Any]:
    from assistant.llm.cpu import FEATURE_FLAGS, cpu_flags, cpu_model

    flags = cpu_flags() or frozenset()
    known = set(FEATURE_FLAGS.values())
    return {
        "model": cpu_model(),
        "cores": os.cpu_count(),
        "flags": sorted(f for f in flags if f in known or "amx" in f),
    }


def _block_params(
    args: argparse.Namespace, name: str, block: int, sample_dir: Path, plan: dict[str, Any]
) -> dict[str, Any]:
    qs = plan["questions"][block :: args.blocks]
    chosen = name == plan["chosen"]
    return {
        "build": name,
        "block": block,
        "index_dir": str(sample_dir),
        "preset": args.preset,
        "n_threads": args.n_threads,
        "model_cache_dir": str(args.model_cache_dir) if args.model_cache_dir else None,
        "questions": qs,
        "baseline_ids": [q["id"] for q in qs if chosen and q["id"] in plan["baseline_ids"]],
        "follow_ups": plan["follow_ups"][block :: args.blocks] if chosen else [],
    }


def run_benchmark(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    started = time.perf_counter()
    builds = dict(parse_build(b) for b in args.build)
    names = list(builds)
    sites = {n: prepare_build(n, p, work / "builds") for n, p in builds.items()}
    questions = load_questions(args.questions)
    n_base = len(questions) if args.baseline_questions is None else args.baseline_questions
    plan = {
        "questions": questions,
        "baseline_ids": [q["id"] for q in _spread(questions, n_base)] if n_base else [],
        "follow_ups": load_follow_ups(args.follow_ups),
        "chosen": args.chosen or names[-1],
    }
    report: dict[str, Any] = {
        "machine": machine_info(),
        "cpu": _cpu(),
        "config": {
            "preset": args.preset,
            "builds": names,
            "wheels_sha256": {n: sites[n][1] for n in names},
            "chosen": plan["chosen"],
            "questions": [q["id"] for q in questions],
            "baseline_ids": plan["baseline_ids"],
            "follow_ups": [p["id"] for p in plan["follow_ups"]],
            "blocks": args.blocks,
            "n_threads": args.n_threads,
        },
        "blocks": [],
    }
    sample_dir = args.sample_index or work / "sample"
    if args.sample_index is None:
        log("building the sample collection (real embeddings) ...")
        run_child(Path(__file__), ["--step", "build-sample", "--params",
                  json.dumps({"index_dir": str(sample_dir)})], work, name="build-sample")  # fmt: skip
    for block in range(args.blocks):
        for name in names if block % 2 == 0 else names[::-1]:
            log(f"block {block}, build {name} ({uptime()}) ...")
            params = _block_params(args, name, block, sample_dir, plan)
            res = run_child(
                Path(__file__),
                ["--step", "block", "--params", json.dumps(params)],
                work,
                name=f"block-{block}-{name}",
                path_first=[str(sites[name][0])],
            )
            if not res["library"].startswith(str(sites[name][0])):
                raise SystemExit(f"build {name} imported llama_cpp from {res['library']}")
            report["blocks"].append({"block": block} | res)
            report["summary"] = summarize(report)
            write_report(report, args.out, "speed", markdown)
    report["machine"]["uptime_after"] = uptime()
    report["machine"]["run_seconds"] = round(time.perf_counter() - started, 1)
    report["summary"] = summarize(report)
    write_report(report, args.out, "speed", markdown)
    return report


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--build", action="append", default=[], help="NAME=WHEEL_OR_FOLDER (2+)")
    p.add_argument("--chosen", help="the build that also runs stock llama-index and follow-ups")
    p.add_argument("--preset", default="base", choices=("tiny", "small", "base"))
    p.add_argument("--questions", type=int, default=31, help="spread over sample_qa.jsonl")
    p.add_argument("--blocks", type=int, default=4, help="children per build")
    p.add_argument("--baseline-questions", type=int, help="stock llama-index (default: all)")
    p.add_argument("--follow-ups", type=int, default=12, help="pairs of follow_ups.jsonl")
    p.add_argument("--n-threads", type=int, help="llama.cpp threads (default: all cores)")
    p.add_argument("--sample-index", type=Path, help="an existing sample-collection index")
    p.add_argument("--model-cache-dir", type=Path, help="where assembled preset models live")
    p.add_argument("--work", type=Path, help="keep installed builds and logs here")
    p.add_argument("--out", type=Path, default=RESULTS_DIR)
    p.add_argument("--step", choices=sorted([*STEPS, "build-sample"]), help=argparse.SUPPRESS)
    p.add_argument("--params", help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.step:
        step = build_sample if args.step == "build-sample" else STEPS[args.step]
        args.result.write_text(json.dumps(step(json.loads(args.params))))
        return 0
    if len(args.build) < 2:
        parser.error("give at least two --build NAME=PATH")
    exit_on_sigterm()
    report = in_work_dir(args.work, "speed-bench-", lambda work: run_benchmark(args, work))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
