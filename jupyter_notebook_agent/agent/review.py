"""The person's say over the cells a run proposes: accept, reject, regenerate.

Verdicts arrive at any time, from outside the loop. A verdict on a cell the agent is waiting on
(`ask` mode) answers that wait; any other verdict is kept as a note the model reads before its
next turn, so that the history stays append-only.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["accept", "reject", "regenerate"]


@dataclass
class Decision:
    verdict: Verdict
    instruction: str = ""


class Review:
    def __init__(self) -> None:
        self.notes: list[str] = []
        """Said to the model before its next turn."""
        self.to_run: list[str] = []
        """Cells accepted that no call will run (restored ones), run before the next turn."""
        self.asks_turn = False
        """The person asked for the model's work (a rewrite, a restored cell to run) and the
        model has not heard of it yet: a run whose loop has ended goes on for it."""
        self._waiting: dict[str, asyncio.Future[Decision]] = {}

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
