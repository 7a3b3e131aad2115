"""benchmarks/query.py runs end to end on a tiny setup and writes what it promises (the real
figures are in benchmarks/results/query.*)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from source_tree import REPO_ROOT

from assistant.settings import Settings


@pytest.mark.slow
def test_query_benchmark_smoke(tmp_path: Path, sample_index_copy: Path, model_cache: Path) -> None:
    out = tmp_path / "out"
    cmd = [sys.executable, str(REPO_ROOT / "benchmarks" / "query.py"), "--sizes", "500"]
    cmd += [
        "--presets",
        "tiny",
        "--questions",
        "3",
        "--rounds",
        "1",
        "--out",
        str(out),
        "--work",
        str(tmp_path),
    ]
    # Reuse the session's sample index; keep the model part short (one baseline question).
    cmd += ["--sample-index", str(sample_index_copy), "--model-cache-dir", str(model_cache)]
    cmd += ["--llm-questions", "2", "--baseline-llm-questions", "1", "--max-tokens", "16"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=850, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "query.json").read_text())

    (row,) = report["retrieval"]
    assert row["collection"] == "synth-500" and row["chunks"] == 500
    for system in ("ours", "baseline"):
        assert row[system]["n"] == 3
        assert 0 < row[system]["p50_ms"] <= row[system]["p95_ms"]
    assert row["ratio_p50"] > 0 and row["bm25_build_s"] > 0 and row["index_load_s"] > 0
    assert row["peak_rss_mb"] > 0
    # The report says the top_k the run used: the default of Settings.
    top_k = Settings.model_fields["top_k"].default
    assert row["top_k"] == report["config"]["top_k"] == top_k
    assert f"top_k={top_k}" in report["config"]["ours"]
    (build,) = report["builds"]
    assert build["synthetic_chunks"] + build["sample_chunks"] == 500

    (llm,) = report["llm"]
    assert llm["preset"] == "tiny" and llm["paired_questions"] == 1
    ours, base = llm["ours"], llm["baseline"]
    assert ours["n"] == 2 and base["n"] == 1
    assert ours["ttft_p50_s"] > 0 and base["ttft_p50_s"] > 0
    # Ours sends the sentences that matter; the stock engine sends five whole chunks.
    assert 0 < ours["prompt_tokens_p50"] < base["prompt_tokens_p50"]
    assert llm["prompt_tokens_ratio_paired_p50"] < 1
    assert (
        report["machine"]["cpu_count"] >= 1 and "load average" in report["machine"]["uptime_after"]
    )
    md = (out / "query.md").read_text()
    assert "p50 ratio" in md and f"(top_k={top_k})" in md
