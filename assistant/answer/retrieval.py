"""Answering, step 1: hybrid retrieval, dense vectors (a Chroma query) plus BM25 (bm25s), fused by
RRF.

Chunks are folded into papers (one paper, one source number). BM25 finds exact names and
acronyms ("HAWQ", "GaSNet-II") that a small dense model can miss; dense vectors find
paraphrases that share no words with the paper. A paper is kept only when it is relevant
enough by either signal, so a question the collection cannot answer retrieves nothing.

BM25 runs over the lexical index that ingest saved (:mod:`assistant.index.lexical`), memory-mapped:
nothing is built at question time. Without one (an index from before it existed) retrieval is
dense only, with a warning that says how to build it.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from assistant.errors import ConfigError, IndexMissingError
from assistant.index.chroma import PaperIndex
from assistant.index.chunking import date_number
from assistant.index.embeddings import Embedder
from assistant.index.lexical import LexicalIndex, LexicalReader, LexicalSnapshot, tokenize
from assistant.safety import withhold_instructions
from assistant.settings import Settings
from assistant.types import Source

__all__ = ["HybridRetriever", "Reranker", "Candidate", "parse_filters", "tokenize"]

log = logging.getLogger(__name__)

GUESS_CHUNKS = 4
"""Chunk ids asked for per paper in the first lookup (99% of abstracts are one chunk)."""


class Reranker(Protocol):
    """The seam for a rerank step (no reranker model installs offline today)."""

    def rerank(self, query: str, sources: list[Source]) -> list[Source]: ...


@dataclass
class Candidate:
    """A paper found by retrieval, before it becomes a numbered :class:`Source`."""

    paper_id: str
    fused: float = 0.0
    dense: float = -1.0
    """Best cosine similarity of one of its chunks to the question."""
    bm25_rank: int | None = None
    bm25_score: float = 0.0
    rare_match: bool = False
    """One of its chunks contains a rare term of the question (an acronym, a name)."""
    chunk_ids: list[str] = field(default_factory=list)


def parse_filters(items: Sequence[str] | dict[str, Any] | None) -> dict[str, Any] | None:
    """Metadata filters as a Chroma where-clause.

    Accepts a where-clause as is, or ``KEY=VALUE``, ``KEY>=VALUE``, ``KEY<=VALUE`` strings.
    Dates (``date>=2024-01-01``) compare as numbers (``date_num``); numbers stay numbers.
    """
    if not items:
        return None
    if isinstance(items, dict):
        return items
    clauses = []
    for item in items:
        m = re.match(r"^\s*([A-Za-z_][\w.]*)\s*(>=|<=|!=|=|>|<)\s*(.*?)\s*$", item)
        if not m:
            raise ConfigError(f"filter {item!r} is not KEY=VALUE (also KEY>=VALUE, KEY<=VALUE)")
        key, op, raw = m.groups()
        value: Any = raw
        if key in ("date", "date_num"):
            key, value = "date_num", date_number(raw)
            if value == 0:
                raise ConfigError(f"filter {item!r}: write dates as YYYY, YYYY-MM or YYYY-MM-DD")
            if op in ("<=", "<") and raw.count("-") < 2:  # "date<=2024" means until its end
                value += 1231 if raw.count("-") == 0 else 31
        elif re.fullmatch(r"-?\d+", raw):
            value = int(raw)
        elif re.fullmatch(r"-?\d*\.\d+", raw):
            value = float(raw)
        chroma_op = {"=": "$eq", "!=": "$ne", ">=": "$gte", "<=": "$lte", ">": "$gt", "<": "$lt"}[
            op
        ]
        clauses.append({key: {chroma_op: value}})
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


class HybridRetriever:
    """Dense + BM25 retrieval over a :class:`PaperIndex`, folded into papers."""

    def __init__(
        self,
        settings: Settings,
        index: PaperIndex,
        embedder: Embedder,
        *,
        reranker: Reranker | None = None,
    ) -> None:
        self.settings = settings
        self.index = index
        self.embedder = embedder
        self.reranker = reranker
        self._lexical = LexicalReader(LexicalIndex.for_settings(settings))

    def lexical(self) -> LexicalSnapshot | None:
        """The BM25 index ingest saved (memory-mapped), or None: then retrieval is dense only."""
        return self._lexical.get(self.index)

    def ensure_ready(self) -> None:
        """Open the index and map the saved BM25 index now (a warning when there is none)."""
        if self.index.collection.count() == 0:
            raise IndexMissingError(
                f"the index at {self.settings.describe_index()} holds no papers: run `python ingest.py`"
            )
        self.lexical()

    # --- the two retrievers ---------------------------------------------------------------
    def dense(self, query_vec: np.ndarray, k: int, where: dict | None) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity), best first.

        Asks Chroma for distances only: fusion needs ids and scores, and the kept papers' text
        and metadata are fetched once, for those papers alone (:meth:`to_sources`).
        """
        kwargs: dict[str, Any] = {"where": where} if where else {}
        res = self.index.collection.query(
            query_embeddings=[np.asarray(query_vec, dtype=np.float32)],
            n_results=k,
            include=["distances"],
            **kwargs,
        )
        # cosine space: distance = 1 - cosine similarity
        return [(cid, 1.0 - float(d)) for cid, d in zip(res["ids"][0], res["distances"][0])]

    def bm25(self, query: str, k: int, where: dict | None) -> list[tuple[str, float, bool]]:
        """(chunk id, BM25 score, matches a rare query term), best first, scores above zero.

        A rare term is one that at most ``max(3, 0.5%)`` of the chunks contain: an acronym or a
        method name, the kind of match that makes a paper relevant on its own.
        """
        snap = self.lexical()
        if snap is None or not snap.n:
            return []
        vocab = snap.model.vocab_dict
        tokens = list(dict.fromkeys(t for t in tokenize(query) if t in vocab))
        if not tokens:
            return []
        rare_limit = max(3, int(0.005 * snap.n))
        rare = [t for t in tokens if snap.df[vocab[t]] <= rare_limit]
        mask = None
        if where:
            allowed = self.index.collection.get(where=where, include=[])["ids"]
            pos = snap.positions()
            mask = np.zeros(snap.n, dtype=np.float32)
            mask[[p for p in (pos.get(cid) for cid in allowed) if p is not None]] = 1.0
        hits = _top(snap.model.get_scores(tokens, weight_mask=mask), k)
        rare_hits: set[int] = set()
        if rare:
            rare_hits = set(_top(snap.model.get_scores(rare, weight_mask=mask), k))
        return [(str(snap.ids[d]), float(sc), d in rare_hits) for d, sc in hits.items()]

    # --- fusion ---------------------------------------------------------------------------
    def candidates(
        self,
        query: str,
        *,
        where: dict | None = None,
        query_vec: np.ndarray | None = None,
        boost_ids: Sequence[str] = (),
    ) -> list[Candidate]:
        """Papers ranked by reciprocal-rank fusion of dense and BM25 chunk rankings."""
        s = self.settings
        if query_vec is None:
            query_vec = self.embedder.embed([query])[0]
        dense = self.dense(query_vec, s.candidate_k, where)
        sparse = self.bm25(query, s.candidate_k, where)
        cands: dict[str, Candidate] = {}

        def cand(chunk_id: str) -> Candidate:
            pid = chunk_id.rsplit("#", 1)[0]
            c = cands.get(pid)
            if c is None:
                c = cands[pid] = Candidate(pid)
            if chunk_id not in c.chunk_ids:
                c.chunk_ids.append(chunk_id)
            return c

        seen: set[str] = set()
        for cid, cos in dense:
            c = cand(cid)
            c.dense = max(c.dense, cos)
            if c.paper_id not in seen:  # one fused contribution per paper per retriever
                c.fused += s.dense_weight / (s.rrf_k + len(seen) + 1)
                seen.add(c.paper_id)
        seen = set()
        for cid, score, rare in sparse:
            c = cand(cid)
            c.rare_match = c.rare_match or rare
            if c.paper_id not in seen:
                c.bm25_rank = len(seen) + 1
                c.bm25_score = score
                c.fused += s.bm25_weight / (s.rrf_k + c.bm25_rank)
                seen.add(c.paper_id)
        for pid in boost_ids:  # papers of the conversation so far (follow-up questions)
            if pid in cands:
                cands[pid].fused += 1.0 / (s.rrf_k + 1)
        return sorted(cands.values(), key=lambda c: c.fused, reverse=True)

    def relevant(self, c: Candidate) -> bool:
        """Relevant enough to show the model: close in meaning, or a rare exact term."""
        if c.dense >= self.settings.min_relevance:
            return True
        # A rare exact name (an acronym the dense model does not know) ranked high by BM25.
        return c.rare_match and c.bm25_rank is not None and c.bm25_rank <= 3

    def retrieve(
        self,
        query: str,
        *,
        top_k: int | None = None,
        filters: Sequence[str] | dict[str, Any] | None = None,
        boost_ids: Sequence[str] = (),
        timings: dict[str, float] | None = None,
    ) -> list[Source]:
        """The ``top_k`` most relevant papers as unnumbered :class:`Source` objects.

        ``timings``, when given, receives the seconds of the rerank step (``rerank``; only
        when a reranker is set) apart from the rest (``retrieval``).
        """
        started = time.perf_counter()
        where = parse_filters(filters)
        top_k = top_k or self.settings.top_k
        cands = self.candidates(query, where=where, boost_ids=boost_ids)
        kept = [c for c in cands if self.relevant(c)][:top_k]
        if kept:  # drop papers far weaker than the best one: shorter prompts, fewer stray cites
            best = max(c.dense for c in kept)
            margin = self.settings.relevance_margin
            kept = [
                c
                for c in kept
                if c.dense >= best - margin
                or (c.rare_match and c.bm25_rank is not None and c.bm25_rank <= 2)
            ]
        sources = self.to_sources(kept)
        if timings is not None:
            timings["retrieval"] = time.perf_counter() - started
        if self.reranker is not None and sources:
            started = time.perf_counter()
            sources = self.reranker.rerank(query, sources)
            if timings is not None:
                timings["rerank"] = time.perf_counter() - started
        return sources

    def chunks_of(self, paper_ids: Sequence[str]) -> dict[str, list[tuple[str, dict]]]:
        """paper_id -> [(chunk text, metadata)] in chunk order, looked up by chunk id.

        Chunk ids are ``paper_id#i``: the first ``GUESS_CHUNKS`` of each paper are asked for at
        once (almost every abstract is one chunk), the rest only for papers that have more.
        A lookup by id stays fast at any collection size, unlike a metadata filter.
        """
        out: dict[str, list[tuple[str, dict]]] = {pid: [] for pid in paper_ids}
        ids = [f"{pid}#{i}" for pid in paper_ids for i in range(GUESS_CHUNKS)]
        for _ in range(2):  # the guess, then the rest of the papers that have more chunks
            if not ids:
                break
            res = self.index.collection.get(ids=ids, include=["documents", "metadatas"])
            for doc, meta in zip(res["documents"], res["metadatas"]):
                out.setdefault(str(meta["paper_id"]), []).append((doc, meta))
            ids = [
                f"{pid}#{i}"
                for pid, items in out.items()
                if items
                for i in range(GUESS_CHUNKS, _n_chunks(items))
            ]
        for pid, items in out.items():
            items.sort(key=lambda dm: int(dm[1].get("chunk", 0)))
            if items:  # an update cut short leaves old chunks after the new ones: not those
                version = items[0][1].get("text_hash")
                out[pid] = [dm for dm in items if dm[1].get("text_hash") == version]
        return out

    def to_sources(self, cands: Sequence[Candidate]) -> list[Source]:
        chunks = self.chunks_of([c.paper_id for c in cands])
        out = []
        for c in cands:
            items = chunks.get(c.paper_id) or []
            if not items:
                continue
            meta = items[0][1]
            title = str(meta.get("title", ""))
            abstract = _join_chunks([t for t, _ in items], self.settings)
            if self.settings.chroma_url:  # anyone who can write to the server could have
                title, abstract = recheck_source(c.paper_id, title, abstract)
                if not title or not abstract:
                    continue
            extra = json.loads(meta["extra"]) if meta.get("extra") else {}
            out.append(
                Source(
                    paper_id=c.paper_id,
                    title=title,
                    abstract=abstract,
                    score=round(c.fused, 6),
                    url=str(meta.get("url", "")),
                    date=str(meta.get("date", "")),
                    authors=str(meta.get("authors", "")),
                    metadata={
                        "dense": round(c.dense, 4),
                        "bm25_rank": c.bm25_rank,
                        "source": meta.get("source", ""),
                        "categories": meta.get("categories", ""),
                        **extra,
                    },
                )
            )
        return out


