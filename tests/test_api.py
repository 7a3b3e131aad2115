"""The OpenAI-compatible API, through the real ``openai`` client on 127.0.0.1: the real sample
index, real retrieval, the real tiny model in process, real uvicorn. What is checked is what
the door does with the assistant's answers (the tiny model answers badly): the same
citations as ``Assistant.ask``, follow-ups, errors in OpenAI's shape, keys, and two clients at
once with a third told to wait."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from test_assistant import _cli

from assistant.answer.engine import Assistant
from assistant.app.access import check_key_exposure, read_api_key
from assistant.app.api import build_api, mount_ui, served
from assistant.app.openai_format import (
    REFERENCES,
    ChatMessage,
    content_of,
    inert_markdown,
    question_and_history,
)
from assistant.errors import ConfigError
from assistant.llm.local import LocalChatModel
from assistant.resources import SAMPLE_DIR
from assistant.settings import Settings
from assistant.types import Answer

pytestmark = [pytest.mark.server, pytest.mark.timeout(300)]

GASNET_Q = "What does GaSNet-II predict besides the spectral class?"
ZEROQ_Q = "How does ZeroQ quantize a model without training data?"
KEY = "k-0123456789abcdef0123"


@pytest.fixture(scope="module")
def assistant(sample_index: Path, embedder: Any, tiny_model_path: Path) -> Assistant:
    llm = LocalChatModel(tiny_model_path, n_ctx=2048, n_threads=2, name="tiny")
    settings = Settings(index_dir=sample_index, max_tokens=64, top_k=2)
    a = Assistant(settings, llm=llm, embed_model=embedder)
    a.warm_up()
    return a


@pytest.fixture(scope="module")
def api(assistant: Assistant) -> Iterator[tuple[str, Any]]:
    """One server for the module: one question answered at once, one more may wait."""
    app = build_api(assistant, waiting=1)
    with served(app) as url:
        yield url, app.state.door


@pytest.fixture(scope="module")
def client(api: tuple[str, Any]) -> openai.OpenAI:
    return openai.OpenAI(base_url=api[0] + "/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def expected(assistant: Assistant) -> dict[str, Answer]:
    """What ``Assistant.ask`` says to the questions, asked directly."""
    return {q: assistant.ask(q) for q in (GASNET_Q, ZEROQ_Q)}


def _user(q: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": q}]


def _collect(stream: Any) -> dict[str, Any]:
    """A stream's draft (reasoning_content), content, last-chunk fields and chunk count."""
    draft, content, last, n = "", "", {}, 0
    for chunk in stream:
        n += 1
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        extra = delta.model_extra or {}
        draft += extra.get("reasoning_content") or ""
        content += delta.content or ""
        if chunk.choices[0].finish_reason:
            last = extra
    return {"draft": draft, "content": content, "last": last, "chunks": n}


def test_models_lists_this_collection(client: openai.OpenAI) -> None:
    models = client.models.list().data
    assert [m.id for m in models] == ["papers"]
    assert client.models.retrieve("papers").owned_by == "paper-assistant"


