"""This server as an MCP server, for real: the SDK's own client connects over streamable HTTP with
the server's token, and works in a notebook as an outside agent, in a run of its own."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
import urllib.error
from pathlib import Path
from typing import Any

import httpx2
import nbformat
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import Implementation

from jupyter_notebook_agent.notebook import METADATA_KEY
from jupyter_notebook_agent.sandbox import SANDBOX_KERNEL
from jupyter_notebook_agent.sandbox.image import ensure_image

from .agent_api import receive_until
from .conftest import free_port, runs_server_config
from .test_notebook_kernel import open_notebook, sandboxed
from .test_server_runs import TOKEN, read_between_writes, rest, start_server


@pytest.fixture
def jp_server_config(request: pytest.FixtureRequest, replay: Any) -> dict[str, Any]:
    if request.node.get_closest_marker("sandbox"):
        ensure_image()
        config = sandboxed(replay)
    else:
        config = runs_server_config(replay)
    config["NotebookAgent"]["mcp_idle_timeout"] = 60.0
    return config


@pytest.fixture
def mcp_url(jp_fetch, jp_http_port, jp_base_url) -> str:
    """The endpoint's URL, on a server that listens (jp_fetch has it listen)."""
    return f"http://127.0.0.1:{jp_http_port}{jp_base_url}notebook-agent/mcp"


def outside_agent(url: str, headers: dict[str, str], name: str = "test-agent") -> Client:
    http = httpx2.AsyncClient(headers=headers, timeout=60)
    return Client(
        streamable_http_client(url, http_client=http),
        client_info=Implementation(name=name, version="1.0"),
    )


def make_notebook(root: Path, name: str = "analysis.ipynb") -> str:
    notebook = nbformat.v4.new_notebook()
    notebook.cells.append(nbformat.v4.new_markdown_cell("# Mine", id="person-1"))
    nbformat.write(notebook, root / name)
    return name


def result(called: Any) -> dict[str, Any]:
    assert not called.is_error, called.content
    return json.loads(called.content[0].text)


async def test_an_outside_agent_works_in_a_run_of_its_own(
    mcp_url, jp_auth_header, jp_root_dir, api
):
    path = make_notebook(jp_root_dir)
    async with outside_agent(mcp_url, jp_auth_header) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"list_notebooks", "read_notebook", "add_cell", "execute_code"} <= names
        listed = result(await client.call_tool("list_notebooks", {"folder": ""}))
        assert listed == {"notebooks": []}  # none open in JupyterLab, no folder asked for
        listed = result(await client.call_tool("list_notebooks", {"folder": "."}))
        assert [n["path"] for n in listed["notebooks"]] == [path]
        read = result(await client.call_tool("read_notebook", {"path": path}))
        assert [c["cell_id"] for c in read["cells"]] == ["person-1"] and read["active_run"] is None

        added = result(
            await client.call_tool("add_cell", {"path": path, "source": "x = 6 * 7\nprint(x)"})
        )
        assert added["cell_id"] == "agent-1" and added["outputs"][0]["text"] == "42\n"
        (run,) = (await api.call("GET", "runs", params={"path": path}))["runs"]
        assert run["state"] == "running" and run["model"] == "mcp:test-agent"
        assert "test-agent" in run["prompt"]

        ran = result(await client.call_tool("execute_code", {"path": path, "code": "x + 1"}))
        assert ran["outputs"][0]["text"] == "43"
        outputs = result(
            await client.call_tool("get_cell_outputs", {"path": path, "cell_id": "agent-1"})
        )
        assert outputs["outputs"][0]["text"] == "42\n"
        read = result(await client.call_tool("read_notebook", {"path": path}))
        assert [c["cell_id"] for c in read["cells"]] == ["person-1", "agent-1"]
        assert read["active_run"] == {"run_id": run["id"], "model": "mcp:test-agent"}

        ended = result(await client.call_tool("end_session", {"path": path, "summary": "x is 42"}))
        assert ended["status"] == "ok"
    finished = await api.finished(run["id"])
    assert finished["outcome"] == {"success": True, "reason": "completed", "summary": "x is 42"}
    notebook = nbformat.read(jp_root_dir / path, as_version=4)
    cell = notebook.cells[1]
    assert cell.source == "x = 6 * 7\nprint(x)" and cell.outputs[0].text == "42\n"
    assert cell.metadata[METADATA_KEY]["state"] == "proposed"  # the person has not accepted it


