"""The run's side of the kernel: it is started when first needed, runs the cells and the code
the model asks for, shows a slow cell's outputs as they come, and reports what came back in the
form the model reads."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from nbformat import NotebookNode

from ..kernels.base import Execution, KernelSession, KernelUnresponsive
from ..notebook.outputs import OutputCollector, OutputLimits, digest
from .cells import RunCells
from .events import CellOutputs, CellRunning, ErrorReported, EventLog, KernelWaiting
from .outcome import RunEnded, RunOutcome

#: A running cell's outputs are shown at most this often, and only once it runs this long.
OUTPUT_STREAM_INTERVAL_S = 0.5
#: A snapshot of that many bytes waits a second for the next.
OUTPUT_STREAM_BYTES_PER_S = 1_000_000
#: Bytes of snapshots one cell run sends at most; its final outputs always come.
OUTPUT_STREAM_BUDGET_BYTES = 10_000_000
#: Bytes of snapshots a whole run sends at most.
OUTPUT_STREAM_RUN_BUDGET_BYTES = 50_000_000

#: Starts the run's kernel when it first needs one.
KernelStarter = Callable[[], Awaitable[KernelSession]]


class CellRunner:
    """`kernel` is a started session, or a coroutine function that starts one when the run
    first needs it; a failure to get one ends the run (RunEnded)."""

    def __init__(
        self,
        kernel: KernelSession | KernelStarter,
        cells: RunCells,
        events: EventLog,
        timeout_s: float,
        limits: OutputLimits,
        digest_chars: Callable[[], int],
    ) -> None:
        self.kernel = kernel if isinstance(kernel, KernelSession) else None
        self._start_kernel = None if isinstance(kernel, KernelSession) else kernel
        self.cells, self.events = cells, events
        self.timeout_s, self.limits = timeout_s, limits
        self.digest_chars = digest_chars
        """The room one output gets in the model's view now (see ContextBudget)."""
        self._snapshot_bytes_left = OUTPUT_STREAM_RUN_BUDGET_BYTES
        """What the run may still send of a running cell's outputs (see _stream_outputs)."""

    async def session(self) -> KernelSession:
        if self.kernel is None:
            assert self._start_kernel is not None
            try:
                self.kernel = await self._start_kernel()
            except Exception as error:
                raise RunEnded(
                    RunOutcome(False, "kernel_error", f"no kernel to run code in: {error}")
                ) from error
        return self.kernel

    async def close(self) -> None:
        """Shuts down the kernel the run started; a later step starts another."""
        if self.kernel and self._start_kernel:
            kernel, self.kernel = self.kernel, None
            await kernel.shutdown()

    async def run_cell(self, cell: NotebookNode) -> dict[str, Any]:
        """Runs one of the run's cells: it shows as running, its outputs come as they are
        printed, and what it printed stays when it is stopped or its kernel dies."""
        # No kernel to be had (none may run the agent's code) ends the run before the cell
        # is said to run: it never did.
        await self.session()
        collector = OutputCollector(self.limits)
        if self.cells.records[cell.id].state != "rejected":
            self.events.emit(CellRunning(cell.id))
        streaming = asyncio.ensure_future(self._stream_outputs(cell, collector))
        try:
            execution = await self.execute(cell.source, collector)
        except (asyncio.CancelledError, RunEnded) as ended:
            streaming.cancel()
            status = "stopped" if isinstance(ended, asyncio.CancelledError) else "died"
            self.cells.show_outputs(cell, status, collector.outputs, collector.execution_count)
            raise
        finally:
            streaming.cancel()
        self.cells.show_outputs(
            cell, execution.status, execution.outputs, execution.execution_count
        )
        return self.report(execution)

    async def _stream_outputs(self, cell: NotebookNode, collector: OutputCollector) -> None:
        """Shows what a slow cell has printed so far, as the person's own cells do: a snapshot
        of its outputs now and then while it runs. Each is the whole of them, bounded by the
        output limits; a large one waits longer for the next, and past a budget (the cell's,
        the run's) the cell's last outputs come only when it ends, so a flood does not fill the
        run's log, which keeps every snapshot."""
        wait, sent, seen = OUTPUT_STREAM_INTERVAL_S, 0, collector.changes
        while sent < OUTPUT_STREAM_BUDGET_BYTES and self._snapshot_bytes_left > 0:
            await asyncio.sleep(wait)
            if collector.changes == seen or self.cells.records[cell.id].state == "rejected":
                continue
            seen, size = collector.changes, collector.size
            # Copies: the collector goes on changing its own.
            outputs = [NotebookNode(output) for output in collector.outputs]
            self.events.emit(CellOutputs(cell.id, "running", outputs, collector.execution_count))
            sent += size
            self._snapshot_bytes_left -= size
            wait = max(OUTPUT_STREAM_INTERVAL_S, size / OUTPUT_STREAM_BYTES_PER_S)

    async def execute(self, code: str, collector: OutputCollector | None = None) -> Execution:
        kernel = await self.session()
        try:
            return await kernel.execute(
                code,
                self.timeout_s,
                collector or OutputCollector(self.limits),
                on_wait=lambda: self.events.emit(KernelWaiting()),
            )
        except KernelUnresponsive as error:
            raise RunEnded(RunOutcome(False, "kernel_error", str(error))) from error

    def report(self, execution: Execution) -> dict[str, Any]:
        """What the model reads of an execution: its status and a digest of its outputs."""
        if execution.restarted:
            self.events.emit(ErrorReported(execution.note))
        report: dict[str, Any] = {"status": execution.status}
        if execution.execution_count is not None:
            report["execution_count"] = execution.execution_count
        report["outputs"] = digest(execution.outputs, self.digest_chars())
        if execution.note:
            report["note"] = execution.note
        return report
