"""Headless Chromium (the Debian package, driven by Playwright) and the chat app served in a
background thread on 127.0.0.1, for the UI tests.

Playwright's own browser download does not work offline: install Chromium with
``apt-get install -y chromium`` (or point ``PAPER_ASSISTANT_CHROMIUM`` at another binary).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from llm_server import free_port
from source_tree import REPO_ROOT

__all__ = [
    "CHROMIUM_ARGS",
    "browser_fixture",
    "chromium_path",
    "external_requests",
    "page_fixture",
    "save_screenshot",
    "served",
]

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOT_DIR = REPO_ROOT / "test-output"


def chromium_path() -> str:
    """The Chromium binary; fails (rather than skips) with the install command when missing."""
    path = os.environ.get("PAPER_ASSISTANT_CHROMIUM") or shutil.which("chromium") or ""
    if not path or not Path(path).exists():
        pytest.fail(
            "Chromium not found: install it with `apt-get install -y chromium` (Playwright's "
            "own download needs the internet) or set PAPER_ASSISTANT_CHROMIUM"
        )
    return path


@contextlib.contextmanager
def served(app: Any) -> Iterator[str]:
    """Serve a built app on a free 127.0.0.1 port in a background thread; yields its URL."""
    from assistant.app.ui import launch

    url = launch(app, port=free_port(), block=False)
    try:
        yield url
    finally:
        app.close()


def save_screenshot(page: Any, folder: Path, name: str) -> Path:
    """Screenshot into the test's folder and a copy into ``test-output/`` (gitignored)."""
    path = folder / name
    page.screenshot(path=str(path), full_page=True)
    SCREENSHOT_DIR.mkdir(exist_ok=True)
    shutil.copy2(path, SCREENSHOT_DIR / name)
    return path


def external_requests(urls: list[str]) -> list[str]:
    """The requests that went anywhere but loopback (fonts, analytics, CDNs...)."""
    local = ("127.0.0.1", "localhost", "::1")
    return [u for u in urls if urlsplit(u).scheme in ("http", "https", "ws", "wss")
            and urlsplit(u).hostname not in local]  # fmt: skip


@pytest.fixture(scope="module", name="browser")
def browser_fixture() -> Iterator[Any]:
    """One headless Chromium per test module."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(name="page")
def page_fixture(browser: Any) -> Iterator[Any]:
    """A fresh browser context and page; ``page.requests`` lists every URL it asked for."""
    context = browser.new_context(viewport={"width": 1360, "height": 900}, accept_downloads=True)
    context.set_default_timeout(30_000)
    pg = context.new_page()
    requests: list[str] = []
    pg.on("request", lambda r: requests.append(r.url))
    pg.requests = requests
    try:
        yield pg
    finally:
        context.close()
