"""The person's say over the cells a run proposes: accept, reject, regenerate.

Verdicts arrive at any time, from outside the loop. A verdict on a cell the agent is waiting on
(`ask` mode) answers that wait; any other verdict is kept as a note the model reads before its
next turn, so that the history stays append-only.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

Verdict = Literal["accept", "reject", "regenerate"]
T = TypeVar("T")


@dataclass
class Decision:
    verdict: Verdict
    instruction: str = ""


class Waits(Generic[T]):
    """Waits for the person's say, by key (a cell's id, a call's), answered from outside the
    loop: a decision with nothing waiting for it is refused, not kept."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[T]] = {}

    async def wait(self, key: str) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        try:
            return await future
        finally:
            del self._waiting[key]

    def decide(self, key: str, decision: T) -> bool:
        """Hands the decision to the wait on `key`; False when nothing waits on it."""
        future = self._waiting.get(key)
        if future is None or future.done():
            return False
        future.set_result(decision)
        return True


class Review:
    def __init__(self) -> None:
        self.notes: list[str] = []
        """Said to the model before its next turn."""
        self.to_run: list[str] = []
        """Cells accepted that no call will run (restored ones), run before the next turn."""
        self.asks_turn = False
        """The person asked for the model's work (a rewrite, a restored cell to run) and the
        model has not heard of it yet: a run whose loop has ended goes on for it."""
        self.verdicts = Waits[Decision]()
        """The cells the agent waits on (`ask` mode), by id, until the person decides."""
