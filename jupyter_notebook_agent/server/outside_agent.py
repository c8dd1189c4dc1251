"""An outside agent's session in a notebook, as a run of its own: the agent is the run's model.

Each tool call the outside agent makes over MCP is a turn of that model, and the run carries it
out as it would its own model's call: cells go into the open notebook as proposals, code runs in
the notebook's sandboxed kernel, the person reviews and can stop it. The call's result, as the
run hands it back to the model, is the answer to the MCP call.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ..llm.base import ModelTurn, StreamItem, ToolCall

MODEL_PREFIX = "mcp:"
"""An outside agent's run names its model `mcp:CLIENT`."""


class SessionEnded(Exception):
    """The run the outside agent worked in has ended: stopped by the person, or over."""


@dataclass
class _Call:
    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=lambda: f"mcp_{uuid.uuid4().hex[:12]}")
    result: asyncio.Future[dict[str, Any]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class OutsideAgent:
    """The model of a run an outside agent drives: its turns are the agent's calls, one at a
    time, as they arrive. A session that makes no call for `idle_s` ends its run."""

    context_tokens: int | None = None

    def __init__(self, client: str, idle_s: float) -> None:
        self.client = client
        self.name = MODEL_PREFIX + client
        self.idle_s = idle_s
        self._calls: asyncio.Queue[_Call] = asyncio.Queue()
        self._pending: _Call | None = None
        """The call the run is carrying out, whose result the next turn brings."""
        self.ended: str | None = None
        """Why the session's run ended, once it has."""

    async def call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """Carries out one call in the run and returns its result; SessionEnded once the run
        is over (or ends while the call waits)."""
        if self.ended:
            raise SessionEnded(self.ended)
        call = _Call(name, arguments)
        await self._calls.put(call)
        return await call.result  # cancelled with the caller: the run passes it over

    def end(self, why: str) -> None:
        """The run ended: the calls waiting on it are told so, and later ones too."""
        self.ended = why
        waiting = [self._pending] if self._pending else []
        while not self._calls.empty():
            waiting.append(self._calls.get_nowait())
        for call in waiting:
            if not call.result.done():
                call.result.set_exception(SessionEnded(why))
        self._pending = None

    def heard(self, event: dict[str, Any]) -> None:
        """A listener of the run's events: a call's result answers it, the run's end ends the
        session."""
        call = self._pending
        if event["type"] == "tool_result" and call and event["call_id"] == call.id:
            if not call.result.done():
                call.result.set_result(event["result"])
        elif event["type"] == "run_finished":
            self.end(f"the run ended ({event['reason']}): {event['summary']}")

    async def stream(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> AsyncIterator[StreamItem]:
        if self._pending and not self._pending.result.done():  # never carried out
            self._pending.result.set_exception(SessionEnded("the run passed the call over"))
        self._pending = call = await self._next_call()
        yield ModelTurn(tool_calls=[ToolCall(call.id, call.name, json.dumps(call.arguments))])

    async def _next_call(self) -> _Call:
        """The next call still awaited by its caller; the end of the run, once the session is
        over or has been idle for `idle_s`."""
        if self.ended:
            return _ending(f"{self.client}'s session is over ({self.ended}).")
        while True:
            try:
                call = await asyncio.wait_for(self._calls.get(), self.idle_s)
            except TimeoutError:
                return _ending(
                    f"{self.client} made no call for {self.idle_s:.0f} s, so its session ended."
                )
            if not call.result.done():  # else its caller went away while it waited
                return call

    def warm(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> int:
        return 0

    async def aclose(self) -> None:
        self.end("the session closed")


def _ending(summary: str) -> _Call:
    return _Call("complete_task", {"success": True, "summary": summary})
