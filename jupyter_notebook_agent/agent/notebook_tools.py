"""What the model's tools do, on the run's cells and kernel. Each returns the JSON object the
model reads; a cell tool names its cell_id. `complete_task` ends the run by raising."""

from __future__ import annotations

from typing import Any, Literal

from nbformat import NotebookNode

from .cells import RunCells
from .events import KernelRestartProposed
from .execution import CellRunner
from .outcome import RunOutcome
from .preview import CellPreview, StreamingCall, too_long
from .review import Review
from .variables import kernel_variables

NOT_REPEATED = frozenset({"add_cell", "edit_cell", "execute_code", "inspect_variable"})
"""Calls that would only do again what they did: the same cell, the same code, the same look."""


class TaskCompleted(Exception):
    """The model called complete_task: the run ends once the call's result is handed back."""

    def __init__(self, outcome: RunOutcome) -> None:
        super().__init__(outcome.summary)
        self.outcome = outcome


class NotebookTools:
    def __init__(
        self,
        cells: RunCells,
        preview: CellPreview,
        runner: CellRunner,
        review: Review,
        *,
        execution: Literal["auto", "ask"],
        max_cell_chars: int,
        inspect_chars: int,
    ) -> None:
        self.cells, self.preview, self.runner, self.review = cells, preview, runner, review
        self.notebook = cells.notebook
        self.execution = execution
        """auto: a code cell runs as soon as it is written; ask: once the person accepts it."""
        self.max_cell_chars = max_cell_chars
        self.inspect_chars = inspect_chars
        """Characters of what inspect_variable tells at most."""
        self._last_call: tuple[str, dict[str, Any]] | None = None
        self._repeat_of: tuple[str, dict[str, Any]] | None = None
        """The call a turn's first call would only repeat (the last of the turn before)."""

    async def call(
        self, name: str, arguments: dict[str, Any], call_id: str, streamed: StreamingCall | None
    ) -> dict[str, Any]:
        """Carries out a call whose arguments fit its schema; `streamed`: what the call showed
        while the answer streamed, which a cell tool takes over. A turn that begins with the
        call the turn before ended with is not carried out again (nothing changed in between):
        a small model stuck in a loop is told to go on."""
        this = (name, arguments)
        repeated = name in NOT_REPEATED and this == self._repeat_of
        self._repeat_of, self._last_call = None, this
        if repeated:
            if streamed:
                self.preview.withdraw(streamed, "the same call as the one before")
            return {
                "status": "not_run",
                "note": "You made this same call just before, and its result is above. Take "
                "the next step, or call complete_task if the task is done.",
            }
        if name == "add_cell":
            return await self.add_cell(call_id=call_id, streamed=streamed, **arguments)
        if name == "edit_cell":
            return await self.edit_cell(streamed=streamed, **arguments)
        tool = getattr(self, name)
        return await tool(**arguments)

    def begin_turn(self) -> None:
        """The model's next turn begins: its first call may repeat the last one."""
        self._repeat_of, self._last_call = self._last_call, None

    def forget_calls(self) -> None:
        """The person acted, or the run goes on after it ended: a call made again now may find
        things changed, and is carried out."""
        self._repeat_of = self._last_call = None

    async def add_cell(
        self,
        cell_type: str,
        source: str,
        call_id: str,
        after_cell_id: str | None = None,
        streamed: StreamingCall | None = None,
    ) -> dict[str, Any]:
        if refused := self._oversized(source, streamed):
            return refused
        if after_cell_id is not None and not self.notebook.has(after_cell_id):
            if streamed:
                self.preview.withdraw(streamed, f"no cell has id {after_cell_id!r}")
            return self._missing(
                after_cell_id,
                "Leave after_cell_id out to add the cell at the end, or give one of the "
                "notebook's cell ids.",
            )
        if streamed is None or streamed.cell_id is None:
            cell = self.cells.propose(cell_type, source, after_cell_id, call_id)
        else:
            if not self.cells.is_live(streamed.cell_id):
                return rejected(streamed.cell_id)
            cell = self.notebook.cell(streamed.cell_id)
            if cell.source != source:
                self.cells.edit(cell.id, source)
            if after_cell_id != streamed.after_cell_id:
                self.cells.move(cell, after_cell_id)
        if cell_type != "code":
            return {"cell_id": cell.id, "status": "ok"}
        return await self.settle(cell)

    async def edit_cell(
        self, cell_id: str, source: str, streamed: StreamingCall | None = None
    ) -> dict[str, Any]:
        if not self.notebook.has(cell_id):
            return self._missing(
                cell_id,
                "Give the cell_id that add_cell's result named for the cell you want to change, "
                "or call add_cell to write a new cell.",
            )
        if refused := self._oversized(source, streamed):
            return refused
        if not self.cells.is_live(cell_id):
            return {
                "status": "error",
                "error": f"cell {cell_id!r} was not written by you in this run: add a new cell "
                "instead of changing the person's",
            }
        cell = self.notebook.cell(cell_id)
        record = self.cells.records[cell_id]
        previous = streamed.original if streamed and streamed.cell_id == cell_id else cell.source
        if previous is not None and previous != source:
            record.versions.append(previous)
        if self.execution == "ask":
            self.cells.set_state(cell_id, "proposed")
        self.cells.edit(cell_id, source, version=len(record.versions), state=record.state)
        if cell.cell_type != "code":
            return {"cell_id": cell_id, "status": "ok"}
        return await self.settle(cell)

    async def execute_code(self, code: str) -> dict[str, Any]:
        return self.runner.report(await self.runner.execute(code))

    async def inspect_variable(self, name: str) -> dict[str, Any]:
        kernel = await self.runner.session()
        try:
            details = await kernel_variables(kernel, name, max_chars=self.inspect_chars)
        except (RuntimeError, TimeoutError) as error:
            return {"status": "error", "error": f"the variable could not be inspected: {error}"}
        return {"status": "ok", "details": details}

    async def restart_kernel(self) -> dict[str, Any]:
        kernel = await self.runner.session()
        if kernel.shared:
            self.cells.events.emit(KernelRestartProposed("the agent asked to restart"))
            return {
                "status": "not_done",
                "note": "the kernel is the person's, and only they may restart it: they were "
                "offered a restart. Go on with the kernel as it is (define again what you need).",
            }
        await kernel.restart()
        return {"status": "ok", "note": "the kernel restarted: all variables and imports are gone"}

    async def complete_task(self, success: bool, summary: str) -> dict[str, Any]:
        raise TaskCompleted(RunOutcome(success, "completed" if success else "gave_up", summary))

    async def settle(self, cell: NotebookNode) -> dict[str, Any]:
        """Runs a code cell: at once, or in `ask` mode once the person has said yes."""
        if self.execution == "ask" and self.cells.records[cell.id].state == "proposed":
            decision = await self.review.verdicts.wait(cell.id)
            if decision.verdict == "reject":
                return rejected(cell.id)
            if decision.verdict == "regenerate":
                wish = f": {decision.instruction}" if decision.instruction else ""
                return {
                    "cell_id": cell.id,
                    "status": "not_run",
                    "note": f"The person asked for this cell to be rewritten{wish}. "
                    "Call edit_cell on it.",
                }
        return {"cell_id": cell.id, **await self.runner.run_cell(cell)}

    def _oversized(self, source: str, streamed: StreamingCall | None) -> dict[str, Any] | None:
        """The refusal of a cell source longer than a cell may have, its streamed cell withdrawn;
        None for one that fits."""
        if len(source) <= self.max_cell_chars:
            return None
        if streamed:
            self.preview.withdraw(streamed, "the cell's source is too long")
        return {"status": "error", "error": too_long(len(source), self.max_cell_chars)}

    def _missing(self, cell_id: str, advice: str) -> dict[str, Any]:
        """What the model reads about a cell id the notebook lacks: what to do instead, and the
        ids it has (a small model wrote the word "string" for one)."""
        ids = ", ".join(cell.get("id", "?") for cell in self.notebook.nb.cells) or "none yet"
        return {
            "status": "error",
            "error": f"no cell has id {cell_id!r}. {advice} The notebook's cell ids: {ids}.",
        }


def rejected(cell_id: str) -> dict[str, Any]:
    return {
        "cell_id": cell_id,
        "status": "rejected",
        "note": "The person rejected this cell: it was removed and did not run.",
    }
