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
extras=""
[ "${1:-}" = test ] && extras="[test]"
# Builds the frontend (hatch-jupyter-builder runs jlpm) and enables the server extension.
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}"

# The sandbox kernel: the Docker engine and its image (built without a registry, cached by recipe).
if [ "${1:-}" = test ]; then
  bash scripts/build-image.sh
elif ! bash scripts/build-image.sh; then
  echo "The sandbox kernel is not available (see above): until it is, the agent refuses to run" \
    "generated code unless you allow a local kernel (c.NotebookAgent.allow_unsandboxed)." >&2
fi
