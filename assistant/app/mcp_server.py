"""A door for agents: the assistant as a Model Context Protocol server (``assistant mcp``), with
the official ``mcp`` SDK, over stdio or streamable HTTP on 127.0.0.1.

Three tools, each described so that an agent knows when to use it:

- ``ask``: a written answer with numbered citations checked against the abstracts, the
  evidence sentences of each cited paper, and whether the collection answers at all (calls
  the language model);
- ``search_papers``: the papers ranked for a query, with scores and their best sentences
  (no model call, well under a second);
- ``get_paper``: one paper's whole abstract and metadata by id.

Each tool returns readable text (for agents that read only that) and the same as structured
content with an output schema. Over HTTP the binding rules are the API's
(:mod:`assistant.app.access`): 127.0.0.1 by default, another address only with a bearer key.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Annotated, Any

import anyio
from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel, Field

from assistant.answer.search import get_paper, search_papers
from assistant.app.access import BearerGuard, check_key_exposure
from assistant.errors import AssistantError
from assistant.types import Answer

if TYPE_CHECKING:
    from assistant.answer.engine import Assistant

__all__ = ["build_mcp", "run_mcp", "mcp_http_app", "TOOL_NAMES"]

log = logging.getLogger(__name__)

TOOL_NAMES = ("ask", "search_papers", "get_paper")

INSTRUCTIONS = (
    "Questions about a collection of research paper abstracts. Use search_papers to find "
    "which papers are about something (fast, no model), get_paper to read one paper's whole "
    "abstract, and ask for a written answer whose every statement cites the paper it comes "
    "from. Cite papers by their titles and URLs as returned; never invent a paper."
)

ASK_DESCRIPTION = (
    "Answer a research question from the indexed paper abstracts. The answer's statements "
    "carry [n] markers that point to the numbered citations; every citation was checked "
    "against its abstract, and evidence lists the sentences of the abstract that support it. "
    "answerable is false when the collection does not hold the answer (the text then says "
    "so): tell the user so rather than answering from memory. Use it when the user wants "
    "an explanation or a finding (what does X report, how does Y work, which papers study Z "
    "and what they find). It calls a language model: expect seconds to a minute on a CPU. "
    "For a list of relevant papers without a written answer, use search_papers instead."
)

SEARCH_DESCRIPTION = (
    "Find the papers in the collection most relevant to a query, best first, by hybrid "
    "search (meaning and exact names such as method acronyms), each with its score and the "
    "sentences of its abstract closest to the query. No language model is called: fast. Use "
    "it to see what the collection holds on a topic, to find a paper by a method's name, or "
    "to pick paper ids for get_paper. An empty list means nothing is relevant enough."
)

GET_PAPER_DESCRIPTION = (
    "The whole abstract and metadata (title, authors, date, url, source file) of one paper, "
    "by the paper_id that search_papers or ask returned. Use it to read a paper in full "
    "before quoting or summarising it."
)


# --- what the tools return ------------------------------------------------------------------
class CitedPaper(BaseModel):
    number: int = Field(description="The [n] marker in the answer text")
    paper_id: str
    title: str
    url: str = ""
    snippet: str = Field("", description="The abstract's sentence that best supports the answer")
    score: float = Field(0.0, description="Support score of the citation (0..1)")
    evidence: list[str] = Field(default_factory=list, description="Supporting sentences")


class AskResult(BaseModel):
    text: str = Field(description="The checked answer with [n] citation markers")
    answerable: bool = Field(description="False when the collection does not hold the answer")
    evidence_level: str = Field(description="strong, weak or none: how well the abstracts held it")
    quoted: bool = Field(description="True when the text quotes the abstracts, not the model")
    citations: list[CitedPaper]


class FoundPaper(BaseModel):
    rank: int
    paper_id: str
    title: str
    score: float = Field(description="Hybrid (dense + BM25, rank-fused) score; higher is better")
    similarity: float = Field(description="Best cosine similarity of the paper to the query")
    url: str = ""
    date: str = ""
    authors: str = ""
    source: str = ""
    best_sentences: list[str] = Field(description="The abstract's sentences closest to the query")


class SearchResult(BaseModel):
    papers: list[FoundPaper]


class Paper(BaseModel):
    paper_id: str
    title: str
    abstract: str
    url: str = ""
    date: str = ""
    authors: str = ""
    source: str = ""
    categories: str = ""


TopK = Annotated[
    int | None, Field(ge=1, le=50, description="How many papers (default: the server's)")
]
DateFrom = Annotated[
    str | None, Field(description="Only papers published on or after YYYY[-MM[-DD]]")
]
DateTo = Annotated[
    str | None, Field(description="Only papers published on or before YYYY[-MM[-DD]]")
]
SourceFile = Annotated[str | None, Field(description="Only papers from this source file name")]


def _filters(date_from: str | None, date_to: str | None, source: str | None) -> list[str] | None:
    out = []
    if date_from and date_from.strip():
        out.append(f"date>={date_from.strip()}")
    if date_to and date_to.strip():
        out.append(f"date<={date_to.strip()}")
    if source and source.strip():
        out.append(f"source={source.strip()}")
    return out or None


def _result(text: str, data: BaseModel) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structuredContent=data.model_dump(mode="json"),
    )


def _ask_result(answer: Answer) -> CallToolResult:
    cited = [
        CitedPaper(
            number=c.number,
            paper_id=c.paper_id,
            title=c.title,
            url=c.url,
            snippet=c.snippet,
            score=c.score,
            evidence=list(c.evidence),
        )
        for c in answer.citations
    ]
    data = AskResult(
        text=answer.text,
        answerable=answer.answerable,
        evidence_level=answer.evidence_level,
        quoted=answer.quoted,
        citations=cited,
    )
    lines = [answer.text]
    for c in cited:
        lines.append(
            f"[{c.number}] {c.title} (paper_id {c.paper_id}{', ' + c.url if c.url else ''})"
        )
        lines += [f"    evidence: “{q}”" for q in c.evidence or ([c.snippet] if c.snippet else [])]
    return _result("\n".join(lines), data)


async def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking call in a worker thread; our errors become tool errors (their message
    names the remedy)."""
    try:
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))
    except AssistantError as exc:
        raise ToolError(str(exc)) from None


