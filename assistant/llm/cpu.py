"""The model's build: what this CPU can run, what the installed llama.cpp was built for, and what
follows.

llama.cpp compiles its CPU kernels for a fixed instruction set. A library built for more than
the CPU has dies with SIGILL (an AVX-512 build on an AVX2-only CPU), and a build with AMX
kernels crashes on Intel Xeons with AMX when the model's weights go to the AMX buffer type.
This module keeps those facts and decisions small and pure, so that set-up, the model loader
and the tests share them:

- :func:`cpu_flags` reads the CPU's instruction-set flags (``/proc/cpuinfo``);
- :func:`parse_system_info` reads the features ``llama_print_system_info()`` says the library
  was compiled with;
- :func:`build_problems` says why a library does not fit a build kind (``portable``: AVX2 and
  nothing newer; ``native``: this CPU's AVX-512 when it has it) or this CPU;
- :func:`repack_decision` decides llama.cpp's ``use_extra_bufts`` model parameter (weight
  repacking into the AMX and CPU_REPACK buffer types): off when the CPU lists AMX and the
  library has AMX kernels, unless a setting forces it.

``python -m assistant.llm.cpu check portable|native [--version V]`` is what ``scripts/setup.sh``
runs to decide whether the installed llama-cpp-python must be replaced (exit status 1 with
the reasons on stderr); ``python -m assistant.llm.cpu info`` prints the facts as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

__all__ = [
    "BUILDS",
    "FEATURE_FLAGS",
    "PORTABLE_FEATURES",
    "build_problems",
    "cpu_flags",
    "cpu_model",
    "library_features",
    "parse_system_info",
    "repack_decision",
    "unsupported_features",
]

Build = Literal["portable", "native"]
Repack = Literal["auto", "on", "off"]
BUILDS: tuple[Build, ...] = ("portable", "native")

# llama_print_system_info() feature name -> the /proc/cpuinfo flag the code needs (x86-64).
FEATURE_FLAGS: dict[str, str] = {
    "SSE3": "pni",
    "SSSE3": "ssse3",
    "AVX": "avx",
    "AVX_VNNI": "avx_vnni",
    "AVX2": "avx2",
    "F16C": "f16c",
    "FMA": "fma",
    "BMI2": "bmi2",
    "AVX512": "avx512f",
    "AVX512_VBMI": "avx512vbmi",
    "AVX512_VNNI": "avx512_vnni",
    "AVX512_BF16": "avx512_bf16",
    "AMX_INT8": "amx_int8",
}
# The instruction-set features the portable build compiles in (every x86-64 CPU with AVX2:
# Intel since Haswell, AMD since Zen 1).
PORTABLE_FEATURES = frozenset({"SSE3", "SSSE3", "AVX", "AVX2", "F16C", "FMA", "BMI2"})
_AMX_FLAGS = frozenset({"amx_tile", "amx_int8", "amx_bf16"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str] | None:
    """The instruction-set flags of the first CPU in ``cpuinfo``; None when unknown
    (not Linux, or no ``flags`` line, as on ARM)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            return frozenset(value.split())
    return None


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name from ``cpuinfo`` ("unknown" when it cannot be read)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "unknown"
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "model name":
            return value.strip()
    return "unknown"