def test_the_answer_and_its_citations_are_those_of_ask(
    client: openai.OpenAI, expected: dict[str, Answer]
) -> None:
    want = expected[GASNET_Q]
    assert want.citations, "the GaSNet-II question must cite its paper"
    want_citations = [c.to_dict() for c in want.citations]

    reply = client.chat.completions.create(model="papers", messages=_user(GASNET_Q))
    message = reply.choices[0].message
    extra = message.model_extra or {}
    assert extra["citations"] == want_citations
    assert (extra["answerable"], extra["evidence_level"]) == (
        want.answerable,
        want.evidence_level,
    )
    assert message.content == content_of(want)
    assert message.content.startswith(inert_markdown(want.text) + REFERENCES)
    assert f"[1] {want.citations[0].title}" in message.content
    assert reply.usage is not None and reply.usage.prompt_tokens == want.prompt_tokens

    got = _collect(
        client.chat.completions.create(
            model="papers",
            messages=_user(GASNET_Q),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert got["draft"] == inert_markdown(want.raw_text)  # the model's text, as it came
    assert got["content"] == message.content  # the checked answer replaces it
    assert got["last"]["citations"] == want_citations
    assert got["last"]["answerable"] == want.answerable
    assert got["chunks"] > 3


def test_a_follow_up_reads_the_history(
    client: openai.OpenAI, assistant: Assistant, expected: dict[str, Answer]
) -> None:
    first = client.chat.completions.create(model="papers", messages=_user(GASNET_Q))
    follow_up = "And how accurate is it?"
    messages = [
        *_user(GASNET_Q),
        {"role": "assistant", "content": first.choices[0].message.content},
        *_user(follow_up),
    ]
    reply = client.chat.completions.create(model="papers", messages=messages)
    extra = reply.choices[0].message.model_extra or {}
    assert "condense" in extra["timings"]  # the question was rewritten with the history
    direct = assistant.ask(
        follow_up,
        history=[
            {"role": "user", "content": GASNET_Q},
            {"role": "assistant", "content": expected[GASNET_Q].text},
        ],
    )
    assert extra["citations"] == [c.to_dict() for c in direct.citations]
    assert reply.choices[0].message.content == content_of(direct)

    alone = client.chat.completions.create(model="papers", messages=_user(follow_up))
    assert "condense" not in (alone.choices[0].message.model_extra or {})["timings"]


def test_history_from_messages() -> None:
    """An earlier answer's reference list is left out; citations a client sends back make the
    turn an Answer whose papers the follow-up favours."""
    msgs = [
        ChatMessage(role="system", content="be brief"),
        ChatMessage(role="user", content="Q1"),
        ChatMessage(role="assistant", content="A1 [1]." + REFERENCES + "- [1] T"),
        ChatMessage(role="user", content=[{"type": "text", "text": "Q2"}]),
        ChatMessage(
            role="assistant",
            content="A2 [1].",
            citations=[{"number": 1, "paper_id": "2401.00001", "title": "T2"}],
        ),
        ChatMessage(role="user", content="Q3?"),
    ]
    question, history = question_and_history(msgs)
    assert question == "Q3?"
    assert history[:2] == [
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "A1 [1]."},
    ]
    q2, a2 = history[2]
    assert q2 == "Q2" and isinstance(a2, Answer)
    assert [c.paper_id for c in a2.citations] == ["2401.00001"]


def test_model_markup_is_made_inert() -> None:
    text = "See ![x](http://evil/?q=1) and [y](http://e) <img src=x> [1]."
    out = inert_markdown(text)
    assert out == r"See !\[x]\(http://evil/?q=1) and [y]\(http://e) \<img src=x> [1]."


def _post(url: str, body: Any, **kw: Any) -> httpx.Response:
    data = body if isinstance(body, str) else json.dumps(body)
    headers = {"content-type": "application/json", **kw.pop("headers", {})}
    return httpx.post(url + "/v1/chat/completions", content=data, headers=headers, timeout=60)


def _is_openai_error(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


def test_bad_requests_get_openai_errors(api: tuple[str, Any], client: openai.OpenAI) -> None:
    url = api[0]
    assert _is_openai_error(_post(url, "{not json"), 400)["type"] == "invalid_request_error"
    assert _is_openai_error(_post(url, {"model": "papers"}), 400)["param"] == "messages"
    last_not_user = {"messages": [{"role": "assistant", "content": "hi"}]}
    assert _is_openai_error(_post(url, last_not_user), 400)["param"] == "messages"
    empty = {"messages": _user("   ")}
    assert "empty" in _is_openai_error(_post(url, empty), 400)["message"]
    top_k = {"messages": _user(GASNET_Q), "top_k": 0}
    assert _is_openai_error(_post(url, top_k), 400)["param"] == "top_k"
    bad_date = {"messages": _user(GASNET_Q), "date_from": "yesterday"}
    error = _is_openai_error(_post(url, bad_date), 400)
    assert error["param"] == "filters" and "YYYY" in error["message"]
    unknown = {"model": "gpt-4o", "messages": _user(GASNET_Q)}
    assert _is_openai_error(_post(url, unknown), 404)["code"] == "model_not_found"
    assert _is_openai_error(httpx.get(url + "/v1/nope"), 404)["code"] == "not_found"

    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="papers", messages=_user(GASNET_Q), n=2)
    assert err.value.status_code == 400
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=_user(GASNET_Q), stream=True)


def test_filters_and_top_k_reach_retrieval(
    client: openai.OpenAI, assistant: Assistant, expected: dict[str, Answer]
) -> None:
    paper = expected[GASNET_Q].citations[0]
    source = next(s for s in expected[GASNET_Q].sources if s.paper_id == paper.paper_id)
    reply = client.chat.completions.create(
        model="papers",
        messages=_user(GASNET_Q),
        extra_body={"source": source.metadata["source"], "top_k": 1},
    )
    extra = reply.choices[0].message.model_extra or {}
    assert {c["paper_id"] for c in extra["citations"]} <= {paper.paper_id}
    other = next(
        p.name for p in sorted(SAMPLE_DIR.glob("*.txt")) if p.name != source.metadata["source"]
    )
    elsewhere = client.chat.completions.create(
        model="papers", messages=_user(GASNET_Q), extra_body={"filters": [f"source={other}"]}
    )
    extra = elsewhere.choices[0].message.model_extra or {}
    assert paper.paper_id not in {c["paper_id"] for c in extra["citations"]}
    none = client.chat.completions.create(
        model="papers", messages=_user(GASNET_Q), extra_body={"date_from": "2100-01-01"}
    )
    extra = none.choices[0].message.model_extra or {}
    assert extra["answerable"] is False and extra["citations"] == []


