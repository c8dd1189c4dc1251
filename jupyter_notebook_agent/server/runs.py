"""Runs held by the server: they outlive browser tabs, one active run per notebook, each in the
notebook's own kernel (its session's, the one JupyterLab shows) and continuing its conversation.

Plain asyncio and jupyter_server's managers, no Tornado: the handlers only call in here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_core.utils import ensure_async
from jupyter_server.services.contents.fileio import atomic_writing
from jupyter_server.services.contents.manager import ContentsManager
from jupyter_server.services.kernels.kernelmanager import MappingKernelManager
from jupyter_server.services.sessions.sessionmanager import SessionManager
from tornado.web import HTTPError

from ..agent import Agent, AgentConfig, EventLog, RunOutcome
from ..agent.approval import Decision as ToolDecision
from ..agent.approval import ToolPermissions
from ..agent.cells import ReviewError
from ..agent.conversation import Conversation
from ..agent.events import ErrorReported, Event, KernelWaiting, Listener, RunFinished
from ..agent.observers import ObserverThread, load_observers
from ..agent.run import RunSpec, RunState, assemble
from ..kernels import JupyterKernelSession
from ..kernels.gateway import connected_session, explain, explained
from ..llm import Model
from ..mcp.client import McpServerConfig
from ..notebook import METADATA_KEY, NotebookDocument
from ..sandbox import is_sandboxed
from .contents import OutsideRoot, SerialSaves, real_api_path
from .memory import release_freed_memory
from .store import RunStore
from .writer import NotebookWriter

#: Notebooks whose conversations the server keeps; the least recently used goes first.
CONVERSATIONS_KEPT = 200
#: How long the server holds off writing for a frontend that said it would subscribe as writer.
FRONTEND_GRACE_S = 10.0
#: How long a Stop waits for the run to put its work away before it frees the notebook anyway.
STOP_WAIT_S = 5.0


class RunError(HTTPError):
    """A request that cannot be carried out; `status` is the HTTP status that says why. An
    HTTPError, so that the server logs it as the client's mistake: one line, no traceback."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message.replace("%", "%%"))  # the log formats it
        self.status, self.message = status, message

    def __str__(self) -> str:
        return self.message


McpServers = tuple[McpServerConfig, ...]
"""The MCP servers whose tools a run is offered: the configuration's and the person's."""


@dataclass
class RunRequest:
    path: str
    """API path of the notebook, relative to the server's root."""
    prompt: str
    execution: Literal["auto", "ask"]
    max_steps: int
    frontend_writes: bool = False
    """The frontend that starts the run has the notebook open and will apply its cells."""
    user: str = ""
    """Who asked, as the identity provider names them."""
    mcp_servers: tuple[McpServerConfig, ...] = ()
    """The person's own MCP servers for this run (their settings'), besides the server's."""


@dataclass(frozen=True)
class RunLimits:
    """How many runs may work at once, on the server and for one user."""

    server: int = 8
    per_user: int = 4


