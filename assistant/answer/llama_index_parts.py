"""Answering, seen from llama-index: our retrieval as a ``BaseRetriever`` and the whole pipeline
(retrieve, prompt, verify, compose) as a ``BaseQueryEngine``.

    retriever = assistant.as_retriever(top_k=5, filters=["date>=2024"])
    engine = RetrieverQueryEngine.from_args(retriever, llm=my_llm)   # their synthesis, our search
    response = assistant.as_query_engine().query("What does GaSNet-II predict?")
    response.response          # the checked answer, [n] markers as in Answer.text
    response.source_nodes      # the cited papers, in citation order

The retriever returns one ``NodeWithScore`` per paper (the node id is the paper id, the text
its whole abstract, the score our hybrid ranking's fused score) and takes our filter strings,
a Chroma where-clause, or llama-index ``MetadataFilters``. The query engine's ``Response``
carries the checked :class:`~assistant.types.Answer` in ``metadata["answer"]``. Built by
:meth:`Assistant.as_retriever` and :meth:`Assistant.as_query_engine`; imported only then.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.response.schema import Response
from llama_index.core.callbacks.base import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from assistant.answer.retrieval import parse_filters
from assistant.errors import ConfigError
from assistant.types import Answer, Citation, Source

__all__ = [
    "PaperRetriever",
    "AssistantQueryEngine",
    "Filters",
    "to_where",
    "source_node",
    "citation_node",
    "answer_response",
]

Filters = Sequence[str] | dict[str, Any] | MetadataFilters | None
"""``KEY=VALUE`` strings (as ``assistant ask --filter``), a Chroma where-clause, or
llama-index ``MetadataFilters``."""


class Answers(Protocol):
    """What the parts need of an :class:`~assistant.answer.engine.Assistant` (named by
    protocol: the engine imports this module)."""

    def retrieve(
        self, question: str, *, top_k: int | None = None, filters: Any = None
    ) -> list[Source]: ...

    def ask(self, question: str, *, top_k: int | None = None, filters: Any = None) -> Answer: ...


_COMPARE = {
    FilterOperator.EQ: "=",
    FilterOperator.NE: "!=",
    FilterOperator.GT: ">",
    FilterOperator.GTE: ">=",
    FilterOperator.LT: "<",
    FilterOperator.LTE: "<=",
}
_LLM_METADATA = ("title",)
"""The metadata a llama-index synthesizer shows its LLM beside the abstract."""


def to_where(filters: Filters) -> dict[str, Any] | None:
    """``filters`` as the where-clause our retrieval takes (dates compare as numbers)."""
    if filters is None:
        return None
    if isinstance(filters, MetadataFilters):
        return _where_of(filters)
    return parse_filters(filters)


def _where_of(filters: MetadataFilters) -> dict[str, Any] | None:
    clauses: list[dict[str, Any]] = []
    for f in filters.filters:
        if isinstance(f, MetadataFilters):
            nested = _where_of(f)
            if nested:
                clauses.append(nested)
        elif f.operator in _COMPARE:
            clauses.append(parse_filters([f"{f.key}{_COMPARE[f.operator]}{f.value}"]) or {})
        elif f.operator in (FilterOperator.IN, FilterOperator.NIN):
            values = f.value if isinstance(f.value, list) else [f.value]
            op = "$in" if f.operator == FilterOperator.IN else "$nin"
            clauses.append({f.key: {op: list(values)}})
        else:
            raise ConfigError(_unsupported(f))
    if not clauses:
        return None
    if filters.condition == FilterCondition.NOT:
        raise ConfigError("MetadataFilters condition 'not' is not supported; use != or nin")
    if len(clauses) == 1:
        return clauses[0]
    return {"$or" if filters.condition == FilterCondition.OR else "$and": clauses}


def _unsupported(f: MetadataFilter) -> str:
    known = ", ".join(o.value for o in [*_COMPARE, FilterOperator.IN, FilterOperator.NIN])
    return f"metadata filter on {f.key!r}: operator {f.operator.value!r} is not supported ({known})"


def _node(source: Source, metadata: dict[str, Any]) -> TextNode:
    meta = {
        "paper_id": source.paper_id,
        "title": source.title,
        "url": source.url,
        "date": source.date,
        "authors": source.authors,
        "source": str(source.metadata.get("source", "")),
        "categories": str(source.metadata.get("categories", "")),
        **metadata,
    }
    hidden = [k for k in meta if k not in _LLM_METADATA]
    return TextNode(
        id_=source.paper_id,
        text=source.abstract,
        metadata=meta,
        excluded_llm_metadata_keys=hidden,
        excluded_embed_metadata_keys=hidden,
    )


def source_node(source: Source) -> NodeWithScore:
    """A retrieved paper as a node; the score is the fused hybrid score that ranked it."""
    extra = {"similarity": float(source.metadata.get("dense", 0.0)), "rank": source.number}
    return NodeWithScore(node=_node(source, extra), score=float(source.score))


def citation_node(citation: Citation, source: Source | None = None) -> NodeWithScore:
    """A cited paper as a node; the score is the verifier's support score (0..1)."""
    source = source or Source(
        paper_id=citation.paper_id,
        title=citation.title,
        abstract=citation.abstract,
        score=citation.score,
        url=citation.url,
    )
    if not source.abstract:
        source.abstract = citation.abstract
    extra = {
        "number": citation.number,
        "snippet": citation.snippet,
        "evidence": list(citation.evidence),
    }
    return NodeWithScore(node=_node(source, extra), score=float(citation.score))


def answer_response(answer: Answer) -> Response:
    """The checked answer as a llama-index ``Response``: the cited papers as source nodes."""
    by_id = {s.paper_id: s for s in answer.sources}
    return Response(
        response=answer.text,
        source_nodes=[citation_node(c, by_id.get(c.paper_id)) for c in answer.citations],
        metadata={
            "answer": answer,
            "answerable": answer.answerable,
            "evidence_level": answer.evidence_level,
            "quoted": answer.quoted,
            "model": answer.model,
        },
    )


class PaperRetriever(BaseRetriever):
    """Our hybrid retrieval (dense + BM25, fused, folded into papers) as a llama-index
    retriever: one node per paper, best first."""

    def __init__(
        self,
        assistant: Answers,
        *,
        top_k: int | None = None,
        filters: Filters = None,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        super().__init__(callback_manager=callback_manager)
        self._assistant, self._top_k, self._where = assistant, top_k, to_where(filters)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        sources = self._assistant.retrieve(
            query_bundle.query_str, top_k=self._top_k, filters=self._where
        )
        return [source_node(s) for s in sources]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._retrieve, query_bundle)


class AssistantQueryEngine(BaseQueryEngine):
    """The whole answer pipeline as a llama-index query engine: ``query`` returns the checked
    answer, the cited papers as ``source_nodes``."""

    def __init__(
        self,
        assistant: Answers,
        *,
        top_k: int | None = None,
        filters: Filters = None,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        super().__init__(callback_manager=callback_manager)
        self._assistant, self._top_k, self._where = assistant, top_k, to_where(filters)

    def _get_prompt_modules(self) -> dict[str, Any]:
        return {}

    def retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        sources = self._assistant.retrieve(
            query_bundle.query_str, top_k=self._top_k, filters=self._where
        )
        return [source_node(s) for s in sources]

    def _query(self, query_bundle: QueryBundle) -> Response:
        answer = self._assistant.ask(query_bundle.query_str, top_k=self._top_k, filters=self._where)
        return answer_response(answer)

    async def _aquery(self, query_bundle: QueryBundle) -> Response:
        return await asyncio.to_thread(self._query, query_bundle)
