"""The command line: ``assistant ask|chat|serve|ingest|eval|info`` and ``python ingest.py``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .cli_common import (
    add_common_args,
    print_json,
    run_guarded,
    settings_from_args,
    setup_logging,
    tqdm_progress,
)

__all__ = ["main", "ingest_main"]


# --- ingest ---------------------------------------------------------------------------------
def _ingest_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "paths", nargs="*", help="files or folders to ingest (default: the bundled sample collection)"
    )
    parser.add_argument(
        "--format",
        dest="fmt",
        choices=["sample", "jsonl", "csv", "bibtex"],
        help="read every file in this format instead of choosing by extension",
    )
    parser.add_argument(
        "--prune", action="store_true", help="remove papers that the given files no longer list"
    )
    parser.add_argument(
        "--rebuild", action="store_true", help="delete the collection first and embed everything again"
    )
    parser.add_argument("--chunk-size", type=int, help="chunk size in tokens (ASSISTANT_CHUNK_SIZE)")
    parser.add_argument("--chunk-overlap", type=int, help="chunk overlap in tokens")
    parser.add_argument("--embed-model", help="embedding model id or folder (ASSISTANT_EMBED_MODEL)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of counts")
    add_common_args(parser)
    return parser


def _run_ingest(args: argparse.Namespace) -> int:
    from .ingest import ingest

    setup_logging(args.verbose, args.quiet or args.json)
    settings = settings_from_args(
        args,
        chunk_size=args.chunk_size,
        chunk_overlap=args.chunk_overlap,
        embed_model=args.embed_model,
    )
    report = ingest(
        args.paths,
        settings,
        fmt=args.fmt,
        prune=args.prune,
        rebuild=args.rebuild,
        progress=tqdm_progress(not args.quiet),
    )
    for s in report.skipped:
        sys.stderr.write(f"skipped {s}\n")
    if args.json:
        print_json(report.to_dict())
    else:
        print(
            f"{report.papers_total} papers in {report.index} "
            f"({report.papers_new} new, {report.papers_updated} updated, "
            f"{report.papers_unchanged} unchanged, {report.papers_pruned} pruned; "
            f"{report.chunks_total} chunks; {len(report.skipped)} skipped) in {report.seconds:.1f} s"
        )
    return 0


def ingest_main(argv: Sequence[str] | None = None) -> int:
    parser = _ingest_parser(
        argparse.ArgumentParser(prog="ingest.py", description="Ingest paper abstracts into the index.")
    )
    args = parser.parse_args(argv)
    return run_guarded(lambda: _run_ingest(args))


# --- the assistant command ------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="assistant", description="Questions over paper abstracts, with verified citations."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _ingest_parser(sub.add_parser("ingest", help="ingest paper abstracts (same as ingest.py)"))
    args = parser.parse_args(argv)
    if args.command == "ingest":
        return run_guarded(lambda: _run_ingest(args))
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
