"""The person's say over the calls of their MCP servers' tools: a tool runs at once where its
server's configuration or the person allowed it; else the call waits for the person to
approve or deny it. Decisions arrive from outside the loop, as verdicts on cells do (review.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..mcp.client import McpTool
from .events import EventLog, ToolApprovalDecided, ToolApprovalRequested
from .review import Waits

Decision = Literal["approve", "deny", "always"]


@dataclass
class ToolPermissions:
    """Which MCP tools run without asking, beyond what the servers' configuration allows: by
    `{server}__{tool}` (the tool's name on its server), or `{server}__*` for all of a server's.
    """

    allowed: set[str] = field(default_factory=set)
    keep: Callable[[str], None] | None = None
    """Keeps an "always" where the notebook's other agent state lives, for its later runs."""
    no_one_to_ask: str | None = None
    """Why no one can approve a call (a headless run): a tool not allowed is denied, and the
    model told this; None: the person is asked."""

    def allow(self, tool: McpTool) -> bool:
        return bool({tool.key, tool.name, f"{tool.server.name}__*"} & self.allowed)

    def always(self, tool: McpTool) -> None:
        self.allowed.add(tool.key)
        if self.keep is not None:
            self.keep(tool.key)


class ToolApprovals:
    """The run's calls of MCP tools that wait for the person, by call id."""

    def __init__(self, events: EventLog, permissions: ToolPermissions) -> None:
        self.events, self.permissions = events, permissions
        self._waits = Waits[Decision]()
        self._asked: dict[str, McpTool] = {}
        """The tool of each call that waits, by call id."""

    async def refusal(self, call_id: str, tool: McpTool, arguments: dict[str, Any]) -> str | None:
        """None once the call may run: at once where it is allowed, else when the person has
        approved it (asked with an event); else why it may not, for the model. A run stopped
        while it waits ends the wait."""
        if tool.policy == "allow" or self.permissions.allow(tool):
            return None
        denied = f"the person did not allow {tool.name}"
        if self.permissions.no_one_to_ask is not None:
            return f"{denied} ({self.permissions.no_one_to_ask})"
        self.events.emit(ToolApprovalRequested(call_id, tool.server.name, tool.tool, arguments))
        self._asked[call_id] = tool
        try:
            decision = await self._waits.wait(call_id)
        except asyncio.CancelledError:
            self.events.emit(ToolApprovalDecided(call_id, "stopped"))
            raise
        finally:
            del self._asked[call_id]
        self.events.emit(ToolApprovalDecided(call_id, decision))
        return denied if decision == "deny" else None

    def decide(self, call_id: str, decision: Decision) -> bool:
        """Hands the decision to the call waiting for it; False when none waits. An "always"
        is kept at once: whoever answered may list the tools allowed always right after (the
        panel does), and a stop before the call goes on must not lose it."""
        tool = self._asked.get(call_id)
        if not self._waits.decide(call_id, decision):
            return False
        if decision == "always" and tool is not None:
            self.permissions.always(tool)
        return True