# --- the server -----------------------------------------------------------------------------
def build_mcp(assistant: Assistant, *, host: str = "127.0.0.1", port: int = 8765) -> FastMCP:
    """The MCP server for ``assistant`` (built, not run; see :func:`run_mcp`)."""
    mcp = FastMCP("paper-assistant", instructions=INSTRUCTIONS, host=host, port=port)

    @mcp.tool(name="ask", title="Ask the papers", description=ASK_DESCRIPTION)
    async def ask(
        question: Annotated[str, Field(description="The question, in plain words")],
        top_k: TopK = None,
        date_from: DateFrom = None,
        date_to: DateTo = None,
        source: SourceFile = None,
    ) -> Annotated[CallToolResult, AskResult]:
        filters = _filters(date_from, date_to, source)
        answer = await _call(assistant.ask, question, top_k=top_k, filters=filters)
        return _ask_result(answer)

    @mcp.tool(name="search_papers", title="Search papers", description=SEARCH_DESCRIPTION)
    async def search(
        query: Annotated[str, Field(description="What to look for: a topic, a claim, a name")],
        top_k: Annotated[int, Field(ge=1, le=50, description="How many papers at most")] = 5,
        date_from: DateFrom = None,
        date_to: DateTo = None,
        source: SourceFile = None,
    ) -> Annotated[CallToolResult, SearchResult]:
        filters = _filters(date_from, date_to, source)
        hits = await _call(search_papers, assistant, query, top_k=top_k, filters=filters)
        data = SearchResult(papers=[FoundPaper(**h.to_dict()) for h in hits])
        lines = [
            f"{p.rank}. {p.title} (paper_id {p.paper_id}, score {p.score:.4f})\n"
            + "\n".join(f"   “{s}”" for s in p.best_sentences)
            for p in data.papers
        ]
        return _result("\n".join(lines) or "No paper in the collection is relevant enough.", data)

    @mcp.tool(name="get_paper", title="Get a paper", description=GET_PAPER_DESCRIPTION)
    async def paper(
        paper_id: Annotated[str, Field(description="The paper_id from search_papers or ask")],
    ) -> Annotated[CallToolResult, Paper]:
        found = await _call(get_paper, assistant, paper_id)
        if found is None:
            raise ToolError(
                f"no paper with id {paper_id!r} in the collection; paper ids come from "
                "search_papers or ask"
            )
        data = Paper(
            paper_id=found.paper_id,
            title=found.title,
            abstract=found.abstract,
            url=found.url,
            date=found.date,
            authors=found.authors,
            source=str(found.metadata.get("source", "")),
            categories=str(found.metadata.get("categories", "")),
        )
        head = " · ".join(x for x in (data.authors, data.date, data.url) if x)
        return _result(f"{data.title}\n{head}\n\n{data.abstract}".strip(), data)

    return mcp


def mcp_http_app(mcp: FastMCP, api_key: str | None = None) -> Any:
    """The streamable HTTP app (endpoint ``/mcp``), behind the bearer key when one is set."""
    app = mcp.streamable_http_app()
    return BearerGuard(app, api_key=api_key) if api_key else app


def _warm_up(assistant: Assistant) -> None:
    """Load the index and model in the background: the client's handshake need not wait."""

    def work() -> None:
        try:
            assistant.warm_up()
        except AssistantError as exc:  # said again, as a tool error, on the first call
            log.warning("%s", exc)

    threading.Thread(target=work, name="mcp-warm-up", daemon=True).start()


def run_mcp(
    assistant: Assistant,
    *,
    transport: str = "stdio",
    host: str = "127.0.0.1",
    port: int = 8765,
    api_key: str | None = None,
) -> None:
    """Serve until the client leaves (stdio) or until interrupted (``streamable-http``)."""
    if transport == "stdio":
        mcp = build_mcp(assistant)
        _warm_up(assistant)
        mcp.run("stdio")
        return
    import uvicorn

    check_key_exposure(host, api_key, "the MCP server")
    mcp = build_mcp(assistant, host=host, port=port)
    _warm_up(assistant)
    log.info("serving MCP at http://%s:%d/mcp", host, port)
    uvicorn.run(mcp_http_app(mcp, api_key), host=host, port=port, log_level="warning")
