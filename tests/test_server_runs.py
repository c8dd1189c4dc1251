"""Runs over REST and WebSocket, with the model replayed over HTTP through the real client."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import nbformat
import pytest

from jupyter_notebook_agent.agent import AgentConfig
from jupyter_notebook_agent.llm.base import ModelTurn
from jupyter_notebook_agent.notebook import METADATA_KEY
from jupyter_notebook_agent.server import runs
from jupyter_notebook_agent.server.runs import RunLimits, RunRequest
from jupyter_notebook_agent.testing.replay_server import ReplayServerThread

from .agent_api import receive_until
from .conftest import (
    SECRET,
    add_cell_turn,
    complete,
    free_port,
    observer_plugin,
    runs_server_config,
    tool,
    turn,
)

TOKEN = "test-token"


@pytest.fixture
def jp_server_config(replay) -> dict[str, Any]:
    return runs_server_config(replay)


def make_notebook(root: Path, name: str = "analysis.ipynb") -> str:
    notebook = nbformat.v4.new_notebook()
    notebook.cells.append(nbformat.v4.new_markdown_cell("# Mine", id="person-1"))
    nbformat.write(notebook, root / name)
    return name


def read(root: Path, name: str) -> nbformat.NotebookNode:
    notebook = nbformat.read(root / name, as_version=4)
    nbformat.validate(notebook)
    return notebook


def read_between_writes(root: Path, name: str) -> nbformat.NotebookNode:
    """The notebook while a server may be writing it: Jupyter's contents manager writes the file
    in place (keeping a backup aside), so a read mid-write sees part of it; an empty notebook
    stands for that moment, and the caller polls again."""
    try:
        return read(root, name)
    except (json.JSONDecodeError, nbformat.reader.NotJSONError, nbformat.ValidationError):
        return nbformat.v4.new_notebook()


def agent_cells(notebook: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    return {c.id: c for c in notebook.cells if METADATA_KEY in c.metadata}


def slow(content: str, seconds: float) -> ModelTurn:
    """A turn whose prose streams over `seconds` when the replay keeps recorded timing."""
    return ModelTurn(content=content, ttft_s=0.01, duration_s=seconds)


async def test_a_whole_run_over_rest_and_websocket(api, replay, jp_root_dir, jp_serverapp):
    replay.script.turns = [
        turn(tool("add_cell", {"cell_type": "markdown", "source": "## Sums"}), content="Adding."),
        add_cell_turn("total = sum(range(5))\nprint(total)"),
        complete("The total is **10**."),
    ]
    path = make_notebook(jp_root_dir)
    run = await api.start(path, "add up 0 to 4")
    assert run["state"] == "running" and run["path"] == path
    socket = await api.events(run["id"])
    events = await receive_until(socket, "run_finished")
    assert [e["seq"] for e in events] == list(range(len(events)))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert {"message_delta", "cell_proposed", "cell_source_delta", "cell_outputs"} <= set(kinds)
    streamed = "".join(
        e["text"] for e in events if e["type"] == "cell_source_delta" and e["cell_id"] == "agent-2"
    )
    assert streamed == "total = sum(range(5))\nprint(total)"
    (outputs,) = [e for e in events if e["type"] == "cell_outputs"]
    assert outputs["outputs"][0]["text"] == "10\n"

    finished = await api.finished(run["id"])
    assert finished["outcome"] == {
        "success": True,
        "reason": "completed",
        "summary": "The total is **10**.",
    }
    listed = await api.call("GET", "runs", params={"path": path})
    assert [r["id"] for r in listed["runs"]] == [run["id"]]

    # No frontend was subscribed as the writer: the server wrote the file.
    notebook = read(jp_root_dir, path)
    assert [c.id for c in notebook.cells] == ["person-1", "agent-1", "agent-2"]
    provenance = notebook.cells[2].metadata[METADATA_KEY]
    assert provenance == {"run_id": run["id"], "model": "test-model", "state": "proposed"}
    assert notebook.cells[2].outputs[0].text == "10\n"
    (record,) = notebook.metadata[METADATA_KEY]["runs"]
    assert record == {
        "run_id": run["id"],
        "task": run["prompt"],
        "model": "test-model",
        "state": "finished",
        "success": True,
        "reason": "completed",
    }
    checkpoints = await jp_serverapp.contents_manager.list_checkpoints(path)
    assert checkpoints, "no checkpoint was made before the run's first write"

    # The API key went to the model server, and nowhere else.
    assert all(SECRET not in json.dumps(e) for e in events)
    assert SECRET not in (jp_root_dir / path).read_text()
    assert SECRET not in json.dumps(await api.call("GET", "status"))


async def test_a_dropped_connection_resumes_from_its_last_event(api, replay, jp_root_dir):
    replay.script.speed = 1
    replay.script.turns = [
        slow("Looking at the task first. " * 20, 1.0),
        add_cell_turn("1 + 1"),
        complete(),
    ]
    run = await api.start(make_notebook(jp_root_dir))
    socket = await api.events(run["id"])
    first_part = [json.loads(await socket.read_message()) for _ in range(15)]
    socket.close()
    await asyncio.sleep(0.3)  # events go on meanwhile
    resumed = await api.events(run["id"], first=first_part[-1]["seq"] + 1)
    rest = await receive_until(resumed, "run_finished")
    seen = [e["seq"] for e in first_part + rest]
    assert seen == list(range(len(seen))), "an event was missed or sent twice"
    whole = await receive_until(await api.events(run["id"]), "run_finished")
    assert first_part + rest == whole


async def test_the_server_writes_coalesced_and_keeps_what_the_person_saved(
    api, replay, jp_root_dir, jp_serverapp
):
    saves: list[str] = []  # every write of a file, whoever saves it
    jp_serverapp.contents_manager.register_post_save_hook(
        lambda os_path, **_: saves.append(os_path)
    )
    long_source = "\n".join(f"value_{i} = {i} * 2" for i in range(120))
    replay.script.turns = [add_cell_turn(long_source), complete()]
    path = make_notebook(jp_root_dir)
    run = await api.start(path, execution="ask")
    socket = await api.events(run["id"])
    events = await receive_until(socket, "cell_proposed")
    while not (events[-1]["type"] == "tool_call"):
        events.append(json.loads(await socket.read_message()))
    deltas = [e for e in events if e["type"] == "cell_source_delta"]
    assert len(deltas) > 50
    await asyncio.sleep(0.3)
    assert 1 <= len(saves) <= 5, f"{len(saves)} writes for {len(deltas)} streamed pieces"

    # Meanwhile the person saves an edit of their own; the server's next write keeps it.
    mine = read(jp_root_dir, path)
    mine.cells.insert(0, nbformat.v4.new_code_cell("mine = True", id="person-2"))
    nbformat.write(mine, jp_root_dir / path)
    await api.call("POST", f"runs/{run['id']}/cells/agent-1/accept")
    await api.finished(run["id"])
    notebook = read(jp_root_dir, path)
    assert [c.id for c in notebook.cells] == ["person-2", "person-1", "agent-1"]
    assert notebook.cells[2].source == long_source
    assert notebook.cells[2].metadata[METADATA_KEY]["state"] == "accepted"
    assert notebook.cells[2].outputs == []  # assignments print nothing, but it ran:
    assert notebook.cells[2].execution_count == 1


async def test_a_frontend_writer_holds_the_server_off_until_it_leaves(api, replay, jp_root_dir):
    replay.script.turns = [add_cell_turn("x = 1"), add_cell_turn("y = 2"), complete()]
    path = make_notebook(jp_root_dir)
    # As the panel starts it: the server holds off for the frontend from the start, so a slow
    # connection of its WebSocket is no write behind its back.
    run = await api.start(path, execution="ask", writer="frontend")
    writer = await api.events(run["id"], role="writer")
    await receive_until(writer, "tool_call")
    await asyncio.sleep(0.3)
    assert [c.id for c in read(jp_root_dir, path).cells] == ["person-1"]
    writer.close()  # the tab closed: the server takes the writing over
    deadline = time.monotonic() + 10
    while "agent-1" not in agent_cells(read_between_writes(jp_root_dir, path)):
        assert time.monotonic() < deadline, "the server did not take the writing over"
        await asyncio.sleep(0.05)
    await api.call("POST", f"runs/{run['id']}/stop")


@pytest.mark.parametrize("then_stop", [False, True], ids=["goes-on", "stopped"])
async def test_a_regenerate_while_the_run_puts_its_work_away_goes_on_after(
    api, replay, jp_root_dir, extension, then_stop
):
    """A verdict that lands once the agent's loop has ended but while the run still writes its
    cells away (a slow save) was read by no one: the run must go on once it has put it away,
    unless the person stopped it meanwhile."""
    replay.script.turns = [
        add_cell_turn("print(1)"),
        complete("one cell"),
        turn(tool("edit_cell", {"cell_id": "agent-1", "source": "print(2)"})),
        complete("rewritten"),
    ]
    path = make_notebook(jp_root_dir)
    run = await api.start(path)
    live = extension.registry.runs[run["id"]]
    flush = live.writer.flush

    async def slow_flush() -> None:
        await asyncio.sleep(1)
        await flush()

    live.writer.flush = slow_flush
    socket = await api.events(run["id"])
    await receive_until(socket, "run_finished")
    assert (await api.run(run["id"]))["state"] == "running"  # putting its work away
    await api.call("POST", f"runs/{run['id']}/cells/agent-1/regenerate")
    if then_stop:
        stopped = await api.call("POST", f"runs/{run['id']}/stop")
        assert stopped["state"] == "finished"
        await asyncio.sleep(1.5)
        assert (await api.run(run["id"]))["state"] == "finished"
        assert len(replay.script.requests) == 2  # the model was not asked again
        return
    await receive_until(socket, "run_finished", timeout_s=20)
    finished = await api.finished(run["id"])
    assert finished["outcome"]["summary"] == "rewritten"


async def test_a_regenerate_during_the_last_turn_is_done_after_it(api, replay, jp_root_dir):
    """A regenerate while the model writes its last answer (one that completes the task) was
    noted for a next turn that never came."""
    replay.script.speed = 1
    last = complete("one cell")
    last.content, last.ttft_s, last.duration_s = "Done " * 50, 0.01, 2.0
    replay.script.turns = [
        add_cell_turn("print(1)"),
        last,
        turn(tool("edit_cell", {"cell_id": "agent-1", "source": "print(2)"})),
        complete("rewritten"),
    ]
    path = make_notebook(jp_root_dir)
    run = await api.start(path)
    socket = await api.events(run["id"])
    await receive_until(socket, "message_delta")  # the last answer is streaming
    await api.call("POST", f"runs/{run['id']}/cells/agent-1/regenerate")
    await receive_until(socket, "run_finished")
    await receive_until(socket, "run_finished", timeout_s=20)
    finished = await api.finished(run["id"])
    assert finished["outcome"]["summary"] == "rewritten"


async def test_a_cell_rejected_while_it_is_written_ends_nothing(api, replay, jp_root_dir):
    """The person rejects a cell while its source still streams: the rest of the call writes
    nowhere, the model hears the cell was rejected, and the run goes on to its end."""
    replay.script.speed = 1
    writing = add_cell_turn("print('line')\n" * 200)
    writing.ttft_s, writing.duration_s = 0.01, 2.0
    replay.script.turns = [writing, complete("gone then")]
    path = make_notebook(jp_root_dir)
    run = await api.start(path)
    socket = await api.events(run["id"])
    await receive_until(socket, "cell_source_delta")
    await api.call("POST", f"runs/{run['id']}/cells/agent-1/reject")
    events = await receive_until(socket, "run_finished", timeout_s=20)
    assert events[-1]["summary"] == "gone then"
    results = [e["result"] for e in events if e["type"] == "tool_result"]
    assert results[0]["status"] == "rejected"


async def test_accept_reject_and_regenerate_with_an_instruction(api, replay, jp_root_dir):
    replay.script.turns = [
        add_cell_turn("import math\nvalue = 3"),
        add_cell_turn("print('rejected ran', value)\nvalue = 100"),
        add_cell_turn("print(value * 2)"),
        complete("three cells"),
        # What the model answers to the regenerate request, after the run finished:
        turn(tool("edit_cell", {"cell_id": "agent-3", "source": "print(value * 3)"})),
        complete("rewritten"),
    ]
    path = make_notebook(jp_root_dir)
    run = await api.start(path)
    await api.finished(run["id"])
    base = f"runs/{run['id']}/cells"
    await api.call("POST", f"{base}/agent-1/accept")
    await api.call("POST", f"{base}/agent-2/reject")
    await api.call("POST", f"{base}/agent-3/regenerate", {"instruction": "triple it"})
    socket = await api.events(run["id"], first=0)
    events = await receive_until(socket, "run_finished")
    events += await receive_until(socket, "run_finished")  # the second one: after the rewrite
    kinds = [e["type"] for e in events]
    assert kinds.count("run_finished") == 2
    (regenerating,) = [e for e in events if e["type"] == "cell_regenerating"]
    assert regenerating["instruction"] == "triple it"
    assert regenerating["source"] == "print(value * 2)"
    # The kernel is the notebook's: the rejected agent-2's effects remain in it (3 * 100), it
    # is not rebuilt behind the person's back, and the person is offered a restart instead.
    assert "kernel_rebuilt" not in kinds
    (rejected,) = [e for e in events if e["type"] == "cell_rejected"]
    assert rejected["effects_remain"]
    assert "kernel_restart_proposed" in kinds
    last_outputs = [e for e in events if e["type"] == "cell_outputs"][-1]
    assert last_outputs["cell_id"] == "agent-3" and last_outputs["outputs"][0]["text"] == "300\n"
    # The model was told what the person did and asked.
    told = json.dumps(replay.script.requests[-2]["messages"][-1])
    assert "rejected cell agent-2" in told and "triple it" in told and "agent-3" in told
    assert "remains in the kernel" in told

    finished = await api.finished(run["id"])
    assert finished["outcome"]["summary"] == "rewritten"
    cells = {c["cell_id"]: c for c in finished["cells"]}
    assert cells["agent-1"]["state"] == "accepted"
    assert cells["agent-2"]["state"] == "rejected"
    assert cells["agent-3"]["versions"] == ["print(value * 2)"]
    notebook = read(jp_root_dir, path)
    assert [c.id for c in notebook.cells] == ["person-1", "agent-1", "agent-3"]
    assert notebook.cells[1].metadata[METADATA_KEY]["state"] == "accepted"
    assert notebook.cells[2].source == "print(value * 3)"
    assert notebook.cells[2].outputs[0].text == "300\n"


async def test_a_rejection_is_undone_and_the_cell_comes_back_as_it_was(api, replay, jp_root_dir):
    """Reject removed at once, with no way back: restore brings the cell back where it was,
    with its source and outputs, proposed again, in the file too; the model is told."""
    replay.script.turns = [
        add_cell_turn("print('first')"),
        add_cell_turn("print('second')"),
        add_cell_turn("print('third')"),
        complete("three cells"),
        complete("noted"),  # after the regenerate below, which also tells of the restore
    ]
    path = make_notebook(jp_root_dir)
    run = await api.start(path)
    await api.finished(run["id"])
    base = f"runs/{run['id']}/cells"
    await api.call("POST", f"{base}/agent-2/restore", expect=404)  # never rejected
    await api.call("POST", f"{base}/agent-2/reject")
    await api.call("POST", f"{base}/agent-3/reject")
    info = await api.call("POST", f"{base}/agent-2/restore")
    assert {c["cell_id"]: c["state"] for c in info["cells"]} == {
        "agent-1": "proposed",
        "agent-2": "proposed",
        "agent-3": "rejected",
    }
    await api.call("POST", f"{base}/agent-2/restore", expect=404)  # not rejected any more
    socket = await api.events(run["id"], first=0)
    events = await receive_until(socket, "cell_restored")
    restored = events[-1]
    assert (restored["index"], restored["after_cell_id"]) == (2, "agent-1")
    assert restored["source"] == "print('second')"
    assert restored["outputs"][0]["text"] == "second\n"
    assert restored["metadata"][METADATA_KEY]["state"] == "proposed"
    deadline = time.monotonic() + 10
    while [c.id for c in read_between_writes(jp_root_dir, path).cells] != [
        "person-1",
        "agent-1",
        "agent-2",
    ]:
        assert time.monotonic() < deadline, "the restored cell never reached the file"
        await asyncio.sleep(0.1)
    # The model hears of it with the next thing it is asked.
    await api.call("POST", f"{base}/agent-1/regenerate")
    await receive_until(socket, "run_finished")
    told = json.dumps(replay.script.requests[-1]["messages"])
    assert "undid the rejection of cell agent-2" in told


async def test_in_ask_mode_code_runs_only_once_accepted(api, replay, jp_root_dir):
    replay.script.turns = [
        add_cell_turn("print('first')"),
        add_cell_turn("print('second')"),
        complete(),
    ]
    run = await api.start(make_notebook(jp_root_dir), execution="ask")
    socket = await api.events(run["id"])
    await receive_until(socket, "tool_call")
    with pytest.raises(asyncio.TimeoutError):
        await receive_until(socket, "cell_outputs", timeout_s=0.5)
    base = f"runs/{run['id']}/cells"
    await api.call("POST", f"{base}/agent-1/accept")
    outputs = await receive_until(socket, "cell_outputs")
    assert outputs[-1]["cell_id"] == "agent-1" and outputs[-1]["outputs"][0]["text"] == "first\n"
    await receive_until(socket, "tool_call")
    await api.call("POST", f"{base}/agent-2/reject")
    rest = await receive_until(socket, "run_finished")
    assert "cell_outputs" not in [e["type"] for e in rest]
    (result,) = [e for e in rest if e["type"] == "tool_result"][:1]
    assert result["result"]["status"] == "rejected"


async def test_a_cell_brought_back_after_its_rejection_runs_once_accepted(api, replay, jp_root_dir):
    """In ask mode a cell rejected before it ran, then brought back, has no call of the
    model's left to run it: accepting it runs it, and the model reads its outputs and
    finishes. Another request on the notebook since then forbids bringing a cell back."""
    replay.script.turns = [add_cell_turn("print('brought back')"), complete("nothing ran")]
    replay.script.turns.append(complete("it ran after all"))
    path = make_notebook(jp_root_dir)
    run = await api.start(path, execution="ask")
    socket = await api.events(run["id"])
    await receive_until(socket, "tool_call")
    base = f"runs/{run['id']}/cells"
    await api.call("POST", f"{base}/agent-1/reject")
    await receive_until(socket, "run_finished")
    await api.call("POST", f"{base}/agent-1/restore")
    await api.call("POST", f"{base}/agent-1/accept")
    rest = await receive_until(socket, "run_finished")
    (outputs,) = [e for e in rest if e["type"] == "cell_outputs"]
    assert outputs["cell_id"] == "agent-1" and outputs["outputs"][0]["text"] == "brought back\n"
    assert rest[-1]["summary"] == "it ran after all"
    told = json.dumps(replay.script.requests[-1]["messages"])
    assert "brought back after rejecting it, and it ran" in told
    assert "Then call complete_task" in told
    deadline = time.monotonic() + 10
    while [
        c.get("outputs") for c in agent_cells(read_between_writes(jp_root_dir, path)).values()
    ] != [[nbformat.v4.new_output("stream", name="stdout", text="brought back\n")]]:
        assert time.monotonic() < deadline, "the cell's outputs never reached the file"
        await asyncio.sleep(0.1)

    await api.call("POST", f"{base}/agent-1/reject")
    await api.finished(run["id"])
    replay.script.turns.extend([add_cell_turn("x = 2"), complete("another")])
    later = await api.start(path, "another request")
    await api.finished(later["id"])
    refused = await api.call("POST", f"{base}/agent-1/restore", expect=409)
    assert "another request" in refused["message"]


async def test_ten_runs_on_ten_notebooks_at_once(api, replay, jp_root_dir, extension):
    """Up to the server's limit of active runs; one more is refused, naming the limit."""
    extension.registry.limits = RunLimits(server=10, per_user=10)
    replay.script.turns = [add_cell_turn("import os\nprint(os.getpid())"), complete()]
    paths = [make_notebook(jp_root_dir, f"n{i}.ipynb") for i in range(11)]
    runs = await asyncio.gather(*(api.start(path) for path in paths[:10]))
    conflict = await api.call("POST", "runs", {"path": paths[0], "prompt": "again"}, expect=409)
    assert runs[0]["id"] in conflict["message"]
    full = await api.call("POST", "runs", {"path": paths[10], "prompt": "one more"}, expect=429)
    assert "10 runs are working" in full["message"]
    assert "c.NotebookAgent.max_active_runs" in full["message"]
    finished = await asyncio.gather(*(api.finished(run["id"], 120) for run in runs))
    assert all(run["outcome"]["success"] for run in finished)
    pids = set()
    for path in paths[:10]:
        (cell,) = agent_cells(read(jp_root_dir, path)).values()
        pids.add(cell.outputs[0].text)
    assert len(pids) == 10, "each run has a kernel of its own"


