"""The query engine, the answer pipeline end to end: retrieve papers, read the question, pick the
passages that matter, prompt the model, verify its sentences, compose the answer.

from assistant import Assistant
a = Assistant.from_settings()
ans = a.ask("Which papers study grokking, and what do they find?")
print(ans.text); print(ans.bibliography())
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from assistant.answer.compose import compose_answer
from assistant.answer.conversation import (
    condense_messages,
    continued_messages,
    copied_sources,
    last_answer,
    new_names,
    refers_back,
    reusable_sources,
)
from assistant.answer.decide import ANSWER_THRESHOLD, answer_features, answer_probability
from assistant.answer.evidence import (
    Assessment,
    PassagePlan,
    SourceEvidence,
    assess,
    best_for_parts,
    score_sources,
    select_passages,
)
from assistant.answer.question import QuestionShape, question_shape
from assistant.answer.retrieval import HybridRetriever, Reranker
from assistant.answer.several import per_paper, per_side, side_papers, side_similarity
from assistant.answer.verdict import finding_verdicts
from assistant.answer.verify import NO_ANSWER_TEXT, verify_answer
from assistant.errors import QuestionError
from assistant.index.chroma import PaperIndex
from assistant.index.embeddings import Embedder, MemoEmbed, load_embedder
from assistant.llm.backend import chat_model_from_settings
from assistant.llm.base import ChatModel
from assistant.llm.local import LocalChatModel
from assistant.prompts import load_prompt
from assistant.safety import neutralize_source
from assistant.settings import Settings
from assistant.types import Answer, Source

__all__ = ["Assistant", "History", "MAX_QUESTION_CHARS"]

STOP = ["\nQuestion:", "\nPapers:", "\n<papers>", "\nExample "]
"""Where a small model that keeps going past its answer is cut off."""

log = logging.getLogger(__name__)

History = Sequence[Any]
"""Earlier turns: :class:`Answer` objects, ``(question, answer)`` pairs, or chat messages
``{"role": "user"|"assistant", "content": ...}`` (Gradio's format)."""


@dataclass
class _Turn:
    """A question on its way through the pipeline."""

    question: str
    standalone: str
    sources: list[Source] = field(default_factory=list)
    evidence: list[SourceEvidence] = field(default_factory=list)
    shape: QuestionShape | None = None
    assessment: Assessment | None = None
    messages: list[dict[str, str]] = field(default_factory=list)
    prompt_tokens: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)


