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
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from jupyter_core.utils import ensure_async
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from ..agent.variables import kernel_variables
from ..kernels.gateway import connected_session
from ..notebook import NotebookDocument
from ..notebook.outputs import digest
from .outside_agent import OutsideAgent, SessionEnded
from .runs import Run, RunError, RunRequest

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from .app import NotebookAgent

INSTRUCTIONS = """\
Work in the person's Jupyter notebooks. read_notebook shows a notebook's cells (with their ids
and outputs) and its kernel's variables. add_cell and edit_cell write cells that appear in the
open notebook as proposals the person accepts or rejects; code cells run in the notebook's
sandboxed kernel and their outputs come back. execute_code runs code without adding a cell.
Call end_session when you are done with a notebook."""

OUTPUT_CHARS = 4_000
"""Characters of one output an outside agent reads at most (head and tail kept)."""

USER_KEY = "jupyter_notebook_agent.user"
"""Where the ASGI scope carries the Jupyter user the request was authenticated as."""


class NotebookMcp:
    """The MCP server of this Jupyter server: its tools, and its outside agents' sessions."""

    def __init__(self, app: NotebookAgent, idle_s: float, max_calls: int) -> None:
        self.app = app
        self.idle_s = idle_s
        self.max_calls = max_calls
        self.sessions: dict[tuple[str, str], tuple[Run, OutsideAgent]] = {}
        """Each outside agent's run, by notebook path and client name, while it is active."""
        self.stopped: dict[tuple[str, str], float] = {}
        """Until when (loop time) an outside agent the person stopped is refused in a notebook:
        a stop would mean little if its next call started it again."""
        self.server = MCPServer(
            "jupyter-notebook-agent", instructions=INSTRUCTIONS, log_level="WARNING"
        )
        self._add_tools()
        self.server.streamable_http_app(streamable_http_path="/", session_idle_timeout=idle_s)
        self._stopped = asyncio.Event()
        self._serving: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def _started(self) -> None:
        """Runs the SDK's session manager, from the first request until `stop`: its task group
        lives in one task of its own."""
        if self._serving is None:
            ready = asyncio.Event()

            async def serve() -> None:
                async with self.server.session_manager.run():
                    ready.set()
                    await self._stopped.wait()

            self._serving = asyncio.create_task(serve())
            self._ready = ready
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
        open_paths = {registry.api_path(s["path"]) for s in sessions if s["type"] == "notebook"}
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
            found = [c["path"] for c in listing["content"] if c["type"] == "notebook"]
            paths |= {registry.api_path(path) for path in found}
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
        key = (self._notebook_path(path), client_name(ctx))
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
        agent = await self._session(path, client_name(ctx), request_user(ctx))
        try:
            return await agent.call(name, arguments)
        except SessionEnded as ended:
            raise ToolError(f"your session in {path} is over: {ended}") from None

    async def _session(self, path: str, client: str, user: str) -> OutsideAgent:
        key = (path, client)
        refused_for = self.stopped.get(key, 0) - asyncio.get_running_loop().time()
        if refused_for > 0:
            raise ToolError(
                f"the person stopped your session in {path}: your calls there are refused for "
                f"{refused_for / 60:.0f} more minutes"
            )
        if key in self.sessions:
            run, agent = self.sessions[key]
            if run.active and not agent.ended:
                return agent
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
        run.events.subscribe(self._forget_when_over(key))
        self.sessions[key] = (run, agent)
        return agent

    def _forget_when_over(self, key: tuple[str, str]) -> Callable[[dict[str, Any]], None]:
        def heard(event: dict[str, Any]) -> None:
            if event["type"] == "run_finished":
                self.sessions.pop(key, None)
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
            kernel = await connected_session(
                registry.kernels.get_kernel(session["kernel"]["id"]),
                session["kernel"]["name"],
                gateway=bool(registry.gateway),
                shared=True,
            )
        except (RunError, RuntimeError, OSError) as error:
            return f"(the kernel's variables cannot be read: {error})"
        try:
            return await kernel_variables(kernel)
        except (RuntimeError, TimeoutError) as error:
            return f"(the kernel's variables could not be read: {error})"
        finally:
            with contextlib.suppress(Exception):
                await kernel.shutdown()  # a shared kernel: only our channels close


def client_name(ctx: Context) -> str:
    """The outside agent's name, as its MCP client gives it."""
    params = ctx.session.client_params
    info = params.client_info if params else None
    return (info.name if info and info.name else "an MCP client")[:80]


def request_user(ctx: Context) -> str:
    request = ctx.request_context.request
    scope = getattr(request, "scope", None) or {}
    return str(scope.get(USER_KEY, ""))
