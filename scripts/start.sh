#!/usr/bin/env bash
# Sets up the project and starts JupyterLab with the extension. Extra arguments go to `jupyter lab`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
root=()
[ "$(id -u)" = 0 ] && root=(--allow-root)
exec .venv/bin/jupyter lab "${root[@]}" "$@"
