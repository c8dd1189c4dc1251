"""A kernel session over jupyter_client: code execution in a kernel whose launching is another's.

It receives a started `AsyncKernelManager` (from jupyter_client, from the Jupyter server's own
kernel manager, or from a gateway) and only talks to it through jupyter_client's API.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from queue import Empty

import zmq
from jupyter_client.client import KernelClient
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.session import new_id
from jupyter_core.utils import ensure_async
from traitlets.config import Config

from ..notebook.outputs import OutputCollector
from .base import Execution, ExecutionStatus, KernelUnresponsive

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
#: Prefixes of variables that hold secrets too: those the person's settings name for their MCP
#: servers (${env:MCP_...}).
SECRET_PREFIXES = ("MCP_",)
#: How long a shared kernel that is busy with the person's cell is left before the agent says it
#: waits (a kernel that just finished the agent's previous cell is reported idle a little late).
BUSY_GRACE_S = 0.2
STATE_GONE = "all variables and imports are gone"
#: How often a shared kernel busy with the person's cell is looked at.
BUSY_POLL_S = 0.05
#: Every so many looks, the manager is asked whether the kernel is alive, which refreshes a
#: gateway kernel's state.
BUSY_REFRESH_POLLS = 20
#: How long code stopped while queued is watched for, to interrupt it once it starts.
ABANDONED_WATCH_S = 3600.0
#: How long a shared kernel that died is given to come back (the server restarts it).
REVIVAL_S = 60.0


def is_secret(name: str) -> bool:
    return name in SECRET_VARIABLES or name.startswith(SECRET_PREFIXES)


def without_secrets(environment: Mapping[str, str]) -> dict[str, str]:
    """The environment a kernel may have: this one less the agent's secrets."""
    return {name: value for name, value in environment.items() if not is_secret(name)}


