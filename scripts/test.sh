#!/usr/bin/env bash
# Sets up the project with its test dependencies and runs every check: linters, unit tests, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
export PATH="$PWD/.venv/bin:$PATH"

echo "== ruff"
ruff check .
ruff format --check .

echo "== frontend: prettier, eslint, jest"
jlpm lint:check
jlpm test

echo "== the extension is installed and enabled"
servers=$(jupyter server extension list 2>&1)
labs=$(jupyter labextension list 2>&1)
echo "$servers" | grep -E "jupyter_notebook_agent.*(enabled|OK)"
echo "$labs" | grep -E "jupyter-notebook-agent.*enabled.*OK"

echo "== UI tests: Galata against a real JupyterLab in Debian's Chromium"
(
  cd ui-tests
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 jlpm install
  CI=1 jlpm playwright test
)

echo "== pytest"
python -m pytest -p no:cacheprovider "$@"
