#!/usr/bin/env python3
"""Ingest memory on big inputs: peak RSS of ingesting a generated arXiv-snapshot JSONL file.

    python benchmarks/ingest_stream.py                            # 64 MB side by side, then 1 GB
    python benchmarks/ingest_stream.py --sizes 8 --out /tmp/s     # a quick run
    python benchmarks/ingest_stream.py --sizes 64,1024 --baseline-max 64 --work /tmp/stream

For each size (megabytes of JSONL), a file in the arXiv metadata snapshot schema is written
(every field of the snapshot: ``id``, ``submitter``, ``authors``, ``title``, ``comments``,
``journal-ref``, ``doi``, ``report-no``, ``categories``, ``license``, ``abstract`` wrapped like
the snapshot's, ``versions``, ``update_date``, ``authors_parsed``), with the synthetic titles
and abstracts of ``benchmarks/synth.py``. Then, each in a fresh child process whose peak RSS
(``ru_maxrss`` from ``wait4``) is its own:

- ``ours``: ``assistant.ingest.pipeline.ingest`` of this tree into a new on-disk index (cold);
- ``baseline``: the same call in the code before streaming (``--baseline-ref``, default
  a64c849, extracted with ``git archive``), on sizes up to ``--baseline-max`` only: it reads
  the whole file into memory;
- ``warm``: ours again on the same index (nothing changed: nothing is embedded), at the
  largest size;
- ``states``: ``PaperIndex.paper_states()`` over the largest index, the call the old ingest
  made on every run (every chunk's metadata into one dict), for its memory.

The embedder is NOT the real model: embedding ~500,000 abstracts with all-MiniLM-L6-v2 takes
many hours on 2 CPU cores. A deterministic stand-in returns a 384-d unit vector per text from
a hash of the text, costs microseconds, and has the real model's id and dimension, so the
index, chunking, batching and Chroma writes are the real ones. Peak RSS therefore leaves out
torch and the model (about 0.6 GB, the same for any input size: see benchmarks/README.md).

Writes ``ingest-stream.json`` and ``ingest-stream.md`` to ``--out`` (default
benchmarks/results/) and prints the table.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.common import child_env  # noqa: E402

DIM = 384
MODEL_ID = "all-MiniLM-L6-v2"
BASELINE_REF = "a64c849"


class HashEmbedder:
    """A stand-in for the embedder: a unit vector per text from a hash of it (not semantic)."""

    model_id = MODEL_ID
    dim = DIM

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        out = np.empty((len(texts), DIM), dtype=np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
            v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
            out[i] = v / np.linalg.norm(v)
        return out


# --- the input file ------------------------------------------------------------------------------
def arxiv_records(seed: int) -> Iterator[dict[str, Any]]:
    """Endless arXiv-snapshot records with unique ids and titles."""
    from benchmarks.synth import _abstract, _authors, _title, sentence_pools

    rng = random.Random(seed)
    pools = sentence_pools()
    titles: set[str] = set()
    licenses = ("http://arxiv.org/licenses/nonexclusive-distrib/1.0/", None)
    i = 0
    while True:
        title = _title(rng)
        if title.casefold() in titles:
            title = f"{title} ({i})"
        titles.add(title.casefold())
        authors = _authors(rng)
        year, month = 10 + i // 1_200_000, 1 + (i // 100_000) % 12
        abstract = "  " + "\n".join(textwrap.wrap(_abstract(rng, pools), 78)) + "\n"
        yield {
            "id": f"{year:02d}{month:02d}.{i % 100_000:05d}",
            "submitter": authors.split(", ")[0],
            "authors": authors,
            "title": "\n  ".join(textwrap.wrap(title, 70)),
            "comments": f"{rng.randint(4, 40)} pages, {rng.randint(1, 12)} figures",
            "journal-ref": None,
            "doi": None,
            "report-no": None,
            "categories": " ".join(rng.sample(["cs.LG", "cs.CL", "cs.CV", "stat.ML"], 2)),
            "license": rng.choice(licenses),
            "abstract": abstract,
            "versions": [{"version": "v1", "created": "Mon, 2 Apr 2007 19:18:42 GMT"}],
            "update_date": f"20{year:02d}-{month:02d}-{rng.randint(1, 28):02d}",
            "authors_parsed": [[*reversed(a.split(" ", 1)), ""] for a in authors.split(", ")],
        }
        i += 1


def write_input(path: Path, megabytes: int, seed: int) -> dict[str, Any]:
    """Write records until the file holds ``megabytes`` MiB; reuse a file already written."""
    meta_path = path.with_suffix(".meta.json")
    if path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("megabytes") == megabytes and meta.get("seed") == seed:
            return meta
    target, n = megabytes * 1024 * 1024, 0
    t0 = time.perf_counter()
    with open(path, "w", encoding="utf-8") as f:
        for rec in arxiv_records(seed):
            if f.tell() >= target:
                break
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    meta = {"megabytes": megabytes, "seed": seed, "records": n, "bytes": path.stat().st_size,
            "write_seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
    meta_path.write_text(json.dumps(meta))
    return meta


# --- one measured step (a child process) ----------------------------------------------------------
def _vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def run_step(step: str, path: Path, index_dir: Path, result: Path) -> None:
    """``ours``/``baseline``/``warm``: ingest ``path``; ``states``: read every paper's state."""
    import chromadb  # noqa: F401  (imports before the clock, as for every step)
    import llama_index.core  # noqa: F401

    from assistant.ingest.pipeline import ingest
    from assistant.settings import Settings

    settings = Settings(index_dir=index_dir)
    t0, c0 = time.perf_counter(), time.process_time()
    rss_before = _vm_hwm_mb()
    if step == "states":
        from assistant.index.chroma import PaperIndex

        out: dict[str, Any] = {"papers": len(PaperIndex(settings).paper_states())}
    else:
        report = ingest([path], settings, embedder=HashEmbedder())  # type: ignore[arg-type]
        out = {k: getattr(report, k) for k in ("papers_total", "papers_new", "papers_unchanged",
                                               "chunks_total", "chunks_written")}  # fmt: skip
        out["skipped"] = len(report.skipped)
    import assistant

    out.update(
        code=str(Path(assistant.__file__).parent),
        seconds=round(time.perf_counter() - t0, 1),
        cpu_seconds=round(time.process_time() - c0, 1),
        vm_hwm_before_mb=rss_before,
        vm_hwm_mb=_vm_hwm_mb(),
    )
    result.write_text(json.dumps(out))


