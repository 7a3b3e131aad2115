#!/usr/bin/env python3
"""llama-cpp-python builds side by side: prompt and generation speed, time to first token.

    python benchmarks/llama_build.py --build portable=/work/wheels/portable \\
        --build native=/work/wheels/native                 # what we ran
    python benchmarks/llama_build.py --build portable=W1.whl --build native=W2.whl \\
        --preset tiny --rounds 1 --reps 1 --out /tmp/lb    # a quick run

Each ``--build NAME=PATH`` is a llama-cpp-python wheel (or a folder holding one), installed
with ``pip install --no-deps --target`` under ``--work``, or a folder where ``llama_cpp`` is
already importable. The first build is the baseline of the ratios.

Every measurement runs in a fresh child process with ``PYTHONPATH`` pointing at one build;
the child loads the preset's GGUF with the assistant's own loader (``LocalChatModel``) and
sends the same RAG-like chat prompt (the real system prompt, then numbered passages of the
sample abstracts until the prompt has about ``--prompt-tokens`` tokens, then a question)
``--reps`` times, each from an empty KV cache, through ``create_chat_completion`` (what
``LocalChatModel.stream`` calls) with end-of-sequence banned, so that every answer has
``--max-tokens`` tokens. From llama.cpp's own counters
(``llama_perf_context``) it takes prompt tokens/s and generation tokens/s; time to first
token is the wall time from the call to the first streamed piece. Children of the builds
alternate (``--rounds`` rounds, the order flipping each round), so load from other work on
the machine hits both. Writes ``llama-build.json`` and ``llama-build.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.common import child_env  # noqa: E402
from benchmarks.ingest import machine_info  # noqa: E402

QUESTION = "What does each of these papers find, and how do they show it?"
METRICS = ("ttft_s", "prompt_tps", "gen_tps", "prompt_tps_cpu", "gen_tps_cpu")


# --- one child: one build ------------------------------------------------------------------


def rag_messages(model: Any, target_tokens: int) -> list[dict[str, str]]:
    """The system prompt, then numbered passages (first three sentences of sample abstracts)
    until the messages hold about ``target_tokens`` tokens, then the question."""
    from assistant.ingest.readers import default_sample_paths, read_paths
    from assistant.prompts import load_prompt
    from assistant.text import split_sentences

    system = load_prompt("system").render()
    source, answer = load_prompt("source"), load_prompt("answer")
    papers = read_paths(default_sample_paths()).papers
    blocks: list[str] = []
    for number, paper in enumerate(papers, 1):
        passage = " ".join(split_sentences(paper.abstract)[:3])
        blocks.append(source.render(number=number, title=paper.title, passage=passage))
        messages = [
            {"role": "system", "content": system},
            {
                "role": "user",
                "content": answer.render(
                    sources="\n".join(blocks), question=QUESTION, instruction=""
                ),
            },
        ]
        if model.count_message_tokens(messages) >= target_tokens:
            return messages
    raise SystemExit("the sample collection is too small for --prompt-tokens")


def run_child(args: argparse.Namespace) -> dict[str, Any]:
    import llama_cpp

    from assistant.llm.cpu import parse_system_info
    from assistant.llm.local import LocalChatModel

    model = LocalChatModel(Path(args.model), n_ctx=2048, n_threads=args.n_threads)
    messages = rag_messages(model, args.prompt_tokens)
    llm = model.llama
    model.complete([{"role": "user", "content": "Hello"}], max_tokens=2)  # warm-up
    no_eos = {"logit_bias": {llm.token_eos(): -1e9}}  # every answer has max_tokens tokens
    reps = []
    for _ in range(args.reps):
        llm.reset()  # the whole prompt is evaluated again
        llama_cpp.llama_perf_context_reset(llm.ctx)
        start, cpu_start, first, pieces = time.perf_counter(), time.process_time(), None, 0
        chunks = llm.create_chat_completion(
            messages=messages, max_tokens=args.max_tokens, temperature=0.0, stream=True, **no_eos
        )
        for chunk in chunks:
            if not chunk["choices"][0]["delta"].get("content"):
                continue  # the opening {"role": "assistant"} chunk, or an empty piece
            if first is None:
                first, cpu_first = time.perf_counter(), time.process_time()
            pieces += 1
        cpu_end = time.process_time()
        perf = llama_cpp.llama_perf_context(llm.ctx)
        if first is None or perf.n_eval == 0:
            raise SystemExit("the model answered nothing; raise --max-tokens")
        reps.append(
            {
                "ttft_s": round(first - start, 3),
                "prompt_tokens": perf.n_p_eval,
                "prompt_tps": round(perf.n_p_eval / (perf.t_p_eval_ms / 1000), 2),
                "gen_tokens": perf.n_eval,
                "gen_tps": round(perf.n_eval / (perf.t_eval_ms / 1000), 2),
                "prompt_tps_cpu": round(perf.n_p_eval / (cpu_first - cpu_start), 2),
                "gen_tps_cpu": round(perf.n_eval / (cpu_end - cpu_first), 2),
                "pieces": pieces,
            }
        )
    return {
        "library": str(Path(llama_cpp.__file__).parent),
        "version": llama_cpp.__version__,
        "features": sorted(parse_system_info(llama_cpp.llama_print_system_info())),
        "use_extra_bufts": model.use_extra_bufts,
        "load_s": round(model.load_seconds or 0.0, 3),
        "reps": reps,
    }


# --- the driver ----------------------------------------------------------------------------


def prepare_build(name: str, path: Path, work: Path) -> tuple[Path, str]:
    """A folder to put first on PYTHONPATH for this build, and the wheel's sha256 ('' if none)."""
    if (path / "llama_cpp" / "__init__.py").is_file():
        return path, ""
    wheels = [path] if path.is_file() else sorted(path.glob("llama_cpp_python-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"--build {name}={path}: expected one llama_cpp_python wheel there")
    digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()
    target = work / f"{name}-{digest[:12]}"
    if not (target / "llama_cpp" / "__init__.py").is_file():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target)]
            + [str(wheels[0])],
            check=True,
        )
    return target, digest