@pytest.mark.sandbox
async def test_an_outside_agents_code_runs_in_the_notebooks_sandbox(
    mcp_url, jp_auth_header, jp_root_dir, jp_fetch, jp_serverapp, api
):
    """The notebook is open in JupyterLab with its sandboxed kernel: the outside agent reads its
    variables and runs its code there, never on this machine."""
    await jp_serverapp.extension_manager.start_all_extensions()
    path = make_notebook(jp_root_dir)
    session = await open_notebook(jp_fetch, path)
    assert session["kernel"]["name"] == SANDBOX_KERNEL
    async with outside_agent(mcp_url, jp_auth_header) as client:
        added = result(
            await client.call_tool(
                "add_cell", {"path": path, "source": "import socket\nhost = socket.gethostname()"}
            )
        )
        assert added["status"] == "ok"
        read = result(await client.call_tool("read_notebook", {"path": path}))
        assert "host" in read["variables"]
        ran = result(await client.call_tool("execute_code", {"path": path, "code": "print(host)"}))
        assert ran["outputs"][0]["text"].strip() not in ("", socket.gethostname())
        (run,) = (await api.call("GET", "runs", params={"path": path}))["runs"]
        assert run["kernel_id"] == session["kernel"]["id"]  # the notebook's own sandbox
        result(await client.call_tool("end_session", {"path": path, "summary": "done"}))


async def test_the_person_reviews_and_stops_an_outside_agent(
    mcp_url, jp_auth_header, jp_root_dir, api
):
    path = make_notebook(jp_root_dir)
    async with outside_agent(mcp_url, jp_auth_header, "reviewed") as client:
        result(await client.call_tool("add_cell", {"path": path, "source": "1 + 1"}))
        (run,) = (await api.call("GET", "runs", params={"path": path}))["runs"]
        socket = await api.events(run["id"])
        await api.call("POST", f"runs/{run['id']}/cells/agent-1/accept")
        await api.call("POST", f"runs/{run['id']}/stop")
        events = await receive_until(socket, "run_finished")
        assert any(e["type"] == "cell_accepted" for e in events)
        stopped = await client.call_tool("add_cell", {"path": path, "source": "2 + 2"})
        assert stopped.is_error  # and it does not start again on its own
        assert "the person stopped your session" in stopped.content[0].text
    notebook = nbformat.read(jp_root_dir / path, as_version=4)
    assert notebook.cells[1].metadata[METADATA_KEY]["state"] == "accepted"
    assert [c.source for c in notebook.cells] == ["# Mine", "1 + 1"]


async def test_a_bad_call_is_explained_and_loses_nothing(mcp_url, jp_auth_header, jp_root_dir):
    path = make_notebook(jp_root_dir)
    async with outside_agent(mcp_url, jp_auth_header) as client:
        missing = await client.call_tool("read_notebook", {"path": "nowhere.ipynb"})
        assert missing.is_error and "nowhere.ipynb" in missing.content[0].text
        for outside in ("../outside.ipynb", "/etc/outside.ipynb", "%2e%2e/outside.ipynb"):
            escaped = await client.call_tool("add_cell", {"path": outside, "source": "1"})
            assert escaped.is_error, outside
        not_a_notebook = await client.call_tool("read_notebook", {"path": "data.csv"})
        assert not_a_notebook.is_error and "not a notebook" in not_a_notebook.content[0].text
        no_session = await client.call_tool("end_session", {"path": path, "summary": "?"})
        assert no_session.is_error and "no session" in no_session.content[0].text
    assert [c.id for c in nbformat.read(jp_root_dir / path, as_version=4).cells] == ["person-1"]


async def initialize(url: str, headers: dict[str, str]) -> httpx2.Response:
    """The protocol's first message, as any client sends it, over plain HTTP."""
    message = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "plain", "version": "1"},
        },
    }
    async with httpx2.AsyncClient() as http:
        return await http.post(
            url, json=message, headers={"Accept": "application/json, text/event-stream", **headers}
        )