async def test_stop_during_generation(api, replay, jp_root_dir):
    replay.script.speed = 1
    replay.script.turns = [slow("word " * 300, 30.0), complete()]
    run = await api.start(make_notebook(jp_root_dir))
    socket = await api.events(run["id"])
    await receive_until(socket, "message_delta")
    started = time.monotonic()
    stopped = await api.call("POST", f"runs/{run['id']}/stop")
    assert time.monotonic() - started < 1.0
    assert stopped["state"] == "finished"
    assert stopped["outcome"]["reason"] == "stopped"
    assert (await receive_until(socket, "run_finished"))[-1]["reason"] == "stopped"


async def test_stop_during_a_long_execution_interrupts_it(api, replay, jp_root_dir):
    """The cell stops too, and keeps what it printed before (it was discarded)."""
    code = "print('before', flush=True)\nimport time\ntime.sleep(60)"
    replay.script.turns = [add_cell_turn(code), complete()]
    path = make_notebook(jp_root_dir)
    run = await api.start(path)
    socket = await api.events(run["id"])
    await receive_until(socket, "tool_call")
    await asyncio.sleep(0.5)  # the sleep is under way
    started = time.monotonic()
    stopped = await api.call("POST", f"runs/{run['id']}/stop")
    assert time.monotonic() - started < 1.0
    assert stopped["outcome"]["reason"] == "stopped"
    outputs = [
        e for e in await receive_until(socket, "run_finished") if e["type"] == "cell_outputs"
    ]
    *running, last = [(e["status"], e["outputs"][0]["text"]) for e in outputs]
    assert last == ("stopped", "before\n")
    assert set(running) <= {("running", "before\n")}  # shown while it ran
    deadline = time.monotonic() + 10
    while not (cell := agent_cells(read_between_writes(jp_root_dir, path)).get("agent-1")) or (
        not cell.outputs
    ):
        assert time.monotonic() < deadline, "the stopped cell's output was never written"
        await asyncio.sleep(0.1)
    assert cell.outputs[0].text == "before\n"
    # Stopping frees the notebook for the next run.
    replay.script.turns = [complete()]
    await api.start(run["path"])


