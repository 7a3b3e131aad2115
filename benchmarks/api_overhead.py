#!/usr/bin/env python3
"""API overhead: the OpenAI-compatible API against ``Assistant.stream`` for the same questions.

    python benchmarks/api_overhead.py                                  # tiny model, 6 questions x 3 rounds
    python benchmarks/api_overhead.py --sample-index /tmp/index --preset base --questions 4

One child process (so its memory is its own) loads one :class:`Assistant` (the sample
collection, a local preset), serves ``build_api(assistant)`` with uvicorn on 127.0.0.1 in a
thread, and answers each question four ways, on the same model object:

- ``direct stream``: ``Assistant.stream(q)``; first byte = the first text piece, total = the
  final Answer;
- ``API stream``: ``POST /v1/chat/completions`` with ``stream: true`` through httpx; first byte
  = the first bytes of the response body (the first chunk carries the first piece), total =
  the end of ``data: [DONE]``;
- ``direct ask`` and ``API whole``: ``Assistant.ask(q)`` against the same request without
  streaming, total only.

The direct calls run in a fresh thread each, as the API runs each answer in its own thread:
on a busy machine llama.cpp called from the main thread was 4 to 50 times slower than from a
worker thread of the same process (its OpenMP threads spin while waiting; with
``OMP_WAIT_POLICY=PASSIVE`` both took the same time), which is not what this measures.

The two sides alternate per round (direct first, then the API first), and the questions run in
the same order on each side, so that no call repeats the prompt of the call before it (the
model would then find its whole prompt in its cache). Ratios are per question (API / direct),
summarised by their median. Writes ``api-overhead.json`` and ``api-overhead.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
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
    fmt,
    log,
    machine_info,
    run_child,
    uptime,
    write_report,
)

QA_FILE = REPO_ROOT / "evals" / "data" / "sample_qa.jsonl"
NAME = "api-overhead"
WAYS = ("direct_stream", "api_stream", "direct_ask", "api_whole")


# --- the child: one process, one assistant, both sides ------------------------------------------
def _questions(n: int) -> list[str]:
    rows = [json.loads(line) for line in QA_FILE.read_text().splitlines() if line.strip()]
    answerable = [r["question"] for r in rows if r.get("type") != "unanswerable"]
    return answerable[:n]


def _in_thread(fn: Any) -> dict[str, float]:
    """Run ``fn`` in a fresh thread, as the API runs each answer (see the module docstring)."""
    out: dict[str, Any] = {}

    def work() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:  # raised again in the caller
            out["error"] = exc

    thread = threading.Thread(target=work, name="direct")
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def _direct_stream(assistant: Any, q: str) -> dict[str, float]:
    t0 = time.perf_counter()
    first = None
    for _ in assistant.stream(q):
        if first is None:
            first = time.perf_counter() - t0
    total = time.perf_counter() - t0
    return {"first_byte": first if first is not None else total, "total": total}


def _api_stream(http: Any, q: str) -> dict[str, float]:
    body = {"model": "papers", "messages": [{"role": "user", "content": q}], "stream": True}
    t0 = time.perf_counter()
    first = None
    with http.stream("POST", "/v1/chat/completions", json=body) as resp:
        resp.raise_for_status()
        for _ in resp.iter_raw():
            if first is None:
                first = time.perf_counter() - t0
    total = time.perf_counter() - t0
    return {"first_byte": first if first is not None else total, "total": total}


def _direct_ask(assistant: Any, q: str) -> dict[str, float]:
    t0 = time.perf_counter()
    assistant.ask(q)
    return {"total": time.perf_counter() - t0}


def _api_whole(http: Any, q: str) -> dict[str, float]:
    body = {"model": "papers", "messages": [{"role": "user", "content": q}]}
    t0 = time.perf_counter()
    http.post("/v1/chat/completions", json=body).raise_for_status()
    return {"total": time.perf_counter() - t0}


def measure(p: dict[str, Any]) -> dict[str, Any]:
    """The child step: every question, every way, ``rounds`` times."""
    import httpx

    from assistant.answer.engine import Assistant
    from assistant.app.api import build_api, served
    from assistant.settings import Settings

    settings = Settings(
        index_dir=Path(p["index_dir"]), llm_preset=p["preset"], max_tokens=p["max_tokens"]
    )
    assistant = Assistant(settings)
    assistant.warm_up()
    questions = _questions(p["questions"])
    runs: dict[str, list[list[dict[str, float]]]] = {w: [[] for _ in questions] for w in WAYS}
    with served(build_api(assistant)) as url, httpx.Client(base_url=url, timeout=600) as http:
        _in_thread(lambda: _direct_ask(assistant, "Which papers study grokking?"))  # warm both
        _api_whole(http, "Which papers study grokking?")
        sides = {
            "direct": [("direct_stream", lambda q: _in_thread(lambda: _direct_stream(assistant, q))),
                       ("direct_ask", lambda q: _in_thread(lambda: _direct_ask(assistant, q)))],
            "api": [("api_stream", lambda q: _api_stream(http, q)),
                    ("api_whole", lambda q: _api_whole(http, q))],
        }  # fmt: skip
        for r in range(p["rounds"]):
            order = ("direct", "api") if r % 2 == 0 else ("api", "direct")
            log(f"round {r + 1}/{p['rounds']}: {order[0]} first; {uptime()}")
            for side in order:
                for way, fn in sides[side]:
                    for i, q in enumerate(questions):
                        runs[way][i].append(fn(q))
    return {"questions": questions, "runs": runs, "model": assistant.llm.name}


# --- the driver -----------------------------------------------------------------------------------
def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 4) if values else None


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """Medians per way, and the per-question ratios API / direct (their median)."""
    runs = result["runs"]

    def per_question(way: str, key: str) -> list[float]:
        return [statistics.median(r[key] for r in rounds) for rounds in runs[way]]

    out: dict[str, Any] = {"medians_s": {}, "ratios": {}}
    for way in WAYS:
        keys = ("first_byte", "total") if way.endswith("stream") else ("total",)
        out["medians_s"][way] = {k: _median(per_question(way, k)) for k in keys}
    pairs = {
        "stream_first_byte": ("api_stream", "direct_stream", "first_byte"),
        "stream_total": ("api_stream", "direct_stream", "total"),
        "whole_total": ("api_whole", "direct_ask", "total"),
    }
    for name, (api, direct, key) in pairs.items():
        a, d = per_question(api, key), per_question(direct, key)
        out["ratios"][name] = _median([x / y for x, y in zip(a, d) if y > 0])
        out["ratios"][name + "_extra_ms"] = _median([(x - y) * 1000 for x, y in zip(a, d)])
    return out


def markdown(report: dict[str, Any]) -> str:
    m, s = report["machine"], report["summary"]
    med, rat = s["medians_s"], s["ratios"]
    lines = [
        "# API overhead",
        "",
        f"{m['date']}, {m['cpu_count']} cores ({m['cpu_model']}), Python {m['python']}. "
        f"Model `{report['model']}`, {len(report['questions'])} questions x "
        f"{report['params']['rounds']} rounds, answers capped at {report['params']['max_tokens']} "
        f"tokens. Load before: `{report['uptime_before']}`; after: `{report['uptime_after']}`. "
        "Other work shared the cores: read the ratios (same run, interleaved), not the times.",
        "",
        "Direct = `Assistant.stream(q)` / `Assistant.ask(q)` in the process, each in a fresh "
        "thread (as the API runs each answer; llama.cpp called from the main thread was 4 to 50 "
        "times slower on this busy machine, its OpenMP threads spinning; see the script's "
        "docstring); API = the same "
        "question through `POST /v1/chat/completions` (uvicorn on 127.0.0.1 in the same "
        "process, httpx client), same model object. First byte: the first text piece "
        "(direct) or the first body bytes (API). Ratio = median over questions of API / "
        "direct (each question's median over rounds); extra = median of API - direct.",
        "",
        "| | direct p50 s | API p50 s | ratio API / direct | extra ms |",
        "|---|---:|---:|---:|---:|",
        f"| streaming, time to first byte | {fmt(med['direct_stream']['first_byte'], '.3f')} | "
        f"{fmt(med['api_stream']['first_byte'], '.3f')} | {fmt(rat['stream_first_byte'], '.3f')} | "
        f"{fmt(rat['stream_first_byte_extra_ms'], '.1f')} |",
        f"| streaming, total | {fmt(med['direct_stream']['total'], '.3f')} | "
        f"{fmt(med['api_stream']['total'], '.3f')} | {fmt(rat['stream_total'], '.3f')} | "
        f"{fmt(rat['stream_total_extra_ms'], '.1f')} |",
        f"| not streaming, total | {fmt(med['direct_ask']['total'], '.3f')} | "
        f"{fmt(med['api_whole']['total'], '.3f')} | {fmt(rat['whole_total'], '.3f')} | "
        f"{fmt(rat['whole_total_extra_ms'], '.1f')} |",
        "",
        f"Peak RSS of the measuring process: {fmt(report.get('peak_rss_mb'), '.0f')} MB.",
        "",
    ]
    return "\n".join(lines)


def _ingest_sample(index_dir: Path) -> None:
    from assistant.ingest.pipeline import ingest
    from assistant.settings import Settings

    log(f"ingesting the sample collection into {index_dir}")
    ingest(None, Settings(index_dir=index_dir))


def run_benchmark(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    index_dir = args.sample_index or work / "index"
    if args.sample_index is None:
        _ingest_sample(index_dir)
    params = {
        "index_dir": str(index_dir),
        "preset": args.preset,
        "max_tokens": args.max_tokens,
        "questions": args.questions,
        "rounds": args.rounds,
    }
    before = uptime()
    machine = machine_info()
    child = run_child(
        Path(__file__).resolve(), ["--step", "measure", "--params", json.dumps(params)], work,
        name="measure",
    )  # fmt: skip
    report = {
        "machine": machine,
        "params": params,
        "uptime_before": before,
        "uptime_after": uptime(),
        "model": child["model"],
        "questions": child["questions"],
        "runs": child["runs"],
        "summary": summarize(child),
        "peak_rss_mb": child.get("peak_rss_mb"),
        "loadavg_1min_before": child.get("loadavg_1min_before"),
    }
    write_report(report, args.out, NAME, markdown)
    return report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="tiny", help="local model preset (default tiny)")
    parser.add_argument("--questions", type=int, default=6, help="sample questions (default 6)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--max-tokens", type=int, default=64, help="answer cap (default 64)")
    parser.add_argument("--sample-index", type=Path, help="an existing sample-collection index")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results folder")
    parser.add_argument("--step", choices=["measure"], help=argparse.SUPPRESS)
    parser.add_argument("--params", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.step:
        args.result.write_text(json.dumps(measure(json.loads(args.params))))
        return 0
    exit_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="api-bench-") as tmp:
        report = run_benchmark(args, Path(tmp))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