@pytest.mark.parametrize("headers", [{}, {"Authorization": "token wrong"}], ids=["none", "wrong"])
async def test_without_the_servers_token_the_endpoint_answers_403(mcp_url, headers):
    assert (await initialize(mcp_url, headers)).status_code == 403


async def test_mcp_config_gives_clients_the_endpoint_and_a_stdio_bridge_that_works(
    mcp_url, jp_auth_header, jp_root_dir, jp_http_port, jp_base_url, api
):
    token = jp_auth_header["Authorization"].removeprefix("token ")
    server_url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}"
    printed = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jupyter_notebook_agent.cli",
        "mcp-config",
        "--url",
        server_url,
        "--token",
        token,
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await printed.communicate()
    assert printed.returncode == 0
    servers = json.loads(output)["mcpServers"]
    http = servers["jupyter-notebook-agent"]
    assert http == {"type": "http", "url": mcp_url, "headers": jp_auth_header}
    stdio = servers["jupyter-notebook-agent-stdio"]
    assert stdio["env"] == {"JUPYTER_TOKEN": token} and token not in stdio["args"]

    path = make_notebook(jp_root_dir)
    bridged = StdioServerParameters(
        command=stdio["command"], args=stdio["args"], env={**os.environ, **stdio["env"]}
    )
    info = Implementation(name="stdio-only-agent", version="1")
    async with Client(bridged, client_info=info) as client:
        assert "add_cell" in {tool.name for tool in (await client.list_tools()).tools}
        added = result(await client.call_tool("add_cell", {"path": path, "source": "2 ** 10"}))
        assert added["outputs"][0]["text"] == "1024"
        (run,) = (await api.call("GET", "runs", params={"path": path}))["runs"]
        assert run["model"] == "mcp:stdio-only-agent"  # the panel names the agent, not the bridge
        result(await client.call_tool("end_session", {"path": path, "summary": "done"}))


async def test_a_host_other_than_localhost_with_a_port_is_served(mcp_url, jp_auth_header):
    """Behind a proxy (a hub's, say) the Host has no port, or another name: the Jupyter server
    decides which hosts it serves, and the endpoint serves what it lets through."""
    answer = await initialize(mcp_url, {"Host": "localhost", **jp_auth_header})
    assert answer.status_code == 200, answer.text


async def test_calls_at_once_share_one_session_and_the_agents_cells_are_its_own(
    mcp_url, jp_auth_header, jp_root_dir, api
):
    path = make_notebook(jp_root_dir)
    async with outside_agent(mcp_url, jp_auth_header) as client:
        first, second = await asyncio.gather(
            client.call_tool("add_cell", {"path": path, "source": "1"}),
            client.call_tool("add_cell", {"path": path, "source": "2"}),
        )
        assert {result(first)["cell_id"], result(second)["cell_id"]} == {"agent-1", "agent-2"}
        (run,) = (await api.call("GET", "runs", params={"path": path}))["runs"]
        # The person can review its cells, not have this run rewrite them: only the agent can.
        answer = await api.call(
            "POST", f"runs/{run['id']}/cells/agent-1/regenerate", {}, expect=409
        )
        assert answer["message"] == (
            "this run is test-agent's, an outside agent's: ask test-agent to rewrite its cell"
        )
        await api.call("POST", f"runs/{run['id']}/cells/agent-1/accept")
        result(await client.call_tool("end_session", {"path": path, "summary": "two cells"}))


async def test_a_link_out_of_the_root_is_left_out_of_the_list(
    mcp_url, jp_auth_header, jp_root_dir, tmp_path_factory
):
    outside = tmp_path_factory.mktemp("outside") / "secret.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), outside)
    (jp_root_dir / "link.ipynb").symlink_to(outside)
    path = make_notebook(jp_root_dir)
    async with outside_agent(mcp_url, jp_auth_header) as client:
        listed = result(await client.call_tool("list_notebooks", {"folder": "."}))
        assert [n["path"] for n in listed["notebooks"]] == [path]
        read = await client.call_tool("read_notebook", {"path": "link.ipynb"})
        assert read.is_error


