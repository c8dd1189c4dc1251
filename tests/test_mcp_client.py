"""The agent as a client of the person's MCP servers: our own tool server, built with the SDK,
over stdio and streamable HTTP; the model replayed; the person's approval asked, given, denied
and remembered; servers down, slow, failing and gone; secrets kept out of every record."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.auth import Authorizer
from mcp_types import (
    BlobResourceContents,
    CallToolResult,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
)

from jupyter_notebook_agent.agent import Agent, AgentConfig, EventLog
from jupyter_notebook_agent.agent.approval import ToolPermissions
from jupyter_notebook_agent.agent.transcript import TranscriptWriter
from jupyter_notebook_agent.llm.replay import ReplayModel
from jupyter_notebook_agent.mcp.client import (
    TOOL_NAME,
    McpConfigError,
    McpServerConfig,
    McpToolbox,
    digest,
    namespaced,
    parse_servers,
)
from jupyter_notebook_agent.notebook import NotebookDocument
from jupyter_notebook_agent.testing import mcp_tool_server

from .agent_api import receive_until
from .conftest import LOCAL, add_cell_turn, complete, free_port, runs_server_config, tool, turn
from .test_server_runs import make_notebook, read

SERVER_SCRIPT = str(Path(mcp_tool_server.__file__))
ENV_SECRET = "env-secret-31415926535"
"""A value the stdio server's environment holds: it reaches the server, and no record."""
HEADER_SECRET = "header-secret-27182818284"
"""The HTTP server's bearer token: it reaches the server, and no record."""


def stdio_server(**settings: Any) -> dict[str, Any]:
    """The settings of our tool server over stdio, as `c.NotebookAgent.mcp_servers` takes them."""
    base = {"command": sys.executable, "args": [SERVER_SCRIPT], "env": {"TOOL_SECRET": ENV_SECRET}}
    return base | settings


def pid_reporting_server(pid_file: Path, *python_args: str, **settings: Any) -> dict[str, Any]:
    """A server run by Python with `python_args` (default: our tool server), started by a shell
    that writes the server's process id first."""
    command = (
        f"echo $$ > {pid_file}; exec {sys.executable} {shlex.join(python_args or [SERVER_SCRIPT])}"
    )
    return {"command": "bash", "args": ["-c", command]} | settings


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie, dead but not reaped yet, does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


