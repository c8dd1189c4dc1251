#!/usr/bin/env bash
# Builds the sandbox kernel image unless one with the current recipe's tag exists (that is the
# cache). Needs no Docker registry: debootstrap makes the image from the Debian mirror apt uses.
# On a fresh Debian machine, as root: installs docker.io and debootstrap, starts dockerd if no
# engine answers. Run scripts/setup.sh first (it makes .venv). Usage: scripts/build-image.sh
set -euo pipefail
cd "$(dirname "$0")/.."

agent=.venv/bin/jupyter-notebook-agent
if [ ! -x "$agent" ]; then
  echo "No $agent: run scripts/setup.sh first." >&2
  exit 1
fi

missing=()
command -v docker >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "Please install these Debian packages (or their equivalents): ${missing[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "No Docker engine answers; start it (as root: dockerd &), or add yourself to the" \
      "docker group." >&2
    exit 1
  fi
  echo "Starting dockerd (log: /var/log/dockerd.log)"
  (setsid dockerd >/var/log/dockerd.log 2>&1 &)
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  if ! docker info >/dev/null 2>&1; then
    echo "dockerd did not answer within 60 s; see /var/log/dockerd.log:" >&2
    tail -n 20 /var/log/dockerd.log >&2
    exit 1
  fi
fi

tag="$("$agent" image name)"
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "The sandbox kernel image $tag exists already."
  exit 0
fi
echo "Building the sandbox kernel image $tag (about 90 s)"
"$agent" image build
