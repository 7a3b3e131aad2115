"""benchmarks/api_overhead.py runs and writes what it promises (two questions, one round, the
tiny model; the real figures are in benchmarks/results/api-overhead.*)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from source_tree import REPO_ROOT


@pytest.mark.slow
def test_api_overhead_benchmark_smoke(tmp_path: Path, sample_index_copy: Path) -> None:
    out = tmp_path / "out"
    cmd = [sys.executable, str(REPO_ROOT / "benchmarks" / "api_overhead.py")]
    cmd += ["--questions", "2", "--rounds", "1", "--max-tokens", "16", "--out", str(out)]
    cmd += ["--sample-index", str(sample_index_copy)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "api-overhead.json").read_text())
    assert len(report["questions"]) == 2
    for way, runs in report["runs"].items():
        assert [len(r) for r in runs] == [1, 1], way
    ratios = report["summary"]["ratios"]
    for name in ("stream_first_byte", "stream_total", "whole_total"):
        assert ratios[name] > 0
    med = report["summary"]["medians_s"]["api_stream"]
    assert 0 < med["first_byte"] <= med["total"]
    assert "| streaming, time to first byte |" in (out / "api-overhead.md").read_text()
