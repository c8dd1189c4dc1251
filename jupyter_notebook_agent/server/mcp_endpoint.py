"""This server as an MCP server: the notebook surface for outside agents, at
`{base_url}notebook-agent/mcp`, over streamable HTTP, behind the Jupyter server's own auth.

Reading (the notebooks, a notebook's cells and outputs, its kernel's variables) happens at once.
Writing and running (adding or editing a cell, executing code) happens in a run of the outside
agent's own, one per agent and notebook, started by its first such call: its cells appear in the
open notebook as proposals, its code runs in the notebook's sandboxed kernel, and the person
reviews it in the panel and can stop it, as any run (see outside_agent.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from jupyter_core.utils import ensure_async
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import Field

from ..agent.variables import kernel_variables
from ..mcp.bridge import INSTRUCTIONS
from ..notebook import NotebookDocument
from ..notebook.outputs import digest
from .outside_agent import OutsideAgent, SessionEnded
from .runs import Run, RunError, RunRegistry, RunRequest

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from .app import NotebookAgent

OUTPUT_CHARS = 4_000
"""Characters of one output an outside agent reads at most (head and tail kept)."""

USER_KEY = "jupyter_notebook_agent.user"
"""Where the ASGI scope carries the Jupyter user the request was authenticated as."""

SessionKey = tuple[str, str, str]
"""An outside agent's session: the notebook's path, the Jupyter user, the client's name."""


