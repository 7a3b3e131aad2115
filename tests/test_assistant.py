"""The query engine on the real sample index: retrieval, prompts, citations, backends, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scripted import ScriptedChatModel
from source_tree import REPO_ROOT

from assistant import Answer, Assistant, Settings
from assistant.answer.retrieval import parse_filters, tokenize
from assistant.answer.verify import NO_ANSWER_TEXT
from assistant.errors import ConfigError, IndexMissingError, LLMUnavailableError, QuestionError
from assistant.llm.local import LocalChatModel
from assistant.llm.openai_compat import OpenAIChatModel
from assistant.prompts import PROMPT_NAMES, load_prompt

GASNET = "Galaxy Spectra neural Network (GaSNet). II."
HAWQ = "HAWQ: Hessian AWare Quantization"
ZEROQ = "ZeroQ: A Novel Zero Shot Quantization Framework"


@pytest.fixture
def assistant_with(sample_index: Path, embedder):
    """An Assistant over the shared sample index with the given chat model."""

    def make(llm, **settings_kw) -> Assistant:
        settings = Settings(index_dir=sample_index, **settings_kw)
        return Assistant(settings, llm=llm, embed_model=embedder)

    return make


# --- prompts ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", PROMPT_NAMES)
def test_every_prompt_renders_strictly(name: str) -> None:
    prompt = load_prompt(name)
    values = {v: f"<{v}>" for v in prompt.variables}
    text = prompt.render(**values)
    for v in prompt.variables:
        assert f"<{v}>" in text
    assert "{" not in text.replace("{{", "")  # nothing left unrendered
    if prompt.variables:
        with pytest.raises(ConfigError, match="missing"):
            prompt.render()
    with pytest.raises(ConfigError, match="unexpected"):
        prompt.render(**values, surprise=1)


# --- retrieval ----------------------------------------------------------------------------
def test_tokenize_keeps_names_whole_and_split() -> None:
    toks = tokenize("GaSNet-II predicts redshifts; HAWQ and ZeroQ")
    assert {"gasnet-ii", "gasnet", "ii", "hawq", "zeroq", "redshift"} <= set(toks)


@pytest.mark.parametrize(
    ("question", "title"),
    [
        ("What is HAWQ?", HAWQ),
        ("What does GaSNet-II predict besides the spectral class?", GASNET),
        ("How does ZeroQ quantize without data?", ZEROQ),
        ("mixed-precision quantization using second-order Hessian information", HAWQ),
    ],
)
def test_hybrid_retrieval_finds_exact_names(assistant_with, question: str, title: str) -> None:
    sources = assistant_with(ScriptedChatModel([])).retrieve(question)
    assert sources, question
    assert sources[0].title.startswith(title)
    assert [s.number for s in sources] == list(range(1, len(sources) + 1))


def test_irrelevant_question_retrieves_nothing(assistant_with) -> None:
    a = assistant_with(ScriptedChatModel([]))
    assert a.retrieve("What is the boiling point of water on Mars in kelvin?") == []
    answer = a.ask("What is the boiling point of water on Mars in kelvin?")
    assert answer.answerable is False and answer.citations == []
    assert answer.text == NO_ANSWER_TEXT


def test_a_llama_index_vector_store_is_enough(sample_index: Path, embedder) -> None:
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from assistant.index.chroma import PaperIndex, open_chroma

    settings = Settings(index_dir=sample_index)
    col = open_chroma(settings).get_collection(settings.collection)
    given = Assistant(settings, embed_model=embedder, vector_store=ChromaVectorStore(col))
    plain = Assistant(settings, embed_model=embedder)
    question = "How does ZeroQ quantize a model without training data?"
    assert [(s.paper_id, s.score) for s in given.retrieve(question)] == [
        (s.paper_id, s.score) for s in plain.retrieve(question)
    ]
    index = PaperIndex(settings, collection=col)
    assert index.exists() and index.chunk_count() == col.count()
    with pytest.raises(ConfigError, match="without its Chroma client"):
        index.drop()


def test_filters_narrow_retrieval(assistant_with) -> None:
    a = assistant_with(ScriptedChatModel([]))
    only = a.retrieve(
        "quantization of neural networks", filters=["source=004_8ab15d828fe5fa3e.txt"]
    )
    assert only and all(s.metadata["source"] == "004_8ab15d828fe5fa3e.txt" for s in only)
    other = a.retrieve(
        "quantization of neural networks", filters=["source=000_69852d258ee6200a.txt"]
    )
    assert {s.paper_id for s in only}.isdisjoint({s.paper_id for s in other})


def test_parse_filters() -> None:
    assert parse_filters(["source=a.txt"]) == {"source": {"$eq": "a.txt"}}
    assert parse_filters(["date>=2024-01-01", "year=2024"]) == {
        "$and": [{"date_num": {"$gte": 20240101}}, {"year": {"$eq": 2024}}]
    }
    assert parse_filters(["date<=2023"]) == {"date_num": {"$lte": 20231231}}
    with pytest.raises(ConfigError):
        parse_filters(["nonsense"])
    with pytest.raises(ConfigError, match="YYYY"):
        parse_filters(["date>=March"])


# --- the pipeline with a scripted model (our code, not the model's) -----------------------
def test_scripted_answer_gets_verified_citations(assistant_with) -> None:
    # The model cites a number that does not exist and leaves a sentence uncited.
    reply = (
        "GaSNet-II reaches 92.4% average classification accuracy over 13 classes [7]. "
        "It can process about 40k spectra in less than one minute on a desktop GPU."
    )
    llm = ScriptedChatModel([reply])
    a = assistant_with(llm)
    answer = a.ask("What does GaSNet-II predict besides the spectral class?")
    assert answer.answerable
    assert [c.number for c in answer.citations] == [1]
    assert answer.citations[0].title.startswith(GASNET)
    assert "[7]" not in answer.text and answer.text.count("[1]") >= 2
    # The reply never says what else GaSNet-II predicts: the sentence that does is quoted.
    assert "redshift" in answer.text and answer.quoted
    assert answer.raw_text == reply
    assert set(answer.timings) >= {"retrieval", "passages", "generation", "verification"}
    assert "rerank" not in answer.timings  # no reranker: no rerank time to report
    # The prompt holds only selected passages and the fixed system prefix comes first.
    system, user = llm.calls[0]
    assert system["content"] == load_prompt("system").render()
    assert (
        "[1] Galaxy Spectra" in user["content"]
        and "Question: What does GaSNet-II" in user["content"]
    )
    # The best source is sent (nearly) whole, the others by their best sentences.
    top, others = answer.sources[0], answer.sources[1:]
    assert len(top.passages) >= 3 and all(p in top.abstract for p in top.passages)
    assert all(0 < len(s.passages) <= a.settings.passage_sentences for s in others)
    assert len(user["content"]) < sum(len(s.abstract) for s in answer.sources) + 400


def test_model_answer_from_memory_is_not_trusted(assistant_with) -> None:
    llm = ScriptedChatModel(
        ["ZeroQ was published at NeurIPS 2019 by Google researchers in Zurich [1]."]
    )
    answer = assistant_with(llm).ask("How does ZeroQ quantize a model without training data?")
    # the invented claim is gone; the abstract, which holds the answer, is quoted instead
    assert "NeurIPS" not in answer.text and answer.quoted
    assert len(answer.citations) == 1 and answer.citations[0].title.startswith(ZEROQ)


def test_refusal_means_unanswerable(assistant_with) -> None:
    llm = ScriptedChatModel(["The provided papers do not answer this question."])
    # A question the collection has nothing on: the refusal stands. (A refusal on a near miss,
    # "What FID does MaskGIT reach?" with no FID in its abstract, sits at the decision's
    # threshold: the known limit of tests/test_answers.py::test_a_near_miss_is_declined.)
    answer = assistant_with(llm).ask("At what temperature does ethanol boil at sea level?")
    assert answer.answerable is False and answer.citations == [] and answer.sources


def test_stream_yields_pieces_then_the_answer(assistant_with) -> None:
    reply = "HAWQ uses second-order Hessian information to choose mixed precision [1]."
    items = list(assistant_with(ScriptedChatModel([reply])).stream("What is HAWQ?"))
    pieces, final = items[:-1], items[-1]
    assert all(isinstance(p, str) for p in pieces) and "".join(pieces) == reply
    assert isinstance(final, Answer) and final.citations[0].title.startswith(HAWQ)
    assert "first_token" in final.timings


def test_follow_up_is_condensed_and_keeps_context(assistant_with) -> None:
    first = assistant_with(
        ScriptedChatModel(["HAWQ uses Hessian information to select mixed precision [1]."])
    )
    earlier = first.ask("What is HAWQ?")
    llm = ScriptedChatModel(
        [
            "What speedup or compression does HAWQ achieve on ResNet20?",  # the condensed question
            "HAWQ achieves 8x activation compression ratio on ResNet20 [1].",
        ]
    )
    a = assistant_with(llm, follow_up_reuse=False)  # tests/test_follow_up.py: with reuse
    answer = a.chat([earlier], "and how much does it compress ResNet20?")
    # the rewrite starts like every answer, so the local model's cache of the system prompt holds
    assert (
        llm.calls[0][0]
        == llm.calls[1][0]
        == {"role": "system", "content": load_prompt("system").render()}
    )
    condense_prompt = llm.calls[0][1]["content"]
    assert (
        "What is HAWQ?" in condense_prompt
        and "how much does it compress ResNet20" in condense_prompt
    )
    assert "HAWQ achieve on ResNet20" in llm.calls[1][1]["content"]
    assert answer.sources[0].title.startswith(HAWQ)


def test_question_errors(assistant_with) -> None:
    a = assistant_with(ScriptedChatModel([], context_window=600))
    with pytest.raises(QuestionError, match="empty"):
        a.ask("   ")
    with pytest.raises(QuestionError, match="context window"):
        a.ask("why " * 400)


def test_missing_index_says_to_ingest(tmp_path: Path, embedder) -> None:
    a = Assistant(
        Settings(index_dir=tmp_path / "none"), llm=ScriptedChatModel([]), embed_model=embedder
    )
    with pytest.raises(IndexMissingError, match="ingest"):
        a.ask("What is HAWQ?")


# --- real models --------------------------------------------------------------------------
def test_real_tiny_model_in_process(assistant_with, tiny_model_path: Path) -> None:
    a = assistant_with(LocalChatModel(tiny_model_path, n_ctx=4096), max_tokens=64)
    answer = a.ask("What does GaSNet-II predict besides the spectral class?")
    assert answer.model.startswith("local:") and answer.raw_text.strip()
    assert answer.sources[0].title.startswith(GASNET)
    for c in answer.citations:  # whatever the tiny model says, citations point at real sources
        assert c.paper_id in {s.paper_id for s in answer.sources}
    assert [c.number for c in answer.citations] == list(range(1, len(answer.citations) + 1))


@pytest.mark.server
def test_real_openai_compatible_server(assistant_with, tiny_server_url: str) -> None:
    llm = OpenAIChatModel(base_url=tiny_server_url, api_key=None, model="tiny", max_retries=0)
    a = assistant_with(llm, max_tokens=64)
    items = list(a.stream("How does ZeroQ quantize a model without training data?"))
    final = items[-1]
    assert isinstance(final, Answer) and final.raw_text.strip()
    assert len(items) > 2  # streamed in pieces
    assert final.sources[0].title.startswith(ZEROQ)
    assert final.model.startswith("openai:tiny")


def test_unreachable_server_names_url_and_model(assistant_with) -> None:
    from llm_server import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    llm = OpenAIChatModel(base_url=url, api_key=None, model="qwen-test", max_retries=0, timeout=5)
    with pytest.raises(LLMUnavailableError) as err:
        assistant_with(llm).ask("What is HAWQ?")
    assert url in str(err.value) and "qwen-test" in str(err.value)


# --- the command line ---------------------------------------------------------------------
def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.server
def test_cli_ask_json(sample_index: Path, tiny_server_url: str) -> None:
    proc = _cli(
        "ask",
        "What does GaSNet-II predict besides the spectral class?",
        "--json",
        "--index-dir",
        str(sample_index),
        "--base-url",
        tiny_server_url,
        "--model",
        "tiny",
        env={"ASSISTANT_MAX_TOKENS": "64"},
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"text", "answerable", "citations", "sources"} <= out.keys()
    assert out["sources"][0]["title"].startswith(GASNET)
    for c in out["citations"]:
        assert {"number", "paper_id", "title"} <= c.keys()


def test_cli_errors_are_one_readable_line(tmp_path: Path) -> None:
    proc = _cli("ask", "What is HAWQ?", "--index-dir", str(tmp_path / "none"), "--preset", "tiny")
    assert proc.returncode == 1
    assert "ingest.py" in proc.stderr and "Traceback" not in proc.stderr
    proc = _cli("ask", "  ", "--index-dir", str(tmp_path / "none"))
    assert proc.returncode == 1 and "empty" in proc.stderr


@pytest.mark.server
def test_cli_chat_takes_follow_ups_from_stdin(sample_index: Path, tiny_server_url: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "assistant", "chat", "--index-dir", str(sample_index)]
        + ["--base-url", tiny_server_url, "--model", "tiny"],
        input="What does GaSNet-II predict besides the spectral class?\n\n/new\n  \n/quit\n",
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
        env={**os.environ, "ASSISTANT_MAX_TOKENS": "48"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "Ask about the papers" in proc.stdout
    assert "(new conversation)" in proc.stdout
    # An answer was printed: the checked text with its reference list, or the plain decline.
    assert "[1] Galaxy Spectra" in proc.stdout or NO_ANSWER_TEXT in proc.stdout
    assert "Traceback" not in proc.stderr


def test_a_reranker_reorders_sources_and_its_time_is_reported(sample_index: Path, embedder) -> None:
    import time as _time

    class Reverse:  # the seam for a rerank model: reverse the order, taking a measurable time
        def rerank(self, query, sources):
            _time.sleep(0.05)
            return list(reversed(sources))

    q = "quantization of neural networks"
    plain = Assistant(
        Settings(index_dir=sample_index), llm=ScriptedChatModel([]), embed_model=embedder
    )
    ranked = Assistant(
        Settings(index_dir=sample_index),
        llm=ScriptedChatModel(["Quantization lowers the precision of weights [1]."]),
        embed_model=embedder,
        reranker=Reverse(),
    )
    before = [s.paper_id for s in plain.retrieve(q)]
    assert len(before) > 1 and [s.paper_id for s in ranked.retrieve(q)] == before[::-1]
    answer = ranked.ask(q)
    assert (
        answer.timings["rerank"] >= 0.05 and answer.timings["retrieval"] < answer.timings["total"]
    )
