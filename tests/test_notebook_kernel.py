"""The agent in the person's notebook: the notebook's own kernel, shared with the person over its
WebSocket, the person's variables told to the model, one conversation per notebook, and a kernel
that only the person restarts. A real server, the model replayed over HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest

from jupyter_notebook_agent.kernels import JupyterKernelSession
from jupyter_notebook_agent.sandbox import SANDBOX_KERNEL
from jupyter_notebook_agent.sandbox.image import ensure_image
from jupyter_notebook_agent.server.kernel_websocket import PromptKernelWebsocketConnection

from .agent_api import AgentAPI, NotebookKernel, receive_until
from .conftest import add_cell_turn, complete, runs_server_config, tool, turn
from .test_warm_pool import filled


def sandboxed(replay: Any) -> dict[str, Any]:
    """The extension as installed: sandbox kernels, a warm pool of one."""
    config = runs_server_config(replay)
    for local in ("kernel_name", "allow_unsandboxed"):
        del config["NotebookAgent"][local]
    config["NotebookAgent"]["warm_pool_size"] = 1
    return config


@pytest.fixture
def jp_server_config(request: pytest.FixtureRequest, replay: Any) -> dict[str, Any]:
    if request.node.get_closest_marker("sandbox"):
        ensure_image()
        return sandboxed(replay)
    return runs_server_config(replay)


def new_notebook(root: Path, name: str) -> str:
    nbformat.write(nbformat.v4.new_notebook(), root / name)
    return name


async def open_notebook(jp_fetch: Any, path: str, kernel: str | None = None) -> dict[str, Any]:
    """What JupyterLab does on opening a notebook: a session, of the default kernel unless
    `kernel` names one."""
    body: dict[str, Any] = {"path": path, "type": "notebook", "name": path}
    if kernel:
        body["kernel"] = {"name": kernel}
    answer = await jp_fetch("api", "sessions", method="POST", body=json.dumps(body))
    return json.loads(answer.body)


async def finish(api: AgentAPI, path: str, prompt: str) -> tuple[dict, list[dict]]:
    run = await api.start(path, prompt)
    events = await receive_until(await api.events(run["id"]), "run_finished", 120)
    return await api.finished(run["id"]), events


def sent_text(request: dict[str, Any]) -> str:
    """Everything one model request carried, as one text."""
    return json.dumps(request["messages"])


@pytest.mark.sandbox
async def test_the_agent_works_in_the_notebooks_sandboxed_kernel_and_keeps_the_thread(
    api, extension, replay, jp_fetch, jp_ws_fetch, jp_serverapp, jp_root_dir
):
    await jp_serverapp.extension_manager.start_all_extensions()
    await filled(extension.pool)
    specs = json.loads((await jp_fetch("api", "kernelspecs")).body)
    assert specs["default"] == SANDBOX_KERNEL  # no unsandboxed kernel offered first

    path = new_notebook(jp_root_dir, "sales.ipynb")
    session = await open_notebook(jp_fetch, path)
    kernel_id = session["kernel"]["id"]
    assert session["kernel"]["name"] == SANDBOX_KERNEL
    async with NotebookKernel(jp_ws_fetch, kernel_id) as person:
        printed, first_count = await person.run(
            "import pandas as pd\n"
            "df = pd.DataFrame({'month': [1, 1, 2], 'amount': [10.0, 5.0, 7.5]})\n"
            "print('loaded')"
        )
        assert printed == "loaded\n"

        replay.script.turns = [
            add_cell_turn("by_month = df.groupby('month')['amount'].sum()\nprint(by_month[1])"),
            complete("Summed by month: 15.0 in month 1."),
        ]
        run, events = await finish(api, path, "Sum the amounts by month")
        assert run["kernel_id"] == kernel_id  # the kernel JupyterLab shows
        assert run["outcome"]["success"]
        told = replay.script.requests[0]["messages"][-1]["content"]
        assert "df" in told and "DataFrame" in told and "amount" in told, told
        (outputs,) = [e for e in events if e["type"] == "cell_outputs"]
        assert outputs["outputs"][0]["text"] == "15.0\n"
        assert outputs["execution_count"] == first_count + 1  # the kernel's own count

        # The person's next cell sees the agent's variable: one kernel, and it is still up.
        printed, count = await person.run("print(by_month.to_dict())")
        assert printed == "{1: 15.0, 2: 7.5}\n"
        assert count == first_count + 2

    # A follow-up continues the thread: the model is sent the first request and its result.
    # (A replayed model answers by the count of its turns in the thread: the third comes now.)
    replay.script.turns.append(complete("Month 2 had 7.5."))
    run, _ = await finish(api, path, "And month 2?")
    assert run["outcome"]["summary"] == "Month 2 had 7.5."
    follow_up = sent_text(replay.script.requests[-1])
    assert "Sum the amounts by month" in follow_up
    assert "15.0" in follow_up and "Summed by month" in follow_up
    assert "And month 2?" in follow_up

    # A new conversation: the next request starts from nothing said before.
    cleared = await api.call("DELETE", "conversation", params={"path": path})
    assert cleared["messages"] == [] and cleared["requests"] == []
    replay.script.turns = [complete("Fresh.")]
    run, _ = await finish(api, path, "Start over")
    assert run["outcome"]["summary"] == "Fresh."
    fresh = sent_text(replay.script.requests[-1])
    assert "Sum the amounts by month" not in fresh and "Start over" in fresh
    assert "by_month" in fresh  # the kernel kept its state: only the thread is new
    listed = json.loads((await jp_fetch("api", "kernels")).body)
    assert [k["id"] for k in listed] == [kernel_id]


@pytest.mark.sandbox
async def test_a_run_on_a_closed_notebook_makes_the_session_a_jupyterlab_then_finds(
    api, extension, replay, jp_fetch, jp_ws_fetch, jp_serverapp, jp_root_dir
):
    await jp_serverapp.extension_manager.start_all_extensions()
    path = new_notebook(jp_root_dir, "closed.ipynb")
    replay.script.turns = [add_cell_turn("answer = 6 * 7\nprint(answer)"), complete()]
    run, _ = await finish(api, path, "Compute 6 * 7")
    sessions = json.loads((await jp_fetch("api", "sessions")).body)
    (session,) = [s for s in sessions if s["path"] == path]
    assert session["kernel"]["id"] == run["kernel_id"]
    assert session["kernel"]["name"] == SANDBOX_KERNEL
    # Opening the notebook attaches to that same kernel and state.
    opened = await open_notebook(jp_fetch, path)
    assert opened["kernel"]["id"] == run["kernel_id"]
    async with NotebookKernel(jp_ws_fetch, run["kernel_id"]) as person:
        assert await person.run("print(answer)") == ("42\n", 2)


async def test_an_unsandboxed_notebook_kernel_is_refused_with_a_way_out(
    api, extension, jp_fetch, jp_root_dir
):
    extension.allow_unsandboxed = False
    path = new_notebook(jp_root_dir, "local.ipynb")
    await open_notebook(jp_fetch, path, "python3")
    refused = await api.call("POST", "runs", {"path": path, "prompt": "hi"}, expect=409)
    assert "not sandboxed" in refused["message"] and "switch" in refused["message"]


async def seen_busy(jp_fetch: Any, kernel_id: str) -> None:
    """Returns once the server has seen the kernel busy. A fixed half second was too short on
    a loaded machine: the agent's code then queued behind the person's cell, not waiting."""
    deadline = time.monotonic() + 10
    while True:
        model = json.loads((await jp_fetch("api", "kernels", kernel_id)).body)
        if model["execution_state"] == "busy":
            return
        assert time.monotonic() < deadline, "the server never saw the kernel busy"
        await asyncio.sleep(0.02)


async def test_the_agent_waits_for_the_persons_cell_and_a_stop_leaves_it_running(
    api, replay, jp_fetch, jp_ws_fetch, jp_root_dir
):
    path = new_notebook(jp_root_dir, "busy.ipynb")
    kernel_id = (await open_notebook(jp_fetch, path))["kernel"]["id"]
    async with NotebookKernel(jp_ws_fetch, kernel_id) as person:
        mine = person.send("import time\ntime.sleep(4)\nprint('mine finished')")
        await seen_busy(jp_fetch, kernel_id)
        replay.script.turns = [add_cell_turn("print('agent ran')"), complete()]
        run = await api.start(path, "do it")
        events = await receive_until(await api.events(run["id"]), "kernel_waiting", 30)
        assert events[-1]["reason"] == "busy"
        assert not any(e["type"] == "cell_outputs" for e in events)
        await api.call("POST", f"runs/{run['id']}/stop")
        printed, _ = await person.outcome(mine)
        assert printed == "mine finished\n"  # not interrupted: Stop is for the agent's code
        printed, _ = await person.run("print('next')")
        assert printed == "next\n"  # and the agent's code was never queued behind it


async def test_the_agent_never_restarts_the_persons_kernel(
    api, replay, jp_fetch, jp_ws_fetch, jp_root_dir
):
    path = new_notebook(jp_root_dir, "keep.ipynb")
    kernel_id = (await open_notebook(jp_fetch, path))["kernel"]["id"]
    async with NotebookKernel(jp_ws_fetch, kernel_id) as person:
        await person.run("mine = 'precious'")
        replay.script.turns = [
            add_cell_turn("scratch = 1\nprint(scratch)"),
            turn(tool("restart_kernel", {})),
            complete(),
        ]
        run, events = await finish(api, path, "clean up")
        (restart,) = [
            e for e in events if e["type"] == "tool_result" and e["name"] == "restart_kernel"
        ]
        assert restart["result"]["status"] == "not_done"
        assert any(e["type"] == "kernel_restart_proposed" for e in events)
        # Rejecting a cell that ran leaves what it did in the kernel, says so, offers a restart.
        cell_id = next(e["cell_id"] for e in events if e["type"] == "cell_proposed")
        await api.call("POST", f"runs/{run['id']}/cells/{cell_id}/reject")
        more = await receive_until(
            await api.events(run["id"], len(events)), "kernel_restart_proposed"
        )
        assert more[0]["type"] == "cell_rejected" and more[0]["effects_remain"]
        assert await person.run("print(mine, scratch)") == ("precious 1\n", 3)


async def test_a_restart_by_the_person_mid_run_is_noticed_at_once(
    api, replay, jp_fetch, jp_root_dir
):
    path = new_notebook(jp_root_dir, "restarted.ipynb")
    kernel_id = (await open_notebook(jp_fetch, path))["kernel"]["id"]
    replay.script.turns = [add_cell_turn("import time\ntime.sleep(60)"), complete()]
    run = await api.start(path, "wait a minute")
    socket = await api.events(run["id"])
    await receive_until(socket, "cell_proposed", 30)
    await asyncio.sleep(1)  # the cell runs
    started = asyncio.get_running_loop().time()
    await jp_fetch("api", "kernels", kernel_id, "restart", method="POST", body="")
    events = await receive_until(socket, "error", 30)
    assert asyncio.get_running_loop().time() - started < 10  # not at the 120 s timeout
    outputs = [e for e in events if e["type"] == "cell_outputs"][-1]
    assert outputs["status"] == "died"
    assert "restarted" in events[-1]["message"]


async def test_a_kernel_switched_by_the_person_mid_run_ends_the_run_at_once(
    api, replay, jp_fetch, jp_root_dir
):
    """The person switches the notebook's kernel while the agent's cell runs: the old kernel is
    shut down for good, and the run said so only after waiting a minute for it to come back."""
    path = new_notebook(jp_root_dir, "switched.ipynb")
    session = await open_notebook(jp_fetch, path)
    replay.script.turns = [
        add_cell_turn("import time\ntime.sleep(60)"),
        add_cell_turn("print('after the switch')"),
        complete(),
    ]
    run = await api.start(path, "wait a minute")
    socket = await api.events(run["id"])
    await receive_until(socket, "cell_proposed", 30)
    await asyncio.sleep(1)  # the cell runs
    started = asyncio.get_running_loop().time()
    switch = {"kernel": {"name": "python3"}}
    await jp_fetch("api", "sessions", session["id"], method="PATCH", body=json.dumps(switch))
    await receive_until(socket, "run_finished", 30)
    assert asyncio.get_running_loop().time() - started < 10  # not after REVIVAL_S
    finished = await api.finished(run["id"])
    assert finished["outcome"]["reason"] == "kernel_error"
    assert "shut down" in finished["outcome"]["summary"]


async def test_the_notebooks_kernel_websocket_sends_replies_at_once(
    jp_fetch, jp_ws_fetch, jp_root_dir
):
    """Nagle's algorithm off on JupyterLab's kernel connection: each message of a reply after the
    first no longer waits for the browser's delayed acknowledgement (about 40 ms)."""
    path = new_notebook(jp_root_dir, "prompt.ipynb")
    kernel_id = (await open_notebook(jp_fetch, path))["kernel"]["id"]
    async with NotebookKernel(jp_ws_fetch, kernel_id) as person:
        assert await person.run("print('hi')") == ("hi\n", 1)
        (handler,) = [
            h
            for key, h in PromptKernelWebsocketConnection._open_sessions.items()
            if key.startswith(kernel_id)
        ]
        sock = handler.ws_connection.stream.socket
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