@pytest.fixture(scope="module")
def mcp_http_url() -> Iterator[str]:
    """Our tool server over streamable HTTP on 127.0.0.1, asking for HEADER_SECRET as a bearer
    token; its URL."""
    port = free_port()
    environment = os.environ | {mcp_tool_server.TOKEN_VARIABLE: HEADER_SECRET}
    process = subprocess.Popen(
        [sys.executable, SERVER_SCRIPT, "--http", str(port)], env=environment
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "no HTTP server"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(30)


class OfferedTools(ReplayModel):
    """A recording played back, noting the names of the tools each request offered."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.offered: list[list[str]] = []

    async def stream(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> AsyncIterator[Any]:
        self.offered.append([t["function"]["name"] for t in tools])
        async for item in super().stream(messages, tools):
            yield item


def mcp_agent(
    kernel: Any,
    recording: Path,
    servers: dict[str, Any],
    permissions: ToolPermissions | None = None,
) -> Agent:
    return Agent(
        OfferedTools(recording),
        kernel,
        NotebookDocument(),
        config=AgentConfig(mcp_servers=tuple(parse_servers(servers))),
        events=EventLog(),
        permissions=permissions,
    )


def results(agent: Agent) -> list[dict[str, Any]]:
    return [json.loads(m["content"]) for m in agent.messages if m["role"] == "tool"]


def of_type(agent: Agent, kind: str) -> list[dict[str, Any]]:
    return [event for event in agent.events.events if event["type"] == kind]


async def first_event(agent: Agent, kind: str, timeout_s: float = 60) -> dict[str, Any]:
    """The first event of `kind` the run emits (or emitted)."""
    deadline = time.monotonic() + timeout_s
    while not (found := of_type(agent, kind)):
        assert time.monotonic() < deadline, f"no {kind} event"
        await asyncio.sleep(0.02)
    return found[0]


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


# Runs that call the tools.


async def test_a_replayed_model_calls_a_tool_over_stdio(kernel, write_recording, tmp_path):
    """The arguments are checked against the tool's input schema before the server sees them;
    the result comes back as a tool result; the server's process ends with the run."""
    pid_file = tmp_path / "server.pid"
    recording = write_recording(
        turn(tool("tools__add", {"a": "two", "b": 3}, "c1")),
        turn(tool("tools__add", {"a": 2, "b": 3}, "c2")),
        complete(),
    )
    servers = {"tools": pid_reporting_server(pid_file, approval="allow")}
    agent = mcp_agent(kernel, recording, servers)
    outcome = await agent.run("add 2 and 3")
    assert outcome.success, outcome
    mistyped, added, _ = results(agent)
    assert mistyped["status"] == "error"
    assert (
        "the arguments of tools__add do not fit its schema: a: 'two' is not of type"
        in (mistyped["error"])
    )
    assert added == {"status": "ok", "content": "5"}
    first_offer = agent.model.offered[0]
    assert first_offer[:6] == ["add_cell", "edit_cell", "execute_code", "inspect_variable",
                               "restart_kernel", "complete_task"]  # fmt: skip
    assert "tools__add" in first_offer and "tools__crash" in first_offer
    assert not alive(int(pid_file.read_text()))


async def test_a_replayed_model_calls_a_tool_over_http_with_its_headers(
    kernel, write_recording, mcp_http_url
):
    """The header reaches the server (one with another token is refused, and the model told)."""
    recording = write_recording(turn(tool("web__add", {"a": 20, "b": 22})), complete())
    servers = {
        "web": {
            "url": mcp_http_url,
            "headers": {"Authorization": f"Bearer {HEADER_SECRET}"},
            "approval": "allow",
        },
        "web-elsewhere": {"url": mcp_http_url, "headers": {"Authorization": "Bearer not-it"}},
    }
    agent = mcp_agent(kernel, recording, servers)
    outcome = await agent.run("add 20 and 22")
    assert outcome.success, outcome
    assert results(agent)[0] == {"status": "ok", "content": "42"}
    request = agent.messages[1]["content"]
    assert "The MCP server web-elsewhere is unavailable: " in request
    assert not any(name.startswith("web-elsewhere__") for name in agent.model.offered[0])


# The person's approval.


@pytest.mark.parametrize("decision", ["approve", "deny"])
async def test_a_call_waits_for_the_persons_decision(kernel, write_recording, decision):
    recording = write_recording(turn(tool("tools__add", {"a": 2, "b": 3}, "c1")), complete())
    agent = mcp_agent(kernel, recording, {"tools": stdio_server()})
    running = asyncio.ensure_future(agent.run("add 2 and 3"))
    asked = await first_event(agent, "tool_approval_requested")
    assert asked == {
        "seq": asked["seq"],
        "type": "tool_approval_requested",
        "call_id": "c1",
        "server": "tools",
        "tool": "add",
        "arguments": {"a": 2, "b": 3},
    }
    assert not of_type(agent, "tool_result")  # the call waits
    assert not agent.decide_tool_call("c2", "approve")  # no call of that id waits
    assert agent.decide_tool_call("c1", decision)
    outcome = await running
    assert outcome.success, outcome
    assert not agent.decide_tool_call("c1", decision)  # decided already
    decided = of_type(agent, "tool_approval_decided")
    assert [(e["call_id"], e["decision"]) for e in decided] == [("c1", decision)]
    told = results(agent)[0]
    if decision == "approve":
        assert told == {"status": "ok", "content": "5"}
    else:
        assert told == {"status": "denied", "error": "the person did not allow tools__add"}


async def test_always_allows_the_tool_for_the_notebooks_later_runs(kernel, write_recording):
    """Allowed always: the next call of the tool, in this run or a later one with the same
    permissions, runs without asking; another tool of the server still asks."""
    kept: list[str] = []
    permissions = ToolPermissions(keep=kept.append)
    first = write_recording(
        turn(tool("tools__add", {"a": 1, "b": 1}, "c1")),
        turn(tool("tools__add", {"a": 2, "b": 2}, "c2")),
        complete(),
        name="first.json",
    )
    agent = mcp_agent(kernel, first, {"tools": stdio_server()}, permissions)
    running = asyncio.ensure_future(agent.run("add twice"))
    await first_event(agent, "tool_approval_requested")
    agent.decide_tool_call("c1", "always")
    assert (await running).success
    assert [e["call_id"] for e in of_type(agent, "tool_approval_requested")] == ["c1"]
    assert [r["content"] for r in results(agent)[:2]] == ["2", "4"]
    assert kept == ["tools__add"] and permissions.allowed == {"tools__add"}

    later = write_recording(
        turn(tool("tools__add", {"a": 3, "b": 3}, "c3")),
        turn(tool("tools__echo", {"text": "hi"}, "c4")),
        complete(),
        name="later.json",
    )
    agent = mcp_agent(kernel, later, {"tools": stdio_server()}, permissions)
    running = asyncio.ensure_future(agent.run("add again"))
    asked = await first_event(agent, "tool_approval_requested")
    assert (asked["call_id"], asked["tool"]) == ("c4", "echo")
    agent.decide_tool_call("c4", "deny")
    assert (await running).success
    assert results(agent)[0] == {"status": "ok", "content": "6"}


async def test_stopping_the_run_ends_the_wait_and_the_server(kernel, write_recording, tmp_path):
    pid_file = tmp_path / "server.pid"
    recording = write_recording(turn(tool("tools__add", {"a": 2, "b": 3}, "c1")), complete())
    agent = mcp_agent(kernel, recording, {"tools": pid_reporting_server(pid_file)})
    running = asyncio.ensure_future(agent.run("add 2 and 3"))
    await first_event(agent, "tool_approval_requested")
    assert alive(int(pid_file.read_text()))
    agent.stop()
    outcome = await asyncio.wait_for(running, 30)
    assert (outcome.success, outcome.reason) == (False, "stopped")
    (decided,) = of_type(agent, "tool_approval_decided")
    assert (decided["call_id"], decided["decision"]) == ("c1", "stopped")
    assert not agent.decide_tool_call("c1", "approve")
    assert not alive(int(pid_file.read_text()))


async def test_the_servers_are_gone_when_the_run_says_it_finished(
    kernel, write_recording, tmp_path
):
    """The person may act on a finished run at once (a new conversation, say): the run is not
    still closing its MCP servers when it says it finished."""
    pid_file = tmp_path / "server.pid"
    recording = write_recording(turn(tool("tools__add", {"a": 2, "b": 3})), complete())
    servers = {"tools": pid_reporting_server(pid_file, approval="allow")}
    agent = mcp_agent(kernel, recording, servers)
    server_alive_when_finished = []
    agent.events.subscribe(
        lambda event: (
            event["type"] == "run_finished"
            and server_alive_when_finished.append(alive(int(pid_file.read_text())))
        )
    )
    assert (await agent.run("add 2 and 3")).success
    assert server_alive_when_finished == [False]


async def test_with_no_one_to_ask_a_tool_not_allowed_is_denied(kernel, write_recording):
    recording = write_recording(
        turn(tool("tools__add", {"a": 2, "b": 3})),
        turn(tool("tools__echo", {"text": "hi"})),
        turn(tool("other__add", {"a": 1, "b": 1})),
        complete(),
    )
    permissions = ToolPermissions({"tools__echo", "other__*"}, no_one_to_ask="a headless run")
    servers = {"tools": stdio_server(), "other": stdio_server()}
    agent = mcp_agent(kernel, recording, servers, permissions)
    assert (await agent.run("add")).success
    assert results(agent)[:3] == [
        {"status": "denied", "error": "the person did not allow tools__add (a headless run)"},
        {"status": "ok", "content": "hi"},
        {"status": "ok", "content": "2"},
    ]
    assert not of_type(agent, "tool_approval_requested")


# Servers that fail.


async def test_servers_down_slow_or_speaking_garbage_are_skipped_and_the_model_told(
    kernel, write_recording, tmp_path, caplog
):
    """The run waits for none past its connect timeout, and leaves no process of theirs."""
    garbage = "import time; print('hello', flush=True); time.sleep(60)"
    servers = {
        "tools": stdio_server(approval="allow"),
        "down": {"command": "/nonexistent/mcp-server"},
        "slow": pid_reporting_server(tmp_path / "slow.pid", "-c", "import time; time.sleep(60)"),
        "garbage": pid_reporting_server(tmp_path / "garbage.pid", "-c", garbage),
        "refusing": {"url": f"http://127.0.0.1:{free_port()}/mcp"},
    }
    for settings in servers.values():
        settings.setdefault("connect_timeout", 1)
    recording = write_recording(turn(tool("tools__add", {"a": 2, "b": 3})), complete())
    agent = mcp_agent(kernel, recording, servers)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="jupyter_notebook_agent"):
        outcome = await agent.run("add 2 and 3")
    assert outcome.success, outcome
    assert time.monotonic() - started < 15
    request = agent.messages[1]["content"]
    assert request.endswith(
        "\n\nThe MCP server down is unavailable: /nonexistent/mcp-server could not be started: "
        "No such file or directory: /nonexistent/mcp-server.\n"
        "The MCP server slow is unavailable: it did not connect within 1 s.\n"
        "The MCP server garbage is unavailable: it did not connect within 1 s.\n"
        "The MCP server refusing is unavailable: All connection attempts failed."
    )
    assert results(agent)[0] == {"status": "ok", "content": "5"}
    assert {name.split("__")[0] for name in agent.model.offered[0] if "__" in name} == {"tools"}
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("jupyter_notebook")]
    assert sorted(warnings) == sorted(
        line.removesuffix(".") for line in request.split("\n\n")[-1].splitlines()
    )
    assert not [r for r in caplog.records if r.exc_info and r.name.startswith("jupyter_notebook")]
    assert not alive(int((tmp_path / "slow.pid").read_text()))
    assert not alive(int((tmp_path / "garbage.pid").read_text()))


