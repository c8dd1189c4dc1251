"""The agent loop: ask the model, run the tools it calls, hand back the results, until done."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..kernels.base import KernelSession
from ..llm.base import Model, ModelError, ModelTurn, TextDelta, ToolCall, ToolCallDelta
from ..mcp.client import McpServerConfig, McpToolbox
from ..notebook.document import CellState, NotebookDocument
from ..notebook.outputs import OutputLimits
from .approval import Decision as ToolDecision
from .approval import ToolApprovals, ToolPermissions
from .budget import BudgetSpent, ContextBudget
from .cells import RunCells
from .conversation import Conversation
from .events import (
    CellRegenerating,
    ErrorReported,
    EventLog,
    MessageDelta,
    ModelTurnTaken,
    RunContinued,
    RunFinished,
    RunStarted,
    StepStarted,
    ToolCalled,
    ToolResult,
)
from .execution import CellRunner, KernelStarter
from .notebook_tools import NotebookTools, TaskCompleted
from .outcome import RunEnded, RunOutcome
from .preview import CellPreview
from .prompt import interruption_message, system_message, task_message
from .review import Decision, Review
from .tools import TOOLS, FormatError, ParsedCall, parse_call
from .variables import kernel_variables


@dataclass
class AgentConfig:
    max_steps: int = 30
    """Model turns before the run ends as failed."""
    time_limit_s: float = 1800.0
    """Wall-clock limit of the whole run, in seconds."""
    execution_timeout_s: float = 120.0
    """Per execution; past it the kernel is interrupted, and restarted if it does not answer."""
    context_budget_tokens: int = 100_000
    """Tokens of history the model may be sent (at most the model's context, where it says);
    digests shrink as it fills; full ends the run."""
    output_chars: int = 4_000
    """Characters of one output the model reads at most (head and tail kept)."""
    max_format_errors: int = 3
    """Unusable answers in a row (bad JSON, unknown tool, no tool call) before the run fails."""
    max_cell_chars: int = 100_000
    """Characters of one cell's source at most: a larger one is refused, the model told why."""
    output_limits: OutputLimits = field(default_factory=OutputLimits)
    """How much of a cell's outputs is kept (head and tail of a stream, each output, the cell)."""
    max_turn_chars: int = 400_000
    """Characters of one answer of the model at most (its prose and its tool calls' arguments);
    past it the answer is cut off, and the model told why."""
    cell_state: CellState = "proposed"
    """State of the cells the agent writes: proposed for review, or accepted (headless runs)."""
    execution: Literal["auto", "ask"] = "auto"
    """auto: a code cell runs as soon as it is written; ask: once the person accepts it."""
    variables_chars: int = 4_000
    """Characters of the summary of the kernel's variables each request tells the model."""
    notebook_chars: int = 20_000
    """Characters of the notebook's cells (sources, output digests) each request tells the
    model at most; a quarter of the context budget where that is less."""
    history_share: float = 0.5
    """Share of the context budget that earlier requests of the conversation may fill; past
    it the oldest are left out, with a paragraph that says what they were."""
    mcp_servers: tuple[McpServerConfig, ...] = ()
    """The person's MCP servers, whose tools the model is offered besides the agent's own."""


class AnswerTooLong(Exception):
    """The model's answer went past `max_turn_chars`; it was cut off there."""


class Agent:
    """One run of one task on one notebook, with one kernel, continuing the notebook's
    conversation.

    `kernel` is a started session, or a coroutine function that starts one when the run first
    needs it. A shared kernel (the notebook's own, which the person uses too) is told about
    at the start of the request, and never restarted: the person is asked instead.
    `accept`, `reject`, `regenerate`, `decide_tool_call` and `stop` may be called at any time
    while it runs. The MCP servers are connected while the run works (from the start of its
    request, alongside its kernel), and disconnected when it ends."""

    def __init__(
        self,
        model: Model,
        kernel: KernelSession | KernelStarter,
        notebook: NotebookDocument,
        *,
        notebook_path: str = "notebook.ipynb",
        config: AgentConfig | None = None,
        events: EventLog | None = None,
        run_id: str | None = None,
        conversation: Conversation | None = None,
        permissions: ToolPermissions | None = None,
    ) -> None:
        self.model, self.notebook = model, notebook
        self.notebook_path = notebook_path
        self.config = config or AgentConfig()
        self.events = events or EventLog()
        self.run_id = run_id or uuid.uuid4().hex
        self.review = Review()
        provenance = {"run_id": self.run_id, "model": model.name, "state": self.config.cell_state}
        self.cells = RunCells(notebook, self.events, provenance)
        self.preview = CellPreview(self.cells, self.config.max_cell_chars)
        self.conversation = conversation or Conversation()
        self.budget = ContextBudget(
            self.conversation,
            self.config.context_budget_tokens,
            model.context_tokens,
            self.config.output_chars,
        )
        self.runner = CellRunner(
            kernel,
            self.cells,
            self.events,
            self.config.execution_timeout_s,
            self.config.output_limits,
            self.budget.digest_chars,
        )
        self.tools = NotebookTools(
            self.cells,
            self.preview,
            self.runner,
            self.review,
            execution=self.config.execution,
            max_cell_chars=self.config.max_cell_chars,
            inspect_chars=self.config.output_chars,
        )
        self.toolbox = McpToolbox(self.config.mcp_servers)
        self.approvals = ToolApprovals(self.events, permissions or ToolPermissions())
        self.step = 0
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0}
        """Tokens this run's model turns took, as the model reported them."""
        self.prose: list[str] = []
        """What the model said to the person, a turn's text each, as the thread shows it."""
        self._finish_after_notes = False
        """The run went on for what the person asked after it ended: once the model has done
        it, there is nothing else to do."""
        self._briefing: Callable[[], Awaitable[None]] | None = None
        """What the model is told before its next turn, with the kernel's variables: the task,
        at the start; where things stand, when an interrupted run goes on."""
        self._format_errors = 0
        self._outcome: RunOutcome | None = None
        self._loop_task: asyncio.Future[RunOutcome] | None = None
        self._stop_summary = ""
        self._stop_reason = "stopped"

    @property
    def messages(self) -> list[dict[str, Any]]:
        """What the model is sent: the conversation so far."""
        return self.conversation.messages

    async def run(self, task: str) -> RunOutcome:
        self.events.emit(
            RunStarted(
                self.run_id,
                task,
                self.model.name,
                self.config.max_steps,
                self.config.execution,
                self.conversation.id,
            )
        )
        self._briefing = lambda: self._tell_request(task)
        return await self._drive()

    async def _tell_request(self, task: str) -> None:
        """The request, with what the notebook and its kernel hold now, after the earlier
        requests of the conversation (the oldest left out where they no longer fit)."""
        if not self.messages:
            self._append(system_message())
        variables = await self._variables()
        cells = self.notebook.summary(min(self.config.notebook_chars, self.budget.chars(0.25)))
        message = task_message(task, self.notebook_path, cells, variables)
        message += await self._tools_unavailable()
        self.conversation.begin_request(task, {"role": "user", "content": message})
        self.conversation.fit(int(self.budget.tokens * self.config.history_share))

    async def _tools_unavailable(self) -> str:
        """Once the MCP servers are connected (or given up): what the model is told of those
        it is not offered, as a paragraph of the request."""
        notes = await self.toolbox.connected()
        return "\n\n" + "\n".join(notes) if notes else ""

    async def _variables(self) -> str | None:
        """The summary of the person's variables, for a kernel of theirs; None for the run's
        own new kernel, which holds none."""
        kernel = await self.runner.session()
        if not kernel.shared:
            return None
        try:
            return await kernel_variables(kernel, max_chars=self.config.variables_chars)
        except (RuntimeError, TimeoutError) as error:
            return f"(the kernel's variables could not be read: {error})"

    def take_up(self, record: dict[str, Any]) -> None:
        """Takes up a run an earlier server left, as `GET runs/{id}` kept it: its steps,
        tokens and prose, and its cells the notebook still holds, by the same ids. The thread
        stays as it is: a call open in it may be the call of the run working there now."""
        self.step = record.get("step", 0)
        self.usage.update(record.get("usage", {}))
        self.prose = list(record.get("messages", []))
        versions = {cell["cell_id"]: cell["versions"] for cell in record.get("cells", [])}
        self.cells.take_up(self.run_id, versions)

    async def go_on(self, task: str) -> RunOutcome:
        """Goes on with `task`, a run that stopped with its server: the model hears so, with
        what the notebook and its kernel hold now (the kernel may be a new one)."""
        self.events.emit(RunContinued(self.step))
        self._briefing = lambda: self._tell_interruption(task)
        return await self.resume(for_the_person=False)

    async def _tell_interruption(self, task: str) -> None:
        variables = await self._variables()
        cells = self.notebook.summary(min(self.config.notebook_chars, self.budget.chars(0.25)))
        mine = self.cells.live()
        message = interruption_message(task, self.notebook_path, cells, variables, mine)
        message += await self._tools_unavailable()
        self._append({"role": "user", "content": message})

    def rearm(self) -> None:
        """Before the run goes on again (call it as the run is started, not in its task): the
        last outcome and stop are spent, and a stop from now on stops what follows."""
        self._outcome, self._stop_summary, self._format_errors = None, "", 0

    async def resume(self, for_the_person: bool = True) -> RunOutcome:
        """Goes on after the run finished (call `rearm` first), for what the person asked since
        (a regenerate): the model is told to complete the task once it has done it. A call its
        thread left open (its server died in it) is answered as not run first."""
        self._finish_after_notes = for_the_person
        self.tools.forget_calls()
        self.conversation.answer_open_calls()
        return await self._drive()

    def stop(self, summary: str = "stopped by the person", reason: str = "stopped") -> None:
        """Cancels the model's answer or the execution under way; a run asked to stop before
        it began ends as it begins. The outcome's reason is `reason` (interrupted: its server
        is stopping)."""
        self._stop_summary, self._stop_reason = summary, reason
        if self._loop_task is not None and not self._loop_task.done():
            self._loop_task.cancel()

    async def _drive(self) -> RunOutcome:
        if self._stop_summary:  # stopped before it began
            outcome = RunOutcome(False, self._stop_reason, self._stop_summary)
            self.events.emit(RunFinished.of(outcome))
            return outcome
        self.toolbox.open()  # connects while the kernel starts and the request is made
        try:
            outcome = await self._drive_loop()
        finally:
            await self.toolbox.close()
        # Said once the MCP servers are gone: the person may act on a finished run at once.
        self.events.emit(RunFinished.of(outcome))
        return outcome

    async def _drive_loop(self) -> RunOutcome:
        self._loop_task = asyncio.ensure_future(self._loop(self.step + self.config.max_steps))
        try:
            outcome = await asyncio.wait_for(self._loop_task, self.config.time_limit_s)
        except asyncio.TimeoutError:
            limit = f"{self.config.time_limit_s:g} s"
            outcome = RunOutcome(False, "time_limit", f"the run reached its time limit of {limit}")
        except asyncio.CancelledError:
            if not self._stop_summary:
                raise
            outcome = RunOutcome(False, self._stop_reason, self._stop_summary)
        except RunEnded as ended:
            outcome = ended.outcome
        except ModelError as error:
            self.events.emit(ErrorReported(str(error)))
            outcome = RunOutcome(False, "model_error", str(error))
        finally:  # a stop or an end mid-turn leaves calls the thread must still answer
            self.conversation.answer_open_calls()
        return outcome

    async def _loop(self, last_step: int) -> RunOutcome:
        """Steps until the model completes the task (or the steps run out); anything that
        ends the run sooner raises RunEnded."""
        if self._briefing is not None:
            briefing, self._briefing = self._briefing, None
            await briefing()
        self.review.notes.extend(await self.toolbox.connected())  # a run that goes on again
        while self.step < last_step:
            await self._step(last_step)
            if self._outcome:
                return self._outcome
        limit = self.config.max_steps
        return RunOutcome(False, "max_steps", f"the run reached its limit of {limit} steps")

    async def _step(self, last_step: int) -> None:
        """One turn: what the person did is told, the model answers, its calls are carried out."""
        self.step += 1
        self.events.emit(StepStarted(self.step, last_step))
        self.tools.begin_turn()
        await self._hear_the_person()
        try:
            turn = await self._query(self.step)
        except AnswerTooLong as error:  # its turn stands in the history, as what was kept
            self._append({"role": "assistant", "content": "[an answer too long to keep]"})
            self._append({"role": "user", "content": self._format_error(str(error))["error"]})
            return
        self._append(turn.as_message())
        await self._observe(turn)
        if self._outcome:
            return
        try:
            self.budget.check()
        except BudgetSpent as spent:
            raise RunEnded(RunOutcome(False, "context_budget", str(spent))) from None

    async def _hear_the_person(self) -> None:
        """The cells the person accepted that need running run, and the model is told what the
        person did since its last turn."""
        self.review.asks_turn = False  # the model hears it all now
        await self._run_accepted()
        if self.review.notes:
            self.tools.forget_calls()
            notes, self.review.notes = self.review.notes, []
            if self._finish_after_notes:  # the run had ended: this is all there is to do
                notes.append("Then call complete_task.")
            self._append({"role": "user", "content": "\n".join(notes)})
        self._finish_after_notes = False

    async def _observe(self, turn: ModelTurn) -> None:
        """Carries out the turn's calls and hands their results back, until one completes."""
        if not turn.tool_calls:
            reply = self._format_error(
                f"your answer was cut off ({turn.cut_short}) before it called a tool"
                if turn.cut_short
                else "you answered without calling a tool"
            )
            self._append({"role": "user", "content": reply["error"]})
        for call in turn.tool_calls:
            result = await self._call(call, turn.cut_short)
            self._append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
            if self._outcome:
                return

    async def _run_accepted(self) -> None:
        """Runs the cells the person accepted that no call will run, and tells the model."""
        while self.review.to_run:
            cell_id = self.review.to_run.pop(0)
            if not self.cells.is_live(cell_id) or self.cells.records[cell_id].executed:
                continue
            report = {"cell_id": cell_id, **await self.runner.run_cell(self.notebook.cell(cell_id))}
            self.review.notes.append(
                f"The person accepted cell {cell_id}, which they had brought back after "
                f"rejecting it, and it ran: {json.dumps(report)}."
            )

    async def _query(self, step: int) -> ModelTurn:
        turn: ModelTurn | None = None
        received = 0
        sent_chars = self.conversation.chars
        try:
            tools = TOOLS + self.toolbox.schemas
            async with contextlib.aclosing(self.model.stream(self.messages, tools)) as stream:
                async for item in stream:
                    if isinstance(item, TextDelta):
                        received += len(item.text)
                        self.events.emit(MessageDelta(item.text))
                    elif isinstance(item, ToolCallDelta):
                        received += len(item.arguments)
                        self.preview.feed(item)
                    elif isinstance(item, ModelTurn):
                        turn = item
                    if received > self.config.max_turn_chars:
                        raise AnswerTooLong(
                            f"your answer was cut off at {received} characters, past the "
                            f"{self.config.max_turn_chars} an answer may have: write long code "
                            "as several smaller cells, and read data from files rather than "
                            "writing it into cells"
                        )
        except BaseException:  # stopped, cut off, or the model failed: half-written cells go
            self.preview.cut_off("the model stopped before it finished writing this cell")
            raise
        if turn is None:
            self.preview.cut_off("the model ended its answer without a turn")
            raise ModelError(f"model {self.model.name} ended its answer without a turn")
        self.preview.answered(turn)
        self.budget.observe(turn.usage.prompt_tokens, turn.usage.completion_tokens, sent_chars)
        self.usage["prompt_tokens"] += turn.usage.prompt_tokens
        self.usage["completion_tokens"] += turn.usage.completion_tokens
        if turn.content.strip():
            self.prose.append(turn.content)
        self.events.emit(ModelTurnTaken(step, turn))
        return turn

    async def _call(self, call: ToolCall, cut_short: str = "") -> dict[str, Any]:
        self.events.emit(ToolCalled(call.id, call.name, call.arguments))
        await self.events.persisted()  # what led here survives a server killed by the call
        loop = asyncio.get_running_loop()
        started = loop.time()
        streamed = self.preview.take(call.id)
        try:
            parsed = parse_call(call.name, call.arguments, self.toolbox.validators)
        except FormatError as error:
            if streamed:
                self.preview.withdraw(streamed, "the model's call was malformed")
            why = f"your answer was cut off ({cut_short}), so " if cut_short else ""
            result = self._format_error(why + str(error))
        else:
            self._format_errors = 0
            try:
                if parsed.name in self.toolbox.tools:
                    result = await self._call_mcp(call.id, parsed)
                else:
                    result = await self.tools.call(parsed.name, parsed.arguments, call.id, streamed)
            except TaskCompleted as completed:
                result, self._outcome = {"status": "ok"}, completed.outcome
        self.events.emit(ToolResult(call.id, call.name, result, loop.time() - started))
        return result

    async def _call_mcp(self, call_id: str, parsed: ParsedCall) -> dict[str, Any]:
        """A tool of an MCP server: once allowed (the person may be asked), through the
        toolbox; what it gives back is cut to the room an output has now."""
        tool = self.toolbox.tools[parsed.name]
        if refusal := await self.approvals.refusal(call_id, tool, parsed.arguments):
            return {"status": "denied", "error": refusal}
        return await self.toolbox.call(parsed.name, parsed.arguments, self.budget.digest_chars())

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

    # The person's verdicts.

    def accept(self, cell_id: str) -> None:
        """Accepts the cell: a wait on it (`ask` mode) goes on to run it; a restored code cell
        that never ran runs before the model's next turn (call `resume` when the run ended)."""
        runs = self.runs_when_accepted(cell_id)
        self.cells.accept(cell_id)
        if not self.review.verdicts.decide(cell_id, Decision("accept")) and runs:
            self.review.to_run.append(cell_id)
            self.review.asks_turn = True

    def runs_when_accepted(self, cell_id: str) -> bool:
        """Whether accepting the cell runs it here, outside any call of the model's: a code
        cell brought back after a rejection before it ran (the call that wrote it is over)."""
        record = self.cells.records.get(cell_id)
        return (
            record is not None
            and record.restored
            and not record.executed
            and record.state == "proposed"
            and self.notebook.has(cell_id)
            and self.notebook.cell(cell_id).cell_type == "code"
        )

    def reject(self, cell_id: str, keep_state: bool = False) -> None:
        """Removes the cell. What a cell that ran did remains in the kernel, which is the
        person's: unless `keep_state`, they are offered a restart that undoes it."""
        remain = self.cells.reject(cell_id, keep_state)
        if not self.review.verdicts.decide(cell_id, Decision("reject")):
            consequence = " What it did remains in the kernel." if remain else ""
            self.review.notes.append(
                f"The person rejected cell {cell_id}: it is gone from the notebook.{consequence}"
            )

    def restore(self, cell_id: str) -> None:
        """Undoes a rejection: the cell comes back where it was, as it was, proposed again."""
        self.cells.restore(cell_id)
        self.review.notes.append(
            f"The person undid the rejection of cell {cell_id}: it is back in the notebook, "
            "proposed, as it was."
        )

    def regenerate(self, cell_id: str, instruction: str = "") -> None:
        """Asks the model to rewrite the cell in place; its current source is kept as a version.
        Call `resume` when the run has finished."""
        record = self.cells.record(cell_id)
        cell = self.notebook.cell(cell_id)
        self.events.emit(CellRegenerating(cell_id, instruction, cell.source, len(record.versions)))
        if self.review.verdicts.decide(cell_id, Decision("regenerate", instruction)):
            return
        wish = f" The person's instruction: {instruction}" if instruction else ""
        self.review.notes.append(
            f"The person asked you to rewrite cell {cell_id} with edit_cell.{wish}"
        )
        self.review.asks_turn = True

    def use_mcp_servers(self, servers: tuple[McpServerConfig, ...]) -> None:
        """The MCP servers whose tools the run is offered when it goes on again (it connects
        to them afresh each time it works)."""
        self.config.mcp_servers = servers
        self.toolbox = McpToolbox(servers)

    def decide_tool_call(self, call_id: str, decision: ToolDecision) -> bool:
        """The person's decision on a call of an MCP tool that waits for it; False when none
        waits (decided already, or the run stopped)."""
        return self.approvals.decide(call_id, decision)

    async def close(self) -> None:
        """Shuts down the kernel the run started (a later `resume` starts another), and the
        connections to the MCP servers, if a run ended without its own ending (cancelled)."""
        await self.toolbox.close()
        await self.runner.close()

    def _append(self, message: dict[str, Any]) -> None:
        self.conversation.append(message)
