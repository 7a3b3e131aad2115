"""The baseline: a plain llama-index pipeline over the same Chroma collection.

Dense retrieval only (the stored all-MiniLM-L6-v2 vectors, through ``VectorStoreIndex``) and
the stock ``CitationQueryEngine`` with the same chat model as the assistant: no BM25, no
passage selection, no relevance cut-off, no citation check. Its response is turned into the
same scoring inputs as the assistant's answers: sentences with the texts of the sources they
cite (``[n]`` markers, as ALCE reads them) and the retrieved texts.

``llm=`` and ``embed_model=`` are always passed explicitly: llama-index's global ``Settings``
would otherwise build an OpenAI client without a word.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from assistant.answer.citations import is_refusal
from assistant.index.chroma import PaperIndex
from assistant.index.embeddings import Embedder
from assistant.llm.base import ChatModel
from assistant.llm.llama_index_llm import as_llama_index_llm
from assistant.settings import Settings
from assistant.text import content_terms, split_sentences

from .judge import premise_text

__all__ = ["Baseline", "BaselineAnswer", "RetrievedText", "DESCRIPTION", "split_cited_sentences"]

logger = logging.getLogger(__name__)

DESCRIPTION = "llama-index VectorStoreIndex (dense only) + stock CitationQueryEngine, same model"

_MARKER = re.compile(r"\s*\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]")
_SOURCE_PREFIX = re.compile(r"^\s*Source \d+:\s*")


@dataclass
class RetrievedText:
    """One retrieved chunk (or citation chunk) with the paper it comes from."""

    title: str
    text: str
    score: float = 0.0

    @property
    def premise(self) -> str:
        return premise_text(self.title, self.text)


@dataclass
class BaselineAnswer:
    """The stock engine's answer, ready to score."""

    text: str
    sentences: list[tuple[str, list[int]]]
    """(sentence without markers, cited source numbers 1..n) in answer order, for the
    sentences that make a claim (as the assistant's verifier: no filler, no refusal)."""
    sources: list[RetrievedText]
    """The numbered sources the engine showed the model (``Source n`` is ``sources[n-1]``)."""
    answerable: bool
    timings: dict[str, float] = field(default_factory=dict)


def split_cited_sentences(text: str, n_sources: int) -> list[tuple[str, list[int]]]:
    """Sentences of ``text`` and the valid ``[n]`` markers in each, markers removed.

    As ALCE's evaluation does: split into sentences, read ``[n]`` (and ``[n, m]``) markers in
    each, judge the sentence without them. A marker left alone after a sentence end
    (``... accuracy. [2]``) belongs to the sentence before it. Numbers that are not a source
    are dropped.
    """
    out: list[tuple[str, list[int]]] = []
    for line in text.splitlines():
        for sentence in split_sentences(line):
            refs: list[int] = []
            for m in _MARKER.finditer(sentence):
                for num in re.findall(r"\d+", m.group(1)):
                    n = int(num)
                    if 1 <= n <= n_sources and n not in refs:
                        refs.append(n)
            clean = " ".join(_MARKER.sub("", sentence).split())
            if not re.search(r"\w", clean):
                if out:  # a stray marker: cite it from the previous sentence
                    out[-1][1].extend(r for r in refs if r not in out[-1][1])
                continue
            out.append((clean, refs))
    return out


class Baseline:
    """Stock llama-index retrieval and ``CitationQueryEngine`` over an existing collection."""

    def __init__(
        self,
        settings: Settings,
        *,
        llm: ChatModel,
        embedder: Embedder,
        index: PaperIndex | None = None,
        top_k: int | None = None,
    ) -> None:
        self.settings = settings
        self.top_k = top_k or settings.top_k
        self._chat_model = llm
        self._embedder = embedder
        self._paper_index = index
        self._index: Any = None
        self._engine: Any = None

    def _vector_index(self) -> Any:
        if self._index is None:
            from llama_index.core import VectorStoreIndex
            from llama_index.vector_stores.chroma import ChromaVectorStore

            paper_index = self._paper_index or PaperIndex(self.settings)
            store = ChromaVectorStore(chroma_collection=paper_index.open())
            self._index = VectorStoreIndex.from_vector_store(
                store, embed_model=self._embedder.as_llama_index()
            )
        return self._index

    def _query_engine(self) -> Any:
        if self._engine is None:
            from llama_index.core.query_engine import CitationQueryEngine

            llm = as_llama_index_llm(
                self._chat_model,
                max_tokens=self.settings.max_tokens,
                temperature=self.settings.temperature,
            )
            self._engine = CitationQueryEngine.from_args(
                self._vector_index(), llm=llm, similarity_top_k=self.top_k
            )
        return self._engine

    def retrieve(self, question: str, top_k: int = 10) -> list[RetrievedText]:
        """The ``top_k`` chunks nearest the question, best first (several may share a paper)."""
        retriever = self._vector_index().as_retriever(similarity_top_k=top_k)
        return [_retrieved(n) for n in retriever.retrieve(question)]

    def ask(self, question: str) -> BaselineAnswer:
        from llama_index.core.schema import QueryBundle

        engine = self._query_engine()
        bundle = QueryBundle(question)
        started = time.perf_counter()
        nodes = engine.retrieve(bundle)
        retrieved = time.perf_counter()
        response = engine.synthesize(bundle, nodes)
        done = time.perf_counter()
        sources = [_retrieved(n) for n in response.source_nodes]
        text = str(getattr(response, "response", "") or "").strip()
        return BaselineAnswer(
            text=text,
            sentences=[
                (s, refs)
                for s, refs in split_cited_sentences(text, len(sources))
                if content_terms(s) and not is_refusal(s)
            ],
            sources=sources,
            answerable=bool(text) and text != "Empty Response" and not is_refusal(text),
            timings={
                "retrieval": round(retrieved - started, 4),
                "generation": round(done - retrieved, 4),
                "total": round(done - started, 4),
            },
        )


def _retrieved(node_with_score: Any) -> RetrievedText:
    from llama_index.core.schema import MetadataMode

    node = node_with_score.node
    meta = node.metadata or {}
    text = _SOURCE_PREFIX.sub("", node.get_content(metadata_mode=MetadataMode.NONE)).strip()
    return RetrievedText(
        title=str(meta.get("title", "")),
        text=text,
        score=float(node_with_score.score or 0.0),
    )
