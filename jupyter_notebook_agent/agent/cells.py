"""The cells a run writes in its notebook, each with its record. Every change to one of them goes
through here, and is said in the run's event log as it is made: the log and the notebook agree.

A cell's state (proposed, accepted) is kept in one place, its metadata, which the notebook file
and the frontend read too; a rejected cell is out of the notebook, kept aside for an undo.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal

from nbformat import NotebookNode

from ..notebook.document import METADATA_KEY, CellState, NotebookDocument
from ..notebook.placement import placement
from .events import (
    CellAccepted,
    CellEdited,
    CellMoved,
    CellOutputs,
    CellProposed,
    CellRejected,
    CellRestored,
    EventLog,
    KernelRestartProposed,
)


class ReviewError(Exception):
    """A verdict that cannot apply: an unknown cell, or one that is gone."""


class CellGone(ReviewError):
    """The cell was not written by this run, or was rejected."""


@dataclass
class CellRecord:
    """What the run knows of one of its cells beyond the notebook itself."""

    cell: NotebookNode = field(repr=False)
    versions: list[str] = field(default_factory=list)
    """Earlier sources, oldest first: kept when a cell is regenerated or edited."""
    executed: bool = False
    removed: bool = False
    """Rejected: out of the notebook, kept as it was, for the person may undo the rejection."""
    followed: str | None = None
    """While removed, the cell it followed (None: it was the first)..."""
    position: int = 0
    """... and its index, where it comes back (see placement)."""
    restored: bool = False
    """Brought back after a rejection: no tool call of the model will run it any more."""

    @property
    def state(self) -> Literal["proposed", "accepted", "rejected"]:
        if self.removed:
            return "rejected"
        state = self.cell.metadata[METADATA_KEY].get("state")
        return "accepted" if state == "accepted" else "proposed"


class RunCells:
    def __init__(
        self, notebook: NotebookDocument, events: EventLog, provenance: dict[str, Any]
    ) -> None:
        self.notebook = notebook
        self.events = events
        self.provenance = provenance
        """What each new cell's metadata says of it: the run, the model, its first state."""
        self.records: dict[str, CellRecord] = {}

    # Lookups.

    def record(self, cell_id: str) -> CellRecord:
        """The record of a cell of this run still in the notebook; CellGone for any other."""
        record = self.records.get(cell_id)
        if record is None or record.state == "rejected":
            raise CellGone(f"cell {cell_id!r} is not a cell of this run that is still there")
        return record

    def rejected(self, cell_id: str) -> CellRecord:
        """The record of a cell the person rejected, which they may bring back."""
        record = self.records.get(cell_id)
        if record is None or record.state != "rejected":
            raise CellGone(f"cell {cell_id!r} is not a rejected cell of this run")
        return record

    def is_live(self, cell_id: str) -> bool:
        """A cell of this run that is still in the notebook."""
        record = self.records.get(cell_id)
        return record is not None and record.state != "rejected" and self.notebook.has(cell_id)

    def live(self) -> list[str]:
        return [cell_id for cell_id in self.records if self.is_live(cell_id)]

    def predecessor(self, index: int) -> str | None:
        """The id of the cell before `index`: where a notebook that changed meanwhile puts it."""
        return self.notebook.nb.cells[index - 1].get("id") if index > 0 else None

    # Changes, each said in the log.

    def propose(
        self,
        cell_type: str,
        source: str,
        after_cell_id: str | None,
        call_id: str | None,
        streaming: bool = False,
    ) -> NotebookNode:
        """A new cell, written by the model's call `call_id`."""
        cell, index = self.notebook.add(
            cell_type,  # type: ignore[arg-type]
            source,
            dict(self.provenance),
            after_cell_id,
        )
        self.records[cell.id] = CellRecord(cell)
        self.events.emit(
            CellProposed(
                cell.id,
                cell_type,
                source,
                index,
                self.predecessor(index),
                copy.deepcopy(dict(cell.metadata)),  # a log entry: later changes stay out
                streaming,
                call_id,
            )
        )
        return cell

    def move(self, cell: NotebookNode, after_cell_id: str | None) -> None:
        self.notebook.remove(cell.id)
        index = len(self.notebook.nb.cells)
        if after_cell_id is not None:
            index = self.notebook.index(after_cell_id) + 1
        self.notebook.nb.cells.insert(index, cell)
        after = self.predecessor(index)
        self.events.emit(CellMoved(cell.id, index, after))

    def set_state(self, cell_id: str, state: CellState) -> None:
        self.records[cell_id].cell.metadata[METADATA_KEY]["state"] = state

    def accept(self, cell_id: str) -> None:
        self.record(cell_id)
        self.set_state(cell_id, "accepted")
        self.events.emit(CellAccepted(cell_id))

    def reject(self, cell_id: str, keep_state: bool) -> bool:
        """Removes the cell, kept aside for an undo; True when what it did remains in the
        kernel (it ran), in which case a restart is proposed unless `keep_state`."""
        record = self.record(cell_id)
        index = self.notebook.index(cell_id)
        self.notebook.remove(cell_id)
        record.removed, record.followed, record.position = True, self.predecessor(index), index
        remain = record.executed
        self.events.emit(CellRejected(cell_id, keep_state=keep_state, effects_remain=remain))
        if remain and not keep_state:
            self.events.emit(KernelRestartProposed(f"cell {cell_id} was rejected"))
        return remain

    def restore(self, cell_id: str) -> None:
        """Undoes a rejection: the cell comes back where it was, as it was, proposed again."""
        record = self.rejected(cell_id)
        cell = record.cell
        ids = [other.get("id") for other in self.notebook.nb.cells]
        index = placement(ids, record.followed, record.position)
        self.notebook.nb.cells.insert(index, cell)
        record.removed, record.restored = False, True
        self.set_state(cell_id, "proposed")
        self.events.emit(
            CellRestored(
                cell_id,
                cell.cell_type,
                cell.source,
                index,
                self.predecessor(index),
                copy.deepcopy(dict(cell.metadata)),
                cell.get("outputs", []),
                cell.get("execution_count"),
            )
        )

    def edit(
        self, cell_id: str, source: str, version: int | None = None, state: str | None = None
    ) -> None:
        """The cell's source replaced; a rewrite says its `version` and `state`."""
        self.records[cell_id].cell.source = source
        self.events.emit(CellEdited(cell_id, source, version, state))

    def withdraw(self, cell_id: str, reason: str) -> None:
        """A cell shown for a call that turned out unusable goes, as if never written."""
        self.notebook.withdraw(cell_id)
        del self.records[cell_id]
        self.events.emit(CellRejected(cell_id, reason=reason))

    def show_outputs(
        self,
        cell: NotebookNode,
        status: str,
        outputs: list[NotebookNode],
        execution_count: int | None,
    ) -> None:
        record = self.records[cell.id]
        record.executed = True
        cell.outputs, cell.execution_count = outputs, execution_count
        if record.state != "rejected":
            self.events.emit(CellOutputs(cell.id, status, outputs, execution_count))

    def take_up(self, run_id: str, versions: dict[str, list[str]]) -> None:
        """The cells of run `run_id` the notebook still holds, as an earlier server left them."""
        for cell in self.notebook.nb.cells:
            provenance = cell.metadata.get(METADATA_KEY, {})
            if provenance.get("run_id") == run_id and "id" in cell:
                self.records[cell.id] = CellRecord(
                    cell,
                    versions=list(versions.get(cell.id, [])),
                    executed=cell.get("execution_count") is not None,
                )
