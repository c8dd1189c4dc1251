"""Starts a kernel of deploy/kernel-image as its Kubernetes pod runs it (kernel-pod.yaml.j2), but
in Docker on this machine, for an Enterprise Gateway's DockerProcessProxy: uid 1000, read-only
root, a bounded /tmp, no capabilities, no privilege escalation, capped memory and CPU, and the
image's own command. The gateway runs this with its own Python (it has the docker package),
with the kernelspec's `{kernel_id}`-style arguments and KERNEL_IMAGE in the environment.
"""

import argparse
import os

import docker

parser = argparse.ArgumentParser()  # the arguments launch_kubernetes.py takes
for name in ("kernel-id", "port-range", "response-address", "public-key"):
    parser.add_argument(f"--RemoteProcessProxy.{name}", dest=name.replace("-", "_"), required=True)
args = parser.parse_args()
docker.from_env().containers.run(
    os.environ["KERNEL_IMAGE"],
    detach=True,
    name=f"notebook-agent-test-kernel-{args.kernel_id}",
    # How the gateway finds the kernel's container; the last one is for the tests' cleanup.
    labels={"kernel_id": args.kernel_id, "component": "kernel", "notebook-agent-test": "1"},
    environment={
        "KERNEL_ID": args.kernel_id,
        "PORT_RANGE": args.port_range,
        "RESPONSE_ADDRESS": args.response_address,
        "PUBLIC_KEY": args.public_key,
    },
    network=os.environ.get("EG_DOCKER_NETWORK", "bridge"),
    user="1000:1000",
    read_only=True,
    tmpfs={"/tmp": "size=512m,mode=1777"},
    cap_drop=["ALL"],
    security_opt=["no-new-privileges"],
    mem_limit="2g",
    memswap_limit="2g",
    nano_cpus=2_000_000_000,
    pids_limit=256,
)
