"""How the code is put together: no import cycles, one door for chat models, one list of
presets, one tiktoken loader, bundled files found where the package is."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import pytest
from source_tree import REPO_ROOT

from assistant import resources
from assistant.errors import ConfigError
from assistant.llm import presets
from assistant.llm.base import ChatModel
from assistant.settings import Settings
from assistant.tokens import encoding_for_model, get_encoding


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(pkg: str) -> dict[str, set[str]]:
    """Module -> the modules it imports (and the names it imports from them), anywhere in its
    code, for every module of the package and its subpackages."""
    graph: dict[str, set[str]] = {}
    for path in sorted((REPO_ROOT / pkg).rglob("*.py")):
        mod = _module_name(path)
        here = mod if path.stem == "__init__" else mod.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    anchor = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
                    base = f"{anchor}.{node.module}" if node.module else anchor
                else:
                    base = node.module or ""
                deps.add(base)
                deps.update(f"{base}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        graph[mod] = deps
    return graph


def _internal_graph() -> dict[str, set[str]]:
    graph = _imports("assistant") | _imports("evals")
    return {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}


def test_no_import_cycles_in_the_packages() -> None:
    graph = _internal_graph()

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph[start]:
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(m for m in graph if reaches(m, m, {m}))
    assert not cycles, f"modules on an import cycle: {cycles}"
    assert "assistant.llm.base" in graph["assistant.llm.llama_index_llm"]  # adapter -> door


CORE = {"errors", "settings", "types", "resources", "prompts", "text", "latex", "tokens", "safety"}
SUBPACKAGES = {"answer", "app", "index", "ingest", "llm"}


def test_the_layout_follows_the_pipeline() -> None:
    """A flat core and one subpackage per seam; every module says where it stands in the
    pipeline and stays short enough to read in one sitting."""
    top = {p.stem for p in (REPO_ROOT / "assistant").glob("*.py")} - {"__init__", "__main__"}
    assert top == CORE
    subs = {p.parent.name for p in (REPO_ROOT / "assistant").glob("*/__init__.py")}
    assert subs == SUBPACKAGES
    too_long, undocumented = [], []
    for path in sorted((REPO_ROOT / "assistant").rglob("*.py")) + sorted(
        (REPO_ROOT / "evals").rglob("*.py")
    ):
        rel = path.relative_to(REPO_ROOT)
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > 600:
            too_long.append(f"{rel} ({len(text.splitlines())} lines)")
        if not ast.get_docstring(ast.parse(text)):
            undocumented.append(str(rel))
    assert not too_long, f"modules over 600 lines: {too_long}"
    assert not undocumented, f"modules without a docstring: {undocumented}"


def test_the_seams_of_the_import_graph() -> None:
    """Core modules import no stage (settings reads the preset names, nothing else); the
    stages do not import the doors; reading and answering do not import each other."""
    graph = _internal_graph()

    def stage(mod: str) -> str:
        parts = mod.split(".")
        return parts[1] if parts[0] == "assistant" and len(parts) > 2 else parts[0]

    wrong = []
    for mod, deps in graph.items():
        for dep in deps:
            if not dep.startswith("assistant.") or dep.count(".") < 2:
                continue
            src, dst = stage(mod), stage(dep)
            if mod.startswith("assistant.") and mod.count(".") == 1 and mod != "assistant.__main__":
                if dep != "assistant.llm.presets" and not dep.startswith("assistant.answer.engine"):
                    wrong.append(f"core {mod} imports {dep}")
            elif src in SUBPACKAGES - {"app"} and dst == "app":
                wrong.append(f"{mod} imports the door {dep}")
            elif {src, dst} == {"ingest", "answer"}:
                wrong.append(f"{mod} imports {dep}")
    assert not wrong, wrong
    # ``assistant`` itself names the engine lazily (TYPE_CHECKING and __getattr__ only)
    assert "assistant.answer.engine" in graph["assistant"]


def test_chat_model_is_an_abstract_door() -> None:
    with pytest.raises(TypeError):
        ChatModel()  # type: ignore[abstract]

    class NoCount(ChatModel):
        def stream(self, messages, *, max_tokens, temperature=0.0, stop=None):
            yield "x"

    with pytest.raises(TypeError, match="count_tokens"):
        NoCount()  # type: ignore[abstract]

    class Echo(NoCount):
        def count_tokens(self, text: str) -> int:
            return len(text.split())

    echo = Echo()
    assert echo.complete([{"role": "user", "content": "hi"}], max_tokens=4) == "x"
    assert echo.count_message_tokens([{"role": "user", "content": "a b"}]) == 2 + 4 + 2


def test_preset_names_come_from_presets_json_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.app.cli import _llm_args
    from evals.__main__ import _parser

    real = presets._presets()
    assert presets.preset_names() == list(real)
    extra = dict(real) | {"xl": dict(real["base"], id="xl-model")}
    monkeypatch.setattr(presets, "_presets", lambda: extra)
    assert Settings(llm_preset="xl").llm_preset == "xl"
    with pytest.raises(
        ConfigError, match="unknown preset 'nope'; choose one of tiny, small, base, xl"
    ):
        Settings.load(llm_preset="nope")
    args = _parser().parse_args(["run", "--preset", "xl", "--judge-preset", "xl"])
    assert args.preset == args.judge_preset == "xl"
    parser = argparse.ArgumentParser()
    _llm_args(parser)
    assert parser.parse_args(["--preset", "xl"]).preset == "xl"


def test_one_offline_tiktoken_loader() -> None:
    assert encoding_for_model("gpt-4o").name == "o200k_base"
    assert encoding_for_model("gpt-3.5-turbo").name == "cl100k_base"
    assert encoding_for_model("a-local-model-tiktoken-does-not-know").name == "o200k_base"
    # p50k_base does not ship offline: cl100k_base stands in
    assert encoding_for_model("text-davinci-003").name == "cl100k_base"
    assert encoding_for_model("gpt-4o") is get_encoding("o200k_base")


def test_bundled_files_in_a_source_checkout() -> None:
    assert resources.PROMPTS_DIR == REPO_ROOT / "prompts"
    assert resources.SAMPLE_DIR == REPO_ROOT / "data" / "sample"
    assert len(list(resources.SAMPLE_DIR.glob("*.txt"))) == 5
    assert not (Path(resources.__file__).parent / "_data").exists()  # made by the build only
    with pytest.raises(KeyError, match="prompts, sample"):
        resources.bundled_dir("models")


def test_no_function_in_the_packages_is_over_100_lines() -> None:
    """A long function is split along its steps into named helpers."""
    too_long = []
    for pkg in ("assistant", "evals"):
        for path in sorted((REPO_ROOT / pkg).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                    if lines > 100:
                        rel = path.relative_to(REPO_ROOT)
                        too_long.append(f"{rel}:{node.lineno} {node.name} ({lines} lines)")
    assert not too_long, f"functions over 100 lines: {too_long}"


def test_setting_flags_come_from_one_table() -> None:
    from assistant.app.cli import _ingest_parser, _query_parser
    from assistant.app.options import SETTING_FLAGS, settings_from_args
    from evals.__main__ import _parser

    for flags in SETTING_FLAGS.values():
        for flag in flags:
            assert flag.field in Settings.model_fields, flag
    query = _query_parser(argparse.ArgumentParser())
    args = query.parse_args(["--top-k", "7", "--model", "m", "--collection", "abc"])
    settings = settings_from_args(args, "index", "llm")
    assert (settings.top_k, settings.openai_model, settings.collection) == (7, "m", "abc")
    ingest = _ingest_parser(argparse.ArgumentParser())
    args = ingest.parse_args(["--chunk-size", "256", "--index-dir", "/tmp/x"])
    settings = settings_from_args(args, "index", "ingest")
    assert (settings.chunk_size, settings.index_dir) == (256, Path("/tmp/x"))
    help_text = query.format_help() + ingest.format_help()
    assert "ASSISTANT_TOP_K" in help_text and "99% of abstracts" in help_text
    args = _parser().parse_args(["run", "--max-tokens", "64", "--index-dir", "/tmp/y"])
    assert settings_from_args(args, "eval").max_tokens == 64  # --index-dir is the eval's own
    with pytest.raises(SystemExit):
        _parser().parse_args(["run", "--max-tokens", "0"])