def parse_system_info(text: str | bytes) -> frozenset[str]:
    """Features of the CPU backend that ``llama_print_system_info()`` reports as compiled in.

    The text looks like ``CPU : SSE3 = 1 | AVX2 = 1 | ... | REPACK = 1 |`` (other backends,
    if any, follow as ``NAME : ...``). Features reported as ``0`` are left out.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    features: set[str] = set()
    backend = ""
    for piece in text.split("|"):
        if " : " in piece:
            backend, piece = piece.split(" : ", 1)
            backend = backend.strip()
        name, sep, value = piece.partition("=")
        if sep and backend == "CPU" and value.strip() not in ("", "0"):
            features.add(name.strip())
    return frozenset(features)


def library_features() -> frozenset[str]:
    """Features the installed (already importable) llama-cpp-python was compiled with."""
    import llama_cpp

    return parse_system_info(llama_cpp.llama_print_system_info())


def unsupported_features(features: Iterable[str], flags: Iterable[str] | None) -> list[str]:
    """The compiled-in ``features`` a CPU with ``flags`` cannot run, as ``NAME (flag)``;
    empty when the CPU is unknown (None)."""
    if flags is None:
        return []
    features, flags = frozenset(features), frozenset(flags)
    return [
        f"{name} ({flag})"
        for name, flag in FEATURE_FLAGS.items()
        if name in features and flag not in flags
    ]


def build_problems(build: Build, features: Iterable[str], flags: Iterable[str] | None) -> list[str]:
    """Why a library compiled with ``features`` is not a ``build`` build for a CPU with
    ``flags`` (None: CPU unknown). Empty when it is."""
    features = frozenset(features)
    problems = []
    if missing := unsupported_features(features, flags):
        problems.append(
            f"it uses instructions this CPU lacks: {', '.join(missing)} (no such flag in "
            "/proc/cpuinfo)"
        )
    simd = features & FEATURE_FLAGS.keys()
    if "AVX2" not in simd:
        problems.append("it was built without AVX2 (slow)")
    if build == "portable" and (extra := sorted(simd - PORTABLE_FEATURES)):
        problems.append(
            f"it was built with {', '.join(extra)}, so it does not run on every AVX2 CPU "
            "(a native build, or a wheel built on another machine)"
        )
    if build == "native" and "avx512f" in (flags or ()) and "AVX512" not in simd:
        problems.append("this CPU has AVX-512 but the library was built without it")
    return problems


def repack_decision(
    setting: Repack, flags: Iterable[str] | None, features: Iterable[str]
) -> tuple[bool, str]:
    """``use_extra_bufts`` for loading a model, and why.

    Extra buffer types are where llama.cpp repacks weights for faster kernels: AMX tiles on
    Intel Xeons (when the library has AMX kernels) and interleaved AVX2/AVX-512 layouts
    (CPU_REPACK). The AMX path crashes on AMX Xeons with llama-cpp-python 0.3.36, so
    ``auto`` turns extra buffers off exactly when the CPU lists AMX and the library was
    compiled with AMX kernels; ``on`` and ``off`` force it.
    """
    if setting == "on":
        return True, "weight repacking on (ASSISTANT_LLM_REPACK=on)"
    if setting == "off":
        return False, "weight repacking off (ASSISTANT_LLM_REPACK=off)"
    cpu_amx = sorted(_AMX_FLAGS & frozenset(flags or ()))
    lib_amx = sorted(f for f in features if f.startswith("AMX"))
    if cpu_amx and lib_amx:
        return False, (
            f"weight repacking off: the CPU has AMX ({', '.join(cpu_amx)}) and the library "
            f"was built with AMX kernels ({', '.join(lib_amx)}), whose path crashes "
            "(ASSISTANT_LLM_REPACK=on forces it)"
        )
    return True, "weight repacking on (no AMX kernels in use)"


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m assistant.llm.cpu", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="exit 1 unless the installed library fits BUILD")
    check.add_argument("build", choices=BUILDS)
    check.add_argument("--version", help="the llama-cpp-python version it must be")
    sub.add_parser("info", help="CPU and library facts as JSON")
    args = parser.parse_args(argv)
    flags = cpu_flags()
    try:
        import llama_cpp

        features, version = library_features(), llama_cpp.__version__
    except Exception as exc:  # not installed, or a broken install: either way, reinstall
        print(f"llama-cpp-python cannot be imported: {type(exc).__name__}: {exc}", file=sys.stderr)
        features, version = None, None
    if args.command == "info":
        known = frozenset(FEATURE_FLAGS.values()) | _AMX_FLAGS
        info = {
            "cpu": cpu_model(),
            "cpu_flags": sorted(known & (flags or frozenset())),
            "llama_cpp_python": version,
            "library_features": sorted(features) if features is not None else None,
        }
        print(json.dumps(info))
        return 0
    if features is None:
        return 1
    problems = build_problems(args.build, features, flags)
    if args.version and version != args.version:
        problems.insert(0, f"it is version {version}, not {args.version}")
    where = f"llama-cpp-python {version} ({' '.join(sorted(features))})"
    if problems:
        print(f"{where} is not a {args.build} build: {'; '.join(problems)}", file=sys.stderr)
        return 1
    print(f"{where} is a {args.build} build", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
