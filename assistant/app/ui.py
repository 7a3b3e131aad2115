"""A door for people: the browser chat, a function of an :class:`Assistant`, launched only from an
entry point.

    from assistant import Assistant
    from assistant.app.ui import build_app, serve
    app = build_app(Assistant())        # builds, never launches
    serve(Assistant(), port=7860)       # what ``assistant serve`` calls

Answers stream token by token, then the verified text replaces the raw one, with the cited
papers under it (click one to read its whole abstract). Nothing leaves the machine: no
analytics, no share link unless asked for (with a password), no web fonts. The side panel
says where questions go (the local model, or which server).

Model text is shown as plain text, never as Markdown or HTML: an image or link the model
writes (perhaps because an abstract told it to) is shown as characters, not fetched or made
clickable. Links come only from our own citation data, and only http(s) ones.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.answer.engine import MAX_QUESTION_CHARS
from assistant.answer.retrieval import parse_filters
from assistant.app.render import (
    CURSOR,
    PENDING_HTML,
    STOPPED_HTML,
    _esc,
    _message_text,
    _render_error,
    _render_streaming,
    render_answer,
)
from assistant.app.runs import WaitingCount
from assistant.app.startup import Warmup
from assistant.errors import AssistantError, ConfigError, QuestionError
from assistant.llm.base import describe_destination
from assistant.resources import SAMPLE_DIR
from assistant.types import Answer

if TYPE_CHECKING:
    import gradio as gr

    from assistant.answer.engine import Assistant

__all__ = ["build_app", "launch", "serve", "SAMPLE_QUESTIONS"]


log = logging.getLogger(__name__)

SAMPLE_QUESTIONS = (
    "Which papers study grokking, and what do they find?",
    "What does GaSNet-II predict besides the spectral class?",
    "How does ZeroQ quantize a model without training data?",
)
"""Example questions shown on an empty chat when the index holds the sample collection."""

ALL_FILES = "All files"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def _css() -> str:
    """The page's style sheet (``ui.css`` beside this module)."""
    return Path(__file__).with_name("ui.css").read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------
# what is answering
# --------------------------------------------------------------------------------------------


def _read_info(assistant: Assistant) -> dict[str, Any]:
    try:
        info = assistant.info()
        info["destination"] = describe_destination(assistant.llm, markdown=True)
        return info
    except AssistantError as exc:
        return {"error": str(exc)}


def _info_markdown(info: dict[str, Any]) -> str:
    if "error" in info:
        return f"**What is answering**\n\n⚠ {info['error']}"
    return "\n".join(
        [
            "**What is answering**",
            "",
            f"- Questions go to: {info.get('destination', '')}",
            f"- Model: `{info.get('model')}`",
            f"- Papers: **{info.get('papers')}** ({info.get('chunks')} chunks)",
            f"- Embedder: `{info.get('embed_model')}`",
            f"- Index: `{info.get('index')}` (collection `{info.get('collection')}`)",
        ]
    )


SCAN_SOURCES_UP_TO = 20_000
"""An index that does not record its source files (written before they were recorded) is
scanned for them only up to this many chunks; a bigger one lists none until the next ingest."""


def _source_files(assistant: Assistant) -> list[str]:
    """The source files to filter by: the list ingest records with the collection (one read),
    or, for an index written before that, its chunks' ``source`` fields if it is small."""
    try:
        index = assistant.index  # no embedder needed
        names = index.source_files()
        if names is not None:
            return sorted(names)
        if index.chunk_count() > SCAN_SOURCES_UP_TO:
            log.warning("the index does not record its source files: run `python ingest.py` "
                        "with its files to record them (no embedding); no file filter until then")  # fmt: skip
            return []
        _, _, metas = index.all_chunks()
    except AssistantError as exc:
        log.warning("cannot list the index's source files: %s", exc)
        return []
    return sorted({str(m.get("source")) for m in metas if m.get("source")})


