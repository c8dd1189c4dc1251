"""What an MCP client is told to connect to this server, and a stdio bridge for clients that only
launch MCP servers as commands: it serves over stdin/stdout and forwards each request to the
server's streamable-HTTP endpoint, under the outside agent's own name (so the panel names it)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp_types import (
    CallToolRequestParams,
    CallToolResult,
    Implementation,
    ListToolsResult,
    PaginatedRequestParams,
)

SERVER_NAME = "jupyter-notebook-agent"
INSTRUCTIONS = """\
Work in the person's Jupyter notebooks. read_notebook shows a notebook's cells (with their ids
and outputs) and its kernel's variables. add_cell and edit_cell write cells that appear in the
open notebook as proposals the person accepts or rejects; code cells run in the notebook's
sandboxed kernel and their outputs come back. execute_code runs code without adding a cell.
Call end_session when you are done with a notebook."""
"""What the endpoint tells an outside agent of its tools (and the bridge, in its stead)."""
TOKEN_VARIABLE = "JUPYTER_TOKEN"
"""Where the bridge finds the server's token: an environment variable, not an argument that
any process on the machine could read."""


def endpoint(server_url: str) -> str:
    """The MCP endpoint of a Jupyter server, from its URL (base URL included)."""
    return server_url.rstrip("/") + "/notebook-agent/mcp"


def client_config(url: str, token: str, bridge_command: list[str]) -> dict[str, Any]:
    """The entries MCP clients take: streamable HTTP with its auth header, and the stdio bridge
    (the token in its environment)."""
    headers = {"Authorization": f"token {token}"} if token else {}
    bridge_env = {TOKEN_VARIABLE: token} if token else {}
    return {
        "mcpServers": {
            SERVER_NAME: {"type": "http", "url": url, "headers": headers},
            f"{SERVER_NAME}-stdio": {
                "command": bridge_command[0],
                "args": [*bridge_command[1:], "mcp-bridge", "--url", url],
                "env": bridge_env,
            },
        }
    }


class Bridge:
    """Forwards the tools of the HTTP endpoint; its connection opens with the first request, as
    the outside agent's name is known by then, and is held by a task of its own (the SDK's
    connection must close in the task that opened it)."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self._connected: asyncio.Future[Client] | None = None
        self._holder: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    async def upstream(self, client: Implementation | None) -> Client:
        """The connection, opened now if there is none (or the last one failed or closed: the
        server may have restarted)."""
        if self._connected is None or (self._holder is not None and self._holder.done()):
            self._closing = asyncio.Event()
            self._connected = asyncio.get_running_loop().create_future()
            self._holder = asyncio.create_task(self._hold(client, self._connected, self._closing))
        return await asyncio.shield(self._connected)

    async def _hold(
        self,
        client: Implementation | None,
        connected: asyncio.Future[Client],
        closing: asyncio.Event,
    ) -> None:
        headers = {"Authorization": f"token {self.token}"} if self.token else {}
        try:
            async with Client(
                streamable_http_client(
                    self.url, http_client=httpx2.AsyncClient(headers=headers, timeout=None)
                ),
                client_info=client or Implementation(name="an MCP client", version="0"),
            ) as upstream:
                connected.set_result(upstream)
                await closing.wait()
        except Exception as error:
            if not connected.done():
                connected.set_exception(error)

    async def list_tools(self, ctx: Any, params: PaginatedRequestParams | None) -> ListToolsResult:
        upstream = await self.upstream(_client_info(ctx))
        return await upstream.list_tools()

    async def call_tool(self, ctx: Any, params: CallToolRequestParams) -> CallToolResult:
        upstream = await self.upstream(_client_info(ctx))
        return await upstream.call_tool(params.name, params.arguments or {})

    async def serve_stdio(self) -> None:
        server = Server(
            SERVER_NAME,
            instructions=INSTRUCTIONS,
            on_list_tools=self.list_tools,
            on_call_tool=self.call_tool,
        )
        try:
            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())
        finally:
            self._closing.set()
            if self._holder:
                await self._holder


def _client_info(ctx: Any) -> Implementation | None:
    params = ctx.session.client_params
    return params.client_info if params else None


def bridge_token() -> str:
    return os.environ.get(TOKEN_VARIABLE, "")