async def test_the_model_is_told_the_cells_with_their_latest_outputs(api, replay, jp_root_dir):
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("rows = load()\nprint(len(rows))", id="person-1")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1200\n")]
    failed = nbformat.v4.new_code_cell("rows.plot()", id="person-2")
    failed.outputs = [
        nbformat.v4.new_output("error", ename="AttributeError", evalue="no plot", traceback=[])
    ]
    notebook.cells += [cell, failed]
    nbformat.write(notebook, jp_root_dir / "told.ipynb")
    replay.script.turns = [complete()]
    await finish(api, "told.ipynb", "why did the plot fail?")
    told = replay.script.requests[0]["messages"][-1]["content"]
    assert "print(len(rows))" in told and "1200" in told
    assert "AttributeError" in told and "no plot" in told


async def test_code_stopped_while_queued_behind_the_persons_cell_never_runs_on(kernel, tmp_path):
    """The agent's request went out just as the person's cell started (the server saw the
    kernel idle a moment before): Stop cannot take it back, so it is interrupted once it starts,
    and the person's cell runs on untouched."""
    agent = JupyterKernelSession(kernel.manager, shared=True)
    await agent.connect()
    person = kernel.manager.client()
    person.start_channels()
    await person.wait_for_ready(timeout=30)
    mine = person.execute("import time\ntime.sleep(2)\nprint('mine finished')")
    await asyncio.sleep(0.2)  # the person's cell runs; the agent's request queues behind it
    marker = tmp_path / "agent-ran"
    code = f"import time\ntime.sleep(3)\nopen({str(marker)!r}, 'w').write('ran')"
    execution = asyncio.ensure_future(agent.execute(code, timeout_s=30))
    await asyncio.sleep(0.5)
    execution.cancel()
    with pytest.raises(asyncio.CancelledError):
        await execution
    await agent.shutdown()
    printed = ""
    while True:
        msg = await person.get_iopub_msg(timeout=10)
        if msg["parent_header"].get("msg_id") != mine:
            continue
        if msg["header"]["msg_type"] == "stream":
            printed += msg["content"]["text"]
        if msg["header"]["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    assert printed == "mine finished\n"
    await asyncio.sleep(5)  # long enough for the agent's code to have finished, had it run on
    assert not marker.exists()
    person.stop_channels()


async def test_a_finished_run_that_goes_on_checks_the_notebooks_kernel_again(
    api, replay, extension, jp_root_dir
):
    """The person switched the notebook to a kernel that is no sandbox after the run: a
    regenerate must not run the rewritten cell there."""
    replay.script.turns = [
        add_cell_turn("print('first')"),
        complete(),
        turn(tool("edit_cell", {"cell_id": "agent-1", "source": "print('rewritten')"})),
        complete(),
    ]
    path = new_notebook(jp_root_dir, "switched.ipynb")
    run, _ = await finish(api, path, "print something")
    extension.allow_unsandboxed = False  # as if the kernel were switched to an unsandboxed one
    socket = await api.events(run["id"], run["events"])
    await api.call("POST", f"runs/{run['id']}/cells/agent-1/regenerate", {})
    events = await receive_until(socket, "run_finished")
    assert events[-1]["reason"] == "kernel_error"
    assert "not sandboxed" in events[-1]["summary"]
    assert not any(e["type"] == "cell_outputs" for e in events)


async def test_two_starts_of_a_notebooks_kernel_at_once_make_one_session(
    extension, jp_fetch, jp_root_dir
):
    """A run stopped while the notebook's session was being made lets the making finish; a
    run started right after must wait for that session, not make a second kernel."""
    path = new_notebook(jp_root_dir, "once.ipynb")
    registry = extension.registry
    first = registry._new_session(path, "python3")
    second = registry._new_session(path, "python3")
    assert second is first
    await first
    sessions = json.loads((await jp_fetch("api", "sessions")).body)
    assert len([s for s in sessions if s["path"] == path]) == 1
    assert registry._creating == {}  # forgotten once made: a later start asks the sessions


async def test_the_conversation_of_a_path_that_is_no_notebook_is_a_400(api, extension):
    await api.call("GET", "conversation", params={"path": "data.csv"}, expect=400)
    fresh = await api.call("GET", "conversation", params={"path": "never-run.ipynb"})
    assert fresh["messages"] == []
    assert extension.registry.conversations == {}


async def test_a_long_notebook_is_told_within_a_bound_its_latest_cells_whole(
    api, replay, jp_root_dir
):
    notebook = nbformat.v4.new_notebook()
    for number in range(60):
        cell = nbformat.v4.new_code_cell(f"step_{number} = {number}\n" + "x = 1\n" * 150)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="y" * 300)]
        notebook.cells.append(cell)
    nbformat.write(notebook, jp_root_dir / "long.ipynb")
    replay.script.turns = [complete()]
    await finish(api, "long.ipynb", "go on")
    told = replay.script.requests[0]["messages"][-1]["content"]
    assert len(told) < 25_000
    assert "step_0 = 0" in told  # the earliest, by its first line
    assert "step_59 = 59\\nx = 1" in told  # the latest, whole