def _default_examples(files: Sequence[str]) -> list[str]:
    sample = {p.name for p in SAMPLE_DIR.glob("*.txt")}
    return list(SAMPLE_QUESTIONS) if files and set(files) <= sample else []


def _filters(date_from: str | None, date_to: str | None, source: str | None) -> list[str]:
    out = []
    if date_from and date_from.strip():
        out.append(f"date>={date_from.strip()}")
    if date_to and date_to.strip():
        out.append(f"date<={date_to.strip()}")
    if source and source != ALL_FILES:
        out.append(f"source={source}")
    parse_filters(out)  # a bad date is a ConfigError shown in the chat
    return out


# --------------------------------------------------------------------------------------------
# the app
# --------------------------------------------------------------------------------------------


def build_app(
    assistant: Assistant,
    *,
    concurrency: int | None = None,
    examples: Sequence[str] | None = None,
    title: str = "Paper Assistant",
    loading: Warmup | None = None,
) -> gr.Blocks:
    """The chat app for ``assistant`` (built, not launched; see :func:`launch`).

    ``concurrency`` is how many questions are answered at once (default: what the LLM says it
    can take, 1 for an in-process model). ``examples`` are shown on an empty chat (default:
    :data:`SAMPLE_QUESTIONS` when the index holds the sample collection). ``loading``: the
    assistant is still loading behind the page (:class:`~assistant.app.startup.Warmup`); the
    page says so until it is ready, and questions wait for it.
    """
    import gradio as gr

    if concurrency is None:
        concurrency = _llm_concurrency(assistant)
    files = _source_files(assistant)
    info = _read_info(assistant)
    if examples is None:
        examples = _default_examples(files)
    export_dir = Path(tempfile.mkdtemp(prefix="paper-assistant-ui-"))
    top_k_default = max(1, min(10, assistant.settings.top_k))
    with gr.Blocks(title=title, analytics_enabled=False, fill_height=True) as app:
        answers_state = gr.State([])
        search = _sidebar(files, top_k_default, info)
        if loading is not None:
            _loading_status(loading)
        chatbot, question, clear, download = _chat_panel(title, examples, info)
        _wire_events(
            _responder(assistant, export_dir, loading),
            chatbot=chatbot,
            question=question,
            clear=clear,
            download=download,
            answers_state=answers_state,
            search=search,
        )
    app.queue(
        default_concurrency_limit=max(1, int(concurrency)),
        max_size=MAX_WAITING + max(1, int(concurrency)),  # a backstop: add_question says "busy"
    )
    return app


def _llm_concurrency(assistant: Assistant) -> int:
    """How many questions the LLM says it can take at once (1 when it cannot load yet)."""
    try:
        return assistant.llm.max_concurrency
    except AssistantError as exc:  # shown again, readably, on the first question
        log.warning("cannot load the LLM yet: %s", exc)
        return 1


def add_question(question: str, chat: list[dict[str, Any]] | None) -> tuple[Any, ...]:
    """Show the question at once (no queue), then the responder answers it.

    (The handlers keep their names: Gradio names its endpoints after them.)
    """
    import gradio as gr

    question = " ".join((question or "").split())
    chat = list(chat or [])
    if not question:
        return gr.update(), chat, ""
    refusal = _refusal(question)
    if refusal:  # answered at once, never queued
        shown = question if len(question) <= 300 else question[:297] + "…"
        chat += [
            {"role": "user", "content": _esc(shown)},
            {"role": "assistant", "content": refusal},
        ]
        return gr.update(), chat, ""
    _WAITING.add()
    chat += [
        {"role": "user", "content": question},
        {"role": "assistant", "content": PENDING_HTML},
    ]
    busy = gr.Textbox(value="", interactive=False, submit_btn=False, stop_btn=True)
    return busy, chat, question


MAX_WAITING = 8
"""Questions that may wait for the model at once; one more is told the assistant is busy."""


_WAITING = WaitingCount()


