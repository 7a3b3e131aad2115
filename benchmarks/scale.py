#!/usr/bin/env python3
"""Scale benchmark: a 100k-chunk collection, today's code against this branch, side by side.

    python benchmarks/scale.py --work /tmp/scale                 # everything (~30 min here)
    python benchmarks/scale.py --work /tmp/scale --parts query   # one part: build, query,
                                                                 # lexical, onnx, ray

1. **build**: the sample collection (real embeddings) and a collection of ``--chunks`` chunks
   (``benchmarks/query.py``'s ``build_synthetic``: the sample chunks plus synthetic papers from
   real abstract sentences, with synthetic vectors), then the lexical index from scratch
   (every chunk read from Chroma: what the first ingest after an upgrade does).
2. **query**, per backend (embedded Chroma, ``chroma run`` server) and per code (``today`` =
   the git revision ``--baseline-rev`` exported to a folder, ``ours`` = this checkout), each
   in a fresh process: the first question after the start (clock from opening the index; the
   embedder is loaded before), then retrieval latency over ``--questions`` x ``--rounds``,
   RSS after the first question and at the end, peak RSS. Steps interleave today / ours.
3. **lexical**: keeping the lexical index in step at ingest: a rebuild from the token store,
   and an incremental ingest of ``--add`` new papers (real embeddings) into the big collection.
4. **onnx**: the int8 ONNX MiniLM against the torch model: throughput (interleaved rounds over
   the same texts), memory (one process each), retrieval quality (hit@1, nDCG@10 of
   ``Assistant.retrieve``: the sample questions over the sample collection, the SciFact claims
   over their abstracts; no LLM).
5. **ray**: ingest rate of the sample collection into a ``chroma run`` server, single process
   against ``ingest.py --ray`` (local Ray, ``--ray-workers`` actors).

Writes ``scale.json`` and ``scale.md`` to ``--out`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import common  # noqa: E402
from benchmarks.scale_steps import STEPS, pct  # noqa: E402

if __name__ == "__main__" and "--code" in sys.argv:  # a child running another checkout's code:
    # ``benchmarks`` is imported from here already; ``assistant`` will come from that checkout.
    sys.path.insert(0, sys.argv[sys.argv.index("--code") + 1])

PARTS = ("build", "query", "lexical", "onnx", "ray")


def _log(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def run_child(step: str, params: dict[str, Any], work: Path, code: Path | None = None) -> dict:
    """One step of this script in a fresh process (:func:`benchmarks.common.run_child`: its
    peak RSS, process time and load before), with ``code`` the checkout it imports."""
    args = ["--step", step, "--params", json.dumps(params)]
    if code is not None:
        args += ["--code", str(code)]
    return common.run_child(Path(__file__).resolve(), args, work, name=step, cwd=code or REPO_ROOT)


def export_baseline(rev: str, work: Path) -> Path:
    """Today's code: ``git archive REV`` into a folder (no worktree, no checkout change)."""
    dst = work / f"code-{rev}"
    if not (dst / "assistant").is_dir():
        dst.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", rev], cwd=REPO_ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dst)], input=archive, check=True)
    return dst


# --- parts -----------------------------------------------------------------------------------
def part_build(args: argparse.Namespace, report: dict) -> None:
    work = args.work
    marker = work / "built.json"
    spec = {"chunks": args.chunks, "seed": args.seed}
    if marker.is_file() and json.loads(marker.read_text()).get("spec") == spec:
        report["build"] = json.loads(marker.read_text())["build"] | {"reused": True}
        return
    _log("building the sample collection ...")
    sample = run_child("build-sample", {"index_dir": str(work / "sample")}, work)
    _log(f"building {args.chunks} chunks with synthetic vectors ...")
    params = {"index_dir": str(work / "big"), "sample_dir": str(work / "sample")}
    big = run_child("build-big", params | {"n_chunks": args.chunks, "seed": args.seed}, work)
    report["build"] = {"sample": sample, "big": big}
    marker.write_text(json.dumps({"spec": spec, "build": report["build"]}))


