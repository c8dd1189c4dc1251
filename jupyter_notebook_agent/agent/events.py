"""The run's event log: every event numbered from 0 without gaps, listeners told in order.

Event types: run_started, run_continued (an interrupted run goes on), step, message_delta (the
agent's prose), model_turn (a whole turn with its timing and tokens), tool_call, tool_result,
cell_proposed, cell_source_delta, cell_edited, cell_running (a cell begins to run, or waits to),
cell_outputs (a running cell's so far, then its last), cell_accepted, cell_rejected,
cell_restored (a rejection undone), cell_regenerating, error, run_finished.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

Event = dict[str, Any]
Listener = Callable[[Event], None]


def is_snapshot(event: Event) -> bool:
    """A running cell's outputs so far: its last ones follow, and say it all."""
    return event["type"] == "cell_outputs" and event.get("status") == "running"


class EventLog:
    def __init__(self, earlier: list[Event] | None = None) -> None:
        self.events: list[Event] = list(earlier or [])
        """Every event, from 0: `earlier` are those of a run taken up again."""
        self._listeners: list[Listener] = []
        self.persist: Callable[[], Awaitable[None]] | None = None
        """Where the log is stored: returns once every event so far is durable."""

    def emit(self, kind: str, **fields: Any) -> Event:
        event = {"seq": len(self.events), "type": kind, **fields}
        self.events.append(event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("an event listener failed on %s; the run goes on", kind)
        return event

    async def persisted(self) -> None:
        """Returns once every event so far is durable, where the log is stored."""
        if self.persist is not None:
            await self.persist()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Calls `listener` with each new event; returns the call that stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)