def test_keys(assistant: Assistant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="ASSISTANT_API_KEY"):
        check_key_exposure("0.0.0.0", None)
    check_key_exposure("127.0.0.1", None)
    check_key_exposure("0.0.0.0", KEY)

    with served(build_api(assistant, api_key=KEY)) as url:
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": KEY}):
            resp = httpx.get(url + "/v1/models", headers=headers)
            assert _is_openai_error(resp, 401)["code"] == "invalid_api_key"
            assert resp.headers["www-authenticate"] == "Bearer"
        wrong = openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
        right = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
        assert [m.id for m in right.models.list().data] == ["papers"]

    monkeypatch.setenv("ASSISTANT_API_KEY", KEY)
    assert read_api_key() == KEY
    secret = tmp_path / "key"
    secret.write_text("file-key-0123456789abcdef\n")
    secret.chmod(0o600)
    assert read_api_key(key_file=str(secret)) == "file-key-0123456789abcdef"
    with pytest.raises(ConfigError, match="one key"):
        read_api_key(key="two words")


def test_a_non_local_bind_without_a_key_is_refused(tmp_path: Path) -> None:
    """Refused before anything loads (the index does not even exist)."""
    index = str(tmp_path / "none")
    for args in (
        ("serve", "--api", "--no-ui", "--host", "0.0.0.0"),
        ("mcp", "--http", "--host", "0.0.0.0"),
    ):
        proc = _cli(*args, "--index-dir", index, env={})
        assert proc.returncode == 1, proc.stderr
        assert "refusing to serve" in proc.stderr and "ASSISTANT_API_KEY" in proc.stderr


def test_two_clients_at_once_and_a_third_is_told_to_wait(
    api: tuple[str, Any], client: openai.OpenAI, expected: dict[str, Answer]
) -> None:
    url, door = api
    results: dict[str, dict[str, Any]] = {}
    first_chunk = threading.Event()

    def ask(q: str) -> None:
        stream = client.chat.completions.create(model="papers", messages=_user(q), stream=True)
        got: dict[str, Any] = {"draft": "", "content": "", "last": {}}
        for chunk in stream:
            first_chunk.set()
            delta = chunk.choices[0].delta
            got["draft"] += (delta.model_extra or {}).get("reasoning_content") or ""
            got["content"] += delta.content or ""
            if chunk.choices[0].finish_reason:
                got["last"] = delta.model_extra or {}
        results[q] = got

    a = threading.Thread(target=ask, args=(GASNET_Q,))
    a.start()
    assert first_chunk.wait(60)  # the first question is being answered
    b = threading.Thread(target=ask, args=(ZEROQ_Q,))
    b.start()
    deadline = time.monotonic() + 20
    while door.gate.admitted < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert door.gate.admitted == 2  # one answering, one waiting: the gate is full
    busy = _post(url, {"messages": _user(GASNET_Q)})
    error = _is_openai_error(busy, 429)
    assert error["type"] == "rate_limit_error" and "busy" in error["message"]
    assert int(busy.headers["retry-after"]) >= 1
    a.join(120)
    b.join(120)
    for q in (GASNET_Q, ZEROQ_Q):  # each got its own answer, nothing of the other's
        want = expected[q]
        assert results[q]["draft"] == inert_markdown(want.raw_text)
        assert results[q]["content"] == content_of(want)
        assert results[q]["last"]["citations"] == [c.to_dict() for c in want.citations]
    assert door.gate.admitted == 0


def test_a_client_that_leaves_frees_the_model(api: tuple[str, Any]) -> None:
    url, door = api
    body = {"messages": _user(ZEROQ_Q), "stream": True}
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=60) as resp:
        assert resp.status_code == 200
        assert next(resp.iter_lines()).startswith("data: ")
    deadline = time.monotonic() + 30
    while door.gate.admitted and time.monotonic() < deadline:
        time.sleep(0.05)
    assert door.gate.admitted == 0
    assert _post(url, {"messages": _user(GASNET_Q)}).status_code == 200


def test_the_chat_and_the_api_share_one_port(assistant: Assistant) -> None:
    app = build_api(assistant)
    mount_ui(app, assistant)
    with served(app) as url:
        page = httpx.get(url + "/", timeout=30)
        assert page.status_code == 200 and "gradio" in page.text.lower()
        models = httpx.get(url + "/v1/models", timeout=30).json()
        assert [m["id"] for m in models["data"]] == ["papers"]
