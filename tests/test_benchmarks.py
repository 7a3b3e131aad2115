"""The benchmarks run and write what they promise (tiny sizes; the real figures are in
benchmarks/results)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from source_tree import REPO_ROOT

from assistant.ingest.readers import read_paths
from benchmarks.synth import synth_records, write_jsonl


def test_synth_records_are_deterministic_unique_and_readable(tmp_path: Path) -> None:
    records = synth_records(200, seed=3)
    assert records == synth_records(200, seed=3)
    assert records != synth_records(200, seed=4)
    assert len({r["id"] for r in records}) == 200
    assert len({r["title"].casefold() for r in records}) == 200
    # Realistic length: the sample abstracts are ~1,900 characters at the median.
    lengths = sorted(len(r["abstract"]) for r in records)
    assert 1200 < lengths[100] < 2600
    read = read_paths([write_jsonl(tmp_path / "p.jsonl", 50, seed=3)])
    assert len(read.papers) == 50 and not read.skipped and read.duplicates == 0
    assert read.papers[0].paper_id == records[0]["id"]


@pytest.mark.slow
def test_ingest_benchmark_smoke(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "ingest.py"), "--sizes", "30"]
        + ["--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "ingest.json").read_text())
    rows = report["rows"]
    assert {(r["system"], r["step"]) for r in rows} == {
        (s, step) for s in ("ours", "baseline") for step in ("cold", "warm")
    }
    for r in rows:
        assert r["collection"] == "synth-30" and r["n_papers"] == 30
        assert r["seconds"] > 0 and r["papers_per_s"] > 0 and r["peak_rss_mb"] > 0
        assert r["chunks"] >= 30
    by = {(r["system"], r["step"]): r for r in rows}
    assert by["ours", "warm"]["chunks_embedded"] == 0  # incremental: nothing to embed
    assert by["baseline", "warm"]["chunks"] == 2 * by["baseline", "cold"]["chunks"]
    ratios = {r["step"]: r for r in report["ratios"]}
    assert ratios["cold"]["time_ratio"] > 0 and ratios["warm"]["memory_ratio"] > 0
    assert report["machine"]["cpu_count"] >= 1
    assert "time ratio" in (tmp_path / "ingest.md").read_text()


def test_every_committed_result_uses_the_current_timing_keys() -> None:
    """A child's wall time is ``process_seconds`` (benchmarks/common.run_child); results
    written before that name existed were migrated, and say so."""
    old: list[str] = []

    def walk(obj: object, where: str) -> None:
        if isinstance(obj, dict):
            old.extend(f"{where}/{k}" for k in obj if k == "process_s")
            for k, v in obj.items():
                walk(v, f"{where}/{k}")
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                walk(v, f"{where}[{i}]")

    results = sorted((REPO_ROOT / "benchmarks" / "results").glob("*.json"))
    assert results
    for path in results:
        walk(json.loads(path.read_text(encoding="utf-8")), path.name)
    assert not old, f"results with the old process_s key: {old}"