def measure(name: str, site: Path, args: argparse.Namespace) -> dict[str, Any]:
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join([str(site), env["PYTHONPATH"]])
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--model", args.model]
    cmd += ["--n-threads", str(args.n_threads), "--reps", str(args.reps)]
    cmd += ["--prompt-tokens", str(args.prompt_tokens), "--max-tokens", str(args.max_tokens)]
    load = os.getloadavg()[0]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO_ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"build {name} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if not result["library"].startswith(str(site)):
        raise SystemExit(f"build {name} imported llama_cpp from {result['library']}, not {site}")
    return {"build": name, "loadavg_1min_before": round(load, 2), **result}


def summarise(runs: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """Medians per build over every repetition, and ratios to the first build: of the
    medians, and the median over rounds of the within-round ratio (steadier under drift)."""
    per: dict[str, dict[str, Any]] = {}
    for name in names:
        reps = [r for run in runs if run["build"] == name for r in run["reps"]]
        per[name] = {m: statistics.median(r[m] for r in reps) for m in METRICS}
        per[name]["load_s"] = statistics.median(r["load_s"] for r in runs if r["build"] == name)
        per[name]["n"] = len(reps)
    base = names[0]
    ratios: dict[str, dict[str, float]] = {}
    for name in names[1:]:
        ratios[name] = {m: round(per[name][m] / per[base][m], 3) for m in METRICS}
        paired = {m: [] for m in METRICS}
        for rnd in {run["round"] for run in runs}:
            pair = {run["build"]: run for run in runs if run["round"] == rnd}
            for m in METRICS:
                med = {b: statistics.median(r[m] for r in pair[b]["reps"]) for b in (base, name)}
                paired[m].append(med[name] / med[base])
        ratios[name].update(
            {f"{m}_paired": round(statistics.median(v), 3) for m, v in paired.items()}
        )
    return {"per_build": per, "ratios_to_" + base: ratios}


def write_report(report: dict[str, Any], out: Path) -> str:
    out.mkdir(parents=True, exist_ok=True)
    (out / "llama-build.json").write_text(json.dumps(report, indent=2) + "\n")
    names, s = report["builds"], report["summary"]
    base = names[0]
    lines = [
        f"# llama-cpp-python builds: {report['preset']} preset, "
        f"{report['prompt_tokens']}-token RAG prompt",
        "",
        f"CPU: {report['cpu']['model']} ({os.cpu_count()} cores), flags: "
        f"{' '.join(report['cpu']['flags'])}. {report['n_threads']} llama.cpp thread(s); "
        f"medians over {s['per_build'][base]['n']} repetitions per build in "
        f"{report['rounds']} interleaved rounds; load average "
        f"{min(report['loadavg'])}-{max(report['loadavg'])}. Tokens/s per wall second, and "
        "per CPU second of the process (steadier when other work shares the cores).",
        "",
        "| build | compiled features | time to first token | prompt tok/s (CPU) "
        "| generation tok/s (CPU) | load |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name in names:
        p = s["per_build"][name]
        feats = " ".join(f for f in report["features"][name] if f not in ("LLAMAFILE", "OPENMP"))
        lines.append(
            f"| {name} | {feats} | {p['ttft_s']:.2f} s | {p['prompt_tps']:.1f} "
            f"({p['prompt_tps_cpu']:.1f}) | {p['gen_tps']:.1f} ({p['gen_tps_cpu']:.1f}) "
            f"| {p['load_s']:.1f} s |"
        )
    for name, r in s["ratios_to_" + base].items():
        cells = [
            " / ".join(f"{r[m + k]:.2f}" for k in ("", "_paired"))
            for m in ("ttft_s", "prompt_tps", "prompt_tps_cpu", "gen_tps", "gen_tps_cpu")
        ]
        lines.append(
            f"| {name} / {base}, medians / paired | | {cells[0]} | {cells[1]} ({cells[2]}) "
            f"| {cells[3]} ({cells[4]}) | |"
        )
    text = "\n".join(lines) + "\n"
    (out / "llama-build.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(run_child(args)))
        return 0
    from assistant.llm.cpu import FEATURE_FLAGS, cpu_flags, cpu_model
    from assistant.llm.presets import resolve_model_path
    from assistant.settings import Settings

    args.model = args.model or str(
        resolve_model_path(args.preset, None, Settings().model_cache_dir)
    )
    builds = dict(parse_build(b) for b in args.build)
    args.work.mkdir(parents=True, exist_ok=True)
    sites = {name: prepare_build(name, path, args.work) for name, path in builds.items()}
    names, runs = list(builds), []
    for rnd in range(args.rounds):
        for name in names if rnd % 2 == 0 else names[::-1]:
            run = measure(name, sites[name][0], args)
            runs.append({"round": rnd, **run})
            print(f"round {rnd} {name}: {[r['ttft_s'] for r in run['reps']]} s", file=sys.stderr)
    flags = cpu_flags() or frozenset()
    report = {
        "preset": args.preset,
        "model": args.model,
        "prompt_tokens": runs[0]["reps"][0]["prompt_tokens"],
        "max_tokens": args.max_tokens,
        "n_threads": args.n_threads,
        "rounds": args.rounds,
        "reps": args.reps,
        "builds": names,
        "wheels_sha256": {n: sites[n][1] for n in names},
        "features": {n: next(r["features"] for r in runs if r["build"] == n) for n in names},
        "cpu": {
            "model": cpu_model(),
            "flags": sorted(f for f in flags if f in FEATURE_FLAGS.values() or "amx" in f),
        },
        "loadavg": [r["loadavg_1min_before"] for r in runs],
        "machine": machine_info(),
        "summary": summarise(runs, names),
        "runs": runs,
    }
    print(write_report(report, args.out))
    return 0


def parse_build(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not Path(path).exists():
        raise SystemExit(f"--build {text!r}: expected NAME=PATH of a wheel or folder that exists")
    return name, Path(path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--build", action="append", default=[], help="NAME=WHEEL_OR_FOLDER (2+)")
    p.add_argument("--preset", default="base", choices=("tiny", "small", "base"))
    p.add_argument("--model", default=None, help="a GGUF file instead of the preset's")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--reps", type=int, default=2, help="prompts per child")
    p.add_argument("--prompt-tokens", type=int, default=530, help="(messages; ~550 templated)")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--n-threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--work", type=Path, default=Path("/tmp/llama-build-bench"))
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not args.child and len(args.build) < 2:
        p.error("give at least two --build NAME=PATH")
    return args


if __name__ == "__main__":
    sys.exit(main())
