"""Code execution in a Jupyter kernel the agent does not own the launching of.

The agent receives a started `AsyncKernelManager` (from jupyter_client, from the Jupyter server's
own kernel manager, or from a gateway) and only talks to it through jupyter_client's API.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from queue import Empty
from typing import Literal

import zmq
from jupyter_client.client import KernelClient
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import ensure_async
from nbformat import NotebookNode
from traitlets.config import Config

from ..notebook.outputs import OutputCollector, OutputLimits

#: How often a silent kernel is checked for being alive while code runs.
LIVENESS_POLL_S = 0.5
#: How long a readiness probe waits for its status on IOPub, once the kernel has answered on the
#: shell channel, before it asks again.
IOPUB_RETRY_S = 0.05
#: How soon a client's socket tries again to reach a kernel that is not listening yet (ZMQ's
#: default, 100 ms, is a third of a kernel's start).
RECONNECT_MS = 5
#: Environment variables that hold the agent's secrets: no kernel gets them, sandboxed or not.
SECRET_VARIABLES = ("OPENAI_API_KEY",)

ExecutionStatus = Literal["ok", "error", "timeout", "died"]


@dataclass
class Execution:
    """What one execution produced, and anything the model must know about the kernel."""

    status: ExecutionStatus
    outputs: list[NotebookNode] = field(default_factory=list)
    execution_count: int | None = None
    note: str = ""
    """Said to the model: an interrupt, a restart, a death."""
    restarted: bool = False
    """The kernel was restarted, so its state is gone."""
    duration_s: float = 0.0


def without_secrets(environment: Mapping[str, str]) -> dict[str, str]:
    """The environment a kernel may have: this one less the agent's secrets."""
    return {name: value for name, value in environment.items() if name not in SECRET_VARIABLES}


