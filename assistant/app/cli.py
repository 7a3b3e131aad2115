"""A door for people: the command line, ``assistant ask|chat|serve|mcp|ingest|eval|info`` and
``python ingest.py``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from assistant.app.options import (
    add_common_args,
    add_setting_flags,
    print_json,
    run_guarded,
    say_destination,
    settings_from_args,
    setup_logging,
    tqdm_progress,
)
from assistant.text import strip_control

__all__ = ["main", "ingest_main"]


# --- ingest ---------------------------------------------------------------------------------
def _ingest_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "paths",
        nargs="*",
        help="files or folders to ingest (default: the bundled sample collection)",
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
        "--rebuild",
        action="store_true",
        help="embed everything again into a new collection, swapped in when complete (no "
        "paths: the files the collection records)",
    )
    add_setting_flags(parser, "ingest")
    parser.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="read and embed on Ray (pip install .[ray]), writing to the Chroma server of "
        "ASSISTANT_CHROMA_URL; ADDRESS of a running cluster (host:port), or none to start a "
        "local one on 127.0.0.1",
    )
    parser.add_argument("--json", action="store_true", help="end with one JSON line of counts")
    add_common_args(parser)
    return parser


def _run_ingest(args: argparse.Namespace) -> int:
    from assistant.ingest.pipeline import ingest

    setup_logging(args.verbose, args.quiet or args.json)
    settings = settings_from_args(args, "index", "ingest")
    run = ingest
    if args.ray is not None:
        from functools import partial

        from assistant.ingest.distributed import ray_ingest

        run = partial(ray_ingest, address=args.ray or None)
    report = run(
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
        argparse.ArgumentParser(
            prog="ingest.py", description="Ingest paper abstracts into the index."
        )
    )
    args = parser.parse_args(argv)
    return run_guarded(lambda: _run_ingest(args))


# --- ask / chat / serve / info -------------------------------------------------------------
def _llm_args(parser: argparse.ArgumentParser) -> None:
    add_setting_flags(parser.add_argument_group("language model"), "llm")


def _assistant_from_args(args: argparse.Namespace, *, announce: bool = True):  # -> Assistant
    from assistant.answer.engine import Assistant

    settings = settings_from_args(args, "index", "llm")
    if announce:  # a base URL in the shell's environment must not go unnoticed
        say_destination(settings, args.base_url)
    return Assistant.from_settings(settings)


def _print_answer(answer, *, as_json: bool) -> None:  # answer: Answer
    if as_json:
        print_json(answer.to_dict())  # JSON escapes control characters
        return
    print(strip_control(answer.text))
    if answer.citations:
        print()
        for c in answer.citations:
            url = f" <{strip_control(c.url)}>" if c.url else ""
            print(f"[{c.number}] {strip_control(c.title)}{url}")
            for quote in c.evidence or ([c.snippet] if c.snippet else []):
                print(f"    “{strip_control(quote)}”")


def _run_ask(args: argparse.Namespace) -> int:
    setup_logging(args.verbose, args.quiet)
    assistant = _assistant_from_args(args)
    question = " ".join(args.question)
    if args.json or not sys.stdout.isatty():
        answer = assistant.ask(question, filters=args.filter)
    else:  # stream to the terminal, then show the checked answer
        answer = None
        for piece in assistant.stream(question, filters=args.filter):
            if isinstance(piece, str):
                sys.stderr.write(strip_control(piece))
                sys.stderr.flush()
            else:
                answer = piece
        sys.stderr.write("\n\n")
    _print_answer(answer, as_json=args.json)
    return 0


def _run_chat(args: argparse.Namespace) -> int:
    from assistant.errors import AssistantError

    setup_logging(args.verbose, args.quiet)
    assistant = _assistant_from_args(args)
    history: list = []
    print("Ask about the papers. /new starts over, /quit (or Ctrl-D) leaves.")
    while True:
        try:
            question = input("\n> ").strip()
        except EOFError:
            print()
            return 0
        if question in ("/quit", "/exit"):
            return 0
        if question == "/new":
            history = []
            print("(new conversation)")
            continue
        if not question:
            continue
        try:
            answer = assistant.chat(history, question, filters=args.filter)
        except AssistantError as exc:
            print(f"error: {exc}")
            continue
        _print_answer(answer, as_json=False)
        history.append(answer)


def _run_serve(args: argparse.Namespace) -> int:
    import os

    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported
    from assistant.app.ui import serve

    setup_logging(args.verbose, args.quiet)
    auth = _share_auth(args)
    assistant = _assistant_from_args(args)
    if args.ingest_if_missing:
        _ingest_sample_if_missing(assistant.settings)
    serve(assistant, host=args.host, port=args.port, auth=auth)
    return 0


SHARE_AUTH_ENV = "ASSISTANT_SHARE_AUTH"


def _share_auth(args: argparse.Namespace) -> tuple[str, str] | None:
    """The login for the page: --share-auth, --share-auth-file, or ASSISTANT_SHARE_AUTH."""
    import os
    import stat
    from pathlib import Path

    from assistant.errors import ConfigError

    if args.share_auth:
        where = "--share-auth"
        value = args.share_auth
        sys.stderr.write(
            "warning: a password on the command line is visible to other users (ps) and stays "
            f"in your shell history; use --share-auth-file FILE or {SHARE_AUTH_ENV} instead\n"
        )
    elif args.share_auth_file:
        where = f"--share-auth-file {args.share_auth_file}"
        path = Path(args.share_auth_file).expanduser()
        try:
            value = path.read_text(encoding="utf-8").strip().splitlines()[0]
            mode = path.stat().st_mode
        except (OSError, UnicodeError, IndexError) as exc:
            raise ConfigError(f"cannot read the login from {path}: {exc}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            sys.stderr.write(f"warning: {path} can be read by other users; chmod 600 it\n")
    elif os.environ.get(SHARE_AUTH_ENV):
        where, value = SHARE_AUTH_ENV, os.environ[SHARE_AUTH_ENV]
    else:
        return None
    user, sep, password = value.strip().partition(":")
    if not sep or not user or not password:
        raise ConfigError(f"{where} must hold USER:PASS")
    return user, password


def _ingest_sample_if_missing(settings, index=None) -> None:
    """Ingest the sample collection when the collection does not exist or is empty. A store
    that fails (server down, refused) is an error, never taken for a missing index."""
    from assistant.index.chroma import PaperIndex
    from assistant.ingest.pipeline import ingest

    index = index or PaperIndex(settings)
    if index.exists() and index.chunk_count() > 0:
        return
    sys.stderr.write(f"no index at {settings.describe_index()}: ingesting the sample collection\n")
    report = ingest(None, settings, progress=tqdm_progress(True))
    sys.stderr.write(f"{report.papers_total} papers ingested in {report.seconds:.0f} s\n")


# --- serve --api and mcp: the doors for programs (assistant/app/api.py, mcp_server.py) -------
def _add_api_args(p: argparse.ArgumentParser, *, serve: bool) -> None:
    if serve:
        p.add_argument(
            "--api",
            action="store_true",
            help="also serve the OpenAI-compatible API at /v1 on the same port (docs/doors.md)",
        )
        p.add_argument("--no-ui", action="store_true", help="with --api: the API alone")
        p.add_argument(
            "--api-queue",
            type=int,
            default=None,
            metavar="N",
            help="questions that may wait for the model (default 4); more get HTTP 429",
        )
    p.add_argument(
        "--api-key-file",
        metavar="FILE",
        help="bearer key clients must send, from the first line of FILE (chmod 600 it); or set "
        "ASSISTANT_API_KEY. Required to bind another address than 127.0.0.1",
    )
    p.add_argument(
        "--api-key",
        metavar="KEY",
        help="the bearer key itself (visible in ps and shell history: prefer --api-key-file)",
    )


def _run_serve_api(args: argparse.Namespace) -> int:
    """``assistant serve --api [--no-ui]``: the API, and the chat on the same port."""
    from assistant.app.access import check_key_exposure, read_api_key
    from assistant.app.api import DEFAULT_WAITING, serve_api
    from assistant.errors import ConfigError

    setup_logging(args.verbose, args.quiet)
    if args.no_ui and not args.api:
        raise ConfigError("--no-ui serves the API alone: add --api")
    api_key = read_api_key(args.api_key, args.api_key_file)
    check_key_exposure(args.host, api_key)  # before anything loads
    auth = None if args.no_ui else _share_auth(args)
    if not args.no_ui:
        from assistant.app.ui import _check_exposure

        _check_exposure(args.host, auth, False)
    assistant = _assistant_from_args(args)
    if args.ingest_if_missing:
        _ingest_sample_if_missing(assistant.settings)
    waiting = DEFAULT_WAITING if args.api_queue is None else max(0, args.api_queue)
    serve_api(
        assistant,
        host=args.host,
        port=args.port,
        api_key=api_key,
        ui=not args.no_ui,
        ui_auth=auth,
        waiting=waiting,
    )
    return 0


def _run_mcp(args: argparse.Namespace) -> int:
    """``assistant mcp [--http]``: the MCP server, stdio by default."""
    from assistant.app.access import check_key_exposure, read_api_key
    from assistant.app.mcp_server import run_mcp

    setup_logging(args.verbose, args.quiet)
    api_key = read_api_key(args.api_key, args.api_key_file) if args.http else None
    if args.http:
        check_key_exposure(args.host, api_key, "the MCP server")
    assistant = _assistant_from_args(args)  # says on stderr where questions go
    transport = "streamable-http" if args.http else "stdio"
    run_mcp(assistant, transport=transport, host=args.host, port=args.port, api_key=api_key)
    return 0


def _mcp_parser(p: argparse.ArgumentParser) -> None:
    _query_parser(p)
    p.add_argument(
        "--http",
        action="store_true",
        help="serve streamable HTTP at http://HOST:PORT/mcp instead of stdio",
    )
    p.add_argument("--host", default="127.0.0.1", help="with --http: address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="with --http: port (default 8765)")
    _add_api_args(p, serve=False)


def _run_info(args: argparse.Namespace) -> int:
    setup_logging(args.verbose, args.quiet)
    assistant = _assistant_from_args(args, announce=False)
    info = assistant.info()
    if args.json:
        print_json(info)
    else:
        for k, v in info.items():
            print(f"{k:12} {v}")
    return 0


def _query_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--filter",
        action="append",
        metavar="KEY=VALUE",
        help="metadata filter, repeatable: source=FILE, categories=cs.LG, date>=2024-01-01",
    )
    _llm_args(parser)
    add_common_args(parser)
    return parser


# --- the assistant command ------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="assistant", description="Questions over paper abstracts, with verified citations."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = _query_parser(sub.add_parser("ask", help="answer one question"))
    p.add_argument("question", nargs="+", help="the question")
    p.add_argument("--json", action="store_true", help="end with the Answer as one JSON line")
    _query_parser(sub.add_parser("chat", help="interactive chat in the terminal, with follow-ups"))
    p = _query_parser(sub.add_parser("serve", help="the browser chat"))
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument(
        "--share-auth",
        metavar="USER:PASS",
        help="login required to use the page (visible in ps and shell history: prefer "
        "--share-auth-file or ASSISTANT_SHARE_AUTH)",
    )
    p.add_argument(
        "--share-auth-file",
        metavar="FILE",
        help="read USER:PASS from the first line of FILE (chmod 600 it)",
    )
    p.add_argument(
        "--ingest-if-missing",
        action="store_true",
        help="ingest the sample collection first if the index is empty",
    )
    _add_api_args(p, serve=True)
    _mcp_parser(sub.add_parser("mcp", help="the MCP server for agents (stdio, or --http)"))
    p = _query_parser(sub.add_parser("info", help="what is answering: model, index, size"))
    p.add_argument("--json", action="store_true")
    _ingest_parser(sub.add_parser("ingest", help="ingest paper abstracts (same as ingest.py)"))
    sub.add_parser(
        "eval", help="run the evaluation suite (python -m evals run --help)", add_help=False
    )

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["eval"]:
        from evals.__main__ import main as eval_main

        return eval_main(
            ["run", *argv[1:]] if len(argv) == 1 or argv[1].startswith("-") else argv[1:]
        )
    args = parser.parse_args(argv)
    runners = {
        "ask": _run_ask,
        "chat": _run_chat,
        "serve": _run_serve,
        "info": _run_info,
        "ingest": _run_ingest,
        "mcp": _run_mcp,
    }
    run = runners[args.command]
    if args.command == "serve" and (args.api or args.no_ui):
        run = _run_serve_api
    return run_guarded(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
