"""Answering without the model: the papers retrieval finds for a question, each with its best
sentences, and a paper looked up by id.

Step 1 of the pipeline (:mod:`assistant.answer.retrieval`) plus the sentence scoring of step 2
(:func:`assistant.answer.evidence.score_sources`), for the doors that offer a search (the MCP
server's ``search_papers`` and ``get_paper`` tools). No language model is called.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from assistant.answer.evidence import score_sources
from assistant.answer.retrieval import Candidate
from assistant.types import Source

if TYPE_CHECKING:
    from assistant.answer.engine import Assistant

__all__ = ["PaperHit", "search_papers", "get_paper"]


@dataclass
class PaperHit:
    """A retrieved paper, ranked, with the sentences of its abstract closest to the query."""

    rank: int
    paper_id: str
    title: str
    score: float
    """The hybrid (dense + BM25, reciprocal-rank fused) score that ranked it."""
    similarity: float
    """Best cosine similarity of one of its chunks to the query."""
    url: str = ""
    date: str = ""
    authors: str = ""
    source: str = ""
    best_sentences: list[str] = field(default_factory=list)
    """Up to ``sentences`` sentences of the abstract, most relevant first."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def search_papers(
    assistant: Assistant,
    query: str,
    *,
    top_k: int | None = None,
    filters: Sequence[str] | dict[str, Any] | None = None,
    sentences: int = 2,
) -> list[PaperHit]:
    """The papers :meth:`Assistant.retrieve` finds for ``query``, best first, each with its
    ``sentences`` most relevant sentences. Empty when nothing is relevant enough."""
    sources = assistant.retrieve(query, top_k=top_k, filters=filters)
    if not sources:
        return []
    evidence = score_sources(query, sources, assistant.embed)
    hits = []
    for rank, (src, ev) in enumerate(zip(sources, evidence), 1):
        best = [ev.sentences[i] for i in ev.ranked()[: max(0, sentences)]]
        hits.append(
            PaperHit(
                rank=rank,
                paper_id=src.paper_id,
                title=src.title,
                score=src.score,
                similarity=float(src.metadata.get("dense", 0.0)),
                url=src.url,
                date=src.date,
                authors=src.authors,
                source=str(src.metadata.get("source", "")),
                best_sentences=best,
            )
        )
    return hits


def get_paper(assistant: Assistant, paper_id: str) -> Source | None:
    """The paper with id ``paper_id`` (its whole abstract and metadata), or None."""
    paper_id = (paper_id or "").strip()
    if not paper_id:
        return None
    found = assistant.retriever.to_sources([Candidate(paper_id=paper_id)])
    return found[0] if found else None
