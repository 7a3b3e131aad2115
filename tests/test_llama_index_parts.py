"""The llama-index parts: ``Assistant.as_retriever()`` inside llama-index's own
``RetrieverQueryEngine`` (its synthesis over our retrieval) and ``as_query_engine()`` behind a
llama-index tool. Real index, real tiny model; the LLM llama-index gets is passed explicitly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import NodeWithScore
from llama_index.core.tools import QueryEngineTool
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from assistant.answer.engine import Assistant
from assistant.answer.llama_index_parts import to_where
from assistant.errors import ConfigError
from assistant.llm.llama_index_llm import as_llama_index_llm
from assistant.llm.local import LocalChatModel
from assistant.settings import Settings
from assistant.types import Answer

GASNET_Q = "What does GaSNet-II predict besides the spectral class?"


@pytest.fixture(scope="module")
def assistant(sample_index: Path, embedder: Any, tiny_model_path: Path) -> Assistant:
    llm = LocalChatModel(tiny_model_path, n_ctx=2048, n_threads=2, name="tiny")
    a = Assistant(
        Settings(index_dir=sample_index, max_tokens=64, top_k=3), llm=llm, embed_model=embedder
    )
    a.warm_up()
    return a


def test_the_retriever_is_ours_one_node_per_paper(assistant: Assistant) -> None:
    retriever = assistant.as_retriever(top_k=3)
    assert isinstance(retriever, BaseRetriever)
    nodes = retriever.retrieve(GASNET_Q)
    sources = assistant.retrieve(GASNET_Q, top_k=3)
    assert nodes and all(isinstance(n, NodeWithScore) for n in nodes)
    assert [n.node.node_id for n in nodes] == [s.paper_id for s in sources]
    assert [n.score for n in nodes] == [s.score for s in sources]  # our fused ranking
    assert nodes[0].node.get_content() == sources[0].abstract
    assert nodes[0].node.metadata["title"] == sources[0].title
    # what a llama-index synthesizer shows its LLM: the title and the abstract
    llm_text = nodes[0].node.get_content(metadata_mode="llm")
    assert sources[0].title in llm_text and "paper_id" not in llm_text


def test_the_retriever_takes_metadata_filters(assistant: Assistant) -> None:
    top = assistant.retrieve(GASNET_Q)[0]
    file = top.metadata["source"]
    same = MetadataFilters(filters=[MetadataFilter(key="source", value=file)])
    nodes = assistant.as_retriever(filters=same).retrieve(GASNET_Q)
    assert nodes and {n.node.metadata["source"] for n in nodes} == {file}
    others = MetadataFilters(
        filters=[MetadataFilter(key="source", value=file, operator=FilterOperator.NE)]
    )
    assert top.paper_id not in {
        n.node.node_id for n in assistant.as_retriever(filters=others).retrieve(GASNET_Q)
    }
    future = MetadataFilters(
        filters=[MetadataFilter(key="date", value="2100-01-01", operator=FilterOperator.GTE)]
    )
    assert assistant.as_retriever(filters=future).retrieve(GASNET_Q) == []
    assert assistant.as_retriever(filters=["date>=2100"]).retrieve(GASNET_Q) == []


def test_metadata_filters_become_where_clauses() -> None:
    either = MetadataFilters(
        filters=[
            MetadataFilter(key="source", value="a.txt"),
            MetadataFilter(key="categories", value=["cs.LG", "cs.CL"], operator=FilterOperator.IN),
        ],
        condition=FilterCondition.OR,
    )
    assert to_where(either) == {
        "$or": [{"source": {"$eq": "a.txt"}}, {"categories": {"$in": ["cs.LG", "cs.CL"]}}]
    }
    since = MetadataFilters(
        filters=[MetadataFilter(key="date", value="2024", operator=FilterOperator.GTE)]
    )
    assert to_where(since) == {"date_num": {"$gte": 20240000}}
    with pytest.raises(ConfigError, match="text_match"):
        to_where(
            MetadataFilters(
                filters=[MetadataFilter(key="title", value="x", operator=FilterOperator.TEXT_MATCH)]
            )
        )


def test_a_retriever_query_engine_over_our_retriever_answers(assistant: Assistant) -> None:
    retriever = assistant.as_retriever(top_k=1)  # one abstract: a short prompt for the tiny model
    engine = RetrieverQueryEngine.from_args(
        retriever, llm=as_llama_index_llm(assistant.llm, max_tokens=32)
    )
    response = engine.query(GASNET_Q)
    assert isinstance(response.response, str) and response.response.strip()
    assert [n.node.node_id for n in response.source_nodes] == [
        n.node.node_id for n in retriever.retrieve(GASNET_Q)
    ]


def test_our_query_engine_cites_its_source_nodes(assistant: Assistant) -> None:
    engine = assistant.as_query_engine()
    assert isinstance(engine, BaseQueryEngine)
    response = engine.query(GASNET_Q)
    answer = response.metadata["answer"]
    assert isinstance(answer, Answer) and answer.citations
    # the engine's text is the assistant's answer (a second ask may differ: llama.cpp's prompt
    # cache evaluates the repeated prompt in another batch shape, and greedy decoding follows)
    assert response.response == answer.text
    assert [n.node.node_id for n in response.source_nodes] == [c.paper_id for c in answer.citations]
    first, cited = response.source_nodes[0], answer.citations[0]
    assert first.node.metadata["number"] == cited.number
    assert first.node.metadata["evidence"] == cited.evidence
    assert first.score == cited.score

    tool = QueryEngineTool.from_defaults(
        query_engine=engine, name="papers", description="Answers from paper abstracts."
    )
    out = tool.call(GASNET_Q)
    assert out.content == out.raw_output.metadata["answer"].text
    assert [n.node.node_id for n in out.raw_output.source_nodes] == [
        c.paper_id for c in out.raw_output.metadata["answer"].citations
    ]
