"""One way to put a run together, whoever starts it (the command line, the server): a RunSpec
says what the run is made of, `assemble` builds its agent, and its RunRecord is what the
notebook's metadata says of it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..kernels.base import KernelSession
from ..llm.base import Model
from ..notebook.document import NotebookDocument
from .approval import ToolPermissions
from .conversation import Conversation
from .events import Event, EventLog, Listener
from .execution import KernelStarter
from .loop import Agent, AgentConfig

RunState = Literal["running", "finished", "interrupted"]


@dataclass
class RunSpec:
    task: str
    model: Model
    kernel: KernelSession | KernelStarter
    """A started kernel, or what starts one when the run first needs it."""
    notebook: NotebookDocument
    notebook_path: str
    """How the model and the record name the notebook."""
    config: AgentConfig = field(default_factory=AgentConfig)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    conversation: Conversation | None = None
    """The notebook's conversation the run continues; None: a new one."""
    earlier: dict[str, Any] | None = None
    """The run as an earlier server's store kept it (`GET runs/{id}`), taken up here."""
    earlier_events: Sequence[Event] = ()
    permissions: ToolPermissions = field(default_factory=ToolPermissions)
    """Which MCP tools run without asking the person, and whether anyone can be asked."""
    record: RunRecord = field(init=False)
    """What the notebook's metadata says of the run."""

    def __post_init__(self) -> None:
        self.record = RunRecord(self.run_id, self.task, self.model.name, self.earlier)


class RunRecord:
    """The run as the notebook's metadata lists it: what was asked of which model, and how it
    stands or ended; kept up to date from the run's events."""

    def __init__(self, run_id: str, task: str, model: str, earlier: dict[str, Any] | None):
        kept = (earlier or {}).get("outcome") or {}
        self.run_id, self.task, self.model = run_id, task, model
        self.state: RunState = earlier["state"] if earlier else "running"
        self.success: bool | None = kept.get("success")
        self.reason: str | None = kept.get("reason")

    def __call__(self, event: Event) -> None:
        if event["type"] in ("run_started", "run_continued", "step"):
            self.state, self.success, self.reason = "running", None, None
        elif event["type"] == "run_finished":
            self.success, self.reason = event["success"], event["reason"]
            self.state = "interrupted" if event["reason"] == "interrupted" else "finished"

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "task": self.task,
            "model": self.model,
            "state": self.state,
            "success": self.success,
            "reason": self.reason,
        }


def assemble(spec: RunSpec, listeners: Sequence[Listener] = ()) -> Agent:
    """The run's agent; its events are told to its record, then to each listener (the writers
    of the notebook, the transcript, the observers), in order."""
    events = EventLog(list(spec.earlier_events))
    for listener in [spec.record, *listeners]:
        events.subscribe(listener)
    agent = Agent(
        spec.model,
        spec.kernel,
        spec.notebook,
        notebook_path=spec.notebook_path,
        config=spec.config,
        events=events,
        run_id=spec.run_id,
        conversation=spec.conversation,
        permissions=spec.permissions,
    )
    if spec.earlier:
        agent.take_up(spec.earlier)
    return agent
