"""The index, first step: a paper cut into chunks counted in tiktoken tokens.

Each chunk's text starts with the paper's title; the chunk size and overlap come from the
settings. :func:`paper_hashes` gives the hashes that tell a later ingest whether a paper's
embedded text or its metadata changed, and :func:`date_number` the number a date filter
compares (Chroma compares only numbers).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from assistant.settings import Settings
from assistant.tokens import get_encoding
from assistant.types import Paper

__all__ = ["Chunk", "chunk_paper", "date_number"]

SCHEMA_VERSION = 1
"""Version of the chunk metadata layout, part of every chunk's fingerprint."""


@dataclass
class Chunk:
    """One chunk of a paper, ready to embed and store."""

    chunk_id: str
    text: str
    """The abstract text of this chunk (what a reader sees)."""
    embed_text: str
    """Title plus chunk text: what is embedded and indexed for BM25."""
    metadata: dict[str, Any]


def _hash(*parts: str) -> str:
    h = hashlib.sha1()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\x1f")
    return h.hexdigest()[:16]


def paper_hashes(paper: Paper, settings: Settings) -> tuple[str, str]:
    """(hash of what is embedded, hash of the displayed metadata)."""
    text_hash = _hash(
        paper.title,
        paper.abstract,
        settings.embed_model,
        str(settings.chunk_size),
        str(settings.chunk_overlap),
        settings.tokenizer,
    )
    meta_hash = _hash(
        paper.authors,
        paper.date,
        paper.url,
        paper.categories,
        json.dumps(paper.extra, sort_keys=True),
        # only when there is something: indexes written before this field keep their hashes
        *([json.dumps(paper.withheld, sort_keys=True)] if paper.withheld else []),
    )
    return text_hash, meta_hash


def _splitter(settings: Settings, body_budget: int) -> Any:
    from llama_index.core.node_parser import SentenceSplitter

    enc = get_encoding(settings.tokenizer)
    return SentenceSplitter(
        chunk_size=body_budget,
        chunk_overlap=min(settings.chunk_overlap, body_budget // 2),
        tokenizer=lambda s: enc.encode(s, disallowed_special=()),
        include_metadata=False,
        include_prev_next_rel=False,
    )


def chunk_paper(
    paper: Paper, settings: Settings, sources: Sequence[str] | None = None
) -> list[Chunk]:
    """Token-aware chunks of one abstract; the title goes with every chunk.

    Most abstracts fit in one chunk. Token counts come from tiktoken (``settings.tokenizer``).
    """
    enc = get_encoding(settings.tokenizer)
    title_tokens = len(enc.encode(paper.title, disallowed_special=())) + 2
    body_tokens = len(enc.encode(paper.abstract, disallowed_special=()))
    budget = max(32, settings.chunk_size - title_tokens)
    if body_tokens <= budget:
        bodies = [paper.abstract]
    else:
        bodies = [b for b in _splitter(settings, budget).split_text(paper.abstract) if b.strip()]
    text_hash, meta_hash = paper_hashes(paper, settings)
    srcs = sorted(set(sources if sources is not None else paper.sources))
    base_meta: dict[str, Any] = {
        "paper_id": paper.paper_id,
        "title": paper.title,
        "authors": paper.authors,
        "date": paper.date,
        "date_num": date_number(paper.date),
        "url": paper.url,
        "categories": paper.categories,
        "source": _short_source(srcs[0]) if srcs else "",
        "sources": json.dumps(srcs),
        "extra": json.dumps(paper.extra, sort_keys=True) if paper.extra else "",
        # sentences kept out of the text (instructions to an assistant, markup), with reasons
        "withheld": json.dumps(paper.withheld, ensure_ascii=False) if paper.withheld else "",
        "text_hash": text_hash,
        "meta_hash": meta_hash,
        "n_chunks": len(bodies),
        "schema": SCHEMA_VERSION,
    }
    chunks = []
    for i, body in enumerate(bodies):
        meta = dict(
            base_meta, chunk=i, tokens=len(enc.encode(body, disallowed_special=())) + title_tokens
        )
        chunks.append(
            Chunk(
                chunk_id=f"{paper.paper_id}#{i}",
                text=body,
                embed_text=f"{paper.title}\n{body}",
                metadata=meta,
            )
        )
    return chunks


_ISO_DATE = re.compile(r"^(\d{4})(?:[-/](\d{1,2})(?:[-/](\d{1,2}))?)?")


def date_number(date: str) -> int:
    """``2024-03-11`` -> 20240311 (Chroma compares numbers only); 0 when the year is unknown."""
    m = _ISO_DATE.match(date.strip())
    if not m:
        return 0
    year, month, day = int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0)
    if not 1000 <= year <= 2999 or month > 12 or day > 31:
        return 0
    return year * 10000 + month * 100 + day


def _short_source(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]