class Run:
    def __init__(
        self,
        request: RunRequest,
        agent: Agent,
        writer: NotebookWriter,
        store: RunStore,
        notebook: str,
        earlier: dict[str, Any] | None = None,
    ) -> None:
        """`earlier`: the run as an earlier server's store kept it, taken up here."""
        self.id = agent.run_id
        self.request, self.agent, self.writer = request, agent, writer
        self.store = store
        self.notebook = notebook
        """The notebook's file, by which the store knows it."""
        self.events: EventLog = agent.events
        self.events.persist = self._persist
        self.events.subscribe(lambda event: store.append_event(self.id, event))
        self.created: float = earlier["created"] if earlier else time.time()
        self.state: RunState = earlier["state"] if earlier else "running"
        kept = earlier and earlier.get("outcome")
        self.outcome: RunOutcome | None = RunOutcome(**kept) if kept else None
        self.task: asyncio.Task[None] | None = None
        self.kernel_id: str | None = None
        """The notebook's kernel the run executes in, once it has one."""

    @property
    def active(self) -> bool:
        return self.state == "running"

    def start(self, work: Callable[[], Awaitable[RunOutcome]]) -> None:
        """The run works on `work`; a stop from now on stops it, even before it begins."""
        self.agent.rearm()
        self.state, self.outcome = "running", None
        self.store.save_run(self.notebook, self.to_json(), self.state)
        self.task = asyncio.ensure_future(self._main(work))

    async def _main(self, work: Callable[[], Awaitable[RunOutcome]]) -> None:
        try:
            self.outcome = await work()
        finally:
            # Finished once all is put away: a regenerate may start the run again right after.
            # Finished also when putting away fails, so that the notebook is never locked.
            interrupted = self.outcome is not None and self.outcome.reason == "interrupted"
            ended: RunState = "interrupted" if interrupted else "finished"
            try:
                await self.agent.close()
                await self.writer.flush()
            except Exception as error:
                self.events.emit(ErrorReported(f"The agent's cells could not be written: {error}"))
                self.writer.log.error("Run %s could not put its work away: %s", self.id, error)
            finally:
                self.state = ended
                self.store.save_run(self.notebook, self.to_json(), self.state)
                self._save_conversation()
                release_freed_memory()
                if self.agent.review.asks_turn:  # asked for while the loop was ending
                    self.start(self.agent.resume)

    async def _persist(self) -> None:
        """Before each tool call: the events so far and the thread that led to the call. A
        store that fails (a full disk) leaves the run going, in memory; its log says why."""
        self._save_conversation()
        self.store.save_run(self.notebook, self.to_json(), self.state)
        try:
            await self.store.flush()
        except Exception as error:
            self.writer.log.warning("Run %s is not stored: %s", self.id, error)

    def _save_conversation(self) -> None:
        self.store.save_conversation(self.notebook, self.agent.conversation.to_record())

    async def stop(self, summary: str = "stopped by the person", reason: str = "stopped") -> None:
        """Cancels the model's answer or interrupts the execution; returns once it stopped and
        put its kernel and its cells away, also when it was ending already (a server that shut
        down in between would never finish that, nor exit). A part that does not answer within
        STOP_WAIT_S (a kernel, a save) keeps the rest going in the background: the run is
        stopped and its notebook free all the same."""
        self.agent.stop(summary, reason)
        self.agent.review.asks_turn = False  # what the person asked before the stop is dropped
        if self.task is None:
            return
        # Waits without taking on the run's own failure, which its log said.
        done, _ = await asyncio.wait([self.task], timeout=STOP_WAIT_S)
        if done or not self.active:
            return
        self.writer.log.warning(
            "Run %s had not put its work away %g s after its stop; its notebook is free, and "
            "the rest goes on in the background",
            self.id,
            STOP_WAIT_S,
        )
        if self.outcome is None:  # the agent itself did not answer: the run says it ended
            self.outcome = RunOutcome(False, reason, summary)
            self.events.emit(RunFinished.of(self.outcome))
        self.state = "interrupted" if reason == "interrupted" else "finished"
        self.store.save_run(self.notebook, self.to_json(), self.state)

    def regenerate(
        self, cell_id: str, instruction: str, mcp_servers: McpServers | None = None
    ) -> None:
        """Rewrites the cell; a finished run goes on for it, with `mcp_servers` where given
        (a run at work keeps those it connected to)."""
        at_work = self.active
        if not at_work:
            self._check_put_away()
        self._review(self.agent.regenerate, cell_id, instruction)
        if mcp_servers is not None and not at_work:
            self.agent.use_mcp_servers(mcp_servers)
        self._go_on_for_review()

    def go_on(self, mcp_servers: McpServers | None = None) -> None:
        """An interrupted run goes on where it stopped, with `mcp_servers` where given."""
        if self.state != "interrupted":
            raise RunError(
                409, f"run {self.id} is {self.state}: only an interrupted run can continue"
            )
        self._check_put_away()
        if mcp_servers is not None:
            self.agent.use_mcp_servers(mcp_servers)
        self.start(lambda: self.agent.go_on(self.request.prompt))

    def _check_put_away(self) -> None:
        """409 while the run is still putting its work away after a stop that did not wait for
        it: going on now would make a second task of one agent."""
        if self.task is not None and not self.task.done():
            raise RunError(
                409, f"run {self.id} is still putting its work away; try again in a moment"
            )

    def accept(self, cell_id: str) -> None:
        """Accepts the cell; a finished run goes on to run a restored one."""
        goes_on = self.agent.runs_when_accepted(cell_id)
        if goes_on and not self.active:
            self._check_put_away()
        self._review(self.agent.accept, cell_id)
        if goes_on:
            self._go_on_for_review()

    def reject(self, cell_id: str, keep_state: bool) -> None:
        self._review(self.agent.reject, cell_id, keep_state)

    def restore(self, cell_id: str) -> None:
        """Undoes the person's rejection of the cell."""
        self._review(self.agent.restore, cell_id)

    def _go_on_for_review(self) -> None:
        """The agent's loop goes on for what the person just asked (a rewrite, a restored cell
        to run): at once where the run had finished; else its loop hears it at its next step,
        or, where the loop ends first, the run goes on once it has put its work away."""
        if not self.active:
            self.start(self.agent.resume)

    def decide_tool_call(self, call_id: str, decision: ToolDecision) -> None:
        """The person's decision on a call of an MCP tool that waits for it: 404 for a call the
        run never asked about, 409 for one that waits no more (decided, or the run stopped)."""
        asked = any(
            event["type"] == "tool_approval_requested" and event["call_id"] == call_id
            for event in self.events.events
        )
        if not asked:
            raise RunError(404, f"run {self.id} asked for no decision on a call {call_id!r}")
        if not self.agent.decide_tool_call(call_id, decision):
            raise RunError(
                409, f"the call {call_id} waits no more: it was decided, or the run stopped"
            )

    def _review(self, verdict: Callable[..., None], cell_id: str, *args: Any) -> None:
        try:
            verdict(cell_id, *args)
        except ReviewError as error:
            raise RunError(404, str(error)) from None

    def to_json(self) -> dict[str, Any]:
        outcome = self.outcome
        cells = [
            {"cell_id": cell_id, "state": record.state, "versions": record.versions}
            for cell_id, record in self.agent.cells.records.items()
        ]
        return {
            "id": self.id,
            "path": self.request.path,
            "prompt": self.request.prompt,
            "model": self.agent.model.name,
            "execution": self.request.execution,
            "state": self.state,
            "step": self.agent.step,
            "max_steps": self.request.max_steps,
            "created": self.created,
            "events": len(self.events.events),
            "kernel_id": self.kernel_id,
            "conversation_id": self.agent.conversation.id,
            "usage": dict(self.agent.usage),
            "messages": list(self.agent.prose),
            "outcome": None
            if outcome is None
            else {"success": outcome.success, "reason": outcome.reason, "summary": outcome.summary},
            "cells": cells,
        }


