"""Kernel sandboxes, and the rule: generated code runs in one unless the person allowed otherwise.

A kernelspec counts as sandboxed when it selects the `docker-sandbox` kernel provisioner, or when
its metadata declares `"notebook_agent": {"sandboxed": true}`: kernels isolated by other means,
such as the Kubernetes pods of the Enterprise Gateway kernelspec in deploy/.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from docker import DockerClient

SANDBOX_KERNEL = "python3-sandbox"
SANDBOX_PROVISIONER = "docker-sandbox"
LOCAL_KERNEL = "python3"
SANDBOX_DECLARATION = "notebook_agent"
"""Kernelspec metadata key under which `{"sandboxed": true}` declares its kernels isolated."""


class SandboxUnavailable(Exception):
    """No sandboxed kernel can be had and the person did not allow an unsandboxed one."""


def uses_docker_sandbox(spec_metadata: dict) -> bool:
    provisioner = spec_metadata.get("kernel_provisioner", {})
    return provisioner.get("provisioner_name") == SANDBOX_PROVISIONER


def is_sandboxed(spec_metadata: dict) -> bool:
    declared = spec_metadata.get(SANDBOX_DECLARATION, {})
    return uses_docker_sandbox(spec_metadata) or (
        isinstance(declared, dict) and declared.get("sandboxed") is True
    )


def docker_engine(timeout_s: int = 30) -> DockerClient:
    """A client of a Docker engine that answers; SandboxUnavailable, saying what to do, if none."""
    import docker
    import docker.errors

    try:
        client = docker.from_env(timeout=timeout_s)
        client.ping()
    except docker.errors.DockerException as error:
        raise SandboxUnavailable(
            f"no Docker engine answers ({error}); install Docker and start it"
        ) from None
    return client


def docker_problem() -> str | None:
    """Why no Docker engine can run sandbox kernels, or None when one answers."""
    try:
        docker_engine(timeout_s=5).close()
    except SandboxUnavailable as error:
        return str(error)
    return None


@dataclass
class KernelChoice:
    name: str
    sandboxed: bool
    problem: str | None = None
    """Why the sandbox could not be had, when it was wanted and a local kernel stands in."""


def choose_kernel(
    requested: str | None,
    allow_unsandboxed: bool,
    specs: dict[str, Any],
    gateway: str | None = None,
) -> KernelChoice:
    """The kernelspec to run generated code in: the sandbox unless the person allowed otherwise.

    `specs` is what a kernel spec manager's get_all_specs() gives.
    `gateway` is the URL of the gateway that runs the kernels when there is one: `specs` are then
    the gateway's, no local Docker engine takes part, and an unsandboxed kernel runs on the
    gateway's machines rather than this one.
    """
    known = ", ".join(sorted(specs)) or "none"
    offered = f"the gateway {gateway} offers" if gateway else "installed"
    name = requested or SANDBOX_KERNEL
    if name not in specs:
        if requested:
            raise SandboxUnavailable(f"no kernelspec named {name!r}; {offered}: {known}")
        problem = (
            f"the gateway {gateway} offers no sandbox kernel {SANDBOX_KERNEL!r}"
            if gateway
            else f"the sandbox kernel {SANDBOX_KERNEL!r} is not installed"
        )
    elif not is_sandboxed(metadata := specs[name]["spec"].get("metadata", {})):
        if allow_unsandboxed:
            return KernelChoice(name, sandboxed=False)
        where = f"unconfined on the machines of the gateway {gateway}" if gateway else "as you"
        raise SandboxUnavailable(
            f"the kernel {name!r} is not sandboxed, so generated code would run {where}; "
            "pass --allow-unsandboxed to allow that"
        )
    elif gateway or not uses_docker_sandbox(metadata) or (problem := docker_problem()) is None:
        return KernelChoice(name, sandboxed=True)
    if not allow_unsandboxed:
        instead = "an unsandboxed kernel there" if gateway else "a local kernel on this machine"
        raise SandboxUnavailable(
            f"{problem}, so generated code has nowhere safe to run; fix that, or allow {instead} "
            "(--allow-unsandboxed, or c.NotebookAgent.allow_unsandboxed)"
        )
    if LOCAL_KERNEL not in specs:
        raise SandboxUnavailable(
            f"{problem}, and no kernel {LOCAL_KERNEL!r} either; choose one with --kernel "
            f"(c.NotebookAgent.kernel_name): {offered} {known}"
        )
    return KernelChoice(LOCAL_KERNEL, sandboxed=False, problem=problem)