async def test_calls_that_time_out_fail_or_lose_their_server_are_told_to_the_model(
    kernel, write_recording
):
    recording = write_recording(
        turn(tool("tools__sleep", {"seconds": 30})),
        turn(tool("tools__fail", {"message": "no such table"})),
        turn(tool("tools__crash", {})),
        turn(tool("tools__add", {"a": 2, "b": 3})),
        complete(),
    )
    servers = {"tools": stdio_server(approval="allow", timeout=1)}
    agent = mcp_agent(kernel, recording, servers)
    started = time.monotonic()
    outcome = await agent.run("try everything")
    assert outcome.success, outcome
    assert time.monotonic() - started < 20
    slept, failed, crashed, added = results(agent)[:4]
    assert slept == {"status": "error", "error": "tools__sleep did not answer within 1 s"}
    assert failed == {"status": "error", "error": "Error executing tool fail: no such table"}
    gone = "The MCP server tools is unavailable: its connection closed."
    assert crashed == added == {"status": "error", "error": gone}


# Secrets.


async def test_secrets_reach_the_servers_and_no_record(
    kernel, write_recording, mcp_http_url, tmp_path, caplog
):
    """The env value reaches the stdio server (its digest says so) and the header the HTTP
    server (it answers); neither is in an event, the transcript, the thread, the notebook or a
    log record, whatever the log level."""
    recording = write_recording(
        turn(tool("tools__env_digest", {"name": "TOOL_SECRET"})),
        turn(tool("web__add", {"a": 1, "b": 2})),
        complete(),
    )
    servers = {
        "tools": stdio_server(approval="allow"),
        "web": {"url": mcp_http_url, "headers": {"Authorization": f"Bearer {HEADER_SECRET}"}},
    }
    agent = mcp_agent(kernel, recording, servers, ToolPermissions({"web__add"}))
    transcript = TranscriptWriter(tmp_path / "run.jsonl")
    agent.events.subscribe(transcript)
    with caplog.at_level(logging.DEBUG):
        assert (await agent.run("use the secrets")).success
    transcript.close()
    env_digest = hashlib.sha256(ENV_SECRET.encode()).hexdigest()[:12]
    assert results(agent)[:2] == [
        {"status": "ok", "content": env_digest},
        {"status": "ok", "content": "3"},
    ]
    records = [
        json.dumps(agent.events.events),
        (tmp_path / "run.jsonl").read_text(),
        json.dumps(agent.conversation.to_record()),
        json.dumps(agent.notebook.nb),
        "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records),
    ]
    assert caplog.records and "tools__env_digest" in records[1]
    for record in records:
        assert ENV_SECRET not in record and HEADER_SECRET not in record


