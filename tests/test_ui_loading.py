"""The page is usable at once: served before the model has loaded, saying so, and answering
once it is ready.

- In headless Chromium: the real sample index, the real tiny model behind a gate (its load
  waits until the test opens it), real Gradio. The page says it is loading, a question asked
  then says that it waits, and is answered once the model is in.
- ``assistant serve`` end to end in a child process: the page is served before the model is
  loaded (its log says so, in that order) and says so on the page.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
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
from source_tree import REPO_ROOT

from assistant.answer.engine import Assistant
from assistant.answer.verify import NO_ANSWER_TEXT
from assistant.app.startup import Warmup
from assistant.app.ui import SAMPLE_QUESTIONS, build_app
from assistant.llm.local import LocalChatModel
from assistant.settings import Settings

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

BOT = '#pa-chat [data-testid="bot"]'
GASNET_Q = SAMPLE_QUESTIONS[1]


class GatedModel(LocalChatModel):
    """The real tiny model, whose load waits until ``gate`` is set."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.gate = threading.Event()
        self.load_started = threading.Event()

    def _load(self) -> Any:
        self.load_started.set()
        assert self.gate.wait(240), "the test never opened the gate"
        return super()._load()


def test_page_answers_while_the_model_is_still_loading(
    page: Any, sample_index: Path, embedder: Any, tiny_model_path: Path, tmp_path: Path
) -> None:
    llm = GatedModel(tiny_model_path, n_ctx=2048, n_threads=2, name="tiny")
    settings = Settings(index_dir=sample_index, top_k=2, max_tokens=64)
    assistant = Assistant(settings, llm=llm, embed_model=embedder)
    loading = Warmup(assistant)
    with served(build_app(assistant, loading=loading)) as url:
        loading.start()
        page.goto(url)
        status = page.locator("#pa-status")
        status.wait_for()
        assert "Loading the model" in status.inner_text()
        assert llm.load_started.wait(60) and not loading.done  # really still loading

        box = page.locator("#pa-question textarea")
        box.fill(GASNET_Q)
        box.press("Enter")
        page.wait_for_function(
            "sel => [...document.querySelectorAll(sel)].some(e => "
            "e.innerText.includes('still loading'))",
            arg=BOT,
            timeout=30_000,
        )
        assert "answered as soon as it is ready" in page.locator(BOT).last.inner_text()
        save_screenshot(page, tmp_path, "ui-loading.png")

        llm.gate.set()  # the model loads now; the waiting question is answered
        page.wait_for_function(
            "sel => { const b = document.querySelectorAll(sel); const m = b[b.length - 1];"
            " return m && m.querySelector('.pa-footer, .pa-error'); }",
            arg=BOT,
            timeout=120_000,
        )
        answer = page.locator(BOT).last
        assert answer.locator(".pa-error").count() == 0
        assert "still loading" not in answer.inner_text()
        text = answer.inner_text()
        assert "GaSNet" in text or NO_ANSWER_TEXT in text
        page.wait_for_function(
            "() => document.querySelector('#pa-status').innerText.includes('Ready')",
            timeout=10_000,
        )
        assert loading.done and loading.error is None and llm.last_call["prompt_tokens"] > 0
    assert external_requests(page.requests) == []


def test_serve_serves_the_page_before_the_model_loads(
    page: Any, sample_index_copy: Path, tiny_model_path: Path
) -> None:
    """``assistant serve``: the page is up before the model is loaded (the log says so, in
    that order), and turns to "Ready" once it is."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env |= {
        "ASSISTANT_INDEX_DIR": str(sample_index_copy),
        "ASSISTANT_LLM_MODEL_PATH": str(tiny_model_path),
        "ASSISTANT_N_CTX": "2048",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
    }
    cmd = [sys.executable, "-m", "assistant", "serve", "--port", str(port), "-v"]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        started = time.monotonic()
        for line in proc.stderr:
            lines.append(line)
            if "serving the chat on" in line:
                break
        else:
            pytest.fail("serve exited before serving:\n" + "".join(lines[-30:]))
        served_after = time.monotonic() - started
        assert not any("assistant.llm.local: loaded" in x for x in lines), lines
        page.goto(f"http://127.0.0.1:{port}/")
        status = page.locator("#pa-status")
        status.wait_for()
        assert "Loading the model" in status.inner_text() or "Ready" in status.inner_text()
        rest = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
        rest.start()
        page.wait_for_function(
            "() => document.querySelector('#pa-status').innerText.includes('Ready')",
            timeout=180_000,
        )
        log = "".join(lines)
        assert "assistant.llm.local: loaded" in log and "ready after" in log, log[-3000:]
        assert log.index("serving the chat on") < log.index("assistant.llm.local: loaded")
        print(f"page served {served_after:.1f} s after the process started")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