def _refusal(question: str) -> str:
    """The message for a question that is not queued (too long, or the assistant busy)."""
    if len(question) > MAX_QUESTION_CHARS:
        return _render_error(QuestionError(
            f"the question is {len(question):,} characters long; ask one of at most "
            f"{MAX_QUESTION_CHARS:,} characters"
        ))  # fmt: skip
    waiting = _WAITING.count()
    if waiting >= MAX_WAITING:
        return (
            f'<div class="pa-notice">The assistant is busy: {waiting} questions are waiting '
            "for the model. Please ask again in a minute.</div>"
        )
    return ""


def _responder(assistant: Assistant, export_dir: Path, loading: Warmup | None = None) -> Any:
    """The queued handler that streams ``assistant``'s answer into the chat (after waiting
    for ``loading``, if the assistant is still loading, with a message that says so)."""
    import gradio as gr

    def respond(
        question: str,
        chat: list[dict[str, Any]] | None,
        answers: list[Answer] | None,
        top_k: float,
        date_from: str,
        date_to: str,
        source: str,
        request: Any = None,
    ) -> Iterator[tuple[Any, ...]]:
        chat = list(chat or [])
        answers = list(answers or [])
        if not question:
            return
        _WAITING.started()
        local = is_local_request(request)
        raw = ""
        stream: Iterator[str | Answer] | None = None
        try:
            filters = _filters(date_from, date_to, source)
            while loading is not None and not loading.wait(0.5):
                chat[-1] = {"role": "assistant", "content": loading.waiting_html()}
                yield chat, answers, gr.update()
            stream = assistant.stream(
                question, top_k=int(top_k), filters=filters or None, history=answers
            )
            for item in stream:
                if isinstance(item, Answer):
                    chat[-1] = {"role": "assistant", "content": render_answer(item, filters)}
                    answers.append(item)
                    path = _export(export_dir, item)
                    yield chat, answers, gr.DownloadButton(value=path, interactive=True)
                else:
                    raw += item
                    chat[-1] = {"role": "assistant", "content": _render_streaming(raw)}
                    yield chat, answers, gr.update()
        except AssistantError as exc:
            error_id = _error_id()
            log.info("question failed [error %s]: %s", error_id, exc)
            chat[-1] = {"role": "assistant", "content": _render_error(exc, local, error_id)}
            yield chat, answers, gr.update()
        except Exception as exc:  # the edge: show it, log it, keep serving
            error_id = _error_id()
            log.exception("unexpected error [error %s] while answering %r", error_id, question)
            chat[-1] = {"role": "assistant", "content": _render_error(exc, local, error_id)}
            yield chat, answers, gr.update()
        finally:  # Stop / New chat close this generator: end the model's generation too
            close = getattr(stream, "close", None)
            if close is not None:
                close()

    respond.__annotations__["request"] = gr.Request  # Gradio passes the request by this
    return respond


def _error_id() -> str:
    return uuid.uuid4().hex[:8]


def is_local_request(request: Any) -> bool:
    """Whether the browser asking is on this machine (it may read error details: paths,
    URLs). A request Gradio did not pass counts as remote."""
    host = getattr(getattr(request, "client", None), "host", None)
    return bool(host) and (host in LOCAL_HOSTS or str(host).startswith("127."))


def ready(chat: list[dict[str, Any]] | None) -> tuple[Any, ...]:
    """Re-enable the question box; an answer cut short by Stop says so."""
    import gradio as gr

    chat = list(chat or [])
    if chat and chat[-1].get("role") == "assistant":
        text = _message_text(chat[-1])
        if text == PENDING_HTML or text.endswith(CURSOR.strip()):
            partial = "" if text == PENDING_HTML else text.rstrip(CURSOR).rstrip()
            chat[-1] = {"role": "assistant", "content": partial + STOPPED_HTML}
    return gr.Textbox(interactive=True, submit_btn=True, stop_btn=False), chat


def new_chat() -> tuple[Any, ...]:
    import gradio as gr

    return (
        [],
        [],
        gr.Textbox(value="", interactive=True, submit_btn=True, stop_btn=False),
        gr.DownloadButton(value=None, interactive=False),
    )


