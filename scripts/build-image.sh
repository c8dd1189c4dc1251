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

as_root_install() {
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

# What is needed is an engine that answers, not a client: many machines have a client alone (a
# remote context, Docker Desktop not running, a CI image). So: an engine that answers is used;
# else a dockerd on this machine is started; else docker.io (engine and client) is installed.
start_dockerd() {
  if [ "$(id -u)" != 0 ]; then
    echo "Docker engine: none answers, and only root starts dockerd here; start it (as root:" \
      "dockerd &), or add yourself to the docker group." >&2
    exit 1
  fi
  (setsid dockerd >/var/log/dockerd.log 2>&1 &)
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && return
    sleep 1
  done
  echo "dockerd did not answer within 60 s; see /var/log/dockerd.log:" >&2
  tail -n 20 /var/log/dockerd.log >&2
  exit 1
}
engine_version() { docker version --format '{{.Server.Version}}' 2>/dev/null; }
if docker info >/dev/null 2>&1; then
  echo "Docker engine: $(engine_version) answers; using it."
elif command -v dockerd >/dev/null; then
  start_dockerd
  echo "Docker engine: none answered; started this machine's dockerd $(engine_version)" \
    "(log: /var/log/dockerd.log)."
else
  as_root_install docker.io
  start_dockerd
  echo "Docker engine: none answered and no dockerd was installed; installed Debian's docker.io" \
    "and started dockerd $(engine_version) (log: /var/log/dockerd.log)."
fi

# bindfs lends a root-owned private notebook folder to the kernel's unprivileged user (see
# sandbox/folder_access.py); debootstrap builds the image.
command -v bindfs >/dev/null || [ "$(id -u)" != 0 ] || as_root_install bindfs fuse3

tag="$("$agent" image name)"
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "The sandbox kernel image $tag exists already."
  exit 0
fi
command -v debootstrap >/dev/null || as_root_install debootstrap
echo "Building the sandbox kernel image $tag (about 90 s)"
"$agent" image build
