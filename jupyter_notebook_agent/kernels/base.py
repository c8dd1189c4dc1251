"""What the agent needs of a kernel: run code, evaluate an expression, restart, shut down.

The agent holds a `KernelSession` and nothing of how its kernel was launched or reached: a local
kernel, a sandbox container, a notebook's kernel in the Jupyter server, or one on a gateway.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from nbformat import NotebookNode

from ..notebook.outputs import OutputCollector

ExecutionStatus = Literal["ok", "error", "timeout", "died", "stopped"]
"""stopped: the person stopped the run while the code ran (what it printed is kept)."""


@dataclass
class Execution:
    """What one execution produced, and anything the model must know about the kernel."""

    status: ExecutionStatus
    outputs: list[NotebookNode] = field(default_factory=list)
    execution_count: int | None = None
    note: str = ""
    """Said to the model: an interrupt, a restart, a death."""
    restarted: bool = False
    """The kernel was restarted (or died), so its state is gone."""
    duration_s: float = 0.0


class KernelUnresponsive(RuntimeError):
    """A shared kernel did not answer an interrupt: only its owner may restart it."""


@runtime_checkable
class KernelSession(Protocol):
    """A kernel the agent runs code in. A `shared` one is a notebook's, which the person uses
    too: the agent never restarts or shuts it down."""

    shared: bool

    async def execute(
        self,
        code: str,
        timeout_s: float,
        collector: OutputCollector | None = None,
        on_wait: Callable[[], None] | None = None,
    ) -> Execution:
        """Runs `code`; cancelling it interrupts the code. Outputs reach `collector` as they
        come; `on_wait` is told when the code waits for the person's cell."""
        ...

    async def evaluate(self, expression: str, timeout_s: float = 10.0) -> str:
        """The text of `expression`, evaluated silently (no history, no outputs)."""
        ...

    async def restart(self) -> None:
        """A fresh kernel: all its state goes."""
        ...

    async def shutdown(self) -> None:
        """The agent is done with it: a shared kernel keeps running for its notebook."""
        ...
