"""Kernel sandboxes, and the rule: generated code runs in one unless the person allowed otherwise.

A kernelspec counts as sandboxed when it selects the `docker-sandbox` kernel provisioner.
"""

from __future__ import annotations

from jupyter_client.kernelspec import KernelSpecManager

SANDBOX_KERNEL = "python3-sandbox"
SANDBOX_PROVISIONER = "docker-sandbox"
LOCAL_KERNEL = "python3"


class SandboxUnavailable(Exception):
    """No sandboxed kernel can be had and the person did not allow an unsandboxed one."""


def is_sandboxed(spec_metadata: dict) -> bool:
    provisioner = spec_metadata.get("kernel_provisioner", {})
    return provisioner.get("provisioner_name") == SANDBOX_PROVISIONER


def choose_kernel(requested: str | None, allow_unsandboxed: bool) -> tuple[str, bool]:
    """The kernelspec to run generated code in, and whether it is sandboxed."""
    specs = KernelSpecManager().get_all_specs()
    name = requested or SANDBOX_KERNEL
    spec = specs.get(name)
    if spec and is_sandboxed(spec["spec"].get("metadata", {})):
        return name, True
    if requested and not spec:
        known = ", ".join(sorted(specs)) or "none"
        raise SandboxUnavailable(f"no kernelspec named {name!r}; installed: {known}")
    if not allow_unsandboxed:
        if requested:
            raise SandboxUnavailable(
                f"the kernel {name!r} is not sandboxed, so generated code would run on this "
                "machine as you; pass --allow-unsandboxed to allow that"
            )
        raise SandboxUnavailable(
            f"the sandbox kernel {SANDBOX_KERNEL!r} is not installed, so generated code has "
            "nowhere safe to run; install the sandbox, or allow a local kernel on this machine "
            "(--allow-unsandboxed, or c.NotebookAgent.allow_unsandboxed = True)"
        )
    fallback = requested or LOCAL_KERNEL
    if fallback not in specs:
        raise SandboxUnavailable(f"no kernelspec named {fallback!r} is installed")
    return fallback, False
