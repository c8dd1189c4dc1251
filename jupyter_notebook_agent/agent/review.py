"""The person's say over the cells a run proposes: accept, reject, regenerate.

Verdicts arrive at any time, from outside the loop. A verdict on a cell the agent is waiting on
(`ask` mode) answers that wait; any other verdict is kept as a note the model reads before its
next turn, so that the history stays append-only.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from nbformat import NotebookNode

Verdict = Literal["accept", "reject", "regenerate"]


class ReviewError(Exception):
    """A verdict that cannot apply: an unknown cell, or one that is gone."""


class CellGone(ReviewError):
    """The cell was not written by this run, or was rejected."""


@dataclass
class Decision:
    verdict: Verdict
    instruction: str = ""


@dataclass
class CellRecord:
    """What the run knows of one of its cells beyond the notebook itself."""

    state: Literal["proposed", "accepted", "rejected"] = "proposed"
    versions: list[str] = field(default_factory=list)
    """Earlier sources, oldest first: kept when a cell is regenerated or edited."""
    executed: bool = False
    removed: tuple[NotebookNode, str | None] | None = field(default=None, repr=False)
    """A rejected cell as it was, and the cell it followed: the person may undo the rejection."""
    restored: bool = False
    """Brought back after a rejection: no tool call of the model will run it any more."""


class Review:
    def __init__(self) -> None:
        self.cells: dict[str, CellRecord] = {}
        self.notes: list[str] = []
        """Said to the model before its next turn."""
        self.to_run: list[tuple[str, bool]] = []
        """Cells accepted that no call will run (restored ones), run before the next turn;
        with whether the run had ended (the model then finishes once it has read them)."""
        self._waiting: dict[str, asyncio.Future[Decision]] = {}

    def rejected(self, cell_id: str) -> CellRecord:
        """The record of a cell the person rejected, which they may bring back."""
        record = self.cells.get(cell_id)
        if record is None or record.state != "rejected" or record.removed is None:
            raise CellGone(f"cell {cell_id!r} is not a rejected cell of this run")
        return record

    def record(self, cell_id: str) -> CellRecord:
        record = self.cells.get(cell_id)
        if record is None or record.state == "rejected":
            raise CellGone(f"cell {cell_id!r} is not a cell of this run that is still there")
        return record

    async def wait(self, cell_id: str) -> Decision:
        """Until the person decides on the cell (`ask` mode)."""
        future = asyncio.get_running_loop().create_future()
        self._waiting[cell_id] = future
        try:
            return await future
        finally:
            del self._waiting[cell_id]

    def decide(self, cell_id: str, decision: Decision) -> bool:
        """Hands the decision to a wait on that cell; False when nothing waits on it."""
        future = self._waiting.get(cell_id)
        if future is None or future.done():
            return False
        future.set_result(decision)
        return True