class KernelSession:
    """Runs code: a timeout interrupts, then restarts a kernel that does not answer; a kernel that
    died is reported and restarted."""

    def __init__(
        self,
        manager: AsyncKernelManager,
        *,
        interrupt_grace_s: float = 5.0,
        shutdown: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """`shutdown` replaces the manager's own, for a kernel that a multi-kernel manager
        (the Jupyter server's) started and must forget."""
        self.manager = manager
        self._shutdown = shutdown
        self.interrupt_grace_s = interrupt_grace_s
        self.client = self._new_client()
        self.restarts = 0

    @classmethod
    async def start(
        cls, kernel_name: str, *, cwd: str | None = None, config: Config | None = None
    ) -> KernelSession:
        """A new kernel of that kernelspec through jupyter_client's kernel manager; `config`
        reaches its provisioner (the sandbox's settings, say)."""
        manager = AsyncKernelManager(kernel_name=kernel_name, config=config or Config())
        await manager.start_kernel(cwd=cwd, env=without_secrets(os.environ))
        session = cls(manager)
        await session.connect()
        return session

    async def connect(self) -> None:
        """Opens the channels and waits until the kernel answers; a kernel that never does is
        shut down, so that it leaves nothing running, and the error says why it failed."""
        try:
            await self._open()
        except BaseException:
            with contextlib.suppress(Exception):  # ending it must not hide why it failed
                await self.shutdown()
            raise

    async def _open(self) -> None:
        """A gateway kernel's client opens its WebSocket in a coroutine; a local one returns."""
        await ensure_async(self.client.start_channels())
        await self.wait_until_ready()

    def _new_client(self) -> KernelClient:
        """A client of its own ZMQ context, which retries a kernel not yet listening soon."""
        client = self.manager.client()
        client.context.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
        return client

    async def wait_until_ready(self, timeout_s: float = 120.0) -> None:
        """Ready once a kernel_info request's idle status arrives on IOPub: the shell and IOPub
        both work then, with no blind wait for silence. The shell queues a request until the
        kernel listens, so its reply says the kernel is up; an idle status published before
        IOPub was subscribed is lost, so then ask again."""
        deadline = time.perf_counter() + timeout_s
        while True:
            msg_id = self.client.kernel_info()
            await self._kernel_info_reply(msg_id, deadline, timeout_s)
            if await self._idle_seen(msg_id, IOPUB_RETRY_S):
                return
            if time.perf_counter() > deadline:
                raise TimeoutError(f"the kernel's IOPub was silent for {timeout_s:g} s")

    async def _kernel_info_reply(self, msg_id: str, deadline: float, timeout_s: float) -> None:
        """Waits for the reply; a kernel that dies meanwhile is an error that says why."""
        while (remaining := deadline - time.perf_counter()) > 0:
            try:
                reply = await self.client.get_shell_msg(timeout=min(remaining, LIVENESS_POLL_S))
            except Empty:
                if not await self.manager.is_alive():
                    reason = await self.exit_reason()
                    raise RuntimeError(f"the kernel died before it was ready ({reason})") from None
                continue
            if reply["parent_header"].get("msg_id") == msg_id:
                return
        raise TimeoutError(f"the kernel was not ready after {timeout_s:g} s")

    async def _idle_seen(self, msg_id: str, wait_s: float) -> bool:
        until = time.perf_counter() + wait_s
        while (remaining := until - time.perf_counter()) > 0:
            try:
                msg = await self.client.get_iopub_msg(timeout=remaining)
            except Empty:
                return False
            if msg["parent_header"].get("msg_id") == msg_id and _is_idle(msg):
                return True
        return False

    async def execute(
        self, code: str, timeout_s: float, limits: OutputLimits | None = None
    ) -> Execution:
        """Cancelling it (Stop) interrupts the kernel, so the code stops running too. Outputs
        are kept within `limits` as they arrive."""
        msg_id = self.client.execute(code, store_history=True, allow_stdin=False)
        try:
            return await self._collect(msg_id, timeout_s, OutputCollector(limits))
        except asyncio.CancelledError:
            await self.manager.interrupt_kernel()
            raise

    async def _collect(
        self, msg_id: str, timeout_s: float, collector: OutputCollector
    ) -> Execution:
        started = time.perf_counter()
        deadline = started + timeout_s
        status: ExecutionStatus = "ok"
        note = ""
        restarts = self.restarts
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                status, note = "timeout", await self._interrupt(msg_id, collector, timeout_s)
                break
            try:
                msg = await self.client.get_iopub_msg(timeout=min(remaining, LIVENESS_POLL_S))
            except Empty:
                if not await self.manager.is_alive():
                    status, note = "died", await self._after_death()
                    break
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if _is_idle(msg):
                await self._reply(msg_id)
                break
            collector.add(msg)
        outputs = collector.outputs  # each read joins the streams' kept text: once
        if status == "ok" and any(o.output_type == "error" for o in outputs):
            status = "error"
        return Execution(
            status,
            outputs,
            collector.execution_count,
            note,
            self.restarts > restarts,
            time.perf_counter() - started,
        )

    async def _reply(self, msg_id: str) -> None:
        """Takes the execute reply off the shell channel, so replies never pile up there."""
        while True:
            try:
                reply = await self.client.get_shell_msg(timeout=self.interrupt_grace_s)
            except Empty:
                return
            if reply["parent_header"].get("msg_id") == msg_id:
                return

    async def _interrupt(self, msg_id: str, collector: OutputCollector, timeout_s: float) -> str:
        await self.manager.interrupt_kernel()
        deadline = time.perf_counter() + self.interrupt_grace_s
        while (remaining := deadline - time.perf_counter()) > 0:
            try:
                msg = await self.client.get_iopub_msg(timeout=remaining)
            except Empty:
                break
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if _is_idle(msg):
                await self._reply(msg_id)
                return f"execution exceeded {timeout_s:g} s and was interrupted; state is kept"
            collector.add(msg)
        await self.restart()
        return (
            f"execution exceeded {timeout_s:g} s and the kernel did not answer the interrupt: "
            "it was restarted, so all variables and imports are gone"
        )

    async def _after_death(self) -> str:
        reason = await self.exit_reason()
        await self.restart()
        return f"the kernel died ({reason}) and was restarted: all variables and imports are gone"

    async def exit_reason(self) -> str:
        provisioner = self.manager.provisioner
        code = await provisioner.poll() if provisioner else None
        if said := getattr(provisioner, "exit_reason", None):
            return said
        if code is None:
            return "it stopped answering"
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit code {code}"

    async def restart(self) -> None:
        """A fresh kernel on fresh channels: a request queued for the dead kernel must not
        reach its successor and run code the model was told did not run."""
        self.client.stop_channels()
        await self.manager.restart_kernel(now=True)
        self.restarts += 1
        self.client = self._new_client()
        await self._open()

    async def shutdown(self) -> None:
        self.client.stop_channels()
        if self._shutdown:
            await self._shutdown()
        else:
            await self.manager.shutdown_kernel(now=True)


def _is_idle(msg: dict) -> bool:
    return msg["header"]["msg_type"] == "status" and msg["content"]["execution_state"] == "idle"
