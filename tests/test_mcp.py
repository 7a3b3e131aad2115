"""The MCP server, through the ``mcp`` SDK's own client: over stdio (``assistant mcp`` as a
child process, as an agent host starts it) and over streamable HTTP on 127.0.0.1 (in
process, beside the same assistant asked directly). Real index, real tiny model."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from source_tree import REPO_ROOT

from assistant.answer.engine import Assistant
from assistant.app.api import served
from assistant.app.mcp_server import TOOL_NAMES, build_mcp, mcp_http_app
from assistant.llm.local import LocalChatModel
from assistant.settings import Settings

pytestmark = [pytest.mark.server, pytest.mark.timeout(300)]

GASNET_Q = "What does GaSNet-II predict besides the spectral class?"
KEY = "mcp-key-0123456789abcdef"


@pytest.fixture(scope="module")
def assistant(sample_index: Path, embedder: Any, tiny_model_path: Path) -> Assistant:
    llm = LocalChatModel(tiny_model_path, n_ctx=2048, n_threads=2, name="tiny")
    a = Assistant(
        Settings(index_dir=sample_index, max_tokens=64, top_k=2), llm=llm, embed_model=embedder
    )
    a.warm_up()
    return a


async def _exercise(session: ClientSession) -> dict[str, Any]:
    """List the tools and call each: what came back, by tool."""
    await session.initialize()
    tools = {t.name: t for t in (await session.list_tools()).tools}
    found = await session.call_tool(
        "search_papers", {"query": "GaSNet-II spectra redshift", "top_k": 3}
    )
    first = found.structuredContent["papers"][0]
    paper = await session.call_tool("get_paper", {"paper_id": first["paper_id"]})
    missing = await session.call_tool("get_paper", {"paper_id": "no-such-paper"})
    answer = await session.call_tool("ask", {"question": GASNET_Q})
    bad = await session.call_tool("search_papers", {"query": "x", "top_k": 0})
    return {
        "tools": tools,
        "found": found,
        "paper": paper,
        "missing": missing,
        "answer": answer,
        "bad": bad,
    }


def _check_common(got: dict[str, Any]) -> None:
    tools = got["tools"]
    assert set(tools) == set(TOOL_NAMES)
    for tool in tools.values():  # each says when to use it, and what it returns
        assert len(tool.description or "") > 150 and tool.outputSchema
    assert "no language model" in tools["search_papers"].description.lower()
    assert "question" in tools["ask"].inputSchema["properties"]

    found = got["found"]
    assert not found.isError
    papers = found.structuredContent["papers"]
    assert "GaSNet" in papers[0]["title"] and papers[0]["best_sentences"]
    assert [p["rank"] for p in papers] == list(range(1, len(papers) + 1))
    assert papers[0]["title"] in found.content[0].text

    paper = got["paper"].structuredContent
    assert paper["paper_id"] == papers[0]["paper_id"] and len(paper["abstract"]) > 300
    assert papers[0]["best_sentences"][0] in paper["abstract"]
    assert got["missing"].isError and "no paper with id" in got["missing"].content[0].text
    assert got["bad"].isError  # top_k=0 is refused by the schema's bounds

    answer = got["answer"]
    assert not answer.isError
    data = answer.structuredContent
    assert data["text"] and data["evidence_level"] in ("strong", "weak", "none")
    assert data["text"] in answer.content[0].text


def test_stdio_client_lists_and_calls_every_tool(sample_index: Path, tiny_model_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        "ASSISTANT_MAX_TOKENS": "64",
        "ASSISTANT_N_CTX": "2048",
    }
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "assistant", "mcp", "--index-dir", str(sample_index), "--model-path",
              str(tiny_model_path), "--top-k", "2"],
        env=env,
        cwd=str(REPO_ROOT),
    )  # fmt: skip

    async def main() -> dict[str, Any]:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            return await _exercise(session)

    got = anyio.run(main)
    _check_common(got)
    cited = got["answer"].structuredContent["citations"]
    found_ids = {p["paper_id"] for p in got["found"].structuredContent["papers"]}
    assert cited and {c["paper_id"] for c in cited} <= found_ids | {cited[0]["paper_id"]}


def test_http_client_gets_what_the_assistant_says(assistant: Assistant) -> None:
    direct = assistant.ask(GASNET_Q)
    with served(mcp_http_app(build_mcp(assistant))) as url:

        async def main() -> dict[str, Any]:
            async with streamable_http_client(url + "/mcp") as (read, write, _):
                async with ClientSession(read, write) as session:
                    return await _exercise(session)

        got = anyio.run(main)
    _check_common(got)
    data = got["answer"].structuredContent
    assert data["text"] == direct.text and data["answerable"] == direct.answerable
    assert [(c["number"], c["paper_id"], c["evidence"]) for c in data["citations"]] == [
        (c.number, c.paper_id, c.evidence) for c in direct.citations
    ]
    hits = assistant.retrieve("GaSNet-II spectra redshift", top_k=3)
    assert [p["paper_id"] for p in got["found"].structuredContent["papers"]] == [
        s.paper_id for s in hits
    ]


def test_http_with_a_key(assistant: Assistant) -> None:
    with served(mcp_http_app(build_mcp(assistant), api_key=KEY)) as url:
        hello = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        for headers in ({}, {"authorization": "Bearer nope"}):
            assert httpx.post(url + "/mcp", json=hello, headers=headers).status_code == 401

        async def main() -> list[str]:
            client = httpx.AsyncClient(headers={"authorization": f"Bearer {KEY}"}, timeout=60)
            async with (
                client,
                streamable_http_client(url + "/mcp", http_client=client) as (r, w, _),
            ):
                async with ClientSession(r, w) as session:
                    await session.initialize()
                    return [t.name for t in (await session.list_tools()).tools]

        assert sorted(anyio.run(main)) == sorted(TOOL_NAMES)