class RunRegistry:
    """Every run of this server, by id; starts them, finds them, stops them all at shutdown."""

    def __init__(
        self,
        contents: ContentsManager,
        kernels: MappingKernelManager,
        sessions: SessionManager,
        kernel_specs: KernelSpecManager,
        *,
        unsandboxed_allowed: Callable[[], bool] = lambda: False,
        gateway: str | None = None,
        log: logging.Logger | None = None,
        write_delay_s: float = 0.5,
        finished_runs_kept: int = 200,
        limits: RunLimits = RunLimits(),
        store: RunStore | None = None,
        observers: list[Listener] | None = None,
    ) -> None:
        self.contents, self.kernels, self.sessions = contents, kernels, sessions
        self.kernel_specs = kernel_specs
        self.unsandboxed_allowed = unsandboxed_allowed
        """Whether the person allowed code in a kernel that is no sandbox (a setting that may
        change while the server runs)."""
        self.gateway = gateway
        """The URL of the gateway that runs the kernels (`--gateway-url`); None: this machine."""
        self.log = log or logging.getLogger(__name__)
        self.write_delay_s = write_delay_s
        self.finished_runs_kept = finished_runs_kept
        self.limits = limits
        self.store = store or RunStore(None)
        self.observers = ObserverThread(load_observers() if observers is None else observers)
        """Told every event of every run (the `jupyter_notebook_agent.observers` entry point),
        in a thread of their own."""
        self.saves = SerialSaves(contents)
        self.runs: dict[str, Run] = {}
        self.conversations: OrderedDict[str, Conversation] = OrderedDict()
        """Each notebook's thread, by API path, the most recently used last."""
        self.allowed_tools: OrderedDict[str, set[str]] = OrderedDict()
        """The MCP tools the person allowed always on each notebook, by API path, the most
        recently used last (see `load_allowed_tools`)."""
        self._creating: dict[str, asyncio.Future[dict[str, Any]]] = {}
        """Sessions being made for notebooks that had none, by API path: one each."""
        self._awaiting_revival: dict[str, set[Callable[[Run], None]]] = {}
        """Who follows a run only the store keeps, by its id: told once it is taken up."""
        self._naming_no_run: OrderedDict[tuple[str, int, int], None] = OrderedDict()
        """Notebook files, as they were (path, mtime, size), whose cells name no run: opening
        one again reads it no more (see `find_moved`)."""

    def get(self, run_id: str) -> Run:
        try:
            return self.runs[run_id]
        except KeyError:
            raise RunError(404, f"no run has id {run_id!r}") from None

    async def live(self, run_id: str) -> Run:
        """A run of this server, which can be stopped; 409 for one only the store keeps
        (an earlier server's, or forgotten here), 404 for none."""
        if run_id in self.runs:
            return self.runs[run_id]
        stored = await self.store.run(run_id)
        if stored is None:
            raise RunError(404, f"no run has id {run_id!r}")
        raise RunError(409, f"run {run_id} is {stored['state']}: it ended with an earlier server")

    async def stored_path(self, run_id: str) -> str:
        """The API path of the notebook of a run only the store keeps; 404 for none, 409 for
        one of a notebook outside this server's root (a server sharing the store)."""
        notebook = await self.store.notebook_of(run_id)
        if notebook is None:
            raise RunError(404, f"no run has id {run_id!r}")
        if not notebook.startswith(self.root):
            raise RunError(409, f"run {run_id} is of a notebook outside this server's root")
        return notebook[len(self.root) :]

    async def revive(
        self,
        run_id: str,
        path: str,
        stored: dict[str, Any],
        model: Model,
        kernel_name: str,
        config: AgentConfig,
        user: str,
    ) -> Run:
        """A run only the store keeps (an earlier server's), as `stored_path` and `describe`
        gave it, taken up as it ended: its events, its thread and its cells the notebook still
        holds, by the same ids, so that the person can accept, reject or regenerate them, or
        let it go on (`go_on`). Whoever followed it follows it live from now on."""
        if stored["state"] == "running":
            raise RunError(409, f"run {run_id} is working on another server")
        events = await self.store.events(run_id, 0)
        notebook = await self.read_notebook(path)
        thread = await self.stored_conversation(path)
        await self.load_allowed_tools(path)
        if run_id in self.runs:  # taken up by another request meanwhile
            return self.runs[run_id]
        request = RunRequest(path, stored["prompt"], config.execution, config.max_steps, user=user)
        self.conversations.setdefault(path, thread)
        run = self._assemble(request, notebook, model, kernel_name, config, run_id, stored, events)
        for follower in self._awaiting_revival.pop(run_id, ()):
            follower(run)
        return run

    def await_revival(self, run_id: str, follower: Callable[[Run], None]) -> Callable[[], None]:
        """Calls `follower` with the run once it is taken up; returns the call that cancels."""
        followers = self._awaiting_revival.setdefault(run_id, set())
        followers.add(follower)

        def cancel() -> None:
            followers.discard(follower)
            if not followers and self._awaiting_revival.get(run_id) is followers:
                del self._awaiting_revival[run_id]

        return cancel

    def go_on(self, run: Run, mcp_servers: McpServers | None = None) -> None:
        """An interrupted run goes on; 409 while another works on its notebook, 429 past the
        limits."""
        self.check_free(run.request.path)
        self.check_capacity(run.request.user)
        run.go_on(mcp_servers)

    async def describe(self, run_id: str) -> dict[str, Any]:
        """The run as `GET runs/{id}` answers it, live or stored; 404 for none."""
        if run_id in self.runs:
            return self.runs[run_id].to_json()
        stored = await self.store.run(run_id)
        if stored is None:
            raise RunError(404, f"no run has id {run_id!r}")
        return stored

    def notebook_file(self, path: str) -> str:
        """The notebook's file, by which the store knows it whatever root a server has."""
        return os.path.join(getattr(self.contents, "root_dir", ""), path)

    @property
    def root(self) -> str:
        """The folder of this server's notebooks, as the store spells it (with its slash)."""
        return self.notebook_file("")

    async def describe_all(self, path: str | None) -> list[dict[str, Any]]:
        """A notebook's runs (or all of this root's), live and stored, oldest first."""
        if path is None:
            live, kept = list(self.runs.values()), await self.store.runs(None, self.root)
        else:
            live, kept = await self._runs_of(path)
            if not live and not kept and path not in self.conversations:
                if await self.store.conversation(self.notebook_file(path)) is None:
                    await self.find_moved(path)
                live, kept = await self._runs_of(path)
        described = {run.id: run.to_json() for run in live}
        stored = [run for run in kept if run["id"] not in described]
        return sorted([*stored, *described.values()], key=lambda run: run["created"])

    async def _runs_of(self, path: str) -> tuple[list[Run], list[dict[str, Any]]]:
        return self.for_path(path), await self.store.runs(self.notebook_file(path))

    def api_path(self, spelled: str) -> str:
        """The one spelling of a notebook's API path (see `real_api_path`), so that each
        notebook has one lock; RunError 400 for one outside the root."""
        try:
            return real_api_path(self.contents, spelled)
        except OutsideRoot as error:
            raise RunError(400, str(error)) from None

    def for_path(self, path: str) -> list[Run]:
        return [run for run in self.runs.values() if run.request.path == path]

    async def stored_conversation(self, path: str) -> Conversation:
        """The notebook's thread as this server or the store holds it; a fresh one, kept
        nowhere, for a notebook that has none."""
        if path in self.conversations:
            return self.conversations[path]
        stored = await self.store.conversation(self.notebook_file(path))
        if stored is None and not self.for_path(path):
            await self.find_moved(path)
            if path in self.conversations:
                return self.conversations[path]
            stored = await self.store.conversation(self.notebook_file(path))
        return Conversation.from_record(stored) if stored else Conversation()

    async def load_conversation(self, path: str) -> Conversation:
        """The notebook's thread, which its next run continues, from the store where this
        server has not held it yet."""
        thread = await self.stored_conversation(path)
        self.conversations.setdefault(path, thread)  # unless one began meanwhile (New)
        return self.conversation(path)

    def conversation(self, path: str) -> Conversation:
        """The notebook's thread, which its next run continues."""
        thread = self.conversations.pop(path, None) or Conversation()
        self.conversations[path] = thread
        while len(self.conversations) > CONVERSATIONS_KEPT:
            self.conversations.popitem(last=False)
        return thread

    async def load_allowed_tools(self, path: str) -> None:
        """Reads what MCP tools the person allowed always on the notebook, from the store where
        this server has not held it yet. Kept with the notebook's other agent state on the
        server, not in the notebook's metadata: a notebook travels (shared, downloaded, put
        in git), and a permission in it would let whoever wrote the file allow tools on the
        person's own servers, with their credentials. Starting the conversation afresh keeps
        it: it is the person's say over their servers, not something the model was told."""
        if path not in self.allowed_tools:
            allowed = await self.store.allowed_tools(self.notebook_file(path))
            self.allowed_tools.setdefault(path, set()).update(allowed)  # one may be there now

    async def always_allowed(self, path: str) -> list[str]:
        """The MCP tools the person allowed always on the notebook, by name."""
        await self.load_allowed_tools(path)
        return sorted(self._allowed_tools(path))

    async def ask_again(self, path: str, tool: str) -> list[str]:
        """The tool's calls on the notebook wait for the person again, from its runs going on
        now (which share the set) and in the store; the tools still allowed always."""
        await self.load_allowed_tools(path)
        allowed = self._allowed_tools(path)
        allowed.discard(tool)
        self.store.forbid_tool(self.notebook_file(path), tool)
        return sorted(allowed)

    def _allowed_tools(self, path: str) -> set[str]:
        """The notebook's MCP tools allowed always, shared by its runs."""
        allowed = self.allowed_tools.pop(path) if path in self.allowed_tools else set()
        self.allowed_tools[path] = allowed
        while len(self.allowed_tools) > CONVERSATIONS_KEPT:
            self.allowed_tools.popitem(last=False)
        return allowed

    def new_conversation(self, path: str) -> Conversation:
        """Starts the notebook's thread afresh; 409 while a run works on it."""
        self.check_free(path)
        self.conversations.pop(path, None)
        thread = self.conversation(path)
        self.store.save_conversation(self.notebook_file(path), thread.to_record())
        return thread

    async def notebook_session(self, path: str) -> dict[str, Any] | None:
        """The notebook's Jupyter session, with its kernel, as the sessions API lists it (it
        forgets a session whose kernel is gone), or None where it has none: closed, or never
        opened."""
        for session in await ensure_async(self.sessions.list_sessions()):
            if session.get("type", "notebook") != "notebook":
                continue
            try:
                if real_api_path(self.contents, session["path"]) == path:
                    return session
            except OutsideRoot:
                continue
        return None

    async def read_notebook(self, path: str) -> nbformat.NotebookNode:
        """The notebook at an API path; RunError 400 or 404 when there is none to act on."""
        if not path.endswith(".ipynb"):
            raise RunError(400, f"{path!r} is not a notebook (an .ipynb file)")
        try:
            model = await ensure_async(self.contents.get(path, content=True, type="notebook"))
        except HTTPError as error:  # missing, outside the root, or not readable as a notebook
            if error.status_code == 404:
                raise RunError(404, f"no notebook at {path!r}") from None
            raise RunError(400, f"{path!r} cannot be read: {error.log_message}") from None
        return nbformat.from_dict(model["content"])

    def create(
        self,
        request: RunRequest,
        notebook: nbformat.NotebookNode,
        model: Model,
        kernel_name: str,
        config: AgentConfig,
    ) -> Run:
        """Starts a run on the notebook as `read_notebook` gave it; 409 while another run is
        active there (checked again here: the caller awaited since its own check)."""
        self.check_free(request.path)
        self.check_capacity(request.user)
        run = self._assemble(request, notebook, model, kernel_name, config, uuid.uuid4().hex)
        run.start(lambda: run.agent.run(request.prompt))
        return run

    def _assemble(
        self,
        request: RunRequest,
        notebook: nbformat.NotebookNode,
        model: Model,
        kernel_name: str,
        config: AgentConfig,
        run_id: str,
        earlier: dict[str, Any] | None = None,
        earlier_events: list[Event] | None = None,
    ) -> Run:
        """A run of this server, not started: its agent, its writer, its place in the
        store."""
        spec = RunSpec(
            request.prompt,
            model,
            lambda: self._notebook_kernel(run, kernel_name),
            NotebookDocument(notebook),
            request.path,
            config,
            run_id,
            self.conversation(request.path),
            earlier,
            earlier_events or [],
            ToolPermissions(
                self._allowed_tools(request.path),
                keep=lambda tool: self.store.allow_tool(run.notebook, tool),
            ),
        )
        writer = NotebookWriter(
            self.contents,
            self.saves,
            request.path,
            spec.notebook.nb,  # as the run read it: the writer copies it
            spec.record,
            delay_s=self.write_delay_s,
            frontend_grace_s=FRONTEND_GRACE_S if request.frontend_writes else None,
        )
        agent = assemble(spec, [writer, self.observers])
        run = Run(request, agent, writer, self.store, self.notebook_file(request.path), earlier)
        self._forget_old_runs()
        self.runs[run.id] = run
        return run

    def _forget_old_runs(self) -> None:
        finished = [run for run in self.runs.values() if not run.active]
        for run in finished[: max(0, len(finished) - self.finished_runs_kept + 1)]:
            del self.runs[run.id]

    def accept(self, run: Run, cell_id: str) -> None:
        if not run.active and run.agent.runs_when_accepted(cell_id):
            self.check_free(run.request.path)
            self.check_capacity(run.request.user)
        run.accept(cell_id)

    def restore(self, run: Run, cell_id: str) -> None:
        """Undoes a rejection; 409 once a later run works on the notebook: it writes there now,
        and its cells may have taken the id."""
        later = [r for r in self.for_path(run.request.path) if r.created > run.created]
        if later:
            raise RunError(
                409,
                "the agent has started another request on this notebook since: "
                f"cell {cell_id} cannot come back",
            )
        run.restore(cell_id)

    def regenerate(
        self, run: Run, cell_id: str, instruction: str, mcp_servers: McpServers | None = None
    ) -> None:
        if not run.active:
            self.check_free(run.request.path)
            self.check_capacity(run.request.user)
        run.regenerate(cell_id, instruction, mcp_servers)

    def check_capacity(self, user: str) -> None:
        """RunError 429, naming the limit, when the server or the user has as many runs working
        as allowed."""
        active = [run for run in self.runs.values() if run.active]
        if len(active) >= self.limits.server:
            raise RunError(
                429,
                f"{len(active)} runs are working on this server, the most it allows "
                "(c.NotebookAgent.max_active_runs); try again when one has ended",
            )
        mine = [run for run in active if run.request.user == user]
        if len(mine) >= self.limits.per_user:
            raise RunError(
                429,
                f"you have {len(mine)} runs working, the most one person may have "
                "(c.NotebookAgent.max_active_runs_per_user); stop one or wait for it to end",
            )

    def check_free(self, path: str) -> None:
        for run in self.for_path(path):
            if run.active:
                raise RunError(409, f"run {run.id} is still working on {path}; stop it first")

    async def check_kernel(self, session: dict[str, Any]) -> str:
        """The kernelspec of the notebook's session, which the agent may run code in: RunError
        409 for one that is no sandbox unless the person allowed that (it says what to do),
        503 where the kernelspecs cannot be listed."""
        name = session["kernel"]["name"]
        if self.unsandboxed_allowed():
            return name
        try:
            specs = await ensure_async(self.kernel_specs.get_all_specs())
        except Exception as error:
            if not self.gateway:
                raise
            raise RunError(503, str(explain(error, "listing its kernelspecs"))) from None
        if not is_sandboxed(specs.get(name, {}).get("spec", {}).get("metadata", {})):
            raise RunError(
                409,
                f"the notebook's kernel {name!r} is not sandboxed, so the agent's code would run "
                "as you: switch the notebook's kernel to a sandbox (its variables go), or allow "
                "unsandboxed kernels (c.NotebookAgent.allow_unsandboxed)",
            )
        return name

    async def _notebook_kernel(self, run: Run, kernel_name: str) -> JupyterKernelSession:
        """The notebook's own kernel, shared with the person: its session's, checked each time
        (the person may have switched it since the run was asked for), or a new session's of
        `kernel_name` where it has none, so that a JupyterLab that opens the notebook later
        finds the same kernel and state. Through the server's managers, so that a gateway can
        run it; the session's restarter stays, as for any notebook."""
        gateway = bool(self.gateway)
        path = run.request.path
        session = await self.notebook_session(path)
        if session is None:
            with explained(f"starting the kernel {kernel_name!r}", gateway=gateway):
                session = await self._made_even_if_stopped(
                    run, self._new_session(path, kernel_name)
                )
        await self.check_kernel(session)
        run.kernel_id = session["kernel"]["id"]
        return await self.connect_notebook_kernel(
            session, on_wait=lambda: run.events.emit(KernelWaiting())
        )

    async def connect_notebook_kernel(
        self, session: dict[str, Any], on_wait: Callable[[], None] | None = None
    ) -> JupyterKernelSession:
        """The agent's session of a notebook's kernel (its jupyter_server session's, checked
        by `check_kernel`), shared with the person: closing it closes the agent's channels."""
        return await connected_session(
            self.kernels.get_kernel(session["kernel"]["id"]),
            session["kernel"]["name"],
            gateway=bool(self.gateway),
            shared=True,
            on_wait=on_wait,
        )

    @staticmethod
    async def _made_even_if_stopped(
        run: Run, creating: asyncio.Future[dict[str, Any]]
    ) -> dict[str, Any]:
        """The session being made. A run stopped meanwhile still lets it be made, since it is
        the notebook's, and ends once it is, naming its kernel: whoever closes the notebook
        next then finds the session, and no kernel starts after its run said it ended."""
        try:
            return await asyncio.shield(creating)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                run.kernel_id = (await creating)["kernel"]["id"]
            raise

    def _new_session(self, path: str, kernel_name: str) -> asyncio.Future[dict[str, Any]]:
        """The session being made for the notebook: one however many ask at once (two would
        start two kernels for one notebook), forgotten once made."""
        creating = self._creating.get(path)
        if creating is None:
            creating = self._creating[path] = asyncio.ensure_future(
                ensure_async(
                    self.sessions.create_session(
                        path=path,
                        name=path.rpartition("/")[2],
                        type="notebook",
                        kernel_name=kernel_name,
                    )
                )
            )
            creating.add_done_callback(lambda _: self._creating.pop(path, None))
            creating.add_done_callback(self._report_failed_session)
        return creating

    def _report_failed_session(self, creating: asyncio.Future[dict[str, Any]]) -> None:
        """A creation that failed after its run stopped is said in the log (and retrieved)."""
        if not creating.cancelled() and (error := creating.exception()):
            self.log.warning("A notebook's kernel could not be started: %s", error)

    async def follow_rename(self, logger: Any, schema_id: str, data: dict[str, Any]) -> None:
        """A listener of the contents service's events: a notebook renamed or moved (or its
        folder) keeps its runs and its thread."""
        if data.get("action") == "rename":
            self._move(data["source_path"].strip("/"), data["path"].strip("/"))

    async def find_moved(self, path: str) -> None:
        """A notebook the store knows nothing of takes the runs and thread its cells and record
        name, where the notebook they were kept under is gone: it was moved outside Jupyter (a
        `mv`). A copy leaves them where they are."""
        file, root = self.notebook_file(path), self.root
        try:
            stat = await asyncio.to_thread(os.stat, file)
        except OSError:
            return
        version = (file, stat.st_mtime_ns, stat.st_size)
        if version in self._naming_no_run:
            return
        ids = await asyncio.to_thread(run_ids_in, file)
        if not ids:
            self._naming_no_run[version] = None
            while len(self._naming_no_run) > CONVERSATIONS_KEPT:
                self._naming_no_run.popitem(last=False)
        for run_id in reversed(ids):
            live = self.runs.get(run_id)
            earlier = live.notebook if live else await self.store.notebook_of(run_id)
            if earlier is None:
                continue
            if earlier != file and earlier.startswith(root):
                if not await asyncio.to_thread(os.path.lexists, earlier):
                    self.log.info("Notebook %s was moved outside Jupyter to %s", earlier, file)
                    self._move(earlier[len(root) :], path)
            return

    def _move(self, old: str, new: str) -> None:
        """The runs and threads of notebook (or folder) `old` go to `new` (API paths)."""

        def moved(path: str) -> str | None:
            if path == old or path.startswith(f"{old}/"):
                return new + path[len(old) :]
            return None

        for path in list(self.conversations):
            if (destination := moved(path)) is not None:
                self.conversations[destination] = self.conversations.pop(path)
        for path in list(self.allowed_tools):
            if (destination := moved(path)) is not None:
                self.allowed_tools[destination] = self.allowed_tools.pop(path)
        for run in self.runs.values():
            if destination := moved(run.request.path):
                run.request.path = run.writer.path = destination
                run.notebook = self.notebook_file(destination)
        self.store.rename(self.notebook_file(old), self.notebook_file(new), old, new)

    async def mark_interrupted_in_notebooks(self) -> None:
        """The notebooks of this root whose runs an earlier server left active (killed) say
        so in their record of the run, which said "running"."""
        for run_id, notebook in self.store.interrupted:
            if notebook.startswith(self.root):
                async with self.saves.turn(notebook[len(self.root) :]):
                    await asyncio.to_thread(mark_interrupted, notebook, run_id, self.log)

    async def close(self) -> None:
        """At server shutdown: every run stops, and what it wrote is saved."""
        await asyncio.gather(
            *(
                run.stop("the server shut down while the run was working", "interrupted")
                for run in self.runs.values()
                if run.active
            ),
            return_exceptions=True,
        )
        await asyncio.to_thread(self.store.close)
        await asyncio.to_thread(self.observers.close)