def measure(step: str, path: Path, index_dir: Path, work: Path, pythonpath: Path) -> dict:
    """Run one step in a fresh niced child; its peak RSS from ``wait4``."""
    result = work / f"{step}-{time.monotonic_ns()}.json"
    log = result.with_suffix(".log")
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), str(REPO_ROOT)])
    cmd = [sys.executable, str(Path(__file__).resolve()), "--step", step, "--input", str(path),
           "--index-dir", str(index_dir), "--result", str(result)]  # fmt: skip
    load = os.getloadavg()[0]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=work)
        _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0 or not result.is_file():
        raise RuntimeError(f"{step} failed ({code}): {log.read_text(errors='replace')[-3000:]}")
    child = json.loads(result.read_text())
    return {"step": step, "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "load1": load, **child}


def baseline_tree(work: Path, ref: str) -> Path:
    """The ``assistant`` package as of ``ref`` (the code before streaming), for the baseline."""
    dest = work / f"baseline-{ref}"
    if not (dest / "assistant" / "__init__.py").is_file():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", "--format=tar", ref, "assistant", "prompts"],
            cwd=REPO_ROOT, check=True, capture_output=True,
        ).stdout  # fmt: skip
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(dest, filter="data")
    return dest


# --- the driver ------------------------------------------------------------------------------------
def run(sizes: list[int], baseline_max: int, ref: str, work: Path, seed: int) -> list[dict]:
    work.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    old = baseline_tree(work, ref)
    for k, mb in enumerate(sizes):
        path = work / f"arxiv-{mb}mb.jsonl"
        meta = write_input(path, mb, seed)
        print(f"{mb} MB: {meta['records']:,} records", flush=True)
        systems = ["ours", "baseline"] if mb <= baseline_max else ["ours"]
        if k % 2:
            systems.reverse()  # alternate who goes first
        for system in systems:
            index_dir = work / f"index-{system}-{mb}"
            shutil.rmtree(index_dir, ignore_errors=True)
            tree = old if system == "baseline" else REPO_ROOT
            row = measure("baseline" if system == "baseline" else "ours", path, index_dir,
                          work, tree)  # fmt: skip
            rows.append({"megabytes": mb, "records": meta["records"], "system": system, **row})
            print(json.dumps(rows[-1]), flush=True)
        if mb == max(sizes):
            for step in ("warm", "states"):
                row = measure(step, path, work / f"index-ours-{mb}", work, REPO_ROOT)
                rows.append({"megabytes": mb, "records": meta["records"], "system": "ours",
                             **row})  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| input | records | step | system | peak RSS | seconds | CPU s | papers | load |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        papers = r.get("papers_total", r.get("papers", ""))
        lines.append(
            f"| {r['megabytes']} MB | {r['records']:,} | {r['step']} | {r['system']} | "
            f"{r['peak_rss_mb']:,.0f} MB | {r['seconds']:,.0f} | {r['cpu_seconds']:,.0f} | "
            f"{papers:,} | {r['load1']:.1f} |"
        )
    by = {(r["megabytes"], r["step"]): r for r in rows}
    for mb in sorted({r["megabytes"] for r in rows}):
        ours, base = by.get((mb, "ours")), by.get((mb, "baseline"))
        if ours and base:
            lines.append(
                f"\nAt {mb} MB, ours / baseline: peak RSS {ours['peak_rss_mb'] / base['peak_rss_mb']:.2f}, "
                f"wall time {ours['seconds'] / base['seconds']:.2f}, CPU {ours['cpu_seconds'] / base['cpu_seconds']:.2f}."
            )
    lines.append(
        "\nEmbedder: a hash-based stand-in with the real model's id and dimension (384), not "
        "all-MiniLM-L6-v2; peak RSS leaves out torch and the model (about 0.6 GB)."
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="64,1024", help="input sizes in MiB, comma-separated")
    p.add_argument("--baseline-max", type=int, default=64, help="run the baseline up to this size")
    p.add_argument("--baseline-ref", default=BASELINE_REF, help="git ref of the baseline code")
    p.add_argument("--work", type=Path, help="folder for inputs and indexes (default: a temp dir)")
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--step", help=argparse.SUPPRESS)
    p.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--index-dir", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.step:
        run_step(args.step, args.input, args.index_dir, args.result)
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="ingest-stream-"))
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    rows = run(sizes, args.baseline_max, args.baseline_ref, work, args.seed)
    commit = (
        os.environ.get("BENCH_COMMIT")
        or subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip()
    )
    report = {
        "started": started,
        "commit": commit,
        "baseline_ref": args.baseline_ref,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },  # fmt: skip
        "embedder": "HashEmbedder: 384-d unit vectors from a hash of the text (not semantic)",
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ingest-stream.json").write_text(json.dumps(report, indent=1) + "\n")
    md = table(rows)
    (args.out / "ingest-stream.md").write_text("# Ingest memory on big inputs\n\n" + md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
