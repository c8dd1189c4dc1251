"""The run's event log: every event numbered from 0 without gaps, listeners told in order.

Each kind of event is a class below, so that what an event carries is written down once; the log
keeps them as JSON objects (`seq`, `type` and the fields), as the store, the REST API and the
frontend (`src/model/events.ts`, held to these classes by a test) read them.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from nbformat import NotebookNode

from ..llm.base import ModelTurn
from .outcome import RunOutcome

log = logging.getLogger(__name__)

Event = dict[str, Any]
Listener = Callable[[Event], None]

_SAID_WHEN_SET = {"said_when_set": True}


def said_when_set() -> Any:
    """A field the event carries only when it is set (the frontend reads it as optional)."""
    return dataclasses.field(default=None, metadata=_SAID_WHEN_SET)


class EventBody:
    """What one event says; `kind` is its `type`."""

    kind: ClassVar[str]

    def fields(self) -> dict[str, Any]:
        said = {}
        for name, when_set in _field_names(type(self)):
            value = getattr(self, name)
            if value is not None or not when_set:
                said[name] = value
        return said


@functools.cache
def _field_names(event_type: type[EventBody]) -> tuple[tuple[str, bool], ...]:
    """An event class's fields, and whether each is said only when set: a source streams as
    thousands of events, each of which would look them up again."""
    fields = dataclasses.fields(event_type)  # type: ignore[arg-type]
    return tuple((field.name, bool(field.metadata.get("said_when_set"))) for field in fields)


@dataclass
class RunStarted(EventBody):
    kind = "run_started"
    run_id: str
    task: str
    model: str
    max_steps: int
    execution: Literal["auto", "ask"]
    conversation_id: str
    """The notebook's conversation the run continues."""


@dataclass
class RunContinued(EventBody):
    """An interrupted run goes on (its server had stopped); `step` is the last it took."""

    kind = "run_continued"
    step: int


@dataclass
class StepStarted(EventBody):
    kind = "step"
    step: int
    max_steps: int


@dataclass
class MessageDelta(EventBody):
    """A piece of the agent's prose."""

    kind = "message_delta"
    text: str


@dataclass
class ModelTurnTaken(EventBody):
    """A whole turn of the model, with its timing and tokens."""

    kind = "model_turn"
    step: int
    turn: ModelTurn

    def fields(self) -> dict[str, Any]:
        return {"step": self.step, **dataclasses.asdict(self.turn)}


@dataclass
class ToolCalled(EventBody):
    kind = "tool_call"
    call_id: str
    name: str
    arguments: str


@dataclass
class ToolResult(EventBody):
    kind = "tool_result"
    call_id: str
    name: str
    result: dict[str, Any]
    duration_s: float


@dataclass
class ToolApprovalRequested(EventBody):
    """The model called a tool of an MCP server that needs the person's approval: the call
    waits for their decision (`POST runs/{id}/tool-calls/{call_id}/approve` or `deny`)."""

    kind = "tool_approval_requested"
    call_id: str
    server: str
    """The MCP server's name, as the configuration names it."""
    tool: str
    """The tool's name, as the server names it."""
    arguments: dict[str, Any]
    """The call's arguments, checked against the tool's input schema."""


ApprovalDecision = Literal["approve", "deny", "always", "stopped"]


@dataclass
class ToolApprovalDecided(EventBody):
    """The wait for the person's approval ended: they approved the call, denied it, or
    approved it and every later call of the tool on the notebook (always); or the run stopped
    (stopped)."""

    kind = "tool_approval_decided"
    call_id: str
    decision: ApprovalDecision


@dataclass
class CellEvent(EventBody):
    """Something that happens to one of the run's cells."""

    cell_id: str


@dataclass
class CellPlaced(CellEvent):
    """A cell comes into the notebook at `index`, right after the cell `after_cell_id` (None:
    first), which places it in a notebook that changed meanwhile (see notebook/placement.py)."""

    cell_type: str
    source: str
    index: int
    after_cell_id: str | None
    metadata: dict[str, Any]


@dataclass
class CellProposed(CellPlaced):
    kind = "cell_proposed"
    streaming: bool
    """Its source follows in cell_source_delta events."""
    call_id: str | None
    """The model's tool call that writes it (None: no call of the model's does)."""


@dataclass
class CellSourceDelta(CellEvent):
    """A piece of a cell's source as the model writes it; `reset`: an edit begins, the source
    starts again from nothing."""

    kind = "cell_source_delta"
    text: str
    reset: bool | None = said_when_set()


@dataclass
class CellEdited(CellEvent):
    kind = "cell_edited"
    source: str
    version: int | None = said_when_set()
    state: str | None = said_when_set()


@dataclass
class CellMoved(CellEvent):
    kind = "cell_moved"
    index: int
    after_cell_id: str | None


@dataclass
class CellRunning(CellEvent):
    """The cell begins to run, or waits to."""

    kind = "cell_running"


@dataclass
class CellOutputs(CellEvent):
    """A running cell's outputs so far (`status` running), then its last ones."""

    kind = "cell_outputs"
    status: str
    outputs: list[NotebookNode]
    execution_count: int | None


@dataclass
class CellAccepted(CellEvent):
    kind = "cell_accepted"


@dataclass
class CellRejected(CellEvent):
    """The cell is out of the notebook: rejected by the person (`keep_state`, and whether
    what it did `effects_remain` in the kernel), or withdrawn for a `reason`."""

    kind = "cell_rejected"
    keep_state: bool | None = said_when_set()
    effects_remain: bool | None = said_when_set()
    reason: str | None = said_when_set()


@dataclass
class CellRestored(CellPlaced):
    """A rejection undone: the cell is back, proposed, as it was."""

    kind = "cell_restored"
    outputs: list[NotebookNode]
    execution_count: int | None


@dataclass
class CellRegenerating(CellEvent):
    kind = "cell_regenerating"
    instruction: str
    source: str
    version: int


@dataclass
class KernelWaiting(EventBody):
    """The notebook's kernel is busy with the person's cell: the agent's code waits."""

    kind = "kernel_waiting"
    reason: Literal["busy"] = "busy"


@dataclass
class KernelRestartProposed(EventBody):
    """Only the person may restart their kernel: the agent suggests it, and why."""

    kind = "kernel_restart_proposed"
    reason: str


@dataclass
class ErrorReported(EventBody):
    kind = "error"
    message: str


@dataclass
class RunFinished(EventBody):
    kind = "run_finished"
    success: bool
    reason: str
    summary: str

    @classmethod
    def of(cls, outcome: RunOutcome) -> RunFinished:
        return cls(outcome.success, outcome.reason, outcome.summary)


def _kinds(base: type[EventBody]) -> Iterator[type[EventBody]]:
    for event_type in base.__subclasses__():
        if "kind" in vars(event_type):
            yield event_type
        yield from _kinds(event_type)


EVENT_TYPES: tuple[type[EventBody], ...] = tuple(_kinds(EventBody))
"""Every kind of event, one class each."""


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

    def emit(self, body: EventBody) -> Event:
        event = {"seq": len(self.events), "type": body.kind, **body.fields()}
        self.events.append(event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("an event listener failed on %s; the run goes on", body.kind)
        return event

    async def persisted(self) -> None:
        """Returns once every event so far is durable, where the log is stored."""
        if self.persist is not None:
            await self.persist()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Calls `listener` with each new event; returns the call that stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)
