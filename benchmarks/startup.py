#!/usr/bin/env python3
"""Start-up benchmark: how long ``make chat`` takes, on an installed machine, to serve the page
and to be ready to answer, for this checkout against another tree (the code before).

    python benchmarks/startup.py --venv .venv --baseline /tmp/old-tree --index-dir /tmp/index
    python benchmarks/startup.py --venv .venv --baseline /tmp/old-tree --baseline-venv /tmp/venv-old \\
        --index-dir /tmp/index --rounds 3                                    # what we ran

Each run is what ``make chat`` runs, in the tree's folder: ``scripts/setup.sh`` (a second run:
everything is installed), then ``python -m assistant serve --ingest-if-missing --port P -v``
over an existing index (``ASSISTANT_INDEX_DIR``). The clock starts before set-up. **page** is
when ``GET /`` first answers 200; **ready** is when the assistant can answer at once: the
serve log's "ready after" line (this code, which serves the page first and loads behind it),
or the page itself (code that loads everything before serving). Set-up's own time is recorded
apart. Runs alternate between the trees (``--rounds``), the order flipping each round.
``--venv`` / ``--baseline-venv`` are the environments set-up installs into (each tree's
editable install lives in its own). Writes ``startup.json`` and ``startup.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
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
    percentile,
    ratio,
    uptime,
    write_report,
)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(tree: Path, venv: Path, index_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env.pop("PYTHONPATH", None)  # the tree's own editable install, as make chat has it
    env |= {
        "PYTHON": str(venv / "bin" / "python"),
        "ASSISTANT_INDEX_DIR": str(index_dir),
        "HF_HUB_OFFLINE": "1",
        "ANONYMIZED_TELEMETRY": "False",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
    }
    return env


def one_run(tree: Path, venv: Path, index_dir: Path, timeout: float) -> dict[str, Any]:
    """Set-up, then serve; the seconds to set-up's end, to the page, and to ready."""
    env, port = _env(tree, venv, index_dir), _free_port()
    t0 = time.perf_counter()
    setup = subprocess.run(
        ["scripts/setup.sh"], cwd=tree, env=env, capture_output=True, text=True, timeout=timeout
    )
    setup_s = time.perf_counter() - t0
    if setup.returncode != 0:
        raise SystemExit(f"set-up failed in {tree}:\n{setup.stderr[-2000:]}")
    cmd = [env["PYTHON"], "-m", "assistant", "serve", "--ingest-if-missing", "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "-v"], cwd=tree, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    lines: list[str] = []
    ready_at: list[float] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "ready after" in line and not ready_at:
                ready_at.append(time.perf_counter() - t0)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    page_s = None
    try:
        while time.perf_counter() - t0 < timeout and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    if r.status == 200:
                        page_s = time.perf_counter() - t0
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        serves_first = any("serving the chat on" in x for x in lines) or any(
            "the model loads behind it" in x for x in lines
        )
        if serves_first:
            while not ready_at and time.perf_counter() - t0 < timeout and proc.poll() is None:
                time.sleep(0.1)
        ready_s = ready_at[0] if ready_at else (None if serves_first else page_s)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    if page_s is None:
        raise SystemExit(f"no page from {tree}:\n{''.join(lines[-30:])}")
    return {
        "setup_s": round(setup_s, 2),
        "page_s": round(page_s, 2),
        "ready_s": round(ready_s, 2) if ready_s is not None else None,
        "serves_before_loading": serves_first,
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for system in ("ours", "baseline"):
        mine = [r for r in runs if r["system"] == system]
        out[system] = {
            f"{k}_p50": percentile([r[k] for r in mine if r[k] is not None], 50)
            for k in ("setup_s", "page_s", "ready_s")
        } | {"n": len(mine)}
    out["page_ratio"] = ratio(out["ours"]["page_s_p50"], out["baseline"]["page_s_p50"])
    return out


def markdown(report: dict[str, Any]) -> str:
    m, s, cfg = report["machine"], report["summary"], report["config"]
    loads = [r["loadavg_1min_before"] for r in report["runs"]]
    lines = [
        "# Start-up: `make chat` on an installed machine (set-up check, then serve)",
        "",
        f"CPU: {m['cpu_model']} ({m['cpu_count']} cores), {m['date']}, git {m['git']}; "
        f"baseline tree {cfg['baseline']}. {len(report['runs'])} runs, rounds interleaved; "
        f"1-minute load average before each run {min(loads)}-{max(loads)}.",
        "",
        "| code | runs | set-up check p50 | page served p50 | ready to answer p50 |",
        "|---|---:|---:|---:|---:|",
    ]
    for system, label in (("ours", "this checkout"), ("baseline", "baseline tree")):
        f = s[system]
        lines.append(
            f"| {label} | {f['n']} | {fmt(f['setup_s_p50'], '.1f')} s "
            f"| {fmt(f['page_s_p50'], '.1f')} s | {fmt(f['ready_s_p50'], '.1f')} s |"
        )
    lines += ["", f"Page served, ours / baseline: {fmt(s['page_ratio'], '.2f')}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--venv", type=Path, required=True, help="environment of this checkout")
    p.add_argument("--baseline", type=Path, required=True, help="the other tree (e.g. git archive)")
    p.add_argument("--baseline-venv", type=Path, help="its environment (default: --venv)")
    p.add_argument("--index-dir", type=Path, required=True, help="an existing index")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    p.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = p.parse_args(argv)
    exit_on_sigterm()
    trees = {
        "ours": (REPO_ROOT, args.venv),
        "baseline": (args.baseline, args.baseline_venv or args.venv),
    }
    report: dict[str, Any] = {
        "machine": machine_info(),
        "config": {"baseline": str(args.baseline), "index_dir": str(args.index_dir)},
        "runs": [],
    }
    order = list(trees)
    for rnd in range(args.rounds):
        for system in order if rnd % 2 == 0 else order[::-1]:
            tree, venv = trees[system]
            load = round(os.getloadavg()[0], 2)
            run = one_run(tree.resolve(), venv.resolve(), args.index_dir, args.timeout)
            report["runs"].append(
                {"system": system, "round": rnd, "loadavg_1min_before": load} | run
            )
            log(f"round {rnd} {system}: {run} ({uptime()})")
    report["machine"]["uptime_after"] = uptime()
    report["summary"] = summarize(report["runs"])
    write_report(report, args.out, "startup", markdown)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