async def test_an_old_notebook_without_cell_ids_is_read_and_added_to(
    mcp_url, jp_auth_header, jp_root_dir, api
):
    """nbformat 4.4, as most files on disk are: its cells get ids by position, the same on
    every read, so an outside agent can name them; what it adds keeps the file valid."""
    old = nbformat.v4.new_notebook()
    old.nbformat_minor = 4
    cell = nbformat.v4.new_code_cell("print('hi')")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
    del cell["id"]
    old.cells.append(cell)
    (jp_root_dir / "old.ipynb").write_text(json.dumps(old))
    async with outside_agent(mcp_url, jp_auth_header) as client:
        first = result(await client.call_tool("read_notebook", {"path": "old.ipynb"}))
        again = result(await client.call_tool("read_notebook", {"path": "old.ipynb"}))
        assert [c["cell_id"] for c in first["cells"]] == [c["cell_id"] for c in again["cells"]]
        cell_id = first["cells"][0]["cell_id"]
        outputs = result(
            await client.call_tool("get_cell_outputs", {"path": "old.ipynb", "cell_id": cell_id})
        )
        assert outputs["outputs"][0]["text"] == "hi\n"
        added = result(
            await client.call_tool(
                "add_cell", {"path": "old.ipynb", "source": "1 + 1", "after_cell_id": cell_id}
            )
        )
        assert added["outputs"][0]["text"] == "2"
        (run,) = (await api.call("GET", "runs", params={"path": "old.ipynb"}))["runs"]
        result(await client.call_tool("end_session", {"path": "old.ipynb", "summary": "ok"}))
    await api.finished(run["id"])
    saved = nbformat.read(jp_root_dir / "old.ipynb", as_version=4)
    nbformat.validate(saved)
    assert [c.source for c in saved.cells] == ["print('hi')", "1 + 1"]


def test_an_outside_agents_run_a_killed_server_left_is_reviewed_not_continued(tmp_path, replay):
    """SIGKILL mid-session: after the restart the run is interrupted, its cell can be accepted,
    Continue says to ask the agent (nothing here can speak for it), and the agent's next call
    starts a run of its own."""
    root = tmp_path / "root"
    root.mkdir()
    path = make_notebook(root)
    port = free_port()
    url = f"http://127.0.0.1:{port}/notebook-agent/mcp"
    auth = {"Authorization": f"token {TOKEN}"}

    async def add(source: str) -> dict[str, Any]:
        async with outside_agent(url, auth) as client:
            return result(await client.call_tool("add_cell", {"path": path, "source": source}))

    server = start_server(root, port, replay, log=tmp_path / "first.log")
    try:
        assert asyncio.run(add("x = 6 * 7"))["status"] == "ok"
        deadline = time.monotonic() + 10  # the server writes the file soon after
        while len(read_between_writes(root, path).cells) < 2:
            assert time.monotonic() < deadline, "the cell never reached the file"
            time.sleep(0.05)
    finally:
        server.kill()  # SIGKILL, as an out-of-memory killer or a hub's cull does
        server.wait()
    server = start_server(root, port, replay, log=tmp_path / "restarted.log")
    try:
        (left,) = rest(port, "GET", f"notebook-agent/runs?path={path}")["runs"]
        assert (left["state"], left["model"]) == ("interrupted", "mcp:test-agent")
        runs = f"notebook-agent/runs/{left['id']}"
        with pytest.raises(urllib.error.HTTPError) as refused:
            rest(port, "POST", f"{runs}/continue", {})
        assert refused.value.code == 409
        assert "ask test-agent to go on with it" in refused.value.read().decode()
        accepted = rest(port, "POST", f"{runs}/cells/agent-1/accept", {})
        assert accepted["cells"][0]["state"] == "accepted"
        assert asyncio.run(add("6 * 7 + 1"))["outputs"][0]["text"] == "43"  # a new kernel
        listed = rest(port, "GET", f"notebook-agent/runs?path={path}")["runs"]
        assert len(listed) == 2 and listed[-1]["state"] == "running"
    finally:
        server.terminate()
        server.wait(30)
    assert "Traceback" not in (tmp_path / "restarted.log").read_text()