def _sidebar(files: Sequence[str], top_k_default: int, info: dict[str, Any]) -> list[Any]:
    """The search settings: [top_k, date_from, date_to, source] (the responder's inputs)."""
    import gradio as gr

    with gr.Sidebar(label="Settings", open=True, width=330):
        gr.Markdown("### Search")
        top_k = gr.Slider(
            1, 10, value=top_k_default, step=1, label="Sources per answer",
            info="How many papers the model reads",
        )  # fmt: skip
        with gr.Group():
            date_from = gr.Textbox(label="Published from", placeholder="YYYY-MM-DD", max_lines=1)
            date_to = gr.Textbox(label="Published until", placeholder="YYYY-MM-DD", max_lines=1)
            source = gr.Dropdown(
                [ALL_FILES, *files], value=ALL_FILES, label="Source file", filterable=True
            )
        gr.Markdown(_info_markdown(info), elem_id="pa-info")
    return [top_k, date_from, date_to, source]


def _chat_panel(title: str, examples: Sequence[str], info: dict[str, Any]) -> tuple[Any, ...]:
    """The header, chat, question box and buttons: (chatbot, question, clear, download)."""
    import gradio as gr

    placeholder = (
        f"### Ask about the papers\n{_papers_phrase(info)}"
        "Every statement in an answer cites the abstract it comes from; "
        "what no abstract supports is marked *unverified*."
    )
    with gr.Row(elem_id="pa-header"):
        gr.Markdown(
            f"# {_esc(title)}\nQuestions answered from the indexed abstracts, "
            "with checked citations."
        )
    chatbot = gr.Chatbot(
        elem_id="pa-chat",
        show_label=False,
        scale=1,
        height=None,
        min_height=420,
        buttons=["copy", "copy_all"],
        placeholder=placeholder,
        examples=[{"text": q} for q in examples] or None,
        feedback_options=None,
        group_consecutive_messages=False,
        layout="bubble",
    )
    question = gr.Textbox(
        show_label=False,
        max_length=MAX_QUESTION_CHARS,
        placeholder="Ask a question about the papers…",
        submit_btn=True,
        stop_btn=False,
        max_lines=6,
        autofocus=True,
        elem_id="pa-question",
    )
    with gr.Row():
        clear = gr.Button("New chat", variant="secondary", size="sm", elem_id="pa-new-chat")
        download = gr.DownloadButton(
            "Download Markdown", value=None, interactive=False, size="sm", elem_id="pa-download"
        )
    return chatbot, question, clear, download


def _wire_events(
    respond: Any,
    *,
    chatbot: Any,
    question: Any,
    clear: Any,
    download: Any,
    answers_state: Any,
    search: list[Any],
) -> None:
    """Ask (by Enter or an example), stop, and start a new chat."""
    import gradio as gr

    def pick_example(evt: gr.SelectData) -> str:  # Gradio reads the annotation at run time
        value = evt.value
        return str(value.get("text", "") if isinstance(value, dict) else value)

    # A string annotation (this module's `from __future__ import annotations`) names `gr`,
    # which is not a global here: Gradio could not resolve it and passed no event data.
    pick_example.__annotations__["evt"] = gr.SelectData

    pending = gr.State("")
    hidden: dict[str, Any] = {"api_visibility": "undocumented"}
    ask_inputs = [pending, chatbot, answers_state, *search]
    ask_outputs = [chatbot, answers_state, download]
    add = dict(fn=add_question, inputs=[question, chatbot], outputs=[question, chatbot, pending])
    answering = []
    for trigger in (
        question.submit(**add, queue=False, **hidden),
        chatbot.example_select(pick_example, None, question, queue=False, **hidden).then(
            **add, queue=False, **hidden
        ),
    ):
        event = trigger.then(respond, ask_inputs, ask_outputs, show_progress="hidden", **hidden)
        event.then(ready, chatbot, [question, chatbot], queue=False, **hidden)
        answering.append(event)
    question.stop(None, None, None, cancels=answering, **hidden)
    # "New chat" and the chat's own trash button both forget the conversation.
    for reset in (clear.click, chatbot.clear):
        reset(
            new_chat,
            None,
            [chatbot, answers_state, question, download],
            cancels=answering,
            queue=False,
            **hidden,
        )


