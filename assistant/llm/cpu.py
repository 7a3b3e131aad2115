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
  library has AMX kernels, unless a setting forces it;
- :func:`checked_features` is what the model loader calls before it imports llama-cpp-python:
  the library is first imported in a child process (:func:`probe_library`), because a native
  build can die with SIGILL while it loads, before any check in this process could run; then
  its compiled features are compared with this CPU. A library that does not fit is refused
  with :data:`REMEDY`.

``python -m assistant.llm.cpu check portable|native [--version V]`` is what ``scripts/setup.sh``
runs to decide whether the installed llama-cpp-python must be replaced (exit status 1 with
the reasons on stderr); ``python -m assistant.llm.cpu info`` prints the facts as JSON. Both
read the library through the child-process probe, so neither can die of it.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from assistant.errors import ConfigError

__all__ = [
    "BUILDS",
    "FEATURE_FLAGS",
    "PORTABLE_FEATURES",
    "REMEDY",
    "build_problems",
    "checked_features",
    "cpu_flags",
    "cpu_model",
    "library_features",
    "parse_system_info",
    "probe_library",
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


def passive_openmp() -> None:
    """Let llama.cpp's OpenMP threads sleep between calls (``OMP_WAIT_POLICY=PASSIVE``) unless
    the user chose a policy. Called before llama.cpp loads: the OpenMP runtime reads it once.

    With the default (spinning) policy, on a machine shared with other work, a call made from
    the main thread ran 4 to 50 times slower while other threads spun for the cores; on a
    quiet machine the policy makes no measurable difference."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def library_features() -> frozenset[str]:
    """Features the installed (already importable) llama-cpp-python was compiled with."""
    passive_openmp()
    import llama_cpp

    return parse_system_info(llama_cpp.llama_print_system_info())


REMEDY = (
    "run scripts/setup.sh (or make setup) on this machine: it builds llama-cpp-python for this "
    "CPU (LLAMA_BUILD=portable builds one that runs on every x86-64 CPU with AVX2)"
)
"""What to do about a library that does not fit this CPU (set-up rebuilds it)."""

_PROBE = (
    "import json, llama_cpp; print(json.dumps({'version': llama_cpp.__version__, "
    "'info': llama_cpp.llama_print_system_info().decode('utf-8', 'replace')}))"
)


def probe_library(timeout: float = 180.0) -> tuple[str, frozenset[str]]:
    """Import llama-cpp-python in a child process (this interpreter, this ``sys.path``) and
    return its version and compiled features.

    A library built with ``-march=native`` may use the newer instructions anywhere, also in
    code that runs while it loads, so on a CPU without them the import itself can die with
    SIGILL; in a child, that kills only the child. Raises :class:`ConfigError` with
    :data:`REMEDY` when the child dies or cannot import it.
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"cannot check the installed llama-cpp-python ({exc})") from None
    if proc.returncode < 0:
        try:
            how = signal.Signals(-proc.returncode).name
        except ValueError:
            how = f"signal {-proc.returncode}"
        what = " (Illegal instruction)" if how == "SIGILL" else ""
        raise ConfigError(
            f"the installed llama-cpp-python cannot run on this CPU: importing it killed a "
            f"child process with {how}{what}, so it was built for instructions this CPU "
            f"lacks (on another machine, or copied with a virtualenv); {REMEDY}"
        )
    try:
        reply = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"llama-cpp-python cannot be imported ({last}); {REMEDY}") from None
    return str(reply["version"]), parse_system_info(reply["info"])


@functools.cache
def _probed(origin: str, stamp: float) -> tuple[str, frozenset[str]]:
    return probe_library()


def checked_features(flags: Iterable[str] | None) -> frozenset[str]:
    """The compiled features of the llama-cpp-python this process would import, checked
    against a CPU with ``flags`` without risking this process: read by :func:`probe_library`
    (once per library per process) unless it is imported here already. Raises
    :class:`ConfigError` with :data:`REMEDY` when the library cannot run on this CPU."""
    if "llama_cpp" in sys.modules:
        features = library_features()
    else:
        spec = importlib.util.find_spec("llama_cpp")
        if spec is None or not spec.origin:
            raise ConfigError(
                "llama-cpp-python is not installed: run scripts/setup.sh, or set "
                "ASSISTANT_OPENAI_BASE_URL to use a server"
            )
        lib = Path(spec.origin).parent / "lib"
        stamp = max((f.stat().st_mtime for f in lib.glob("*.so*")), default=0.0)
        features = _probed(spec.origin, stamp)[1]
    if missing := unsupported_features(features, flags):
        raise ConfigError(
            f"the installed llama-cpp-python was built for instructions this CPU lacks "
            f"({', '.join(missing)}), so the model would die with 'Illegal instruction'; "
            f"{REMEDY}"
        )
    return features


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
    features: frozenset[str] | None = None
    version: str | None = None
    try:  # in a child: a library that dies of this CPU must not take set-up with it
        version, features = probe_library()
    except ConfigError as exc:  # not installed, broken, or not for this CPU: reinstall
        print(exc, file=sys.stderr)
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
