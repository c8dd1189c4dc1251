#!/usr/bin/env bash
# Makes the virtual environment that runs Jupyter Enterprise Gateway for the tests and
# bench/gateway.py, and prints its folder. It is separate from .venv because Enterprise Gateway 3
# needs jupyter_server 1 and jupyter_client 6, older than the extension's. Beside the gateway it
# holds, in etc/, the files of the gateway's source release that its wheel lacks (the Helm chart,
# the kernel launchers, the kernel pod template), which tests/test_deploy.py checks deploy/
# against. Cached by version and checked each time: one that does not work is made again.
# Usage: scripts/gateway-venv.sh   (NOTEBOOK_AGENT_GATEWAY_VENV overrides the folder)
set -euo pipefail

version=3.3.0
cache="${XDG_CACHE_HOME:-$HOME/.cache}/jupyter-notebook-agent"
venv="${NOTEBOOK_AGENT_GATEWAY_VENV:-$cache/enterprise-gateway-$version}"
mkdir -p "$(dirname "$venv")"

works() {
  "$venv/bin/jupyter-enterprisegateway" --version >/dev/null 2>&1 &&
    [ -f "$venv/etc/kubernetes/helm/enterprise-gateway/values.yaml" ] &&
    [ -f "$venv/etc/kernel-launchers/python/scripts/launch_ipykernel.py" ]
}

# One maker at a time: the tests and a benchmark may ask at once.
exec 9>"$venv.lock"
flock 9
if ! works; then
  echo "Making the Enterprise Gateway $version environment in $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  pip=("$venv/bin/python" -m pip -q --disable-pip-version-check)
  "${pip[@]}" install "jupyter_enterprise_gateway==$version" >&2
  source_release="$(mktemp -d)"
  "${pip[@]}" download --no-deps --no-binary :all: --dest "$source_release" \
    "jupyter_enterprise_gateway==$version" >&2
  tar -xzf "$source_release"/jupyter_enterprise_gateway-"$version".tar.gz -C "$source_release"
  mv "$source_release/jupyter_enterprise_gateway-$version/etc" "$venv/etc"
  rm -rf "$source_release"
  works
fi
echo "$venv"
