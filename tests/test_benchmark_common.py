"""benchmarks/common.py: children measured and killed as promised, the machine described even
where /proc cannot be read, one marker for what was not run."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pytest

from benchmarks import common
from benchmarks.common import (
    NOT_RUN,
    StepFailed,
    fmt,
    machine_info,
    parse_choices,
    parse_sizes,
    percentile,
    ratio,
    run_child,
)

CHILD = """
import argparse, json, sys, time
p = argparse.ArgumentParser()
p.add_argument("--mb", type=int, default=0)
p.add_argument("--sleep", type=float, default=0)
p.add_argument("--fail", action="store_true")
p.add_argument("--result")
a = p.parse_args()
block = bytearray(a.mb * 1024 * 1024)
for i in range(0, len(block), 4096):
    block[i] = 1
time.sleep(a.sleep)
print("child log line", flush=True)
if a.fail:
    sys.exit(3)
open(a.result, "w").write(json.dumps({"answer": 42}))
"""


@pytest.fixture
def child(tmp_path: Path) -> Path:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return script


def test_run_child_returns_its_result_and_its_own_peak_memory(child: Path, tmp_path: Path) -> None:
    small = run_child(child, [], tmp_path, name="small")
    big = run_child(child, ["--mb", "200"], tmp_path, name="big")
    assert small["answer"] == big["answer"] == 42
    # Its own: the 200 MB the child touched (plus the forked driver's pages before exec).
    assert big["peak_rss_mb"] >= 200 and big["peak_rss_mb"] - small["peak_rss_mb"] > 100
    for key in ("process_seconds", "process_cpu_seconds", "loadavg_1min_before"):
        assert big[key] >= 0


def test_run_child_failure_quotes_its_log(child: Path, tmp_path: Path) -> None:
    with pytest.raises(StepFailed, match=r"(?s)exit 3.*child log line"):
        run_child(child, ["--fail"], tmp_path, name="bad", capture_log=True)


def test_run_child_kills_a_child_past_its_time(child: Path, tmp_path: Path) -> None:
    t = time.monotonic()
    with pytest.raises(StepFailed, match="ran past"):
        run_child(child, ["--sleep", "60"], tmp_path, name="slow", timeout=1)
    assert time.monotonic() - t < 30


def test_machine_info_survives_an_unreadable_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    real = machine_info()
    assert real["cpu_count"] >= 1 and real["packages"]["numpy"]
    assert json.loads(json.dumps(real)) == real

    read_text = Path.read_text

    def no_proc(self: Path, *a: object, **k: object) -> str:
        if str(self).startswith("/proc/"):
            raise OSError("no /proc here")
        return read_text(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", no_proc)
    info = machine_info()
    assert info["cpu_model"] == "" and info["ram_gb"] is None
    assert common.rss_mb() is None and common.peak_rss_mb() is None


def test_figures_and_markers() -> None:
    assert fmt(None, ".1f") == NOT_RUN == "not run" and fmt(1.25, ".1f") == "1.2"
    assert ratio(1.0, 0.0) is None and ratio(None, 2.0) is None and ratio(1.0, 4.0) == 0.25
    assert percentile([], 50) is None and percentile([1.0, 3.0], 50, 1000) == 2000.0
    assert parse_sizes("sample, 500") == ["sample", "500"]
    for bad in ("", "0", "big"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_sizes(bad)
    presets = parse_choices(["tiny", "base"])
    assert presets("") == [] and presets("tiny,base") == ["tiny", "base"]
    with pytest.raises(argparse.ArgumentTypeError, match="tiny, base"):
        presets("huge")


def test_report_files_side_by_side(tmp_path: Path) -> None:
    common.write_report({"x": 1}, tmp_path / "out", "demo", lambda r: f"# demo {r['x']}\n")
    assert json.loads((tmp_path / "out" / "demo.json").read_text()) == {"x": 1}
    assert (tmp_path / "out" / "demo.md").read_text() == "# demo 1\n"