def _chroma_server(path: Path, port: int) -> subprocess.Popen:
    exe = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    log = open(path.parent / f"chroma-{port}.log", "wb")  # noqa: SIM115 - closed with the process
    cmd = [exe, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    import urllib.request

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2):
                return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("chroma run did not start")


def part_query(args: argparse.Namespace, report: dict) -> None:
    from benchmarks.query import load_questions

    work, base = args.work, export_baseline(args.baseline_rev, args.work)
    questions = load_questions(args.questions)
    rows = []
    for backend in ("embedded", "server"):
        server = None
        params = {"index_dir": str(work / "big"), "questions": questions, "rounds": args.rounds}
        params["lexical_dir"] = str(work / "big" / "lexical")
        if backend == "server":
            port = args.port
            server = _chroma_server(work / "big", port)
            params["chroma_url"] = f"http://127.0.0.1:{port}"
        try:
            order = ("today", "ours") if backend == "embedded" else ("ours", "today")
            for who in order:
                _log(f"query: {backend}, {who} ...")
                code = base if who == "today" else None
                res = run_child("query", params | {"who": who}, work, code)
                rows.append({"backend": backend, "code": who} | res)
        finally:
            if server is not None:
                server.terminate()
                server.wait(60)
    report["query"] = rows


def part_lexical(args: argparse.Namespace, report: dict) -> None:
    params = {"index_dir": str(args.work / "big"), "add": args.add, "seed": args.seed + 1}
    _log("lexical: rebuild from the token store, incremental ingest ...")
    report["lexical"] = run_child("lexical", params, args.work)


def part_onnx(args: argparse.Namespace, report: dict) -> None:
    out: dict[str, Any] = {"quality": {}, "memory": {}}
    for model in ("all-MiniLM-L6-v2", "all-MiniLM-L6-v2-onnx-int8"):
        _log(f"onnx: retrieval quality with {model} ...")
        params = {"model": model, "work": str(args.work / f"quality-{model}")}
        out["quality"][model] = run_child("quality", params, args.work)
    _log("onnx: throughput, interleaved ...")
    out["throughput"] = run_child("throughput", {"rounds": 3, "texts": 256}, args.work)
    report["onnx"] = out


def part_ray(args: argparse.Namespace, report: dict) -> None:
    port = args.port + 1
    data = args.work / "ray-chroma"
    shutil.rmtree(data, ignore_errors=True)
    server = _chroma_server(data, port)
    try:
        params = {"chroma_url": f"http://127.0.0.1:{port}", "workers": args.ray_workers}
        params["lexical_dir"] = str(args.work / "ray-lexical")
        _log("ray: single process vs --ray into a chroma server ...")
        report["ray"] = run_child("ray", params, args.work)
    finally:
        server.terminate()
        server.wait(60)


PART_FNS = {
    "build": part_build,
    "query": part_query,
    "lexical": part_lexical,
    "onnx": part_onnx,
    "ray": part_ray,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--work", type=Path, help="folder for the collections (required)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"any of {', '.join(PARTS)}")
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--add", type=int, default=100, help="papers of the incremental ingest")
    parser.add_argument("--ray-workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8765, help="chroma run ports (P and P+1)")
    parser.add_argument("--baseline-rev", default="main", help="git revision of today's code")
    parser.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--params", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--code", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step:
        args.result.write_text(json.dumps(STEPS[args.step](json.loads(args.params))))
        return 0
    from benchmarks.common import machine_info
    from benchmarks.scale_report import markdown

    if args.work is None:
        parser.error("--work DIR is required")
    args.work.mkdir(parents=True, exist_ok=True)
    out_json = args.out / "scale.json"
    report = json.loads(out_json.read_text()) if out_json.is_file() else {}
    report["machine"] = machine_info()
    for part in [p.strip() for p in args.parts.split(",") if p.strip()]:
        if part not in PART_FNS:
            parser.error(f"unknown part {part!r}: use {', '.join(PARTS)}")
        PART_FNS[part](args, report)
        args.out.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "scale.md").write_text(markdown(report, pct))
    print((args.out / "scale.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
