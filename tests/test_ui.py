"""The browser chat, end to end in headless Chromium: the real sample index, real retrieval,
the real tiny model (in process, and behind a real llama.cpp server), real Gradio.

The tiny model (SmolLM2-135M) answers badly; what these tests check is what the UI does with
whatever comes back: streaming, the verified text, references, errors, sessions. Screenshots
land in the test's tmp folder and in ``test-output/``.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import (  # noqa: F401  (fixtures)
    browser_fixture,
    external_requests,
    page_fixture,
    save_screenshot,
    served,
)
from llm_server import free_port
from scripted import ScriptedChatModel

from assistant.answer.engine import Assistant
from assistant.answer.verify import NO_ANSWER_TEXT
from assistant.app.render import render_answer
from assistant.app.ui import SAMPLE_QUESTIONS, build_app, serve
from assistant.errors import ConfigError
from assistant.llm.base import ChatModel
from assistant.llm.local import LocalChatModel
from assistant.llm.openai_compat import OpenAIChatModel
from assistant.settings import Settings
from assistant.types import Answer, Citation

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

GASNET_Q = SAMPLE_QUESTIONS[1]  # "What does GaSNet-II predict besides the spectral class?"
ZEROQ_Q = SAMPLE_QUESTIONS[2]
MARS_Q = "What is the boiling point of water on Mars?"
BOT = '#pa-chat [data-testid="bot"]'
USER = '#pa-chat [data-testid="user"]'

_RECORD_STREAM = """() => {
  window.__paSeen = [];
  new MutationObserver(() => {
    const bots = document.querySelectorAll('#pa-chat [data-testid="bot"]');
    const last = bots[bots.length - 1];
    if (last) window.__paSeen.push(last.innerText);
  }).observe(document.querySelector('#pa-chat'), {subtree: true, childList: true, characterData: true});
}"""


def _settings(index: Path, **kw: Any) -> Settings:
    kw.setdefault("top_k", 2)
    return Settings(index_dir=index, max_tokens=96, **kw)


@pytest.fixture(scope="module")
def local_assistant(sample_index: Path, embedder: Any, tiny_model_path: Path) -> Assistant:
    llm = LocalChatModel(tiny_model_path, n_ctx=2048, n_threads=2, name="tiny")
    assistant = Assistant(_settings(sample_index), llm=llm, embed_model=embedder)
    assistant.warm_up()
    return assistant


@pytest.fixture(scope="module")
def local_url(local_assistant: Assistant) -> Iterator[str]:
    with served(build_app(local_assistant)) as url:
        yield url


def _open(pg: Any, url: str) -> None:
    pg.goto(url)
    pg.wait_for_selector("#pa-chat")
    pg.wait_for_selector("#pa-question textarea:not([disabled])")


def _ask(pg: Any, question: str) -> None:
    box = pg.locator("#pa-question textarea")
    box.fill(question)
    box.press("Enter")


def _wait_done(pg: Any, n: int, timeout: float = 120_000) -> Any:
    """Wait until the chat holds ``n`` finished replies (answers or errors); the last one."""
    pg.wait_for_function(
        """n => document.querySelectorAll(
             '#pa-chat [data-testid="bot"] .pa-footer, #pa-chat [data-testid="bot"] .pa-error'
           ).length >= n""",
        arg=n,
        timeout=timeout,
    )
    pg.wait_for_selector("#pa-question textarea:not([disabled])")
    return pg.locator(BOT).nth(n - 1)


def _paper_lists(message: Any) -> str:
    """Cited references plus the papers searched, as text (details need not be open)."""
    parts = message.locator(".pa-refs, .pa-searched")
    return " ".join(parts.nth(i).text_content() or "" for i in range(parts.count()))


def test_empty_chat_shows_examples_and_what_is_answering(
    page: Any, local_url: str, local_assistant: Assistant, tmp_path: Path
) -> None:
    _open(page, local_url)
    chat = page.locator("#pa-chat")
    for q in SAMPLE_QUESTIONS:
        assert chat.get_by_text(q).is_visible()

    info = local_assistant.info()
    assert info["papers"] == 414
    panel = page.locator("#pa-info").inner_text()
    assert "Papers: 414" in panel
    assert info["model"] == "local:tiny" and "local:tiny" in panel
    assert "Questions go to: the local model tiny on this machine" in panel
    assert str(info["index"]) in panel

    page.get_by_label("Source file").click()
    options = page.get_by_role("option").all_inner_texts()
    assert "All files" in options[0]
    assert any("000_69852d258ee6200a.txt" in o for o in options)
    page.keyboard.press("Escape")

    save_screenshot(page, tmp_path, "ui-empty.png")

    # A question the collection cannot answer: said plainly, no references, no model call.
    _ask(page, MARS_Q)
    msg = _wait_done(page, 1)
    assert msg.inner_text().strip().startswith(NO_ANSWER_TEXT)
    assert msg.locator(".pa-refs, .pa-ref, .pa-searched").count() == 0
    save_screenshot(page, tmp_path, "ui-no-answer.png")

    # Download Markdown: the last answer with its question.
    with page.expect_download() as dl:
        page.locator("#pa-download").click()
    text = Path(dl.value.path()).read_text(encoding="utf-8")
    assert text.startswith(f"**Q:** {MARS_Q}") and NO_ANSWER_TEXT in text

    # New chat clears everything and brings the examples back.
    page.locator("#pa-new-chat").click()
    page.wait_for_function(f"document.querySelectorAll('{BOT}').length === 0")
    assert page.locator(USER).count() == 0
    assert page.locator("#pa-chat").get_by_text(SAMPLE_QUESTIONS[0]).is_visible()
    assert page.locator("#pa-download").is_disabled()
    assert external_requests(page.requests) == []


def test_answer_streams_cites_and_follows_up(page: Any, local_url: str, tmp_path: Path) -> None:
    _open(page, local_url)
    page.evaluate(_RECORD_STREAM)

    # An example question, asked by clicking it on the empty chat.
    page.locator("#pa-chat").get_by_text(GASNET_Q).click()
    first = _wait_done(page, 1)
    assert page.locator(USER).first.inner_text().strip() == GASNET_Q
    seen = page.evaluate("window.__paSeen")
    assert any("▍" in s for s in seen), "the raw answer never streamed into the chat"
    assert "▍" not in first.inner_text(), "the verified text did not replace the raw one"
    # The tiny model may or may not write a checkable sentence: either way the paper that
    # answers this must be in the message, cited (References) or at least searched.
    assert "GaSNet" in _paper_lists(first)
    if first.locator(".pa-refs").count():
        ref = first.locator("details.pa-ref").first
        ref.locator("summary").click()
        assert ref.locator(".pa-abstract").is_visible()
        assert len(ref.locator(".pa-abstract").inner_text()) > 200  # the whole abstract
    else:
        assert NO_ANSWER_TEXT in first.inner_text()

    # A follow-up in the same conversation.
    _ask(page, "Which survey data was it tested on?")
    second = _wait_done(page, 2)
    assert second.locator(".pa-error").count() == 0
    assert page.locator(USER).count() == 2

    save_screenshot(page, tmp_path, "ui-conversation.png")
    assert external_requests(page.requests) == []


def test_references_open_the_abstract_and_unsupported_is_marked(
    page: Any, sample_index: Path, embedder: Any, tmp_path: Path
) -> None:
    """A scripted reply (the tiny model seldom writes a checkable sentence) through the real
    retrieval, verifier and UI: two sentences taken from the GaSNet-II abstract, one invented.
    The follow-up's model call blocks until Stop was pressed."""
    reply = (
        "GaSNet-II is a supervised multi-network deep learning tool for spectra classification "
        "and redshift prediction [1]. It also provides redshift errors, using a network-of-networks "
        "[1]. It was first trained on photographs of cats [1]."
    )
    release = threading.Event()
    calls: list[int] = []

    def script(messages: list[dict[str, str]]) -> str:
        calls.append(1)
        if len(calls) > 1:
            release.wait(60)
        return reply

    llm = ScriptedChatModel(script, name="scripted")
    assistant = Assistant(_settings(sample_index), llm=llm, embed_model=embedder)
    with served(build_app(assistant)) as url:
        _open(page, url)
        _ask(page, GASNET_Q)
        msg = _wait_done(page, 1)
        refs = msg.locator("details.pa-ref")
        assert refs.count() >= 1
        assert "GaSNet" in refs.first.locator("summary").inner_text()
        abstract = refs.first.locator(".pa-abstract")
        assert not abstract.is_visible()
        refs.first.locator("summary").click()
        assert abstract.is_visible() and "260k Sloan Digital Sky Survey" in abstract.inner_text()
        # the sentences that support the answer (its evidence quotes), highlighted in place
        marks = abstract.locator("mark")
        assert marks.count() >= 1
        assert all(len(marks.nth(i).inner_text()) > 20 for i in range(marks.count()))
        badge = msg.locator(".pa-unverified")
        assert badge.count() == 1 and "unverified" in badge.inner_text()
        assert "[unverified]" not in msg.inner_text()
        save_screenshot(page, tmp_path, "ui-references.png")

        with page.expect_download() as dl:
            page.locator("#pa-download").click()
        md = Path(dl.value.path()).read_text(encoding="utf-8")
        assert "**References**" in md and "[1] Galaxy Spectra neural Network (GaSNet)" in md

        # Stop: the answer is cut short, said so, and the question box is usable again.
        _ask(page, "And how accurate is it?")
        page.get_by_test_id("stop-button").click()
        page.wait_for_selector(f"{BOT} >> text=(stopped)")
        page.wait_for_selector("#pa-question textarea:not([disabled])")
        release.set()
        assert page.locator(BOT).count() == 2
        # The follow-up went to the model with the conversation so far (the first answer).
        followup_prompt = " ".join(m["content"] for m in llm.calls[1])
        assert "And how accurate is it?" in followup_prompt and GASNET_Q in followup_prompt

        # The chat's trash button forgets the conversation too: no history next time.
        deadline = time.monotonic() + 30
        while len(llm.calls) < 3 and time.monotonic() < deadline:  # the stopped run winds down
            time.sleep(0.1)
        page.locator("#pa-chat").get_by_role("button", name=re.compile("clear", re.I)).first.click()
        page.wait_for_function(f"document.querySelectorAll('{BOT}').length === 0")
        n_calls = len(llm.calls)
        _ask(page, ZEROQ_Q)
        _wait_done(page, 1)
        assert len(llm.calls) == n_calls + 1  # no condense call: nothing to follow up on
        assert "And how accurate is it?" not in " ".join(m["content"] for m in llm.calls[-1])


