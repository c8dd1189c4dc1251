#!/usr/bin/env bash
# Sets up the project in .venv, on a fresh Debian machine (as root) or a developer's machine.
# Idempotent: a second run only checks. Usage: scripts/setup.sh [test]
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "Please install these Debian packages (or their equivalents): $*" >&2
    exit 1
  fi
  if [ -z "${APT_UPDATED:-}" ]; then
    apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
command -v node >/dev/null || missing+=(nodejs npm)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v git >/dev/null || missing+=(git)
# The UI tests drive Debian's Chromium; Playwright's own browser download is not used.
[ "${1:-}" = test ] && ! command -v chromium >/dev/null && missing+=(chromium)
if ((${#missing[@]})); then apt_install "${missing[@]}"; fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip

# llama.cpp, for local models: pip builds it from source (minutes), so the wheel is built once
# into a cache, one per set of build flags (CMAKE_ARGS, e.g. -DGGML_CUDA=on; see README.md).
llama_cpp_version=0.3.36
build_flags="-DGGML_NATIVE=OFF ${CMAKE_ARGS:-}"
flags_hash=$(printf '%s' "$build_flags" | sha256sum | cut -c1-12)
wheels="${XDG_CACHE_HOME:-$HOME/.cache}/jupyter-notebook-agent/wheels/$flags_hash"
if ! ls "$wheels"/llama_cpp_python-"$llama_cpp_version"-*.whl >/dev/null 2>&1; then
  command -v g++ >/dev/null || apt_install g++
  echo "Building llama-cpp-python $llama_cpp_version with $build_flags (once; minutes)"
  CMAKE_ARGS="$build_flags" .venv/bin/python -m pip wheel -q --disable-pip-version-check \
    --no-deps -w "$wheels" "llama-cpp-python==$llama_cpp_version"
fi

extras="[local]"
[ "${1:-}" = test ] && extras="[test,local]"
# Builds the frontend (hatch-jupyter-builder runs jlpm) and enables the server extension.
.venv/bin/python -m pip install -q --disable-pip-version-check --prefer-binary \
  --find-links "$wheels" -e ".${extras}"

# The sandbox kernel: the Docker engine and its image (built without a registry, cached by recipe).
if [ "${1:-}" = test ]; then
  bash scripts/build-image.sh
elif ! bash scripts/build-image.sh; then
  echo "The sandbox kernel is not available (see above): until it is, the agent refuses to run" \
    "generated code unless you allow a local kernel (c.NotebookAgent.allow_unsandboxed)." >&2
fi

# The tests run a Jupyter Enterprise Gateway, from an environment of its own (cached, checked).
if [ "${1:-}" = test ]; then
  bash scripts/gateway-venv.sh >/dev/null
fi
