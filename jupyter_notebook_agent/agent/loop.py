"""The agent loop: ask the model, run the tools it calls, hand back the results, until done."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from ..llm.base import Model, ModelError, ModelTurn, TextDelta, ToolCall
from ..notebook.document import CellNotFound, CellState, NotebookDocument
from ..notebook.outputs import digest
from .events import EventLog
from .kernel import Execution, KernelSession
from .prompt import SYSTEM_PROMPT, task_message
from .tools import TOOLS, FormatError, parse_call

#: Characters per token, for estimating the history's size where the model does not report it.
CHARS_PER_TOKEN = 4


@dataclass
class AgentConfig:
    max_steps: int = 30
    """Model turns before the run ends as failed."""
    time_limit_s: float = 1800.0
    """Wall-clock limit of the whole run, in seconds."""
    execution_timeout_s: float = 120.0
    """Per execution; past it the kernel is interrupted, and restarted if it does not answer."""
    context_budget_tokens: int = 100_000
    """Tokens of history the model may be sent; digests shrink as it fills; full ends the run."""
    output_chars: int = 4_000
    """Characters of one output the model reads at most (head and tail kept)."""
    max_format_errors: int = 3
    """Unusable answers in a row (bad JSON, unknown tool, no tool call) before the run fails."""
    cell_state: CellState = "proposed"
    """State of the cells the agent writes: proposed for review, or accepted (headless runs)."""


@dataclass
class RunOutcome:
    success: bool
    reason: str
    """completed, gave_up, max_steps, time_limit, context_budget, format_errors or model_error."""
    summary: str


class RunEnded(Exception):
    """Ends the loop from anywhere in it with an outcome."""

    def __init__(self, outcome: RunOutcome) -> None:
        super().__init__(outcome.summary)
        self.outcome = outcome


class Agent:
    """One run of one task on one notebook, with one kernel."""

    def __init__(
        self,
        model: Model,
        kernel: KernelSession,
        notebook: NotebookDocument,
        *,
        notebook_path: str = "notebook.ipynb",
        config: AgentConfig | None = None,
        events: EventLog | None = None,
        run_id: str | None = None,
    ) -> None:
        self.model, self.kernel, self.notebook = model, kernel, notebook
        self.notebook_path = notebook_path
        self.config = config or AgentConfig()
        self.events = events or EventLog()
        self.run_id = run_id or uuid.uuid4().hex
        self.messages: list[dict[str, Any]] = []
        self._history_chars = 0
        self._reported_tokens = 0
        self._format_errors = 0
        self._outcome: RunOutcome | None = None

    async def run(self, task: str) -> RunOutcome:
        self.events.emit(
            "run_started",
            run_id=self.run_id,
            task=task,
            model=self.model.name,
            max_steps=self.config.max_steps,
        )
        self._append({"role": "system", "content": SYSTEM_PROMPT})
        self._append(
            {
                "role": "user",
                "content": task_message(task, self.notebook_path, self.notebook.summary()),
            }
        )
        try:
            outcome = await asyncio.wait_for(self._loop(), self.config.time_limit_s)
        except asyncio.TimeoutError:
            limit = f"{self.config.time_limit_s:g} s"
            outcome = RunOutcome(False, "time_limit", f"the run reached its time limit of {limit}")
        except RunEnded as ended:
            outcome = ended.outcome
        except ModelError as error:
            self.events.emit("error", message=str(error))
            outcome = RunOutcome(False, "model_error", str(error))
        self.events.emit("run_finished", **asdict(outcome))
        return outcome

    async def _loop(self) -> RunOutcome:
        for step in range(1, self.config.max_steps + 1):
            self.events.emit("step", step=step, max_steps=self.config.max_steps)
            turn = await self._query(step)
            self._append(turn.as_message())
            if not turn.tool_calls:
                reply = self._format_error("you answered without calling a tool")
                self._append({"role": "user", "content": reply["error"]})
            for call in turn.tool_calls:
                result = await self._call(call)
                self._append(
                    {"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)}
                )
                if self._outcome:
                    return self._outcome
            self._check_budget()
        limit = self.config.max_steps
        return RunOutcome(False, "max_steps", f"the run reached its limit of {limit} steps")

    async def _query(self, step: int) -> ModelTurn:
        turn: ModelTurn | None = None
        async for item in self.model.stream(self.messages, TOOLS):
            if isinstance(item, TextDelta):
                self.events.emit("message_delta", text=item.text)
            elif isinstance(item, ModelTurn):
                turn = item
        if turn is None:
            raise ModelError(f"model {self.model.name} ended its answer without a turn")
        self._reported_tokens = turn.usage.prompt_tokens + turn.usage.completion_tokens
        self.events.emit("model_turn", step=step, **asdict(turn))
        return turn

    async def _call(self, call: ToolCall) -> dict[str, Any]:
        self.events.emit("tool_call", call_id=call.id, name=call.name, arguments=call.arguments)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            parsed = parse_call(call.name, call.arguments)
        except FormatError as error:
            result = self._format_error(str(error))
        else:
            self._format_errors = 0
            result = await getattr(self, f"_tool_{parsed.name}")(**parsed.arguments)
        self.events.emit(
            "tool_result",
            call_id=call.id,
            name=call.name,
            result=result,
            duration_s=loop.time() - started,
        )
        return result

    def _format_error(self, problem: str) -> dict[str, Any]:
        """Tells the model what was wrong; too many in a row end the run."""
        self._format_errors += 1
        if self._format_errors >= self.config.max_format_errors:
            count = self._format_errors
            raise RunEnded(
                RunOutcome(
                    False,
                    "format_errors",
                    f"{count} unusable model answers in a row; the last: {problem}",
                )
            )
        return {"status": "error", "error": f"{problem}. Call a tool again, correctly."}

    # The tools. Each returns the JSON object the model reads; a cell tool names its cell_id.

    async def _tool_add_cell(
        self, cell_type: str, source: str, after_cell_id: str | None = None
    ) -> dict[str, Any]:
        provenance = {
            "run_id": self.run_id,
            "model": self.model.name,
            "state": self.config.cell_state,
        }
        try:
            cell, index = self.notebook.add(cell_type, source, provenance, after_cell_id)  # type: ignore[arg-type]
        except CellNotFound as error:
            return {"status": "error", "error": str(error)}
        self.events.emit(
            "cell_proposed",
            cell_id=cell.id,
            cell_type=cell_type,
            source=source,
            index=index,
            metadata=dict(cell.metadata),
        )
        if cell_type != "code":
            return {"cell_id": cell.id, "status": "ok"}
        return {"cell_id": cell.id, **await self._run_cell(cell)}

    async def _tool_edit_cell(self, cell_id: str, source: str) -> dict[str, Any]:
        try:
            cell = self.notebook.cell(cell_id)
        except CellNotFound as error:
            return {"status": "error", "error": str(error)}
        cell.source = source
        self.events.emit("cell_edited", cell_id=cell_id, source=source)
        if cell.cell_type != "code":
            return {"cell_id": cell_id, "status": "ok"}
        return {"cell_id": cell_id, **await self._run_cell(cell)}

    async def _tool_execute_code(self, code: str) -> dict[str, Any]:
        return self._report(await self.kernel.execute(code, self.config.execution_timeout_s))

    async def _tool_restart_kernel(self) -> dict[str, Any]:
        await self.kernel.restart()
        return {"status": "ok", "note": "the kernel restarted: all variables and imports are gone"}

    async def _tool_complete_task(self, success: bool, summary: str) -> dict[str, Any]:
        self._outcome = RunOutcome(success, "completed" if success else "gave_up", summary)
        return {"status": "ok"}

    async def _run_cell(self, cell: Any) -> dict[str, Any]:
        execution = await self.kernel.execute(cell.source, self.config.execution_timeout_s)
        cell.outputs, cell.execution_count = execution.outputs, execution.execution_count
        self.events.emit(
            "cell_outputs",
            cell_id=cell.id,
            status=execution.status,
            outputs=execution.outputs,
            execution_count=execution.execution_count,
        )
        return self._report(execution)

    def _report(self, execution: Execution) -> dict[str, Any]:
        if execution.restarted:
            self.events.emit("error", message=execution.note)
        report: dict[str, Any] = {"status": execution.status}
        if execution.execution_count is not None:
            report["execution_count"] = execution.execution_count
        report["outputs"] = digest(execution.outputs, self._digest_chars())
        if execution.note:
            report["note"] = execution.note
        return report

    # The context budget: the history is append-only, so what is spent stays spent.

    def _append(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        self._history_chars += len(json.dumps(message))

    def _tokens_used(self) -> int:
        return max(self._reported_tokens, self._history_chars // CHARS_PER_TOKEN)

    def _digest_chars(self) -> int:
        """Outputs get less room as the budget fills, so that the run can still finish."""
        left = (self.config.context_budget_tokens - self._tokens_used()) * CHARS_PER_TOKEN
        return max(200, min(self.config.output_chars, left // 4))

    def _check_budget(self) -> None:
        if self._tokens_used() >= self.config.context_budget_tokens:
            budget = self.config.context_budget_tokens
            raise RunEnded(
                RunOutcome(
                    False, "context_budget", f"the history reached the budget of {budget} tokens"
                )
            )
