"""The local model runs on the build set-up chose, is refused (never SIGILL) where that build
does not fit the CPU, and never takes the AMX path that crashes.

- The installed llama-cpp-python is the build set-up chose (``LLAMA_BUILD``, native by
  default, as ``make print-llama-build`` says): its compiled features
  (``llama_print_system_info``) and, for the portable build, its machine code (no AVX-512
  registers, no AMX tile instructions).
- A library built for more than the CPU has is refused with the remedy: the real installed
  library against a CPU that lacks one of its instructions, and a library that dies with
  SIGILL while it loads (in a child process, which is what the loader's probe is for).
- The decisions of :mod:`assistant.llm.cpu` on the CPUs users have (AMD Zen 4, Intel Sapphire
  Rapids with AMX, AVX2-only), with the feature strings real builds print.
- The loader passes ``use_extra_bufts`` to llama.cpp as decided, on the real tiny model.
- ``scripts/setup.sh --print-llama-build``: the flags and wheel cache of each build kind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from source_tree import REPO_ROOT

from assistant.errors import ConfigError
from assistant.llm.backend import chat_model_from_settings
from assistant.llm.cpu import (
    FEATURE_FLAGS,
    build_problems,
    cpu_flags,
    library_features,
    parse_system_info,
    repack_decision,
    unsupported_features,
)
from assistant.llm.local import LocalChatModel
from assistant.settings import Settings

# What llama_print_system_info() printed for llama-cpp-python 0.3.36 built three ways.
PORTABLE_INFO = (
    "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
    "LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | "
)
ZEN4_NATIVE_INFO = (
    "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
    "AVX512 = 1 | AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | LLAMAFILE = 1 | "
    "OPENMP = 1 | REPACK = 1 | "
)
# Sapphire Rapids with -march=native: the Zen 4 features plus AMX_INT8 (and AVX_VNNI).
SPR_NATIVE_INFO = ZEN4_NATIVE_INFO.replace("AVX2 = 1 |", "AVX_VNNI = 1 | AVX2 = 1 |").replace(
    "LLAMAFILE", "AMX_INT8 = 1 | LLAMAFILE"
)

_X86 = "fpu sse sse2 pni ssse3 sse4_1 sse4_2 avx f16c fma bmi1 bmi2 avx2"
HASWELL_FLAGS = frozenset(_X86.split())
ZEN4_FLAGS = HASWELL_FLAGS | {
    "avx512f", "avx512bw", "avx512vl", "avx512vbmi", "avx512_vnni", "avx512_bf16",
}  # fmt: skip
SPR_FLAGS = ZEN4_FLAGS | {"avx_vnni", "amx_tile", "amx_int8", "amx_bf16"}

PORTABLE = parse_system_info(PORTABLE_INFO)
ZEN4_NATIVE = parse_system_info(ZEN4_NATIVE_INFO)
SPR_NATIVE = parse_system_info(SPR_NATIVE_INFO)


# --- the installed library -----------------------------------------------------------------


def _make_print_build(build: str | None) -> dict[str, str]:
    """What ``make print-llama-build`` says set-up builds (``make chat``/``make test`` run the
    same set-up), with LLAMA_BUILD=``build`` or, for None, unset (the default)."""
    env = {k: v for k, v in os.environ.items() if k != "LLAMA_BUILD"}
    env["PYTHON"] = sys.executable
    if build is not None:
        env["LLAMA_BUILD"] = build
    proc = subprocess.run(
        ["make", "-s", "--no-print-directory", "print-llama-build"],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return dict(line.split("=", 1) for line in proc.stdout.splitlines())


@pytest.fixture(scope="module")
def chosen_build() -> str:
    """The build set-up installed: LLAMA_BUILD as the test run got it, else the default."""
    if shutil.which("make") is None:
        pytest.skip("needs make")
    return _make_print_build(os.environ.get("LLAMA_BUILD"))["LLAMA_BUILD"]


def test_installed_library_is_the_chosen_build(chosen_build: str) -> None:
    if chosen_build == "none":
        pytest.skip("LLAMA_BUILD=none: set-up leaves llama-cpp-python alone")
    features = library_features()
    assert build_problems(chosen_build, features, cpu_flags()) == [], sorted(features)
    if chosen_build == "portable":
        assert not {f for f in features if f.startswith(("AVX512", "AMX"))}
    flags = cpu_flags() or frozenset()
    if chosen_build == "native" and "avx512f" in flags:
        assert "AVX512" in features  # this CPU's AVX-512 kernels are compiled in


def test_setup_builds_native_by_default_and_portable_on_request() -> None:
    if shutil.which("make") is None:
        pytest.skip("needs make")
    default, portable = _make_print_build(None), _make_print_build("portable")
    assert default["LLAMA_BUILD"] == "native" and default["CMAKE_ARGS"] == "-DGGML_NATIVE=ON"
    assert portable["LLAMA_BUILD"] == "portable" and "-DGGML_AVX512=OFF" in portable["CMAKE_ARGS"]
    # a native wheel is cached per CPU: the key holds this CPU's flags
    assert default["wheel_dir"] != portable["wheel_dir"]


def _one_flag_fewer(features: frozenset[str], flags: frozenset[str]) -> tuple[str, frozenset[str]]:
    """The newest instruction the library uses, and this CPU's flags without it: a CPU that
    the library was built for more than."""
    for name in ("AMX_INT8", "AVX512_BF16", "AVX512", "AVX2"):
        if name in features and FEATURE_FLAGS[name] in flags:
            return name, flags - {FEATURE_FLAGS[name]}
    raise AssertionError(f"no known instruction set in {sorted(features)}")


def test_loader_refuses_a_library_built_for_more_than_the_cpu_has(tiny_model_path: Path) -> None:
    flags = cpu_flags()
    if flags is None:
        pytest.skip("no /proc/cpuinfo flags on this machine")
    name, fewer = _one_flag_fewer(library_features(), flags)
    model = LocalChatModel(tiny_model_path, n_ctx=512, n_threads=1, cpu_flags=fewer)
    with pytest.raises(ConfigError) as err:
        model.llama  # noqa: B018 - loading is what is refused
    message = str(err.value)
    assert "instructions this CPU lacks" in message and name in message
    assert "scripts/setup.sh" in message and "LLAMA_BUILD=portable" in message  # the remedy
    assert model._llm is None  # nothing was loaded


_DIES_WHILE_LOADING = "import os, signal\nos.kill(os.getpid(), signal.SIGILL)\n"


def test_a_library_that_dies_while_loading_is_refused_not_fatal(
    tmp_path: Path, tiny_model_path: Path
) -> None:
    """A native build copied to an older CPU can die with SIGILL as it is imported, before
    any check in the process could run: the loader and set-up's check import it in a child
    first. Here the library is one whose import raises a real SIGILL."""
    fake = tmp_path / "site" / "llama_cpp"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(_DIES_WHILE_LOADING)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake.parent), str(REPO_ROOT)])}
    load = (
        "from pathlib import Path\n"
        "from assistant.errors import ConfigError\n"
        "from assistant.llm.local import LocalChatModel\n"
        f"m = LocalChatModel(Path({str(tiny_model_path)!r}), n_ctx=512, n_threads=1)\n"
        "try:\n    m.llama\nexcept ConfigError as exc:\n    print('refused:', exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True,
                          env=env, timeout=120)  # fmt: skip
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])  # not killed
    assert proc.stdout.startswith("refused:") and "SIGILL" in proc.stdout, proc.stdout
    assert "scripts/setup.sh" in proc.stdout
    check = subprocess.run(
        [sys.executable, "-m", "assistant.llm.cpu", "check", "native"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert check.returncode == 1 and "SIGILL" in check.stderr  # set-up then reinstalls


def _libraries() -> list[Path]:
    import llama_cpp

    libs = sorted((Path(llama_cpp.__file__).parent / "lib").glob("lib*.so"))
    assert any(lib.name.startswith("libggml-cpu") for lib in libs), libs
    return libs


@pytest.mark.skipif(shutil.which("objdump") is None, reason="needs objdump (binutils)")
def test_portable_machine_code_has_no_avx512_or_amx(chosen_build: str) -> None:
    if chosen_build != "portable":
        pytest.skip("only the portable build promises this")
    for lib in _libraries():
        asm = subprocess.run(
            ["objdump", "-d", "--no-show-raw-insn", str(lib)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        if lib.name.startswith("libggml-cpu"):
            assert "%ymm" in asm  # the AVX2 kernels are there
        amx = re.findall(r"\b(?:tileloadd\w*|tdpb\w+|ldtilecfg|tilestored)\b", asm)
        assert not amx, f"AMX instructions in {lib.name}: {sorted(set(amx))[:5]}"
        assert "%zmm" not in asm, f"AVX-512 registers in {lib.name}"


# --- the decisions -------------------------------------------------------------------------


def test_system_info_is_read_as_compiled_features() -> None:
    assert PORTABLE == {"SSE3", "SSSE3", "AVX", "AVX2", "F16C", "FMA", "BMI2"} | {
        "LLAMAFILE", "OPENMP", "REPACK",
    }  # fmt: skip
    assert {"AVX512", "AVX512_BF16"} <= ZEN4_NATIVE and "AMX_INT8" in SPR_NATIVE
    old_style = "CPU : AVX = 1 | AVX2 = 1 | AVX512 = 0 | AMX_INT8 = 0 | BLAS : CUDA = 1 | "
    assert parse_system_info(old_style.encode()) == {"AVX", "AVX2"}


@pytest.mark.parametrize("flags", [HASWELL_FLAGS, ZEN4_FLAGS, SPR_FLAGS])
def test_portable_build_fits_every_avx2_cpu(flags: frozenset[str]) -> None:
    assert build_problems("portable", PORTABLE, flags) == []
    assert repack_decision("auto", flags, PORTABLE)[0] is True


def test_native_builds_are_not_portable_and_die_on_older_cpus() -> None:
    assert build_problems("portable", ZEN4_NATIVE, ZEN4_FLAGS)
    assert build_problems("native", ZEN4_NATIVE, ZEN4_FLAGS) == []
    assert build_problems("native", PORTABLE, ZEN4_FLAGS)  # native asked, AVX-512 missing
    assert build_problems("native", PORTABLE, HASWELL_FLAGS) == []
    missing = unsupported_features(ZEN4_NATIVE, HASWELL_FLAGS)
    assert "AVX512 (avx512f)" in missing and len(missing) == 4
    assert unsupported_features(SPR_NATIVE, ZEN4_FLAGS) == [
        "AVX_VNNI (avx_vnni)",
        "AMX_INT8 (amx_int8)",
    ]
    assert unsupported_features(ZEN4_NATIVE, None) == []  # CPU unknown: nothing to say


def test_amx_cpu_with_amx_build_loads_without_extra_buffers() -> None:
    use, why = repack_decision("auto", SPR_FLAGS, SPR_NATIVE)
    assert use is False and "AMX" in why
    assert repack_decision("auto", ZEN4_FLAGS, ZEN4_NATIVE)[0] is True  # no AMX on the CPU
    assert repack_decision("auto", SPR_FLAGS, ZEN4_NATIVE)[0] is True  # no AMX in the library
    assert repack_decision("auto", None, SPR_NATIVE)[0] is True
    assert repack_decision("on", SPR_FLAGS, SPR_NATIVE)[0] is True
    assert repack_decision("off", ZEN4_FLAGS, PORTABLE)[0] is False


# --- the loader ----------------------------------------------------------------------------


def test_loader_passes_the_decision_to_llama_cpp(tiny_model_path: Path) -> None:
    off = chat_model_from_settings(
        Settings(llm_model_path=tiny_model_path, llm_repack="off", n_ctx=1024, n_threads=1)
    )
    assert isinstance(off, LocalChatModel)
    try:
        assert off.llama.model_params.use_extra_bufts is False and off.use_extra_bufts is False
        # The crash needed a prompt of a few hundred tokens; this one is ~450.
        text = " ".join(["Quantization maps weights to fewer bits without data."] * 45)
        reply = off.complete([{"role": "user", "content": text}], max_tokens=8)
        assert off.count_tokens(text) > 400 and reply.strip()
    finally:
        off.close()
    auto = LocalChatModel(tiny_model_path, n_ctx=512, n_threads=1)
    try:
        expected = repack_decision("auto", cpu_flags(), library_features())[0]
        assert auto.llama.model_params.use_extra_bufts is expected
    finally:
        auto.close()


# --- set-up --------------------------------------------------------------------------------


def _print_build(build: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LLAMA_BUILD": build, "PYTHON": sys.executable}
    return subprocess.run(
        [str(REPO_ROOT / "scripts" / "setup.sh"), "--print-llama-build"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_setup_flags_of_each_build() -> None:
    import llama_cpp

    portable, native = _print_build("portable"), _print_build("native")
    assert portable.returncode == 0 and native.returncode == 0, portable.stderr + native.stderr
    p = dict(line.split("=", 1) for line in portable.stdout.splitlines())
    n = dict(line.split("=", 1) for line in native.stdout.splitlines())
    assert p["version"] == n["version"] == llama_cpp.__version__  # the pin is what is installed
    for flag in ("GGML_NATIVE=OFF", "GGML_AVX2=ON", "GGML_AVX512=OFF", "GGML_AMX_INT8=OFF"):
        assert f"-D{flag}" in p["CMAKE_ARGS"].split()
    assert n["CMAKE_ARGS"] == "-DGGML_NATIVE=ON"
    assert p["wheel_dir"] != n["wheel_dir"] and "paper-assistant/wheels/" in p["wheel_dir"]
    bad = _print_build("fastest")
    assert bad.returncode == 2 and "portable" in bad.stderr and "native" in bad.stderr


@pytest.mark.slow
def test_build_benchmark_smoke(tmp_path: Path, tiny_model_path: Path) -> None:
    import llama_cpp

    site = Path(llama_cpp.__file__).parent.parent  # the installed build, twice
    cmd = [sys.executable, str(REPO_ROOT / "benchmarks" / "llama_build.py")]
    cmd += ["--build", f"a={site}", "--build", f"b={site}", "--model", str(tiny_model_path)]
    cmd += ["--rounds", "2", "--reps", "1", "--prompt-tokens", "300", "--max-tokens", "8"]
    cmd += ["--n-threads", "1", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "llama-build.json").read_text())
    assert [r["build"] for r in report["runs"]] == ["a", "b", "b", "a"]  # interleaved
    assert report["prompt_tokens"] >= 300  # the system prompt and one passage already are
    # end-of-sequence is banned: 8 tokens, the 7 after the first each decoded alone
    assert all(r["gen_tokens"] == 7 for run in report["runs"] for r in run["reps"])
    ratios = report["summary"]["ratios_to_a"]["b"]
    assert set(ratios) >= {"ttft_s", "prompt_tps", "gen_tps", "prompt_tps_paired"}
    assert all(v > 0 for v in ratios.values())
    assert report["features"]["a"] == sorted(library_features())
    assert "| b / a" in (tmp_path / "llama-build.md").read_text()
