"""Kernels the agent runs code in: the `KernelSession` it needs, and the jupyter_client session
that provides it (a kernel of this machine, a sandbox, a notebook's, or one on a gateway)."""

from .base import Execution, KernelSession, KernelUnresponsive
from .session import (
    SECRET_PREFIXES,
    SECRET_VARIABLES,
    JupyterKernelSession,
    without_secrets,
)

__all__ = [
    "SECRET_PREFIXES",
    "SECRET_VARIABLES",
    "Execution",
    "JupyterKernelSession",
    "KernelSession",
    "KernelUnresponsive",
    "without_secrets",
]