def test_unreachable_llm_and_bad_filter_show_readable_messages(
    page: Any, sample_index: Path, embedder: Any, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there
    llm = OpenAIChatModel(
        base_url=f"http://127.0.0.1:{port}/v1", api_key=None, model="tiny", max_retries=0, timeout=5
    )
    assistant = Assistant(_settings(sample_index), llm=llm, embed_model=embedder)
    with served(build_app(assistant)) as url:
        _open(page, url)
        _ask(page, GASNET_Q)
        msg = _wait_done(page, 1).inner_text()
        assert msg.startswith("⚠") and f"127.0.0.1:{port}" in msg and "cannot connect" in msg
        save_screenshot(page, tmp_path, "ui-error.png")

        page.get_by_label("Published from").fill("last spring")
        _ask(page, GASNET_Q)
        msg = _wait_done(page, 2).inner_text()
        assert msg.startswith("⚠") and "YYYY-MM-DD" in msg
        # Never Gradio's own generic error toast.
        assert page.locator(".toast-body").count() == 0
        assert page.locator("#pa-question textarea").is_enabled()


def test_two_sessions_get_their_own_answers(
    browser: Any, sample_index: Path, embedder: Any, tiny_server_url: str, tmp_path: Path
) -> None:
    llm = OpenAIChatModel(
        base_url=tiny_server_url, api_key=None, model="tiny", context_window=2048, max_concurrency=2
    )
    assistant = Assistant(_settings(sample_index, top_k=1), llm=llm, embed_model=embedder)
    assistant.warm_up()
    app = build_app(assistant)  # concurrency from the LLM: 2
    with served(app) as url, _two_sessions(browser, url, timeout=150_000) as (pages, elapsed):
        save_screenshot(pages[1], tmp_path, "ui-second-session.png")
        assert elapsed < 150
        panel = pages[0].locator("#pa-info").inner_text()
        assert f"Questions go to: the server {tiny_server_url}" in panel


@contextlib.contextmanager
def _two_sessions(browser: Any, url: str, timeout: float) -> Iterator[tuple[list[Any], float]]:
    """Two browser sessions ask two questions at once; each gets its own answer. Yields the
    pages and the seconds from the first question to the last answer."""
    contexts = [browser.new_context(viewport={"width": 1100, "height": 800}) for _ in range(2)]
    try:
        pages = [c.new_page() for c in contexts]
        for pg in pages:
            _open(pg, url)
        started = time.monotonic()
        for pg, q in zip(pages, (GASNET_Q, ZEROQ_Q)):
            _ask(pg, q)
        done = [_wait_done(pg, 1, timeout=timeout) for pg in pages]
        elapsed = time.monotonic() - started
        gasnet, zeroq = (_paper_lists(m) for m in done)
        assert pages[0].locator(USER).inner_text().strip() == GASNET_Q
        assert pages[1].locator(USER).inner_text().strip() == ZEROQ_Q
        assert "GaSNet" in gasnet and "ZeroQ" not in gasnet
        assert "ZeroQ" in zeroq and "GaSNet" not in zeroq
        for pg in pages:
            assert pg.locator(f"{BOT} .pa-error").count() == 0
        yield pages, elapsed
    finally:
        for c in contexts:
            c.close()


def test_serve_refuses_a_public_host_without_a_password(local_assistant: Assistant) -> None:
    with pytest.raises(ConfigError, match="--share-auth USER:PASS"):
        serve(local_assistant, host="0.0.0.0", port=free_port())
    with pytest.raises(ConfigError, match="--share-auth"):
        serve(local_assistant, share=True, port=free_port())


# --- model text is plain text; links come only from our citation data -------------------------

PIXEL = "http://127.0.0.1:9/pixel.png"
_LAST_BOT_HAS = """([sel, text]) => {
  const bots = document.querySelectorAll(sel);
  return bots.length > 0 && bots[bots.length - 1].innerText.includes(text);
}"""
HOSTILE = (
    "GaSNet-II is a supervised multi-network deep learning tool for spectra classification and "
    f"redshift prediction [1]. Status ![status]({PIXEL}) and [the site](javascript:alert(1)) "
    "or www.example.org, <img src=x onerror=alert(1)> **bold** and `code`."
)


def test_model_text_is_escaped_as_plain_text() -> None:
    from assistant.app.render import _render_streaming

    for html in (
        _render_streaming(HOSTILE),
        render_answer(Answer(question="q", text=HOSTILE)),
    ):
        for syntax in ("![", "](", "<img", "**", "`", "www."):
            assert syntax not in html, (syntax, html)
    # A citation link only when it is http(s): an index written before links were checked.
    bad = Citation(number=1, paper_id="x", title="T", url="javascript:alert(document.domain)")
    good = Citation(number=1, paper_id="x", title="T", url="https://arxiv.org/abs/2101.00001")
    assert "href" not in render_answer(Answer(question="q", text="A [1].", citations=[bad]))
    assert 'href="https&#58;//arxiv&#46;org' in render_answer(
        Answer(question="q", text="A [1].", citations=[good])
    )


class _Paused(ChatModel):
    """Streams a reply word by word and waits before its last two words until released (to
    look at the page while the answer is streaming)."""

    name = "paused"
    context_window = 8192
    max_concurrency = 1

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.halfway = threading.Event()
        self.release = threading.Event()

    def stream(self, messages, *, max_tokens, temperature=0.0, stop=None):  # type: ignore[override]
        words = re.findall(r"\S+\s*", self.reply)
        for i, w in enumerate(words):
            if i == len(words) - 2:
                self.halfway.set()
                self.release.wait(60)
            yield w

    def count_tokens(self, text: str) -> int:
        return len(text.split())


def test_streamed_and_final_text_never_render_model_markup(
    page: Any, sample_index: Path, embedder: Any, tmp_path: Path
) -> None:
    llm = _Paused(HOSTILE)
    assistant = Assistant(_settings(sample_index), llm=llm, embed_model=embedder)
    with served(build_app(assistant)) as url:
        _open(page, url)
        _ask(page, GASNET_Q)
        assert llm.halfway.wait(60)
        bot = page.locator(BOT).last
        page.wait_for_function(_LAST_BOT_HAS, arg=[BOT, "pixel.png"], timeout=30_000)
        streaming = bot.inner_text()
        assert f"![status]({PIXEL})" in streaming and "▍" in streaming
        assert bot.locator("img").count() == 0 and bot.locator("a").count() == 0
        llm.release.set()
        final = _wait_done(page, 1)
        text = final.inner_text()  # the verifier's text, shown as typed
        assert f"![status]({PIXEL})" in text and "[the site](javascript:alert" in text
        assert "<img src=x" in text and "**bold**" in text
        assert final.locator("img").count() == 0
        hrefs = final.locator("a").evaluate_all("as => as.map(a => a.getAttribute('href'))")
        assert all(h.startswith("https://arxiv.org/") for h in hrefs), hrefs  # references only
        save_screenshot(page, tmp_path, "ui-plain-text.png")
    assert not [u for u in page.requests if "pixel.png" in u]


# --- load: two users on the in-process model, and Stop while it streams ------------------------


def test_two_sessions_share_the_local_model(browser: Any, local_url: str) -> None:
    """The in-process model answers one question at a time: the second session waits its turn
    and gets its own answer."""
    with _two_sessions(browser, local_url, timeout=240_000):
        pass


def test_stop_while_the_local_model_streams(
    page: Any, sample_index: Path, embedder: Any, local_assistant: Assistant
) -> None:
    llm = local_assistant.llm
    settings = Settings(index_dir=sample_index, top_k=2, max_tokens=512)
    assistant = Assistant(settings, llm=llm, embed_model=embedder)
    with served(build_app(assistant)) as url:
        _open(page, url)
        _ask(page, "Describe in detail everything the papers say about GaSNet-II, step by step.")
        page.wait_for_function(_LAST_BOT_HAS, arg=[BOT, "▍"], timeout=120_000)
        page.get_by_test_id("stop-button").click()
        page.wait_for_selector(f"{BOT} >> text=(stopped)", timeout=30_000)
        page.wait_for_selector("#pa-question textarea:not([disabled])")
        deadline = time.monotonic() + 30  # the generation ends: the model is free again
        while llm._gen_lock.locked() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not llm._gen_lock.locked()
        stopped = page.locator(BOT).last.inner_text()
        time.sleep(1.0)
        assert page.locator(BOT).last.inner_text() == stopped  # nothing streams in any more
        _ask(page, ZEROQ_Q)
        _wait_done(page, 1, timeout=180_000)  # the stopped reply has no footer: this is the 2nd
        second = page.locator(BOT).nth(1)
        assert (
            second.locator(".pa-footer").count() == 1 and second.locator(".pa-error").count() == 0
        )
        assert page.locator(USER).count() == 2