class NotebookMcp:
    """The MCP server of this Jupyter server: its tools, and its outside agents' sessions."""

    def __init__(self, app: NotebookAgent, idle_s: float, max_calls: int) -> None:
        self.app = app
        self.idle_s = idle_s
        self.max_calls = max_calls
        self.sessions: dict[SessionKey, tuple[Run, OutsideAgent]] = {}
        """Each outside agent's run, by notebook, user and client name, while it is active."""
        self._starting: dict[SessionKey, asyncio.Lock] = {}
        """One start at a time per session: an agent's calls may come at once."""
        self.stopped: dict[SessionKey, float] = {}
        """Until when (loop time) an outside agent the person stopped is refused in a notebook:
        a stop would mean little if its next call started it again."""
        root = logging.getLogger()
        kept = root.handlers[:], root.level
        self.server = MCPServer(
            "jupyter-notebook-agent", instructions=INSTRUCTIONS, log_level="WARNING"
        )
        root.handlers[:], root.level = kept  # the SDK set up the process's logging: undone
        self._add_tools()
        self.server.streamable_http_app(
            streamable_http_path="/",
            session_idle_timeout=idle_s,
            # The Jupyter server checks the Host and the Origin itself (and who asks): the SDK's
            # own check would refuse every host but localhost, a hub's and a proxy's too.
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self._stopped = asyncio.Event()
        self._serving: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def _started(self) -> None:
        """Runs the SDK's session manager, from the first request until `stop`: its task group
        lives in one task of its own."""
        if self._serving is None:

            async def serve() -> None:
                async with self.server.session_manager.run():
                    self._ready.set()
                    await self._stopped.wait()

            self._serving = asyncio.create_task(serve())
        await self._ready.wait()

    async def stop(self) -> None:
        for run, agent in list(self.sessions.values()):
            agent.end("the server is shutting down")
            if run.active:
                await run.stop("the server shut down", reason="interrupted")
        self._stopped.set()
        if self._serving:
            await self._serving

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._started()
        await self.server.session_manager.handle_request(scope, receive, send)

    # The tools.

    def _add_tools(self) -> None:
        tool = self.server.tool
        tool(description="The notebooks open in JupyterLab, and those in a folder.")(
            self.list_notebooks
        )
        tool(description="A notebook's cells (ids, sources, output digests) and its variables.")(
            self.read_notebook
        )
        tool(description="A cell's outputs, as digests.")(self.get_cell_outputs)
        tool(
            description="Add a cell, proposed in the open notebook; a code cell runs in the "
            "notebook's sandboxed kernel and its outputs come back. Returns the cell's id."
        )(self.add_cell)
        tool(description="Replace the source of a cell you added, and run it again.")(
            self.edit_cell
        )
        tool(description="Run code in the notebook's sandboxed kernel without adding a cell.")(
            self.execute_code
        )
        tool(description="End your session in a notebook, with a short summary for the person.")(
            self.end_session
        )

    async def list_notebooks(
        self, folder: Annotated[str, Field(description="A folder to list as well")] = ""
    ) -> dict[str, Any]:
        registry = self.app.registry
        sessions = await ensure_async(registry.sessions.list_sessions())
        open_paths = set(
            _spelled(registry, [s["path"] for s in sessions if s["type"] == "notebook"])
        )
        paths = set(open_paths)
        if folder:
            try:
                listing = await ensure_async(
                    registry.contents.get(registry.api_path(folder), content=True)
                )
            except Exception as error:
                raise ToolError(f"the folder {folder!r} cannot be listed: {error}") from None
            if listing["type"] != "directory":
                raise ToolError(f"{folder!r} is not a folder")
            paths |= set(
                _spelled(
                    registry, [c["path"] for c in listing["content"] if c["type"] == "notebook"]
                )
            )
        return {
            "notebooks": [
                {"path": path, "open": path in open_paths, "active_run": self._active(path)}
                for path in sorted(paths)
            ]
        }

    async def read_notebook(self, path: str) -> dict[str, Any]:
        path = self._notebook_path(path)
        document = await self._document(path)
        return {
            "path": path,
            "cells": document.summary(output_chars=OUTPUT_CHARS // 4),
            "variables": await self._variables(path),
            "active_run": self._active(path),
        }

    async def get_cell_outputs(self, path: str, cell_id: str) -> dict[str, Any]:
        document = await self._document(self._notebook_path(path))
        if not document.has(cell_id):
            raise ToolError(f"{path} has no cell {cell_id!r}")
        cell = document.cell(cell_id)
        outputs = digest(cell.get("outputs", []), OUTPUT_CHARS)
        return {"cell_id": cell_id, "outputs": outputs}

    async def add_cell(
        self,
        path: str,
        source: Annotated[str, Field(description="The cell's whole Python code, or markdown")],
        ctx: Context,
        cell_type: Literal["code", "markdown"] = "code",
        after_cell_id: Annotated[
            str | None, Field(description="The cell to insert it after (else at the end)")
        ] = None,
    ) -> dict[str, Any]:
        arguments: dict[str, Any] = {"cell_type": cell_type, "source": source}
        if after_cell_id:
            arguments["after_cell_id"] = after_cell_id
        return await self._in_run(ctx, path, "add_cell", arguments)

    async def edit_cell(self, path: str, cell_id: str, source: str, ctx: Context) -> dict[str, Any]:
        return await self._in_run(ctx, path, "edit_cell", {"cell_id": cell_id, "source": source})

    async def execute_code(self, path: str, code: str, ctx: Context) -> dict[str, Any]:
        return await self._in_run(ctx, path, "execute_code", {"code": code})

    async def end_session(self, path: str, summary: str, ctx: Context) -> dict[str, Any]:
        key = (self._notebook_path(path), request_user(ctx), client_name(ctx))
        if key not in self.sessions:
            raise ToolError(f"you have no session in {path}")
        arguments = {"success": True, "summary": summary}
        return await self._in_run(ctx, path, "complete_task", arguments)

    # Sessions.

    async def _in_run(
        self, ctx: Context, path: str, name: str, arguments: dict[str, Any]
    ) -> dict[str, Any]:
        """Carries out the call in the caller's run on the notebook, started by its first."""
        path = self._notebook_path(path)
        key = (path, request_user(ctx), client_name(ctx))
        async with self._starting.setdefault(key, asyncio.Lock()):
            run, agent = await self._session(key)
        call = asyncio.ensure_future(agent.call(name, arguments))
        try:
            await asyncio.wait([call, run.task], return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not call.done():  # the run ended some other way, or this call was cancelled
                call.cancel()
        if call.cancelled():
            raise ToolError(f"your session in {path} ended before the call was carried out")
        try:
            return call.result()
        except SessionEnded as ended:
            raise ToolError(f"your session in {path} is over: {ended}") from None

    async def _session(self, key: SessionKey) -> tuple[Run, OutsideAgent]:
        path, user, client = key
        if key in self.stopped:
            refused_for = self.stopped[key] - asyncio.get_running_loop().time()
            if refused_for > 0:
                raise ToolError(
                    f"the person stopped your session in {path}: your calls there are refused "
                    f"for {refused_for / 60:.0f} more minutes"
                )
            del self.stopped[key]
        if key in self.sessions:
            run, agent = self.sessions[key]
            if run.active and not agent.ended:
                return run, agent
            del self.sessions[key]
        agent = OutsideAgent(client, self.idle_s)
        request = RunRequest(
            path,
            f"{client} works in this notebook (an outside agent, over MCP).",
            self.app.execution,  # type: ignore[arg-type]
            self.max_calls,
            user=user,
        )
        try:
            run = await self.app.starter.start(request, agent, with_mcp_servers=False)
        except RunError as error:
            raise ToolError(f"no session could start in {path}: {error}") from None
        run.events.subscribe(agent.heard)
        run.events.subscribe(self._forget_when_over(key, run))
        self.sessions[key] = (run, agent)
        return run, agent

    def _forget_when_over(self, key: SessionKey, run: Run) -> Callable[[dict[str, Any]], None]:
        def heard(event: dict[str, Any]) -> None:
            if event["type"] == "run_finished":
                if self.sessions.get(key, (None,))[0] is run:
                    del self.sessions[key]
                if event["reason"] == "stopped":
                    self.stopped[key] = asyncio.get_running_loop().time() + self.idle_s

        return heard

    def _active(self, path: str) -> dict[str, Any] | None:
        for run in self.app.registry.for_path(path):
            if run.active:
                return {"run_id": run.id, "model": run.agent.model.name}
        return None

    def _notebook_path(self, path: str) -> str:
        try:
            path = self.app.registry.api_path(path)
        except RunError as error:
            raise ToolError(str(error)) from None
        if not path.endswith(".ipynb"):
            raise ToolError(f"{path!r} is not a notebook (an .ipynb file)")
        return path

    async def _document(self, path: str) -> NotebookDocument:
        """The notebook as its active run holds it (proposals and all), else as saved."""
        for run in self.app.registry.for_path(path):
            if run.active:
                return run.agent.notebook
        try:
            return NotebookDocument(await self.app.registry.read_notebook(path))
        except RunError as error:
            raise ToolError(str(error)) from None

    async def _variables(self, path: str) -> str | None:
        """What the notebook's kernel holds, where it has one that code may run in (a
        sandbox, or any where the person allowed unsandboxed kernels); None where it has none."""
        registry = self.app.registry
        session = await registry.notebook_session(path)
        if session is None:
            return None
        try:
            await registry.check_kernel(session)
            kernel = await registry.connect_notebook_kernel(session)
        except (RunError, RuntimeError, OSError) as error:
            return f"(the kernel's variables cannot be read: {error})"
        try:
            return await kernel_variables(kernel)
        except (RuntimeError, TimeoutError) as error:
            return f"(the kernel's variables could not be read: {error})"
        finally:
            with contextlib.suppress(Exception):
                await kernel.shutdown()  # a shared kernel: only our channels close


def _spelled(registry: RunRegistry, paths: list[str]) -> list[str]:
    """The paths' one spelling each; those outside the root (a link out of it) left out."""
    spelled = []
    for path in paths:
        with contextlib.suppress(RunError):
            spelled.append(registry.api_path(path))
    return spelled


def client_name(ctx: Context) -> str:
    """The outside agent's name, as its MCP client gives it."""
    params = ctx.session.client_params
    info = params.client_info if params else None
    return (info.name if info and info.name else "an MCP client")[:80]


def request_user(ctx: Context) -> str:
    request = ctx.request_context.request
    scope = getattr(request, "scope", None) or {}
    return str(scope.get(USER_KEY, ""))