async def created_run(extension: Any, path: str) -> runs.Run:
    """A run of five steps at most on the notebook, made and started in this task, as the
    handler makes one: its own task has not begun when this returns."""
    registry = extension.registry
    return registry.create(
        RunRequest(path, "go", "auto", 5),
        await registry.read_notebook(path),
        await extension.make_model(),
        "python3",
        AgentConfig(max_steps=5),
    )


async def test_a_stop_as_the_run_begins_ends_it(replay, jp_root_dir, extension):
    """A Stop that comes before the agent's loop began (the run just made) was a no-op, and
    waited for the whole run to end."""
    replay.script.speed = 1
    replay.script.turns = [slow("word " * 300, 30.0), complete()]
    run = await created_run(extension, make_notebook(jp_root_dir))
    async with asyncio.timeout(5):  # in this task: the run's own has not begun yet
        await run.stop()
    assert (run.state, run.outcome.reason) == ("finished", "stopped")
    assert [event["type"] for event in run.events.events] == ["run_started", "run_finished"]


async def test_a_stop_as_a_finished_run_goes_on_again_ends_it(replay, jp_root_dir, extension):
    """A Stop that came between a regenerate's start of a finished run and its first step was
    cleared by the resume it meant to stop: the run went on with the model."""
    replay.script.speed = 1
    replay.script.turns = [add_cell_turn("x = 1"), complete("one cell")]
    replay.script.turns += [slow("word " * 300, 30.0), complete()]
    run = await created_run(extension, make_notebook(jp_root_dir))
    await run.task
    assert run.outcome.reason == "completed"
    run.regenerate("agent-1", "")
    async with asyncio.timeout(5):  # in this task: the resumed run's own has not begun yet
        await run.stop()
    assert (run.state, run.outcome.reason) == ("finished", "stopped")
    assert [e["reason"] for e in run.events.events if e["type"] == "run_finished"] == [
        "completed",
        "stopped",
    ]