class Assistant:
    """Answers questions over the indexed abstracts, citing the papers it used.

    Every heavy part can be passed in (``llm``, ``embed_model``, ``vector_store``, ``index``,
    ``reranker``); what is not passed is built from ``settings`` when first needed.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        llm: ChatModel | None = None,
        embed_model: Embedder | None = None,
        vector_store: Any | None = None,
        index: PaperIndex | None = None,
        reranker: Reranker | None = None,
    ) -> None:
        self.settings = settings or Settings.load()
        self._llm = llm
        self._embedder = embed_model
        if index is None and vector_store is not None:
            # a llama-index ChromaVectorStore: use its collection
            index = PaperIndex(self.settings, collection=vector_store.client)
        self._index = index
        self._reranker = reranker
        self._retriever: HybridRetriever | None = None
        self._memo: MemoEmbed | None = None
        self._init_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **parts: Any) -> Assistant:
        return cls(settings or Settings.load(), **parts)

    # --- parts, built lazily ----------------------------------------------------------------
    @property
    def llm(self) -> ChatModel:
        with self._init_lock:
            if self._llm is None:
                self._llm = chat_model_from_settings(self.settings)
            return self._llm

    @property
    def embedder(self) -> Embedder:
        with self._init_lock:
            if self._embedder is None:
                self._embedder = load_embedder(self.settings)
            return self._embedder

    @property
    def index(self) -> PaperIndex:
        """The paper index, opened; needs no embedder (what the page lists and counts)."""
        with self._init_lock:
            if self._index is None:
                self._index = PaperIndex(self.settings)
            self._index.open()
            return self._index

    @property
    def retriever(self) -> HybridRetriever:
        embedder = self.embedder
        index = self.index
        with self._init_lock:
            if self._retriever is None:
                self._retriever = HybridRetriever(
                    self.settings, index, embedder, reranker=self._reranker
                )
                self._memo = MemoEmbed(embedder)
            return self._retriever

    @property
    def embed(self) -> MemoEmbed:
        _ = self.retriever
        assert self._memo is not None  # set with the retriever
        return self._memo

    def warm_up(self) -> None:
        """Open the index, build BM25, load the model and, for the local model, read the
        system prompt into its cache now rather than on the first question (every answer's
        prompt starts with it, so later questions pay only for their own part)."""
        self.retriever.ensure_ready()
        if isinstance(self.llm, LocalChatModel):
            self.llm.complete(self._with_system("Question: ready?"), max_tokens=1)

    def _with_system(self, user: str) -> list[dict[str, str]]:
        """The fixed system prompt, then ``user``: prompts that start alike share the
        local model's cache of the system prompt."""
        return [
            {"role": "system", "content": load_prompt("system").render()},
            {"role": "user", "content": user},
        ]

    def info(self) -> dict[str, Any]:
        """What is answering: model, embedder, index location and size."""
        index_info = self.index.info()
        return {
            "model": self.llm.name,
            "backend": self.settings.backend,
            "embed_model": index_info.get("embed_model"),
            "papers": index_info.get("papers"),
            "chunks": index_info.get("chunks"),
            "index": index_info.get("location"),
            "collection": index_info.get("collection"),
            "top_k": self.settings.top_k,
        }

    # --- the public calls -----------------------------------------------------------------
    def retrieve(
        self,
        question: str,
        *,
        top_k: int | None = None,
        filters: Sequence[str] | dict[str, Any] | None = None,
    ) -> list[Source]:
        """The papers the assistant would use for ``question``, best first (numbered 1..n)."""
        sources = self.retriever.retrieve(_check_question(question), top_k=top_k, filters=filters)
        for i, s in enumerate(sources, 1):
            s.number = i
        return sources

    def ask(
        self,
        question: str,
        *,
        top_k: int | None = None,
        filters: Sequence[str] | dict[str, Any] | None = None,
        history: History | None = None,
    ) -> Answer:
        """Answer ``question``; every statement cites the paper it comes from."""
        turn = self._prepare(question, top_k, filters, history)
        if not turn.sources:
            return self._no_answer(turn)
        t = time.perf_counter()
        raw = self.llm.complete(
            turn.messages,
            max_tokens=self.settings.max_tokens,
            temperature=self.settings.temperature,
            stop=STOP,
        )
        turn.timings["generation"] = time.perf_counter() - t
        return self._finish(turn, raw)

    def stream(
        self,
        question: str,
        *,
        top_k: int | None = None,
        filters: Sequence[str] | dict[str, Any] | None = None,
        history: History | None = None,
    ) -> Iterator[str | Answer]:
        """Yield the model's text pieces as they come, then the verified :class:`Answer`.

        The pieces carry the model's own citation numbers; the final Answer's ``text`` is the
        checked version, with citations corrected and renumbered.
        """
        turn = self._prepare(question, top_k, filters, history)
        if not turn.sources:
            yield self._no_answer(turn)
            return
        t = time.perf_counter()
        pieces: list[str] = []
        for piece in self.llm.stream(
            turn.messages,
            max_tokens=self.settings.max_tokens,
            temperature=self.settings.temperature,
            stop=STOP,
        ):
            if not pieces:
                turn.timings["first_token"] = time.perf_counter() - turn.started
            pieces.append(piece)
            yield piece
        turn.timings["generation"] = time.perf_counter() - t
        yield self._finish(turn, "".join(pieces))

    def chat(self, history: History, question: str, **kwargs: Any) -> Answer:
        """Answer a follow-up question in the context of ``history``."""
        return self.ask(question, history=history, **kwargs)

    # --- llama-index parts (assistant/answer/llama_index_parts.py) ------------------------------
    def as_retriever(self, *, top_k: int | None = None, filters: Any = None) -> Any:
        """Our hybrid retrieval as a llama-index ``BaseRetriever``: one ``NodeWithScore`` per
        paper. ``filters``: ``KEY=VALUE`` strings, a where-clause or ``MetadataFilters``."""
        from assistant.answer.llama_index_parts import PaperRetriever

        return PaperRetriever(self, top_k=top_k, filters=filters)

    def as_query_engine(self, *, top_k: int | None = None, filters: Any = None) -> Any:
        """This assistant as a llama-index query engine: its ``Response`` holds the checked
        answer, the cited papers as ``source_nodes`` and the :class:`Answer` in metadata."""
        from assistant.answer.llama_index_parts import AssistantQueryEngine

        return AssistantQueryEngine(self, top_k=top_k, filters=filters)

    # --- the pipeline ---------------------------------------------------------------------
    def _prepare(
        self,
        question: str,
        top_k: int | None,
        filters: Sequence[str] | dict[str, Any] | None,
        history: History | None,
    ) -> _Turn:
        question = _check_question(question)
        retriever = self.retriever
        q_tokens = self.llm.count_tokens(question)
        if q_tokens > self.llm.context_window // 2:
            raise QuestionError(
                f"the question is {q_tokens} tokens long; the model's context window is "
                f"{self.llm.context_window} tokens. Ask a shorter question."
            )
        turn = _Turn(question=question, standalone=question)
        turns = _normalize_history(history)
        boost: list[str] = []
        # a follow-up about the previous turn's papers continues its chat (answer.conversation)
        previous = last_answer(history) if self.settings.follow_up_reuse else None
        if turns:
            boost = [pid for _, _, ids in turns[-2:] for pid in ids]
            if previous is not None and refers_back(question) and not new_names(question, previous):
                query = f"{turns[-1][0]} {question}"  # for the evidence; no model call first
                if self._continue_chat(turn, previous, copied_sources(previous), query, question):
                    return turn
            t = time.perf_counter()
            turn.standalone = self._condense(turns, question, previous)
            turn.timings["condense"] = time.perf_counter() - t
        turn.shape = question_shape(turn.standalone)
        if top_k is None and turn.shape.multi:
            top_k = max(self.settings.top_k, self.settings.multi_top_k)
        sources = retriever.retrieve(
            turn.standalone, top_k=top_k, filters=filters, boost_ids=boost, timings=turn.timings
        )
        sources = self._with_side_papers(turn, sources, filters)
        if not sources:
            return turn
        if previous is not None and (same := reusable_sources(previous, sources)) is not None:
            if self._continue_chat(turn, previous, same, turn.standalone, turn.standalone):
                return turn
        t = time.perf_counter()
        turn.evidence = score_sources(
            turn.standalone, sources, self.embed, turn.shape, embed_model=self.embedder.model_id
        )
        turn.assessment = assess(turn.evidence, turn.shape)
        plan = PassagePlan(
            whole_top_tokens=self.settings.whole_abstract_tokens,
            other_sentences=self.settings.passage_sentences,
        )
        select_passages(turn.evidence, turn.shape, self.llm.count_tokens, plan)
        turn.sources = sources
        turn.messages = self._fit_messages(turn)
        turn.evidence = turn.evidence[: len(turn.sources)]
        turn.timings["passages"] = time.perf_counter() - t
        log.debug(
            "evidence %s (%s); figure asked: %s; several papers: %s",
            turn.assessment.level,
            "; ".join(turn.assessment.reasons) or "all checks passed",
            turn.shape.wants_figure,
            turn.shape.multi,
        )
        return turn

    def _fit_messages(self, turn: _Turn) -> list[dict[str, str]]:
        """System prompt (an unchanging prefix the model can cache) plus the numbered passages,
        dropping the weakest sources until everything fits the context window."""
        source_tpl, answer_tpl = load_prompt("source"), load_prompt("answer")
        budget = self.llm.context_window - self.settings.max_tokens - 16
        sources = list(turn.sources)
        while True:
            for i, s in enumerate(sources, 1):
                s.number = i
            block = "\n".join(
                source_tpl.render(
                    number=s.number,
                    title=neutralize_source(s.title),  # source text never becomes structure
                    passage=neutralize_source(" ".join(s.passages)),
                )
                for s in sources
            )
            messages = self._with_system(
                answer_tpl.render(
                    sources=block, question=turn.standalone, instruction=_instruction(turn.shape)
                )
            )
            tokens = self.llm.count_message_tokens(messages)
            if tokens <= budget or len(sources) == 1:
                break
            sources.pop()
        if tokens > budget:
            raise QuestionError(
                f"the question and one source do not fit the model's {self.llm.context_window}-token "
                "context window; ask a shorter question or raise ASSISTANT_N_CTX"
            )
        turn.sources = sources
        # what the model reads beyond the system prompt, which it keeps cached between questions
        turn.prompt_tokens = tokens - self.llm.count_message_tokens(messages[:1])
        return messages

    def _continue_chat(
        self, turn: _Turn, previous: Answer, sources: list[Source], query: str, asked: str
    ) -> bool:
        """Make ``turn`` the next message of ``previous``'s chat, over its ``sources`` (see
        :mod:`assistant.answer.conversation`): the model then reads only ``asked``, its cache
        holding the rest. ``query`` is what the evidence is scored against. False when the
        chat no longer fits the context window (the turn then gets a prompt of its own)."""
        messages = continued_messages(previous, asked)
        tokens = self.llm.count_message_tokens(messages)
        if tokens > self.llm.context_window - self.settings.max_tokens - 16:
            return False
        t = time.perf_counter()
        turn.standalone, turn.shape = query, question_shape(query)
        turn.sources, turn.messages = sources, messages
        turn.evidence = score_sources(
            query, sources, self.embed, turn.shape, embed_model=self.embedder.model_id
        )
        turn.assessment = assess(turn.evidence, turn.shape)
        # what the model reads beyond the chat its cache holds
        turn.prompt_tokens = tokens - self.llm.count_message_tokens(messages[:-1])
        turn.timings["passages"] = time.perf_counter() - t
        log.debug("the follow-up continues the chat over the same %d papers", len(sources))
        return True

    def _condense(
        self, turns: list[tuple[str, str, list[str]]], question: str, previous: Answer | None
    ) -> str:
        """Rewrite a follow-up into a question that stands on its own: as the next message of
        ``previous``'s chat when there is one (the model's cache holds the rest), else with
        the conversation written out."""
        messages = condense_messages(previous, question) if previous is not None else []
        if not messages or self.llm.count_message_tokens(messages) + 96 > self.llm.context_window:
            history = "\n".join(f"User: {q}\nAssistant: {a}" for q, a, _ in turns[-3:])
            prompt = load_prompt("condense").render(history=history, question=question)
            messages = self._with_system(prompt)
        try:
            out = self.llm.complete(messages, max_tokens=80, temperature=0.0)
        except Exception as exc:  # the answer step will report a broken LLM properly
            log.warning("could not condense the follow-up question: %s", exc)
            return question
        out = out.strip().splitlines()[0].strip().strip('"') if out.strip() else ""
        # A small model sometimes answers instead of rewriting: keep the original then.
        if not out or len(out) > 4 * len(question) + 200:
            return f"{turns[-1][0]} {question}"
        return out

    def _finish(self, turn: _Turn, raw: str) -> Answer:
        """Verify the model's text, then write the answer from it and the evidence (see
        :mod:`assistant.answer.compose`)."""
        t = time.perf_counter()
        verified = verify_answer(
            _strip_echo(raw),
            turn.sources,
            self.embed,
            threshold=self.settings.support_threshold,
            drop_unsupported=self.settings.drop_unsupported,
        )
        assert turn.shape is not None  # set by _prepare
        composed = self._compose(turn, verified, raw)
        verified, quoted = composed.verified, composed.quoted
        turn.timings["verification"] = time.perf_counter() - t
        turn.timings["total"] = time.perf_counter() - turn.started
        return Answer(
            question=turn.question,
            text=verified.text,
            citations=verified.citations,
            sources=turn.sources,
            answerable=verified.answerable,
            timings={k: round(v, 4) for k, v in turn.timings.items()},
            sentences=verified.sentences,
            raw_text=raw,
            model=self.llm.name,
            evidence_level=turn.assessment.level if turn.assessment else "",
            quoted=quoted,
            prompt_tokens=turn.prompt_tokens,
            prompt=turn.messages,
            decision=composed.decision,
        )

    def _compose(self, turn: _Turn, verified: Any, raw: str) -> Any:
        shape, evidence, question = turn.shape, turn.evidence, turn.standalone
        assert shape is not None
        base: dict[str, Any] = {"kind": shape.kind}
        claim_similarity = self._claim_similarity(question, verified)
        features = answer_features(verified, evidence, shape, claim_similarity, raw)
        if answer_probability(features) < ANSWER_THRESHOLD:  # declined, whatever the kind
            return compose_answer(verified, evidence, shape, question=question, raw_text=raw,
                                  claim_similarity=claim_similarity, note=base,
                                  features=features)  # fmt: skip
        if shape.kind == "multi" and len(evidence) > 1:
            listed = per_paper(verified, evidence, shape, question, base)
            if listed is not None:
                return listed
        if shape.kind == "compare" and len(shape.sides) == 2 and len(evidence) > 1:
            sides = side_papers(side_similarity(shape.sides, evidence, self.embed))
            if any(i is not None for i in sides) and len(set(sides)) == len(sides):
                return per_side(verified, evidence, shape, question, sides, base)
        verdicts = self._verdicts(turn) if shape.kind == "yesno" else {}
        parts = best_for_parts(question, max(evidence, key=lambda ev: ev.best_score), self.embed)
        return compose_answer(
            verified,
            evidence,
            shape,
            question=question,
            raw_text=raw,
            claim_similarity=claim_similarity,
            verdict=verdicts.get("verdict"),
            rules_decisive=bool(verdicts.get("rules_decisive")),
            written_verdict=self.settings.verdict_judge == "answer",
            part_best=parts,
            note=base | verdicts,
            features=features,
        )

    def _claim_similarity(self, question: str, verified: Any) -> float:
        """The closest supported sentence of the model's text to the question (cosine)."""
        claims = [s.text for s in verified.sentences if s.supported]
        if not claims:
            return 0.0
        vecs = self.embed([question, *claims])
        return float((vecs[1:] @ vecs[0]).max())

    def _verdicts(self, turn: _Turn) -> dict[str, str | bool | None]:
        t = time.perf_counter()
        judge = self.llm if self.settings.verdict_judge == "model" else None
        out = finding_verdicts(turn.standalone, turn.evidence, judge)
        if judge is not None and out:
            turn.timings["verdict"] = time.perf_counter() - t
        return out

    def _with_side_papers(
        self, turn: _Turn, sources: list[Source], filters: Sequence[str] | dict[str, Any] | None
    ) -> list[Source]:
        """For a comparison, the best paper for each side's own description too, so that
        both sides are there even when the question as a whole favours one."""
        shape = turn.shape
        if shape is None or shape.kind != "compare" or len(shape.sides) != 2:
            return sources
        have = {s.paper_id for s in sources}
        extra: list[Source] = []
        for side in shape.sides:
            for s in self.retriever.retrieve(side, top_k=1, filters=filters):
                if s.paper_id not in have:
                    have.add(s.paper_id)
                    extra.append(s)
        return [*sources, *extra]

    def _no_answer(self, turn: _Turn) -> Answer:
        turn.timings["total"] = time.perf_counter() - turn.started
        return Answer(
            question=turn.question,
            text=NO_ANSWER_TEXT,
            answerable=False,
            timings={k: round(v, 4) for k, v in turn.timings.items()},
            model=self._llm.name if self._llm is not None else "",
        )