def recheck_source(paper_id: str, title: str, abstract: str) -> tuple[str, str]:
    """(title, abstract) of a source read from a Chroma server, checked again as ingest checks
    them: text written to the server by another client never went through our reader, so
    instruction-like spans are withheld here, at question time (a title that is nothing
    else gives ``""``: the source is not used)."""
    kept_title, title_spans = withhold_instructions(title, sentences=False)
    kept, spans = withhold_instructions(abstract)
    if title_spans or spans:
        log.warning(
            "%s: %d instruction-like spans in text from the Chroma server withheld at question "
            "time (%s); ingest them again through ingest.py to have them reported",
            paper_id,
            len(title_spans) + len(spans),
            "; ".join(sorted({w["reason"] for w in title_spans + spans})),
        )
    return kept_title.strip(), kept


def _n_chunks(items: list[tuple[str, dict]]) -> int:
    return max(int(m.get("n_chunks", 1) or 1) for _, m in items)


def _top(scores: np.ndarray, k: int) -> dict[int, float]:
    """The ``k`` best rows with a score above zero, best first (row -> score)."""
    rows = np.flatnonzero(scores > 0)  # few rows share a term with the question
    if len(rows) > k:
        rows = rows[np.argpartition(-scores[rows], k - 1)[:k]]
    rows = rows[np.argsort(-scores[rows], kind="stable")]
    return {int(i): float(scores[i]) for i in rows}


def _join_chunks(texts: list[str], settings: Settings) -> str:
    """The abstract from its chunks, without the overlap repeated."""
    if len(texts) == 1:
        return texts[0]
    out = texts[0]
    for t in texts[1:]:
        overlap = 0
        for size in range(min(len(out), len(t)), 20, -1):
            if out.endswith(t[:size]):
                overlap = size
                break
        out = out + ("" if overlap else " ") + t[overlap:]
    return out