def run_ids_in(notebook: str) -> list[str]:
    """The runs a notebook file names, in its record and its cells' provenance, in the order
    they appear; none for a file that is not a readable notebook."""
    try:
        with open(notebook, encoding="utf-8") as file:
            nb = json.load(file)
        records = nb.get("metadata", {}).get(METADATA_KEY, {}).get("runs", [])
        cells = [cell.get("metadata", {}).get(METADATA_KEY, {}) for cell in nb.get("cells", [])]
        named = [record.get("run_id") for record in records] + [c.get("run_id") for c in cells]
    except (OSError, ValueError, AttributeError, TypeError, RecursionError):
        return []
    return list(dict.fromkeys(run_id for run_id in named if isinstance(run_id, str)))


def mark_interrupted(notebook: str, run_id: str, log: logging.Logger) -> None:
    """Marks the run's record in the notebook file interrupted, where it says "running". The
    file is read and written here, not through the contents manager, whose worker threads would
    keep a server told to stop while it started from ever exiting."""
    try:
        nb = nbformat.read(notebook, as_version=nbformat.NO_CONVERT)
        records = nb.metadata.get(METADATA_KEY, {}).get("runs", [])
        record = next((r for r in records if r.get("run_id") == run_id), None)
        if record is None or record.get("state") != "running":
            return
        record.update(state="interrupted", success=False, reason="interrupted")
        with atomic_writing(notebook, encoding="utf-8") as file:
            nbformat.write(nb, file, version=nbformat.NO_CONVERT)
    except Exception as error:  # gone, moved, unreadable: its record stays as it was
        log.info("Run %s's notebook %s was left as it is: %s", run_id, notebook, error)
