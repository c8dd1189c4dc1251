"""Starting a run, whoever asks: the panel over REST, or an outside agent over MCP. Each start
reads the notebook as saved, finds the kernel it runs in and the model, and holds it to the
server's limits, the same way."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from jupyter_core.utils import ensure_async

from ..agent import AgentConfig
from ..kernels.gateway import explain
from ..llm import Model, ModelError
from ..mcp.client import McpServerConfig
from ..sandbox import KernelChoice, SandboxUnavailable, choose_kernel
from .runs import Run, RunError, RunRegistry, RunRequest

if TYPE_CHECKING:
    from .app import NotebookAgent


class RunStarter:
    def __init__(self, app: NotebookAgent) -> None:
        self.app = app

    @property
    def registry(self) -> RunRegistry:
        return self.app.registry

    async def start(
        self, request: RunRequest, model: Model | str = "", with_mcp_servers: bool = True
    ) -> Run:
        """Starts a run on the notebook as saved (`model`: one made already, or the name of one
        to make; "" for the server's). `with_mcp_servers`: whether the model is offered the
        tools of the person's MCP servers (an outside agent brings its own). RunError for what
        stands in the way: another run working there (409), the limits, a notebook that cannot
        be read, no kernel or model."""
        self.registry.check_free(request.path)
        self.registry.check_capacity(request.user)
        await self.registry.load_conversation(request.path)
        await self.registry.load_allowed_tools(request.path)
        notebook = await self.registry.read_notebook(request.path)  # said before the kernel
        kernel_name = await self.notebook_kernel(request.path)
        chosen = await self.model(model) if isinstance(model, str) else model
        servers = self.app.mcp_server_configs + request.mcp_servers if with_mcp_servers else ()
        config = self.agent_config(request.execution, request.max_steps, servers)
        return self.registry.create(request, notebook, chosen, kernel_name, config)

    async def choose_kernel(self) -> KernelChoice:
        """The kernel a run gets now; SandboxUnavailable says why there is none. On a gateway,
        from the gateway's kernelspecs."""
        app = self.app
        try:
            specs = await ensure_async(app.serverapp.kernel_spec_manager.get_all_specs())
        except Exception as error:
            if not app.gateway_url:
                raise
            raise SandboxUnavailable(str(explain(error, "listing its kernelspecs"))) from error
        return await asyncio.to_thread(
            choose_kernel, app.kernel_name or None, app.allow_unsandboxed, specs, app.gateway_url
        )

    async def notebook_kernel(self, path: str) -> str:
        """The kernelspec a run on the notebook executes in: its session's kernel (see
        RunRegistry.check_kernel), or the kernel a new session gets (503 where there is none
        to be had)."""
        session = await self.registry.notebook_session(path)
        if session is not None:
            return await self.registry.check_kernel(session)
        try:
            return (await self.choose_kernel()).name
        except SandboxUnavailable as error:
            raise RunError(503, str(error)) from None

    def agent_config(
        self,
        execution: str,
        max_steps: int,
        mcp_servers: tuple[McpServerConfig, ...] | None = None,
    ) -> AgentConfig:
        """A run's limits; `mcp_servers`: those whose tools it is offered (None: the server's
        configuration's)."""
        app = self.app
        return AgentConfig(
            max_steps=max_steps,
            time_limit_s=app.time_limit,
            execution_timeout_s=app.execution_timeout,
            execution=execution,  # type: ignore[arg-type]
            output_limits=app.output_limits,
            mcp_servers=app.mcp_server_configs if mcp_servers is None else mcp_servers,
        )

    async def model(self, name: str = "") -> Model:
        """The model a run gets; RunError 400 for a bad `name`, 503 where there is none."""
        try:
            return await self.app.make_model(name)
        except ModelError as error:
            raise RunError(400 if name else 503, str(error)) from None