class JupyterKernelSession:
    """Runs code: a timeout interrupts, then restarts a kernel that does not answer; a kernel that
    died is reported and restarted.

    A `shared` kernel is a notebook's, which the person uses too: it is never restarted or shut
    down here (a death is reported, and the server brings it back); code waits for the person's
    cell to finish rather than queue behind it; a Stop interrupts only the agent's own
    execution; and a restart by the person between two executions is reported."""

    def __init__(
        self,
        manager: AsyncKernelManager,
        *,
        interrupt_grace_s: float = 5.0,
        shared: bool = False,
    ) -> None:
        self.manager = manager
        self.shared = shared
        self.interrupt_grace_s = interrupt_grace_s
        self.client = self._new_client()
        self.restarts = 0
        self._incarnation = self._current_incarnation()
        self._reopen = False
        """The channels went with a dead kernel: open new ones before the next execution."""
        self._watchers: set[asyncio.Future[None]] = set()
        """Interrupts waiting for code that was stopped while still queued."""

    @classmethod
    async def start(
        cls, kernel_name: str, *, cwd: str | None = None, config: Config | None = None
    ) -> JupyterKernelSession:
        """A new kernel of that kernelspec through jupyter_client's kernel manager; `config`
        reaches its provisioner (the sandbox's settings, say)."""
        manager = AsyncKernelManager(kernel_name=kernel_name, config=config or Config())
        await manager.start_kernel(cwd=cwd, env=without_secrets(os.environ))
        session = cls(manager)
        await session.connect()
        return session

    async def connect(self, on_wait: Callable[[], None] | None = None) -> None:
        """Opens the channels and waits until the kernel answers; a kernel that never does is
        shut down, so that it leaves nothing running, and the error says why it failed. A
        shared kernel busy with the person's cell answers nothing until it ends: `on_wait` is
        told that the agent waits."""
        await self._wait_while_busy(on_wait)
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
        """A client of its own ZMQ context, which retries a kernel not yet listening soon, and
        of its own session id: each client of a manager gets a copy of the manager's session,
        whose message ids (session, process, count) would repeat those of another client of
        the same kernel (the person's, in a shared one), so that its replies would pass for
        ours."""
        client = self.manager.client()
        client.context.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
        client.session.session = new_id()
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
        async with contextlib.aclosing(
            _answers(self.client.get_iopub_msg, msg_id, wait_s)
        ) as answers:
            async for msg in answers:
                if _is_idle(msg):
                    return True
        return False

    async def execute(
        self,
        code: str,
        timeout_s: float,
        collector: OutputCollector | None = None,
        on_wait: Callable[[], None] | None = None,
    ) -> Execution:
        """Cancelling it (Stop) interrupts the kernel while the code runs, so the code stops
        too. Outputs are kept by `collector` as they arrive (within its limits), so a caller
        that stopped it still has what the code printed. `timeout_s` counts from when the
        code starts: a shared kernel busy with the person's cell is waited for first, and
        `on_wait` told so."""
        note = await self._prepare(on_wait)
        msg_id = self.client.execute(code, store_history=True, allow_stdin=False)
        running = _Running(msg_id)
        try:
            execution = await self._collect(running, timeout_s, collector or OutputCollector())
        except asyncio.CancelledError:
            if running.ended:
                raise
            if running.started or not self.shared:
                await self.manager.interrupt_kernel()
            else:  # queued behind the person's cell, which must run on
                self._interrupt_when_it_starts(msg_id)
            raise
        if note:
            execution.note = f"{note}. {execution.note}" if execution.note else note
            execution.restarted = True
        return execution

    async def _prepare(self, on_wait: Callable[[], None] | None) -> str:
        """Before code runs in a shared kernel: channels for a kernel that came back, the
        person's cell finished. What the model must know of a restart by the person."""
        if not self.shared:
            return ""
        if self._reopen:
            await self._revived()
        await self._wait_while_busy(on_wait)
        incarnation = self._current_incarnation()
        if incarnation is self._incarnation:
            return ""
        self._incarnation = incarnation
        return (
            "the kernel was restarted since your last execution: all variables and imports are gone"
        )

    async def _wait_while_busy(self, on_wait: Callable[[], None] | None) -> None:
        """Until a shared kernel is done with the person's cell, as the server saw its status
        (the server owns that state: polled, it has no event to wait on; a gateway's manager
        updates it when asked whether the kernel is alive)."""
        if not self.shared:
            return
        started = time.perf_counter()
        told = False
        for poll in itertools.count(1):
            if getattr(self.manager, "execution_state", "idle") != "busy":
                return
            if not told and time.perf_counter() - started > BUSY_GRACE_S:
                told = True
                if on_wait:
                    on_wait()
            await asyncio.sleep(BUSY_POLL_S)
            if poll % BUSY_REFRESH_POLLS == 0:
                await self.manager.is_alive()

    def _interrupt_when_it_starts(self, msg_id: str) -> None:
        """Stopped while the code waited in a shared kernel's queue behind the person's cell:
        the request cannot be taken back, so it is interrupted as soon as it starts, and left
        alone if the kernel never gets to it (restarted meanwhile)."""
        task = asyncio.ensure_future(self._interrupt_once_started(msg_id))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _interrupt_once_started(self, msg_id: str) -> None:
        """On channels of its own: the run lets its channels go once stopped."""
        client = self._new_client()
        await ensure_async(client.start_channels())
        try:
            deadline = time.perf_counter() + ABANDONED_WATCH_S
            while time.perf_counter() < deadline:
                try:
                    msg = await client.get_iopub_msg(timeout=LIVENESS_POLL_S)
                except Empty:
                    if not await self.manager.is_alive():
                        return
                    continue
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                if _is_idle(msg):
                    return
                if _has_started(msg):
                    await self.manager.interrupt_kernel()
                    return
        finally:
            client.stop_channels()

    async def _revived(self) -> None:
        """Opens channels once the server brought the dead kernel back."""
        deadline = time.perf_counter() + REVIVAL_S
        while not await self.manager.is_alive():
            if self._shut_down_for_good():
                raise KernelUnresponsive(
                    "the notebook's kernel was shut down (the notebook was closed, or its kernel "
                    "changed); a new request runs in the notebook's kernel of now"
                )
            if time.perf_counter() > deadline:
                raise KernelUnresponsive(
                    f"the notebook's kernel died and did not come back within {REVIVAL_S:g} s"
                )
            await asyncio.sleep(0.2)
        self.client = self._new_client()
        try:
            await self._open()
        except (RuntimeError, TimeoutError) as error:
            raise KernelUnresponsive(f"the notebook's kernel came back unusable: {error}") from None
        self._reopen = False
        self._incarnation = self._current_incarnation()

    def _shut_down_for_good(self) -> bool:
        """Shut down with no start to follow (the person changed the notebook's kernel, or
        closed it), or dead past the restarter's tries: no use waiting for it. A restart's own
        shutdown is over only once its start has begun, with a new `ready` not yet done."""
        ready = getattr(self.manager, "ready", None)
        if not isinstance(ready, asyncio.Future) or not ready.done():
            return False
        failed = not ready.cancelled() and ready.exception() is not None
        return getattr(self.manager, "shutting_down", False) or failed

    def _current_incarnation(self) -> object:
        """What a restart replaces: the manager's future of the kernel being ready, made anew
        for each start (its provisioner is kept across restarts). A gateway's manager has none:
        its restarts are the gateway's."""
        return getattr(self.manager, "ready", None)

    async def evaluate(self, expression: str, timeout_s: float = 10.0) -> str:
        """The text of `expression` evaluated in the kernel as a user expression: silent, so
        nothing is printed, kept in the history or counted, and the person's names stay as
        they were. RuntimeError with the kernel's error when it raised."""
        if self._reopen:
            await self._revived()
        msg_id = self.client.execute(
            "", silent=True, store_history=False, user_expressions={"value": expression}
        )
        async with contextlib.aclosing(
            _answers(self.client.get_shell_msg, msg_id, timeout_s)
        ) as replies:
            async for reply in replies:
                value = reply["content"].get("user_expressions", {}).get("value", {})
                if value.get("status") != "ok":
                    raise RuntimeError(f"{value.get('ename', 'error')}: {value.get('evalue', '')}")
                return value["data"].get("text/plain", "")
        raise TimeoutError(f"the kernel did not evaluate the expression within {timeout_s:g} s")

    async def _collect(
        self, running: _Running, timeout_s: float, collector: OutputCollector
    ) -> Execution:
        started = time.perf_counter()
        # A shared kernel's deadline is set once the code starts: waiting in its queue behind
        # the person's cell does not count. The agent's own kernel runs nothing else.
        deadline = None if self.shared else started + timeout_s
        status: ExecutionStatus = "ok"
        note = ""
        restarts = self.restarts
        while True:
            if deadline is not None and deadline - time.perf_counter() <= 0:
                status, note = "timeout", await self._interrupt(running, collector, timeout_s)
                break
            wait = LIVENESS_POLL_S
            if deadline is not None:
                wait = min(wait, deadline - time.perf_counter())
            try:
                msg = await self.client.get_iopub_msg(timeout=wait)
            except Empty:
                if not await self.manager.is_alive() or self._replaced():
                    status, note = "died", await self._after_death()
                    break
                continue
            if msg["parent_header"].get("msg_id") != running.msg_id:
                continue
            if _has_started(msg) and not running.started:
                running.started = True
                if deadline is None:
                    deadline = time.perf_counter() + timeout_s
            if _is_status(msg, "busy"):
                continue
            if _is_status(msg, "idle"):
                running.ended = True
                await self._reply(running.msg_id)
                if self._replaced():  # interrupted by the restart, which is under way
                    status, note = "died", await self._after_death()
                break
            else:
                collector.add(msg)
        outputs = collector.outputs  # each read joins the streams' kept text: once
        if status == "ok" and any(o.output_type == "error" for o in outputs):
            status = "error"
        return Execution(
            status,
            outputs,
            collector.execution_count,
            note,
            self.restarts > restarts or status == "died",
            time.perf_counter() - started,
        )

    def _replaced(self) -> bool:
        """A shared kernel restarted (or shut down) by the person while code ran: its manager
        interrupts it first, then shuts it down, then starts a new one."""
        if not self.shared:
            return False
        going = getattr(self.manager, "shutting_down", False)
        return going or self._current_incarnation() is not self._incarnation

    async def _reply(self, msg_id: str) -> None:
        """Takes the execute reply off the shell channel, so replies never pile up there."""
        while True:
            try:
                reply = await self.client.get_shell_msg(timeout=self.interrupt_grace_s)
            except Empty:
                return
            if reply["parent_header"].get("msg_id") == msg_id:
                return

    async def _interrupt(
        self, running: _Running, collector: OutputCollector, timeout_s: float
    ) -> str:
        msg_id = running.msg_id
        await self.manager.interrupt_kernel()
        async with contextlib.aclosing(
            _answers(self.client.get_iopub_msg, msg_id, self.interrupt_grace_s)
        ) as answers:
            async for msg in answers:
                if _is_idle(msg):
                    running.ended = True
                    await self._reply(msg_id)
                    return f"execution exceeded {timeout_s:g} s and was interrupted; state is kept"
                collector.add(msg)
        if self.shared:
            raise KernelUnresponsive(
                f"an execution exceeded {timeout_s:g} s and the notebook's kernel did not answer "
                "the interrupt; it is the person's kernel, so it was not restarted: restart it "
                "from the notebook (its variables go)"
            )
        await self.restart()
        return (
            f"execution exceeded {timeout_s:g} s and the kernel did not answer the interrupt: "
            "it was restarted, so all variables and imports are gone"
        )

    async def _after_death(self) -> str:
        reason = await self.exit_reason()
        if self.shared:  # the server restarts the notebook's kernel; new channels for it then
            self.client.stop_channels()
            self._reopen = True
            if self._replaced():
                return f"the kernel was restarted while your code ran: {STATE_GONE}"
            return f"the kernel died ({reason}): {STATE_GONE}"
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
        """Ends the kernel; a shared one keeps running for its notebook, only the agent's
        channels close."""
        self.client.stop_channels()
        if not self.shared:
            await self.manager.shutdown_kernel(now=True)


async def _answers(
    receive: Callable[..., Awaitable[dict]], msg_id: str, wait_s: float
) -> AsyncIterator[dict]:
    """The messages a channel (`receive`: a client's get_shell_msg or get_iopub_msg) brings
    for the request `msg_id`, until `wait_s` has passed; others are passed over."""
    deadline = time.perf_counter() + wait_s
    while (remaining := deadline - time.perf_counter()) > 0:
        try:
            msg = await receive(timeout=remaining)
        except Empty:
            return
        if msg["parent_header"].get("msg_id") == msg_id:
            yield msg


@dataclass
class _Running:
    """One execution request, as far as the kernel got with it."""

    msg_id: str
    started: bool = False
    ended: bool = False


def _is_status(msg: dict, state: str) -> bool:
    return msg["header"]["msg_type"] == "status" and msg["content"]["execution_state"] == state


def _is_idle(msg: dict) -> bool:
    return _is_status(msg, "idle")


def _has_started(msg: dict) -> bool:
    """The request's code runs: its execute_input, or anything it put out. A kernel may say
    it is busy with a request while that request still waits in its queue."""
    return msg["header"]["msg_type"] != "status"