# The server: its configuration, and the REST route that decides a call.


class TestTheServer:
    @pytest.fixture
    def jp_server_config(self, replay) -> dict[str, Any]:
        config = runs_server_config(replay)
        config["NotebookAgent"]["mcp_servers"] = {
            "tools": stdio_server(),
            "wrong": {"url": "ftp://nowhere", "headers": {"X-Key": HEADER_SECRET}},
        }
        return config

    def test_a_server_with_wrong_settings_is_left_out_and_logged(self, extension, caplog):
        """One line names the server and the field, and not the secret of its settings."""
        assert [server.name for server in extension.mcp_server_configs] == ["tools"]
        with caplog.at_level(logging.DEBUG):
            assert [server.name for server in extension._read_mcp_servers()] == ["tools"]
        assert [r.getMessage() for r in caplog.records] == [
            "c.NotebookAgent.mcp_servers: MCP server 'wrong': 'url' must be an http:// or "
            "https:// URL; runs go without it"
        ]

    async def test_a_call_is_approved_or_denied_over_rest(self, api, replay, jp_root_dir, caplog):
        replay.script.turns = [
            turn(tool("tools__add", {"a": 2, "b": 3}, "c1")),
            turn(tool("tools__add", {"a": 4, "b": 4}, "c2")),
            complete(),
        ]
        run = await api.start(make_notebook(jp_root_dir))
        calls = f"runs/{run['id']}/tool-calls"
        socket = await api.events(run["id"])
        asked = (await receive_until(socket, "tool_approval_requested"))[-1]
        assert {key: asked[key] for key in ("call_id", "server", "tool", "arguments")} == {
            "call_id": "c1",
            "server": "tools",
            "tool": "add",
            "arguments": {"a": 2, "b": 3},
        }
        with caplog.at_level(logging.DEBUG):
            await api.call("POST", f"{calls}/c9/approve", expect=404)
            await api.call("POST", f"runs/{run['id']}x/tool-calls/c1/approve", expect=404)
            await api.call("POST", f"{calls}/c1/approve", {"always": "yes"}, expect=400)
            await api.call("POST", f"{calls}/c1/deny", {"always": True}, expect=400)
            await api.call("POST", f"{calls}/c1/approve", "[]", expect=400)
        assert not [r for r in caplog.records if r.exc_info]
        assert (await api.call("POST", f"{calls}/c1/approve"))["id"] == run["id"]
        await api.call("POST", f"{calls}/c1/approve", expect=409)  # decided already
        asked = (await receive_until(socket, "tool_approval_requested"))[-1]
        assert asked["call_id"] == "c2"
        await api.call("POST", f"{calls}/c2/deny", {})
        assert (await api.finished(run["id"]))["outcome"]["success"]
        thread = await api.call("GET", "conversation", params={"path": run["path"]})
        told = [json.loads(m["content"]) for m in thread["messages"] if m["role"] == "tool"]
        assert told[:2] == [
            {"status": "ok", "content": "5"},
            {"status": "denied", "error": "the person did not allow tools__add"},
        ]
        assert "MCP server" not in thread["messages"][1]["content"]  # as if "wrong" were not

    async def test_always_is_kept_for_the_notebooks_later_runs(
        self, api, replay, jp_root_dir, extension
    ):
        replay.script.turns = [
            turn(tool("tools__add", {"a": 1, "b": 1}, "c1")),
            complete(),
            turn(tool("tools__add", {"a": 2, "b": 2}, "c2")),
            complete(),
        ]
        path = make_notebook(jp_root_dir)
        first = await api.start(path)
        socket = await api.events(first["id"])
        await receive_until(socket, "tool_approval_requested")
        calls = f"runs/{first['id']}/tool-calls"
        await api.call("POST", f"{calls}/c1/approve", {"always": True})
        assert (await api.finished(first["id"]))["outcome"]["success"]
        stored = await extension.registry.store.allowed_tools(str(jp_root_dir / path))
        assert stored == {"tools__add"}

        later = await api.start(path, "again")
        events = await receive_until(await api.events(later["id"]), "run_finished")
        assert not [e for e in events if e["type"].startswith("tool_approval")]
        (result,) = [e["result"] for e in events if e["type"] == "tool_result"][:1]
        assert result == {"status": "ok", "content": "4"}

    async def test_an_always_taken_back_asks_again_in_the_run_and_later_ones(
        self, api, replay, jp_root_dir, extension, caplog
    ):
        """The person can take back "Always allow this tool" (the panel lists the tools): the
        tool's next call waits for them, in the run going on and in later runs."""
        second = turn(tool("tools__add", {"a": 2, "b": 2}, "c2"))
        second.ttft_s = 2.0  # the model thinks while the person takes the "always" back
        replay.script.speed = 1
        replay.script.turns = [
            turn(tool("tools__add", {"a": 1, "b": 1}, "c1")),
            second,
            complete(),
            turn(tool("tools__add", {"a": 3, "b": 3}, "c3")),
            complete(),
        ]
        path = make_notebook(jp_root_dir)
        allowed = {"path": path}
        run = await api.start(path)
        socket = await api.events(run["id"])
        await receive_until(socket, "tool_approval_requested")
        assert (await api.call("GET", "allowed-tools", params=allowed))["tools"] == []
        await api.call("POST", f"runs/{run['id']}/tool-calls/c1/approve", {"always": True})
        assert (await api.call("GET", "allowed-tools", params=allowed))["tools"] == ["tools__add"]
        with caplog.at_level(logging.DEBUG):
            await api.call("DELETE", "allowed-tools", params=allowed, expect=400)  # which tool?
            wrong = {"path": "data.csv", "tool": "tools__add"}
            await api.call("DELETE", "allowed-tools", params=wrong, expect=400)
        assert not [r for r in caplog.records if r.exc_info]
        taken_back = await api.call(
            "DELETE", "allowed-tools", params=allowed | {"tool": "tools__add"}
        )
        assert taken_back == {"path": path, "tools": []}
        asked = (await receive_until(socket, "tool_approval_requested"))[-1]
        assert asked["call_id"] == "c2"
        await api.call("POST", f"runs/{run['id']}/tool-calls/c2/deny")
        assert (await api.finished(run["id"]))["outcome"]["success"]
        await extension.registry.store.flush()
        assert await extension.registry.store.allowed_tools(str(jp_root_dir / path)) == set()

        extension.registry.allowed_tools.clear()  # as a restarted server holds them: the store's
        later = await api.start(path, "again")
        asked = await receive_until(await api.events(later["id"]), "tool_approval_requested")
        assert asked[-1]["call_id"] == "c3"
        await api.call("POST", f"runs/{later['id']}/tool-calls/c3/approve")
        assert (await api.finished(later["id"]))["outcome"]["success"]

    async def test_a_stopped_run_has_no_call_to_decide(self, api, replay, jp_root_dir):
        replay.script.turns = [turn(tool("tools__add", {"a": 1, "b": 1}, "c1")), complete()]
        run = await api.start(make_notebook(jp_root_dir))
        socket = await api.events(run["id"])
        await receive_until(socket, "tool_approval_requested")
        await api.call("POST", f"runs/{run['id']}/stop")
        events = await receive_until(socket, "run_finished")
        decided = [e for e in events if e["type"] == "tool_approval_decided"]
        assert [(e["call_id"], e["decision"]) for e in decided] == [("c1", "stopped")]
        await api.call("POST", f"runs/{run['id']}/tool-calls/c1/deny", expect=409)