async def test_a_stop_frees_the_notebook_when_its_work_cannot_be_put_away(
    api, replay, jp_root_dir, extension, monkeypatch
):
    """A save of the notebook that does not end (a stuck file system) held the stopped run's
    last write, and with it the run, `running`, and the notebook, for any new request. Stop
    frees it within seconds; the write goes on in the background."""
    monkeypatch.setattr(runs, "STOP_WAIT_S", 1.0)
    monkeypatch.setattr(extension.registry.saves, "read_wait_s", 1.0)  # the next request's read
    replay.script.speed = 1
    replay.script.turns = [add_cell_turn("x = 1"), slow("word " * 300, 30.0), complete()]
    path = make_notebook(jp_root_dir)
    run = await api.start(path)
    socket = await api.events(run["id"])
    await receive_until(socket, "message_delta")
    held = asyncio.Event()
    release = asyncio.Event()

    async def a_save_that_hangs() -> None:
        async with extension.registry.saves.turn(path):
            held.set()
            await release.wait()

    hanging = asyncio.ensure_future(a_save_that_hangs())
    await held.wait()
    started = time.monotonic()
    stopped = await api.call("POST", f"runs/{run['id']}/stop")
    assert time.monotonic() - started < 3
    assert (stopped["state"], stopped["outcome"]["reason"]) == ("finished", "stopped")
    regenerate = f"runs/{run['id']}/cells/agent-1/regenerate"
    answer = await api.call("POST", regenerate, {}, expect=409)  # not a second task of it
    assert "still putting its work away" in answer["message"]
    replay.script.turns[1] = complete()  # the next request's first turn
    following = await api.start(path)  # the notebook is free: no 409
    release.set()
    await hanging
    await api.finished(following["id"])
    deadline = time.monotonic() + 10
    while "agent-1" not in agent_cells(read_between_writes(jp_root_dir, path)):
        assert time.monotonic() < deadline, "the stopped run's cell was never written"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ("{not json", 400, "not valid JSON"),
        ("[1, 2]", 400, "must be a JSON object"),
        ({"prompt": "x"}, 400, "'path' is missing"),
        ({"path": "analysis.ipynb"}, 400, "'prompt' is missing"),
        ({"path": "analysis.ipynb", "prompt": 7}, 400, "'prompt' must be a string"),
        ({"path": "analysis.ipynb", "prompt": "  "}, 400, "'prompt' is empty"),
        ({"path": "analysis.ipynb", "prompt": "x", "execution": "yolo"}, 400, "'execution'"),
        ({"path": "analysis.ipynb", "prompt": "x", "max_steps": 0}, 400, "'max_steps'"),
        ({"path": "analysis.ipynb", "prompt": "x", "max_steps": True}, 400, "'max_steps'"),
        ({"path": "analysis.ipynb", "prompt": "x" * 100_001}, 413, "at most 100000"),
        ({"path": "data.csv", "prompt": "x"}, 400, "not a notebook"),
        ({"path": "missing.ipynb", "prompt": "x"}, 404, "no notebook at"),
        ({"path": "../outside.ipynb", "prompt": "x"}, 400, "outside the server's root"),
        ({"path": "analysis.ipynb", "prompt": "x", "model": "replay:/x"}, 400, "backend"),
    ],
)
async def test_bad_requests_are_refused_with_a_clear_message(api, jp_root_dir, body, status, words):
    make_notebook(jp_root_dir)
    (jp_root_dir / "data.csv").write_text("a,b\n")
    (jp_root_dir.parent / "outside.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook()))
    answer = await api.call("POST", "runs", body, expect=status)
    assert words in answer["message"]
    assert (await api.call("GET", "runs"))["runs"] == []


async def test_unknown_runs_cells_and_actions_are_404(api, replay, jp_root_dir):
    assert "no run has id" in (await api.call("GET", "runs/nope", expect=404))["message"]
    await api.call("POST", "runs/nope/stop", expect=404)
    replay.script.turns = [add_cell_turn("1"), complete()]
    run = await api.start(make_notebook(jp_root_dir))
    await api.finished(run["id"])
    base = f"runs/{run['id']}/cells"
    missing = await api.call("POST", f"{base}/agent-9/accept", expect=404)
    assert "agent-9" in missing["message"]
    await api.call("POST", f"{base}/person-1/reject", expect=404)  # not the agent's to remove
    bad = await api.call("POST", f"{base}/agent-1/reject", {"keep_state": "yes"}, expect=400)
    assert "'keep_state'" in bad["message"]
    with pytest.raises(Exception) as refused:
        await api.events("nope")
    assert "404" in str(refused.value)


def start_server(
    root: Path,
    port: int,
    replay: ReplayServerThread,
    log: Path | None = None,
    env: dict[str, str] | None = None,
    options: list[str] | None = None,
) -> subprocess.Popen[bytes]:
    """A real `jupyter server` process with the extension on the replayed model, and
    `options`; its log goes to `log`, else to a pipe read when it fails to start. `env` adds to
    its environment."""
    model = [
        "--NotebookAgent.model=openai:test-model",
        f"--NotebookAgent.base_url={replay.base_url}",
        f"--NotebookAgent.api_key={SECRET}",
        f"--NotebookAgent.model_settings_path={root.parent / 'model.json'}",
    ]
    return start_jupyter(root, port, model + (options or []), log, env)


def start_jupyter(
    root: Path,
    port: int,
    options: list[str],
    log: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """A real `jupyter server` process with the extension, a local kernel and a run store
    beside `root`, and `options`; once it answers."""
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            f"--ServerApp.root_dir={root}",
            f"--ServerApp.port={port}",
            "--ServerApp.ip=127.0.0.1",
            "--ServerApp.open_browser=False",
            f"--IdentityProvider.token={TOKEN}",
            "--ServerApp.allow_root=True",
            "--NotebookAgent.kernel_name=python3",
            "--NotebookAgent.allow_unsandboxed=True",
            "--NotebookAgent.warm_pool_size=0",
            f"--NotebookAgent.store_path={root.parent / 'runs.sqlite'}",
            *options,
        ],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb") if log else subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            rest(port, "GET", "api/status")
            return server
        except OSError:
            assert server.poll() is None, (
                log.read_text() if log else server.stderr.read().decode()
            )[
                # read only once it failed: it blocks until then
                -3000:
            ]
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)