async def test_a_notebook_closed_mid_run_lets_the_run_finish_in_its_kernel(
    api, replay, jp_fetch, jp_root_dir
):
    """The person's tab, which applied the run's cells, closes while the agent's cell runs: the
    run goes on in the notebook's kernel, and the server writes its cells into the file."""
    path = new_notebook(jp_root_dir, "closed.ipynb")
    kernel_id = (await open_notebook(jp_fetch, path))["kernel"]["id"]
    replay.script.turns = [
        add_cell_turn("import time\ntime.sleep(2)\nafter_close = 'kept'"),
        add_cell_turn("print(after_close)"),
        complete(),
    ]
    run = await api.start(path, "go on without me", writer="frontend")
    tab = await api.events(run["id"], role="writer")
    await receive_until(tab, "cell_proposed", 30)
    tab.close()
    finished = await api.finished(run["id"])
    assert finished["outcome"]["success"] and finished["kernel_id"] == kernel_id
    cells = [c for c in nbformat.read(jp_root_dir / path, 4).cells if c.cell_type == "code"]
    assert [c.outputs[0]["text"] for c in cells if c.outputs] == ["kept\n"]
    listed = json.loads((await jp_fetch("api", "kernels")).body)
    assert [k["id"] for k in listed] == [kernel_id]


async def test_two_tabs_on_one_notebook_share_its_kernel_and_its_thread(
    api, replay, jp_fetch, jp_root_dir
):
    """A second tab opens the notebook after a run: JupyterLab's session request gives it the
    same kernel, and the panel's thread there is the one the first tab's request began."""
    path = new_notebook(jp_root_dir, "two-tabs.ipynb")
    first = await open_notebook(jp_fetch, path)
    replay.script.turns = [add_cell_turn("shared = 42"), complete("Set it.")]
    run, _ = await finish(api, path, "set shared")
    second = await open_notebook(jp_fetch, path)
    assert second["id"] == first["id"]
    assert second["kernel"]["id"] == first["kernel"]["id"] == run["kernel_id"]
    threads = [await api.call("GET", "conversation", params={"path": path}) for _ in range(2)]
    assert threads[0] == threads[1]
    assert threads[0]["requests"] == ["set shared"]
