"""The agent as a client of the person's MCP servers: their configuration, and the toolbox that
offers their tools, against our own tool server built with the SDK."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp_types import (
    BlobResourceContents,
    CallToolResult,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
)

from jupyter_notebook_agent.mcp.client import (
    TOOL_NAME,
    McpConfigError,
    McpServerConfig,
    McpToolbox,
    digest,
    namespaced,
    parse_servers,
)
from jupyter_notebook_agent.testing import mcp_tool_server

SERVER_SCRIPT = str(Path(mcp_tool_server.__file__))
ENV_SECRET = "env-secret-31415926535"
"""A value the stdio server's environment holds: it reaches the server, and no record."""
HEADER_SECRET = "header-secret-27182818284"
"""The HTTP server's bearer token: it reaches the server, and no record."""


def stdio_server(**settings: Any) -> dict[str, Any]:
    """The settings of our tool server over stdio, as `c.NotebookAgent.mcp_servers` takes them."""
    base = {"command": sys.executable, "args": [SERVER_SCRIPT], "env": {"TOOL_SECRET": ENV_SECRET}}
    return base | settings


# The configuration.


@pytest.mark.parametrize(
    ("name", "settings", "message"),
    [
        ("a__b", {"command": "x"}, "the MCP server name 'a__b' must be letters, digits and"),
        ("tools", ["x"], "MCP server 'tools': its settings must be an object, not list"),
        ("tools", {}, "MCP server 'tools': give either 'command' (stdio) or 'url' (HTTP)"),
        ("tools", {"command": "x", "url": "http://h"}, "give either 'command' (stdio) or 'url'"),
        (
            "tools",
            {"comand": "x"},
            "MCP server 'tools': unknown field 'comand' (the fields: approval, args",
        ),
        ("tools", {"url": "ftp://h"}, "'url' must be an http:// or https:// URL"),
        ("tools", {"url": "http://h", "env": {}}, "'env' is for a 'command', not a 'url'"),
        ("tools", {"command": "x", "headers": {}}, "'headers' is for a 'url', not a 'command'"),
        ("tools", {"command": "x", "args": "-v"}, "'args' must be a list of strings, not str"),
        ("tools", {"command": "x", "env": {"A": 1}}, "'env' must be an object of strings, not"),
        (
            "tools",
            {"command": "x", "approval": "sometimes"},
            "MCP server 'tools': 'approval' must be 'ask' or 'allow', not str",
        ),
        (
            "tools",
            {"command": "x", "tools": {"add": "maybe"}},
            "'tools' must be an object of tool names to 'ask' or 'allow' or 'deny', not dict",
        ),
        ("tools", {"command": "x", "timeout": 0}, "'timeout' must be a number of seconds above 0"),
        ("tools", {"command": "x", "connect_timeout": True}, "'connect_timeout' must be a number"),
    ],
)
def test_a_mistake_in_the_configuration_names_the_server_and_the_field(name, settings, message):
    with pytest.raises(McpConfigError) as raised:
        parse_servers({name: settings})
    assert message in str(raised.value)


def test_a_configuration_is_read_and_its_secrets_are_not_shown():
    stdio, web = parse_servers(
        {
            "tools": stdio_server(approval="allow", tools={"fail": "deny"}, timeout=5),
            "web": {
                "url": "https://h/mcp",
                "headers": {"Authorization": f"Bearer {HEADER_SECRET}"},
            },
        }
    )
    assert (stdio.command, stdio.args, stdio.timeout_s) == (sys.executable, (SERVER_SCRIPT,), 5)
    assert (stdio.policy("add"), stdio.policy("fail"), web.policy("add")) == (
        "allow",
        "deny",
        "ask",
    )
    assert ENV_SECRET not in repr(stdio) and HEADER_SECRET not in repr(web)
    assert web.hide_secrets(f"refused Bearer {HEADER_SECRET}!") == "refused ***!"


# The toolbox.


def test_names_fit_openai_and_stay_apart():
    assert namespaced("tools", "add", {}) == "tools__add"
    odd = namespaced("tools", "files.read file", {})
    assert odd == "tools__files_read_file"
    taken = namespaced("tools", "files_read file", {odd: None})
    long = namespaced("tools", "x" * 100, {})
    assert taken != odd and long != namespaced("tools", "x" * 99, {})
    assert all(TOOL_NAME.fullmatch(name) for name in (odd, taken, long))


async def test_tools_are_offered_by_server_with_descriptions_in_budget(jp_asyncio_loop):
    servers = parse_servers({"tools": stdio_server(tools={"crash": "deny"})})
    toolbox = McpToolbox(servers, description_chars=60, descriptions_chars=270)
    toolbox.open()
    try:
        assert await toolbox.connected() == []
        offered = {schema["function"]["name"]: schema["function"] for schema in toolbox.schemas}
    finally:
        await toolbox.close()
    names = ["add", "sleep", "fail", "env_digest", "picture", "echo"]  # crash: denied
    assert list(offered) == [f"tools__{name}" for name in names]
    descriptions = {name: function["description"] for name, function in offered.items()}
    assert descriptions["tools__add"] == "[MCP server tools] Adds two whole numbers."
    # The longest description gets what the shorter ones, whole, leave of the budget.
    cut = descriptions.pop("tools__env_digest")
    assert cut.endswith("…") and len(cut) == 57
    assert not any(d.endswith("…") for d in descriptions.values())
    assert len(cut) + sum(map(len, descriptions.values())) == 270
    assert offered["tools__add"]["parameters"]["required"] == ["a", "b"]


def test_a_result_is_digested_as_the_model_reads_it():
    server = McpServerConfig("tools", command="x", env={"KEY": ENV_SECRET})
    png = base64.b64encode(mcp_tool_server.PNG).decode()
    picture = ImageContent(data=png, mime_type="image/png")
    blob = BlobResourceContents(uri="file:///a.bin", mime_type="application/zip", blob="AAAA")
    mixed = CallToolResult(
        content=[
            TextContent(text=f"line one, then the key {ENV_SECRET}"),
            picture,
            ResourceLink(uri="file:///b.csv", name="b", mime_type="text/csv"),
            EmbeddedResource(resource=blob),
        ]
    )
    assert digest(mixed, 1000, server) == {
        "status": "ok",
        "content": "line one, then the key ***\n[image image/png, 33 bytes, 2x3 pixels]\n"
        "[resource link file:///b.csv text/csv]\n[resource file:///a.bin application/zip, "
        "3 bytes]",
    }
    said_twice = CallToolResult(content=[TextContent(text="5")], structured_content={"result": 5})
    assert digest(said_twice, 1000, server) == {"status": "ok", "content": "5"}
    table = {"rows": [{"x": i} for i in range(100)]}
    both = CallToolResult(content=[TextContent(text="a table")], structured_content=table)
    cut = digest(both, 400, server)
    assert cut["content"] == "a table" and "characters cut" in cut["structured"]
    assert len(json.dumps(cut)) < 500
    failed = CallToolResult(content=[TextContent(text="no such file")], is_error=True)
    assert digest(failed, 1000, server) == {"status": "error", "error": "no such file"}