def rest(port: int, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"token {TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_observers_from_entry_points_see_every_event_of_a_servers_run(tmp_path, replay):
    """The observers' entry point reaches runs started from the panel, not only the CLI's."""
    seen = tmp_path / "seen.jsonl"
    plugin = observer_plugin(tmp_path / "plugin", seen)
    replay.script.turns = [add_cell_turn("x = 1"), complete()]
    root = tmp_path / "root"
    root.mkdir()
    path = make_notebook(root)
    port = free_port()
    server = start_server(root, port, replay, env={"PYTHONPATH": str(plugin)})
    try:
        run = rest(port, "POST", "notebook-agent/runs", {"path": path, "prompt": "go"})
        deadline = time.monotonic() + 60
        while rest(port, "GET", f"notebook-agent/runs/{run['id']}")["state"] == "running":
            assert time.monotonic() < deadline, "the run did not finish"
            time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(30)
    events = [json.loads(line) for line in seen.read_text().splitlines()]
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "run_started" and events[-1]["type"] == "run_finished"
    assert "cell_outputs" in {e["type"] for e in events}


def started_mid_run(
    tmp_path: Path, replay: ReplayServerThread, prompt: str
) -> tuple[Path, str, int, subprocess.Popen[bytes], dict[str, Any]]:
    """A server process whose run has written its first cell and whose model is still talking
    (for 30 s): the root, the notebook, the port, the server and the run."""
    replay.script.speed = 1
    replay.script.turns = [add_cell_turn("x = 1"), slow("thinking " * 200, 30.0), complete()]
    root = tmp_path / "root"
    root.mkdir()
    path = make_notebook(root)
    port = free_port()
    server = start_server(root, port, replay)
    try:
        run = rest(port, "POST", "notebook-agent/runs", {"path": path, "prompt": prompt})
        deadline = time.monotonic() + 30
        while "agent-1" not in agent_cells(read_between_writes(root, path)):
            assert time.monotonic() < deadline, "the first cell was never written"
            time.sleep(0.05)
    except BaseException:
        server.kill()
        raise
    return root, path, port, server, run


def test_a_server_restart_mid_run_leaves_a_valid_notebook(tmp_path, replay):
    root, path, port, server, run = started_mid_run(tmp_path, replay, "go")
    try:
        server.send_signal(signal.SIGTERM)  # mid-run: the model is still talking
        assert server.wait(30) == 0
    finally:
        server.kill()
    notebook = read(root, path)
    assert [c.id for c in notebook.cells] == ["person-1", "agent-1"]
    (record,) = notebook.metadata[METADATA_KEY]["runs"]
    assert (record["run_id"], record["state"], record["reason"]) == (
        run["id"],
        "interrupted",
        "interrupted",
    )
    server = start_server(root, port, replay)
    try:
        model = rest(port, "GET", f"api/contents/{path}")
        nbformat.validate(nbformat.from_dict(model["content"]))
        (kept,) = rest(port, "GET", "notebook-agent/runs")["runs"]  # from the run store
        assert (kept["id"], kept["state"]) == (run["id"], "interrupted")
        assert kept["outcome"]["reason"] == "interrupted"
    finally:
        server.terminate()
        server.wait(30)


async def test_older_finished_runs_are_read_from_the_store_which_keeps_its_own_number(
    api, replay, jp_root_dir, extension
):
    """The server holds its newest finished runs in memory; older ones come from the run store,
    which keeps a number of its own per notebook and drops the oldest past it."""
    extension.registry.finished_runs_kept = 2
    extension.registry.store.runs_kept_per_notebook = 3
    replay.script.turns = [complete()]
    path = make_notebook(jp_root_dir)
    ids = []
    for _ in range(4):
        ids.append((await api.start(path))["id"])
        await api.finished(ids[-1])
    assert list(extension.registry.runs) == ids[-2:]
    listed = await api.call("GET", "runs", params={"path": path})
    assert [run["id"] for run in listed["runs"]] == ids[-3:]
    stored = await api.call("GET", f"runs/{ids[1]}")
    assert stored["state"] == "finished" and stored["outcome"] is not None
    await api.call("GET", f"runs/{ids[0]}", expect=404)


async def test_a_frontend_that_will_write_is_waited_for(api, replay, jp_root_dir):
    replay.script.turns = [add_cell_turn("x = 1"), complete()]
    path = make_notebook(jp_root_dir)
    run = await api.start(path, writer="frontend")
    await asyncio.sleep(0.5)  # the run went on meanwhile; the server did not write
    assert [c.id for c in read(jp_root_dir, path).cells] == ["person-1"]
    writer = await api.events(run["id"], role="writer")
    await receive_until(writer, "run_finished")
    await api.finished(run["id"])
    assert [c.id for c in read(jp_root_dir, path).cells] == ["person-1"]
    writer.close()  # had it not saved, the server now writes what the frontend applied
    deadline = time.monotonic() + 10
    while "agent-1" not in agent_cells(read_between_writes(jp_root_dir, path)):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


async def test_a_writer_that_hands_over_a_finished_run_leaves_the_file_to_the_notebook(
    api, replay, jp_root_dir, jp_serverapp
):
    """The frontend follows the notebook's next run: the finished run's cells are in the notebook
    it keeps open, so a write of the server's would only make it ask which version to keep."""
    saves: list[str] = []
    jp_serverapp.contents_manager.register_post_save_hook(
        lambda os_path, **_: saves.append(os_path)
    )
    replay.script.turns = [add_cell_turn("x = 1"), complete()]
    path = make_notebook(jp_root_dir)
    run = await api.start(path, writer="frontend")
    writer = await api.events(run["id"], role="writer")
    await receive_until(writer, "run_finished")
    await api.finished(run["id"])
    writer.close(code=4000)
    await asyncio.sleep(1)  # the server would have written by now (save_interval is 0.05 s)
    assert saves == []
    assert [c.id for c in read(jp_root_dir, path).cells] == ["person-1"]


async def test_stop_while_a_cell_streams_takes_the_half_written_cell_back(api, replay, jp_root_dir):
    long_source = "\n".join(f"line_{i} = {i}" for i in range(200))
    streaming = add_cell_turn(long_source)
    streaming.ttft_s, streaming.duration_s = 0.01, 20.0
    replay.script.speed = 1
    replay.script.turns = [streaming, complete()]
    path = make_notebook(jp_root_dir)
    run = await api.start(path)
    socket = await api.events(run["id"])
    await receive_until(socket, "cell_source_delta")
    await api.call("POST", f"runs/{run['id']}/stop")
    events = await receive_until(socket, "run_finished")
    assert {"type": "cell_rejected", "cell_id": "agent-1"}.items() <= events[-2].items()
    assert [c.id for c in read(jp_root_dir, path).cells] == ["person-1"]


async def test_a_renamed_notebook_keeps_its_runs_and_its_thread(
    api, replay, jp_fetch, jp_root_dir, extension
):
    """Renamed or moved through the Contents API (JupyterLab's rename, a drag to a folder),
    the notebook keeps its runs and its conversation, in the server and in the run store."""
    replay.script.turns = [add_cell_turn("x = 1"), complete("Set x.")]
    path = make_notebook(jp_root_dir)
    run = await api.start(path, "set x")
    await api.finished(run["id"])
    (jp_root_dir / "moved").mkdir()
    rename = {"path": "moved/renamed.ipynb"}
    await jp_fetch("api", "contents", path, method="PATCH", body=json.dumps(rename))
    new = "moved/renamed.ipynb"
    listed = await api.call("GET", "runs", params={"path": new})
    assert [(r["id"], r["path"]) for r in listed["runs"]] == [(run["id"], new)]
    assert (await api.call("GET", "runs", params={"path": path}))["runs"] == []
    thread = await api.call("GET", "conversation", params={"path": new})
    assert thread["requests"] == ["set x"]
    registry = extension.registry
    await registry.store.flush()
    stored = await registry.store.runs(registry.notebook_file(new))
    assert [(r["id"], r["path"]) for r in stored] == [(run["id"], new)]
    assert (await registry.store.conversation(registry.notebook_file(new)))["requests"][0][
        "prompt"
    ] == "set x"


async def test_a_notebook_moved_outside_jupyter_keeps_its_runs_and_a_copy_takes_none(
    api, replay, jp_root_dir, extension
):
    """A `mv` in a terminal sends no event: the notebook, once asked about, finds the runs its
    cells name, kept under a file that is gone. A copy (`cp`) leaves them with the original."""
    replay.script.turns = [add_cell_turn("x = 1"), complete("Set x.")]
    path = make_notebook(jp_root_dir)
    run = await api.start(path, "set x")
    await api.finished(run["id"])
    (jp_root_dir / "moved").mkdir()
    os.rename(jp_root_dir / path, jp_root_dir / "moved" / "renamed.ipynb")
    shutil.copy(jp_root_dir / "moved" / "renamed.ipynb", jp_root_dir / "copy.ipynb")
    new = "moved/renamed.ipynb"
    thread = await api.call("GET", "conversation", params={"path": new})
    assert thread["requests"] == ["set x"]
    listed = await api.call("GET", "runs", params={"path": new})
    assert [(r["id"], r["path"]) for r in listed["runs"]] == [(run["id"], new)]
    assert (await api.call("GET", "runs", params={"path": "copy.ipynb"}))["runs"] == []
    assert (await api.call("GET", "conversation", params={"path": "copy.ipynb"}))["requests"] == []
    registry = extension.registry
    await registry.store.flush()
    assert [r["id"] for r in await registry.store.runs(registry.notebook_file(new))] == [run["id"]]
