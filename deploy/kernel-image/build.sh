#!/usr/bin/env bash
# Builds the Kubernetes kernel image (the Dockerfile beside this script) from the agent's sandbox
# image, then prints its name; push it where the cluster pulls from.
# Usage: deploy/kernel-image/build.sh IMAGE [BASE]
#   IMAGE  its name as the cluster pulls it, e.g. registry.example.org/notebook-agent/kernel:0.1.0;
#          it is also written into the kernelspec inside the image
#   BASE   the sandbox image to start from (default: `jupyter-notebook-agent image name`)
# PYTHON names a Python with pip (default: python3), e.g. .venv/bin/python.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
image="${1:?usage: build.sh IMAGE [BASE]}"
base="${2:-$(jupyter-notebook-agent image name)}"
gateway_version=3.3.0
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
python="${PYTHON:-python3}"  # one with pip
pip=("$python" -m pip -q --disable-pip-version-check)

# The gateway's kernel launcher and pod launcher, from its source release (its wheel has neither).
"${pip[@]}" download --no-deps --no-binary :all: --dest "$context" \
  "jupyter_enterprise_gateway==$gateway_version"
tar -xzf "$context/jupyter_enterprise_gateway-$gateway_version.tar.gz" -C "$context"
launchers="$context/jupyter_enterprise_gateway-$gateway_version/etc/kernel-launchers"
cp "$launchers/python/scripts/launch_ipykernel.py" "$context/"

# pycryptodomex, which the launcher encrypts the kernel's connection with, for the image's CPU.
case "$(docker image inspect --format '{{.Architecture}}' "$base")" in
  amd64) platform=manylinux2014_x86_64 ;;
  arm64) platform=manylinux2014_aarch64 ;;
  *)
    echo "No pycryptodomex wheel platform is known for the architecture of $base" >&2
    exit 1
    ;;
esac
"${pip[@]}" download --no-deps --only-binary :all: --platform "$platform" \
  --dest "$context/wheels" pycryptodomex
"$python" -m zipfile -e "$context"/wheels/pycryptodomex-*.whl "$context/site-packages"

# The kernelspec, naming this image, with the gateway's pod launcher beside the pod template.
kernelspec="$context/kernels/python3-sandbox"
mkdir -p "$context/kernels"
cp -r "$here/../enterprise-gateway/kernelspecs/python3-sandbox" "$kernelspec"
cp "$launchers/kubernetes/scripts/launch_kubernetes.py" "$kernelspec/scripts/"
"$python" - "$kernelspec/kernel.json" "$image" <<'EOF'
import json
import sys

path, image = sys.argv[1:]
with open(path) as file:
    spec = json.load(file)
spec["metadata"]["process_proxy"]["config"]["image_name"] = image
with open(path, "w") as file:
    json.dump(spec, file, indent=2)
EOF

docker build --quiet --build-arg "BASE=$base" --file "$here/Dockerfile" --tag "$image" \
  "$context" >&2
echo "$image"
