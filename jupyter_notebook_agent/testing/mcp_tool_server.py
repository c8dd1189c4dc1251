"""A small MCP tool server, built with the SDK, for the tests of the agent as an MCP client:
tools that answer (`add`), take their time (`sleep`), fail (`fail`), tell a digest of an
environment variable (`env_digest`: the value reaches the server, and never the agent's
records), draw (`picture`), say a lot (`echo`) and end the server as a crash would (`crash`).

`python -m jupyter_notebook_agent.testing.mcp_tool_server` serves it over stdio;
`... --http PORT` over streamable HTTP on 127.0.0.1, where, with $MCP_TOOL_SERVER_TOKEN set,
each request must carry it as a bearer token (else 401): headers reach the server too.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from typing import Any

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Image
from mcp.server.mcpserver.exceptions import ToolError

#: The environment variable whose value HTTP requests must carry as a bearer token.
TOKEN_VARIABLE = "MCP_TOOL_SERVER_TOKEN"
#: A PNG of 2 by 3 pixels, as its header says: enough to be named by type and size.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000020000000308060000009d74660a")

server = MCPServer("test-tools", instructions="Tools for the tests of the notebook agent.")


@server.tool()
def add(a: int, b: int) -> int:
    """Adds two whole numbers."""
    return a + b


@server.tool()
async def sleep(seconds: float) -> str:
    """Waits `seconds`, then says so."""
    await anyio.sleep(seconds)
    return f"slept {seconds:g} s"


@server.tool()
def fail(message: str) -> str:
    """Fails with `message`."""
    raise ToolError(message)


@server.tool()
def env_digest(name: str) -> str:
    """The first 12 hex digits of the SHA-256 of environment variable `name`, or "unset"."""
    value = os.environ.get(name)
    return "unset" if value is None else hashlib.sha256(value.encode()).hexdigest()[:12]


@server.tool()
def picture() -> Image:
    """A tiny PNG image."""
    return Image(data=PNG, format="png")


@server.tool()
def echo(text: str, times: int = 1) -> str:
    """`text`, `times` times over."""
    return text * times


@server.tool()
def crash() -> str:
    """Ends the server's process at once, without an answer."""
    os._exit(1)


def with_bearer_token(app: Any, token: str) -> Any:
    """The ASGI app, answering 401 to an HTTP request without `Authorization: Bearer token`."""
    expected = f"Bearer {token}".encode()

    async def checked(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != expected:
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b"unauthorized"})
            return
        await app(scope, receive, send)

    return checked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http", type=int, metavar="PORT", help="serve HTTP on 127.0.0.1:PORT")
    args = parser.parse_args()
    if args.http is None:
        server.run()
        return
    import uvicorn

    app: Any = server.streamable_http_app()
    if token := os.environ.get(TOKEN_VARIABLE):
        app = with_bearer_token(app, token)
    uvicorn.run(app, host="127.0.0.1", port=args.http, log_level="warning")


if __name__ == "__main__":
    main()