INSTRUCTIONS = {
    "yesno": "Start with Yes or No, then give the finding that decides it.",
    "compare": "Write one line per paper: what it does or finds on the point asked.",
}
"""What the answer prompt adds after the question, by kind of question (in the question's
part of the prompt, not the cached system prompt, so that only those questions get it)."""


def _instruction(shape: QuestionShape | None) -> str:
    text = INSTRUCTIONS.get(shape.kind, "") if shape is not None else ""
    return f"\n({text})" if text else ""


_ECHO = re.compile(r"^\s*(?:answer|assistant)\s*:\s*", re.IGNORECASE)


def _strip_echo(raw: str) -> str:
    """Drop an "Answer:" label a small model sometimes repeats from the prompt."""
    return _ECHO.sub("", raw, count=1)


MAX_QUESTION_CHARS = 2_000
"""A longer question is refused before it is tokenized: counting its tokens would hold the
local model's lock (and every other user's question) for as long as it takes."""


def _check_question(question: str) -> str:
    if not isinstance(question, str) or not question.strip():
        raise QuestionError("the question is empty: ask something about the papers")
    question = " ".join(question.split())
    if len(question) > MAX_QUESTION_CHARS:
        raise QuestionError(
            f"the question is {len(question):,} characters long; ask one of at most "
            f"{MAX_QUESTION_CHARS:,} characters"
        )
    return question


def _normalize_history(history: History | None) -> list[tuple[str, str, list[str]]]:
    """(question, answer text, cited paper ids) per earlier turn."""
    turns: list[tuple[str, str, list[str]]] = []
    pending: str | None = None
    for item in history or []:
        if isinstance(item, Answer):
            turns.append((item.question, item.text, [c.paper_id for c in item.citations]))
        elif isinstance(item, dict):
            role, content = item.get("role"), item.get("content")
            if not isinstance(content, str):
                continue
            if role == "user":
                pending = content
            elif role == "assistant" and pending is not None:
                turns.append((pending, content, []))
                pending = None
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            q, a = item
            if isinstance(a, Answer):
                turns.append((str(q), a.text, [c.paper_id for c in a.citations]))
            else:
                turns.append((str(q), str(a or ""), []))
    return turns