class TestThePersonsSettings:
    """MCP servers listed in the person's settings come with each run request; their secrets are
    named as ${env:MCP_...} and filled in on the server, so the browser never holds them."""

    @pytest.fixture
    def jp_server_config(self, replay, monkeypatch) -> dict[str, Any]:
        monkeypatch.setenv("MCP_TEST_SECRET", ENV_SECRET)  # in the server's environment
        config = runs_server_config(replay)
        config["NotebookAgent"]["mcp_servers"] = {"tools": stdio_server(approval="allow")}
        return config

    async def test_a_server_of_the_settings_runs_with_the_secret_the_server_holds(
        self, api, replay, jp_root_dir
    ):
        """The secret reaches the MCP server the settings list, and no kernel: the server took
        it out of its environment as it started."""
        replay.script.turns = [
            turn(tool("mine__env_digest", {"name": "TOOL_SECRET"}, "c1")),
            turn(tool("tools__add", {"a": 1, "b": 2}, "c2")),
            turn(
                tool(
                    "execute_code",
                    {"code": "import os; print(os.environ.get('MCP_TEST_SECRET'))"},
                    "c3",
                )
            ),
            complete(),
        ]
        mine = stdio_server(approval="allow", env={"TOOL_SECRET": "${env:MCP_TEST_SECRET}"})
        run = await api.start(make_notebook(jp_root_dir), mcp_servers={"mine": mine})
        events = await receive_until(await api.events(run["id"]), "run_finished")
        results = [e["result"] for e in events if e["type"] == "tool_result"]
        env_digest = hashlib.sha256(ENV_SECRET.encode()).hexdigest()[:12]
        assert results[:2] == [
            {"status": "ok", "content": env_digest},  # the server's value reached the tool
            {"status": "ok", "content": "3"},  # and the configuration's servers are offered too
        ]
        assert results[2]["outputs"] == [{"type": "stdout", "text": "None\n"}]
        assert ENV_SECRET not in json.dumps(events)

    MINE = {"mine": stdio_server(approval="allow")}

    async def finished_with_mine(self, api: Any, replay: Any, root: Path) -> dict[str, Any]:
        """A finished run whose request listed the settings' server `mine`; regenerating its
        cell, the model calls mine__add (2 + 3), then rewrites the cell."""
        replay.script.turns = [
            add_cell_turn("x = 1"),
            complete(),
            turn(tool("mine__add", {"a": 2, "b": 3}, "c1")),
            turn(tool("edit_cell", {"cell_id": "agent-1", "source": "x = 5"}, "c2")),
            complete("rewritten"),
        ]
        run = await api.start(make_notebook(root), mcp_servers=self.MINE)
        await api.finished(run["id"])
        return run

    @staticmethod
    async def regenerated(api: Any, run: dict[str, Any], body: dict[str, Any]) -> list[Any]:
        """Regenerates the run's cell agent-1; the tool results of the whole run, once done."""
        await api.call("POST", f"runs/{run['id']}/cells/agent-1/regenerate", body)
        assert (await api.finished(run["id"]))["outcome"]["summary"] == "rewritten"
        events = await receive_until(await api.events(run["id"]), "run_finished")
        events += await receive_until(await api.events(run["id"], len(events)), "run_finished")
        return [e["result"] for e in events if e["type"] == "tool_result"]

    async def test_a_run_taken_up_from_the_store_goes_on_with_the_servers_listed_again(
        self, api, replay, jp_root_dir, extension
    ):
        """A run no longer held in memory (an older one, or an earlier server's) is taken up
        from the store with the configuration's MCP servers alone: its settings' servers were
        gone when the person regenerated a cell. The request to go on lists them again."""
        run = await self.finished_with_mine(api, replay, jp_root_dir)
        extension.registry.finished_runs_kept = 1
        other = await api.start(make_notebook(jp_root_dir, "other.ipynb"))
        await api.finished(other["id"])
        assert run["id"] not in extension.registry.runs  # only the store has it now

        regenerate = f"runs/{run['id']}/cells/agent-1/regenerate"
        await api.call("POST", regenerate, {"mcp_servers": {"mine": {}}}, expect=400)
        results = await self.regenerated(api, run, {"mcp_servers": self.MINE})
        assert {"status": "ok", "content": "5"} in results
        assert read(jp_root_dir, run["path"]).cells[-1].source == "x = 5"

    async def test_a_request_to_go_on_that_is_refused_changes_no_server(
        self, api, replay, jp_root_dir
    ):
        """A Continue refused (the run is finished, not interrupted) still took the servers
        it listed: the run's next regenerate had lost the settings' server."""
        run = await self.finished_with_mine(api, replay, jp_root_dir)
        await api.call("POST", f"runs/{run['id']}/continue", {"mcp_servers": {}}, expect=409)
        results = await self.regenerated(api, run, {})
        assert {"status": "ok", "content": "5"} in results

    @pytest.mark.parametrize(
        "servers, message",
        [
            (
                {"mine": stdio_server(env={"X": "${env:HOME}"})},
                "MCP server 'mine': 'env': ${env:HOME} must name a variable MCP_...",
            ),
            (
                {"mine": stdio_server(env={"X": "${env:MCP_NOT_SET}"})},
                "MCP server 'mine': 'env': the server has no variable MCP_NOT_SET",
            ),
            (
                {"tools": stdio_server()},
                "the server's configuration has an MCP server 'tools' already",
            ),
            ({"mine": {"url": "ftp://x"}}, "MCP server 'mine': 'url' must be an http://"),
        ],
        ids=["not-mcp-variable", "unset-variable", "taken-name", "bad-url"],
    )
    async def test_wrong_settings_are_refused_with_400_and_what_is_wrong(
        self, api, jp_root_dir, servers, message
    ):
        path = make_notebook(jp_root_dir)
        answer = await api.call(
            "POST", "runs", {"path": path, "prompt": "go", "mcp_servers": servers}, expect=400
        )
        assert answer["message"].startswith(message)
        assert (await api.call("GET", "runs", params={"path": path}))["runs"] == []


