"""``python -m evals run|compare|fit-verifier|fit-roles``: evaluate, compare two runs, fit the
verifier or the sentence-role classifier.

    python -m evals run --dataset sample --limit 5 --preset small
    python -m evals run                      # everything: both datasets, base model, baseline
    python -m evals compare out/evals/A out/evals/B
    python -m evals fit-verifier             # see evals/fit_verifier.py
    python -m evals fit-roles [--write]      # see evals/fit_roles.py

``run`` writes report.json, report.md and PNG charts into ``--out`` (default
``out/evals/<timestamp>``) and prints, as its last line, a JSON summary of the aggregates.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from assistant.app.options import (
    add_setting_flags,
    positive_int,
    print_json,
    run_guarded,
    settings_from_args,
    setup_logging,
    tqdm_progress,
)
from assistant.llm.presets import preset_names
from assistant.settings import Settings

DEFAULT_OUT_ROOT = Path("out") / "evals"


def _count(value: str) -> int:
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {n}")
    return n


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m evals", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the evaluation and write a report")
    run.add_argument(
        "--dataset",
        action="append",
        choices=["sample", "scifact"],
        help="dataset to run (repeat for several; default: both)",
    )
    run.add_argument("--limit", type=positive_int, help="at most N cases per dataset (types mixed)")
    run.add_argument(
        "--judge", choices=["local", "openai"], default="local",
        help="entailment judge: the local GGUF model, or the OpenAI-compatible server of the "
        "settings (ASSISTANT_OPENAI_BASE_URL / _MODEL / _API_KEY)",
    )  # fmt: skip
    add_setting_flags(run, "eval")  # --preset, --max-tokens
    run.add_argument(
        "--judge-preset", choices=preset_names(),
        help="local model preset for the judge (default: the assistant's preset)",
    )  # fmt: skip
    run.add_argument("--out", type=Path, help="output folder (default out/evals/<timestamp>)")
    run.add_argument(
        "--index-dir", type=Path,
        help="index of the sample collection to use (ingested there if missing or out of date; "
        "default: a cache under the output root)",
    )  # fmt: skip
    run.add_argument("--cache-dir", type=Path, help="where indexes are cached between runs")
    run.add_argument("--no-baseline", action="store_true", help="skip the llama-index baseline")
    run.add_argument(
        "--no-judge", action="store_true",
        help="judge-free mode: retrieval, key facts, declines, evidence recall, cited gold "
        "papers and latency only (minutes, not hours; no citation or faithfulness scores)",
    )  # fmt: skip
    run.add_argument(
        "--split", choices=["all", "calibration", "validation"], default="all",
        help="which half of the questions (by paper, see evals/data/README.md; tune on "
        "calibration, report on validation)",
    )  # fmt: skip
    run.add_argument(
        "--llm-cache", type=Path, metavar="FILE",
        help="development only: remember model replies in FILE and replay them for prompts "
        "seen before (replayed latencies mean nothing)",
    )  # fmt: skip
    run.add_argument(
        "--judge-pairs", type=_count, metavar="N",
        help="check the judge on the first N hand-labelled pairs (default all 40; 0: skip)",
    )  # fmt: skip
    run.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    fit = sub.add_parser(
        "fit-verifier",
        help="fit the verifier's weights on half the judge pairs, measure them on the other half",
    )
    fit.add_argument("--no-scifact", action="store_true", help="fit on the judge pairs alone")
    fit.add_argument("--scifact-limit", type=positive_int, help="use the first N SciFact claims")
    fit.add_argument(
        "--judge-weight", type=float, default=5.0,
        help="weight of a judge pair against a SciFact pair (default 5)",
    )  # fmt: skip
    fit.add_argument("--out", type=Path, help="also write fit-verifier.json into this folder")
    fit.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    roles = sub.add_parser(
        "fit-roles",
        help="fit the sentence-role classifier on the calibration half, measure it on validation",
    )
    roles.add_argument("--write", action="store_true", help="write assistant/answer/roles.json")
    roles.add_argument("--c", type=float, default=1.0, help="inverse L2 strength (default 1)")
    roles.add_argument("--out", type=Path, help="also write fit-roles.json into this folder")
    dec = sub.add_parser(
        "fit-decision", help="fit the answer decision on the calibration answers of a run"
    )
    dec.add_argument("report", type=Path, nargs="+", help="report.json (or its folder) of runs")
    dec.add_argument(
        "--min-decline", type=float, default=None,
        help="the threshold that declines this share of unanswerable calibration questions "
        "(default: the most questions decided right)",
    )  # fmt: skip
    ver = sub.add_parser(
        "verdicts", help="yes/no verdicts from the gold findings: the rules against the model"
    )
    ver.add_argument("--split", choices=["all", "calibration", "validation"], default="calibration")
    add_setting_flags(ver, "eval")  # --preset
    ver.add_argument("--out", type=Path, default=Path("evals") / "results")
    goals = sub.add_parser("goals", help="the answer goals, before against after, as a table")
    goals.add_argument(
        "reports", type=Path, nargs="+", help="report.json (or its folder), one per column"
    )
    goals.add_argument(
        "--labels",
        default="",
        help='comma-separated column names (default "before,after" for two reports)',
    )
    cmp = sub.add_parser("compare", help="print the metric differences of two reports")
    cmp.add_argument("a", type=Path, help="report.json (or its folder) of run A")
    cmp.add_argument("b", type=Path, help="report.json (or its folder) of run B")
    return parser


def _run(args: argparse.Namespace) -> int:
    from .report import summary, write_report
    from .runner import RunConfig, run_eval

    settings = settings_from_args(args, "eval")
    if args.out is not None:
        out_dir, cache_dir = args.out, args.cache_dir or args.out / "cache"
    else:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out_dir = DEFAULT_OUT_ROOT / stamp
        cache_dir = args.cache_dir or DEFAULT_OUT_ROOT / "cache"
    config = RunConfig(
        out_dir=out_dir,
        cache_dir=cache_dir,
        datasets=tuple(args.dataset or ("sample", "scifact")),
        limit=args.limit,
        judge=args.judge,
        judge_preset=args.judge_preset or settings.llm_preset,
        baseline=not args.no_baseline,
        sample_index_dir=args.index_dir,
        judge_pairs=args.judge_pairs,
        judge_answers=not args.no_judge,
        split=args.split,
        llm_cache=args.llm_cache,
    )
    report = run_eval(settings, config, progress=tqdm_progress(not args.quiet, unit="it"))
    paths = write_report(report, out_dir)
    sys.stderr.write(f"report: {paths['markdown']}\n")
    print_json(summary(report))
    return 0


def _fit_verifier(args: argparse.Namespace) -> int:
    import json

    from assistant.index.embeddings import load_embedder

    from .fit_verifier import FitConfig, fit_verifier, summary

    settings = Settings.load()
    config = FitConfig(
        threshold=settings.support_threshold,
        judge_weight=args.judge_weight,
        scifact=not args.no_scifact,
        scifact_limit=args.scifact_limit,
    )
    report = fit_verifier(load_embedder(settings), config)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "fit-verifier.json").write_text(json.dumps(report, indent=2) + "\n")
    sys.stdout.write(summary(report) + "\n")
    held = report["agreement"]["fitted_on_held_out"]["agreement"]
    print_json({"fitted": report["fitted"], "held_out_agreement": held})
    return 0


def _fit_roles(args: argparse.Namespace) -> int:
    import json

    from assistant.index.embeddings import load_embedder

    from .fit_roles import fit_roles, role_report, write_weights

    model, report = fit_roles(load_embedder(Settings.load()), c=args.c)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "fit-roles.json").write_text(json.dumps(report, indent=2) + "\n")
    sys.stdout.write(role_report(report) + "\n")
    if args.write:
        sys.stdout.write(f"wrote {write_weights(model)}\n")
    print_json({k: report[k][m] for k in ("model", "rules") for m in ("accuracy",)})
    return 0


def _fit_decision(args: argparse.Namespace) -> int:
    from .fit_decision import decision_summary, fit_decision

    fit = fit_decision(args.report, min_decline=args.min_decline)
    sys.stdout.write(decision_summary(fit) + "\n")
    print_json(fit)
    return 0


def _verdicts(args: argparse.Namespace) -> int:
    from assistant.llm.backend import chat_model_from_settings

    from .verdicts import measure_verdicts, write_verdicts

    report = measure_verdicts(
        chat_model_from_settings(settings_from_args(args, "eval")), args.split
    )
    sys.stderr.write(f"wrote {write_verdicts(report, args.out)}\n")
    print_json(report["summary"])
    return 0


def _compare(args: argparse.Namespace) -> int:
    from .report import compare_reports, load_report

    sys.stdout.write(compare_reports(load_report(args.a), load_report(args.b)) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m evals`` and ``assistant eval``."""
    args = _parser().parse_args(argv)
    if args.command == "run":
        setup_logging(args.verbose, args.quiet)
        return run_guarded(lambda: _run(args))
    if args.command == "fit-verifier":
        setup_logging(args.verbose)
        return run_guarded(lambda: _fit_verifier(args))
    if args.command == "fit-roles":
        setup_logging()
        return run_guarded(lambda: _fit_roles(args))
    if args.command == "fit-decision":
        return run_guarded(lambda: _fit_decision(args))
    if args.command == "goals":
        from .goals import goals_table

        labels = (
            args.labels.split(",")
            if args.labels
            else ["before", "after"]
            if len(args.reports) == 2
            else [p.name for p in args.reports]
        )
        return run_guarded(lambda: print(goals_table(args.reports, labels)) or 0)
    if args.command == "verdicts":
        setup_logging()
        return run_guarded(lambda: _verdicts(args))
    return run_guarded(lambda: _compare(args))


if __name__ == "__main__":
    sys.exit(main())
