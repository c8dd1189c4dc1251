"""The agent: the loop, its tools, its prompt, and the run's event log. No server, no Docker."""

from .events import Event, EventLog
from .loop import Agent, AgentConfig, RunOutcome

__all__ = ["Agent", "AgentConfig", "Event", "EventLog", "RunOutcome"]