class NoTerminalsAuthorizer(Authorizer):
    """A person who may run the agent but no terminal (a hub's RBAC can say so)."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return resource != "terminals"


class TestAPersonWhoMayRunNoTerminal:
    @pytest.fixture
    def jp_server_config(self, replay) -> dict[str, Any]:
        return runs_server_config(replay, NoTerminalsAuthorizer)

    async def test_may_not_list_a_command_as_an_mcp_server(self, api, jp_root_dir, mcp_http_url):
        path = make_notebook(jp_root_dir)
        body = {"path": path, "prompt": "go", "mcp_servers": {"mine": stdio_server()}}
        answer = await api.call("POST", "runs", body, expect=403)
        assert answer["message"] == "the MCP server 'mine' is a command, which you may not run here"
        body["mcp_servers"] = {"web": {"url": mcp_http_url}}
        await api.call("POST", "runs", body, expect=201)  # a URL runs nothing on the server


# Headless.


def write_servers(folder: Path, servers: dict[str, Any]) -> Path:
    path = folder / "mcp.json"
    path.write_text(json.dumps(servers))
    return path


def transcript_results(transcript: Path) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in transcript.read_text().splitlines()]
    return [e["result"] for e in events if e["type"] == "tool_result"]


@pytest.mark.parametrize("allowed", [True, False])
def test_the_command_line_runs_an_allowed_tool_and_denies_the_others(
    tmp_path, write_recording, run_cli, allowed
):
    recording = write_recording(turn(tool("tools__add", {"a": 2, "b": 3})), complete())
    servers = write_servers(tmp_path, {"tools": stdio_server()})
    allow = ["--allow-mcp-tool", "tools__*"] if allowed else []
    out = tmp_path / "added.ipynb"
    result = run_cli(
        "run", "add 2 and 3", "-o", out, "--model", f"replay:{recording}", *LOCAL,
        "--mcp-servers", servers, *allow,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (added, _) = transcript_results(out.with_suffix(".transcript.jsonl"))
    if allowed:
        assert added == {"status": "ok", "content": "5"}
        assert "tools__add  ok  5" in result.stdout
    else:
        assert added == {
            "status": "denied",
            "error": "the person did not allow tools__add (a headless run asks no one; "
            "--allow-mcp-tool allows a tool)",
        }
        assert "the person did not allow tools__add" in result.stdout
    assert ENV_SECRET not in out.with_suffix(".transcript.jsonl").read_text() + result.stdout


@pytest.mark.parametrize(
    ("servers", "allow", "told"),
    [
        ({"tools": {"command": "x", "timeout": "1"}}, [], "'timeout' must be a number"),
        ({"tools": {"command": "x"}}, ["tools_add"], "'tools_add' is not SERVER__TOOL"),
        ({"tools": {"command": "x"}}, ["other__add"], "no MCP server 'other' in --mcp-servers"),
        ("{not json", [], "Expecting property name enclosed in double quotes"),
    ],
)
def test_the_command_line_says_what_is_wrong_with_its_servers(
    tmp_path, run_cli, servers, allow, told
):
    path = tmp_path / "mcp.json"
    path.write_text(servers if isinstance(servers, str) else json.dumps(servers))
    flags = [arg for name in allow for arg in ("--allow-mcp-tool", name)]
    result = run_cli("run", "x", "--model", "replay:none.json", "--mcp-servers", path, *flags)
    assert result.returncode == 2
    assert told in result.stderr and "Traceback" not in result.stderr