def _loading_status(loading: Warmup) -> None:
    """A line over the chat that says the assistant is loading, then that it is ready."""
    import gradio as gr

    status = gr.Markdown(loading.status, elem_id="pa-status")  # read again on each page load
    timer = gr.Timer(1.0)  # its first tick after loading stops it

    def tick() -> tuple[Any, ...]:
        return loading.status(), gr.Timer(active=not loading.done)

    timer.tick(tick, None, [status, timer], queue=False, show_progress="hidden",
               api_visibility="undocumented")  # fmt: skip


def _papers_phrase(info: dict[str, Any]) -> str:
    papers = info.get("papers")
    return f"{papers} papers indexed. " if papers else ""


def _export(folder: Path, answer: Answer) -> str:
    """Write the answer (with its bibliography) as Markdown for the download button."""
    sub = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=folder))
    path = sub / "answer.md"
    path.write_text(answer.to_markdown(), encoding="utf-8")
    return str(path)


def _theme() -> Any:
    import gradio as gr

    # System fonts only: a GoogleFont would make every browser fetch fonts.googleapis.com.
    return gr.themes.Default(
        primary_hue="indigo",
        secondary_hue="blue",
        neutral_hue="slate",
        font=("ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "Helvetica Neue", "sans-serif"),
        font_mono=("ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"),
    )


def _check_exposure(host: str, auth: tuple[str, str] | None, share: bool) -> None:
    if (host not in LOCAL_HOSTS or share) and not auth:
        where = "a public share link" if share else f"host {host!r}"
        raise ConfigError(
            f"refusing to serve on {where} without a password: anyone who can reach it could "
            "use the assistant. Pass --share-auth USER:PASS, or bind 127.0.0.1 (the default)"
        )


def launch(
    app: gr.Blocks,
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    auth: tuple[str, str] | None = None,
    share: bool = False,
    block: bool = True,
) -> str:
    """Launch a built app with the assistant's theme and CSS; returns the local URL.

    With ``block=False`` it returns at once and serves in the background (``app.close()``
    stops it). A non-local ``host`` or ``share=True`` needs ``auth``.
    """
    _check_exposure(host, auth, share)
    if share:
        log.warning("share=True: Gradio will open a public tunnel through gradio.live")
    _, local_url, _ = app.launch(
        server_name=host,
        server_port=port,
        auth=auth,
        share=share,
        prevent_thread_lock=not block,
        show_error=False,
        quiet=True,
        ssr_mode=False,
        pwa=False,
        mcp_server=False,
        enable_monitoring=False,
        footer_links=["api", "settings"],
        theme=_theme(),
        css=_css(),
    )
    return str(local_url or f"http://{host}:{port}/")


def serve(
    assistant: Assistant,
    host: str = "127.0.0.1",
    port: int = 7860,
    auth: tuple[str, str] | None = None,
    share: bool = False,
) -> None:
    """Build the chat for ``assistant`` and serve it until interrupted (``assistant serve``).

    Binds 127.0.0.1 by default; any other host (or a share link) requires ``auth``, else
    :class:`ConfigError`. Gradio's analytics are off.
    """
    _check_exposure(host, auth, share)
    # The entry point's edge: Gradio reads this when first imported.
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    # The page first; the model, the embedder and BM25 load behind it (the page says so).
    loading = Warmup(assistant)
    app = build_app(assistant, loading=loading)
    url = launch(app, host=host, port=port, auth=auth, share=share, block=False)
    sys.stderr.write(f"serving the chat on {url} (the model loads behind it)\n")
    loading.start()
    app.block_thread()  # until Ctrl-C, as launch(block=True) does
