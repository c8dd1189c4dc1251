"""The run store against real server processes: runs, events and conversations outlive a killed
server; a bad store file leaves the server working; two servers share one file."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import subprocess
import time
import urllib.error
from typing import Any

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from jupyter_notebook_agent.notebook import METADATA_KEY
from jupyter_notebook_agent.server.store import RunStore

from .conftest import add_cell_turn, complete, free_port, tool, turn
from .test_server_runs import (
    TOKEN,
    agent_cells,
    make_notebook,
    read_between_writes,
    rest,
    start_server,
    started_mid_run,
)


def replayed_events(port: int, run_id: str) -> list[dict[str, Any]]:
    """The run's events from 0 over its WebSocket, as many as the run says it has."""
    total = rest(port, "GET", f"notebook-agent/runs/{run_id}")["events"]

    async def receive() -> list[dict[str, Any]]:
        url = f"ws://127.0.0.1:{port}/notebook-agent/runs/{run_id}/events?from=0"
        headers = {"Authorization": f"token {TOKEN}"}
        socket = await websocket_connect(HTTPRequest(url, headers=headers))
        events: list[dict[str, Any]] = []
        while len(events) < total:
            message = await asyncio.wait_for(socket.read_message(), 10)
            assert message is not None, f"closed after {events}"
            events.append(json.loads(message))
        socket.close()
        return events

    return asyncio.run(receive())


def test_a_run_of_a_killed_server_is_interrupted_and_replays_after_a_restart(tmp_path, replay):
    root, path, port, server, run = started_mid_run(tmp_path, replay, "go on")
    server.kill()  # SIGKILL, as an out-of-memory killer or a hub's cull does
    server.wait()
    server = start_server(root, port, replay, log=tmp_path / "restarted.log")
    try:
        (kept,) = rest(port, "GET", f"notebook-agent/runs?path={path}")["runs"]
        assert (kept["id"], kept["state"]) == (run["id"], "interrupted")
        assert kept["outcome"]["reason"] == "interrupted"
        events = replayed_events(port, run["id"])
        assert [event["seq"] for event in events] == list(range(len(events)))
        assert [e["cell_id"] for e in events if e["type"] == "cell_proposed"] == ["agent-1"]
        assert events[-1]["reason"] == "interrupted"
        deadline = time.monotonic() + 10  # the server marks it once it has started
        while read_between_writes(root, path).metadata[METADATA_KEY]["runs"][0]["state"] != (
            "interrupted"
        ):
            assert time.monotonic() < deadline, "the notebook's record still says running"
            time.sleep(0.1)
        thread = rest(port, "GET", f"notebook-agent/conversation?path={path}")
        assert thread["requests"] == ["go on"]
        stopped = f"notebook-agent/runs/{run['id']}/stop"
        try:
            rest(port, "POST", stopped, {})
            raise AssertionError("an interrupted run was stopped")
        except Exception as error:  # urllib's HTTPError
            assert getattr(error, "code", None) == 409, error
        status = rest(port, "GET", "notebook-agent/status")["store"]
        assert status["state"] == f"ok: {tmp_path / 'runs.sqlite'}"
    finally:
        server.terminate()
        server.wait(30)


@pytest.mark.parametrize("restart", ["killed", "graceful"])
def test_an_interrupted_run_is_reviewed_and_continued_after_a_restart(tmp_path, replay, restart):
    """After a restart, killed or graceful: a follower of the interrupted run sees the person
    accept its cell, and Continue finishes it, from the store's thread, with its cells by the
    same ids and its events gapless. Both were answered 409 before."""
    root, path, port, server, run = started_mid_run(tmp_path, replay, "make x")
    if restart == "killed":
        server.kill()
    else:
        server.send_signal(signal.SIGTERM)
    assert server.wait(30) in (0, -signal.SIGKILL)
    replay.script.turns[1] = add_cell_turn("y = x + 1")  # what it asks next, after the restart
    server = start_server(root, port, replay, log=tmp_path / "restarted.log")
    try:
        (kept,) = rest(port, "GET", f"notebook-agent/runs?path={path}")["runs"]
        assert (kept["state"], kept["outcome"]["reason"]) == ("interrupted", "interrupted")

        async def accept_while_following() -> list[dict[str, Any]]:
            url = f"ws://127.0.0.1:{port}/notebook-agent/runs/{run['id']}/events?from=0"
            headers = {"Authorization": f"token {TOKEN}"}
            socket = await websocket_connect(HTTPRequest(url, headers=headers))
            events = [json.loads(await socket.read_message())]
            while events[-1]["type"] != "run_finished":
                events.append(json.loads(await asyncio.wait_for(socket.read_message(), 10)))
            accepted = f"notebook-agent/runs/{run['id']}/cells/agent-1/accept"
            assert (await asyncio.to_thread(rest, port, "POST", accepted, {}))["state"] == (
                "interrupted"
            )
            events.append(json.loads(await asyncio.wait_for(socket.read_message(), 10)))
            socket.close()
            return events

        events = asyncio.run(accept_while_following())
        assert events[-1] == {"seq": len(events) - 1, "type": "cell_accepted", "cell_id": "agent-1"}
        continued = rest(port, "POST", f"notebook-agent/runs/{run['id']}/continue", {})
        assert continued["state"] == "running"
        ended = finish(port, run["id"])
        assert (ended["state"], ended["outcome"]["reason"]) == ("finished", "completed")
        events = replayed_events(port, run["id"])
        assert [event["seq"] for event in events] == list(range(len(events)))
        assert "run_continued" in [event["type"] for event in events]
        deadline = time.monotonic() + 10
        while len(cells := agent_cells(read_between_writes(root, path))) < 2:
            assert time.monotonic() < deadline, "the continued run's cell was never written"
            time.sleep(0.1)
        assert [(c.source, c.metadata[METADATA_KEY]["state"]) for c in cells.values()] == [
            ("x = 1", "accepted"),
            ("y = x + 1", "proposed"),
        ]
        told = replay.script.requests[-2]["messages"][-1]["content"]
        assert "The server stopped while you were working on this task" in told
        assert "Your cells in it: agent-1." in told
        again = f"notebook-agent/runs/{run['id']}/continue"
        with pytest.raises(urllib.error.HTTPError) as refused:
            rest(port, "POST", again, {})
        assert refused.value.code == 409
    finally:
        server.terminate()
        server.wait(30)


def test_a_cell_of_a_killed_servers_run_is_regenerated_and_the_run_finishes(tmp_path, replay):
    """Taken up from the store for a regenerate, the model was not told to finish once the cell
    was rewritten, as it is for a run that ended on this server."""
    root, _, port, server, run = started_mid_run(tmp_path, replay, "make x")
    server.kill()
    server.wait(30)
    replay.script.speed = 0
    replay.script.turns[1:] = [
        turn(tool("edit_cell", {"cell_id": "agent-1", "source": "x = 2"})),
        complete("rewritten"),
    ]
    server = start_server(root, port, replay, log=tmp_path / "restarted.log")
    try:
        regenerate = f"notebook-agent/runs/{run['id']}/cells/agent-1/regenerate"
        rest(port, "POST", regenerate, {"instruction": "make it 2"})
        ended = finish(port, run["id"])
        assert ended["outcome"]["summary"] == "rewritten"
        told = json.dumps(replay.script.requests[-2]["messages"][-1])
        assert "rewrite cell agent-1" in told and "Then call complete_task." in told
    finally:
        server.terminate()
        server.wait(30)


def test_a_server_told_to_stop_as_it_starts_still_exits(tmp_path, replay):
    """As it starts, the server marks the runs a killed one left in their notebooks; a SIGTERM
    then (a hub's stop, a supervisor's restart) still ends it. It hung for good, 2 tries of 2."""
    root, _, port, server, _ = started_mid_run(tmp_path, replay, "go on")
    server.kill()
    server.wait()
    server = start_server(root, port, replay, log=tmp_path / "restarted.log")
    server.send_signal(signal.SIGTERM)
    try:
        assert server.wait(30) == 0
    finally:
        server.kill()


def test_a_corrupt_store_is_moved_aside_and_a_newer_one_left_alone(tmp_path, replay):
    replay.script.turns = [complete("done")]
    root = tmp_path / "root"
    root.mkdir()
    path = make_notebook(root)
    store = tmp_path / "runs.sqlite"
    store.write_bytes(b"not a database " * 1000)
    port = free_port()
    server = start_server(root, port, replay)
    try:
        assert rest(port, "GET", "notebook-agent/status")["store"]["state"] == f"ok: {store}"
        run = rest(port, "POST", "notebook-agent/runs", {"path": path, "prompt": "go"})
        finish(port, run["id"])
    finally:
        server.terminate()
        server.wait(30)
    (aside,) = tmp_path.glob("runs.sqlite.corrupt-*")
    assert aside.read_bytes().startswith(b"not a database")

    with sqlite3.connect(store) as db:  # as a newer server would leave it
        db.execute("PRAGMA user_version = 99")
    server = start_server(root, port, replay)
    try:
        state = rest(port, "GET", "notebook-agent/status")["store"]["state"]
        assert state.startswith("not used: written by a newer server"), state
        run = rest(port, "POST", "notebook-agent/runs", {"path": path, "prompt": "again"})
        assert finish(port, run["id"])["state"] == "finished"  # in memory
    finally:
        server.terminate()
        server.wait(30)
    with sqlite3.connect(store) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (99,)


def test_two_servers_write_one_store_at_once(tmp_path, replay):
    """A hub with shared home folders: two servers, other roots, one store file; each run of
    both is kept whole, and each server lists its own root's."""
    replay.script.turns = [add_cell_turn("print(1)"), complete()]
    servers, ports, roots = [], [], []
    for name in ("one", "two"):
        roots.append(tmp_path / name)
        roots[-1].mkdir()
        ports.append(free_port())
        servers.append(start_server(roots[-1], ports[-1], replay))
    try:
        started = {}
        for number in range(4):
            for port, root in zip(ports, roots, strict=True):
                path = make_notebook(root, f"nb-{number}.ipynb")
                body = {"path": path, "prompt": f"run {number}"}
                started[rest(port, "POST", "notebook-agent/runs", body)["id"]] = port
        for run_id, port in started.items():
            assert finish(port, run_id)["state"] == "finished"
    finally:
        for server in servers:
            server.terminate()
            server.wait(30)
    with sqlite3.connect(tmp_path / "runs.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        kept = dict(db.execute("SELECT run_id, COUNT(*) FROM events GROUP BY run_id").fetchall())
        last = dict(db.execute("SELECT run_id, MAX(seq) FROM events GROUP BY run_id").fetchall())
    assert set(kept) == set(started)
    assert all(kept[run_id] == last[run_id] + 1 for run_id in started)  # gapless
    server = start_server(roots[0], ports[0], replay)
    try:
        listed = rest(server_port := ports[0], "GET", "notebook-agent/runs")["runs"]
        mine = {run_id for run_id, port in started.items() if port == server_port}
        assert {run["id"] for run in listed} == mine
    finally:
        server.terminate()
        server.wait(30)


def finish(port: int, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while (run := rest(port, "GET", f"notebook-agent/runs/{run_id}"))["state"] == "running":
        assert time.monotonic() < deadline, "the run did not finish"
        time.sleep(0.1)
    return run


async def test_a_cancelled_wait_and_a_failing_change_leave_the_store_working(tmp_path):
    """A stopped run cancels its wait for the store: the store's thread then died answering
    it, and every later read and flush hung. A change that fails (a record it cannot write)
    fails alone; the batch's other changes are kept."""
    store = RunStore(tmp_path / "runs.sqlite")
    store.open()
    try:
        waiting = asyncio.ensure_future(store.flush())
        await asyncio.sleep(0)
        waiting.cancel()
        store.save_run("nb.ipynb", {"id": "broken"}, "running")  # no path, no created
        store.append_event("kept", {"seq": 0, "type": "step"})
        await asyncio.wait_for(store.flush(), 10)
        assert await store.events("kept", 0) == [{"seq": 0, "type": "step"}]
        assert await store.run("broken") is None
    finally:
        store.close()


async def test_a_store_locked_too_long_is_said_once_and_written_again_after(tmp_path, caplog):
    """Another process holds the file's lock past the busy timeout: at open the store is not
    used (runs stay in memory); while in use its writes fail, said once in the log and in its
    state, and once the lock goes it writes again."""
    path = tmp_path / "runs.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    locked = RunStore(path, busy_timeout_s=0.2)
    locked.open()
    assert locked.state == "not used: database is locked; runs are kept in memory only"
    assert not locked.usable
    holder.execute("ROLLBACK")

    store = RunStore(path, busy_timeout_s=0.2)
    store.open()
    try:
        assert store.state == f"ok: {path}"
        holder.execute("BEGIN EXCLUSIVE")
        caplog.clear()
        for seq in range(3):
            store.append_event("run", {"seq": seq, "type": "step"})
            await asyncio.wait_for(store.flush(), 10)
        assert store.state == "failing: database is locked"
        failures = [
            r for r in caplog.records if r.name.endswith("store") and r.levelname == "ERROR"
        ]
        assert len(failures) == 1, failures
        holder.execute("ROLLBACK")
        store.append_event("run", {"seq": 3, "type": "step"})
        await asyncio.wait_for(store.flush(), 10)
        assert store.state == f"ok: {path}"
        assert await store.events("run", 0) == [{"seq": 3, "type": "step"}]
    finally:
        store.close()
        holder.close()


async def test_the_store_drops_its_oldest_runs_past_its_size(tmp_path):
    """Past `max_bytes` of data the oldest finished runs go, with their events, whatever their
    notebook; a working run stays however old."""
    store = RunStore(tmp_path / "runs.sqlite", max_bytes=400_000)
    store.open()
    try:
        store.save_run("/root/working.ipynb", {"id": "working", "created": 0.0}, "running")
        for number in range(60):
            run = {"id": f"run-{number}", "created": 1.0 + number}
            store.save_run(f"/root/nb-{number % 3}.ipynb", run, "finished")
            for seq in range(10):
                store.append_event(run["id"], {"seq": seq, "output": "x" * 2_000})
            await store.flush()
        kept = [run["id"] for run in await store.runs(None, "/root/")]
        assert kept[0] == "working"
        assert 0 < len(kept) - 1 < 60
        assert kept[1:] == [f"run-{number}" for number in range(61 - len(kept), 60)]
        assert await store.events("run-0", 0) == []
        assert len(await store.events("run-59", 0)) == 10
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "runs.sqlite") as db:
        pages, free = (
            db.execute(f"PRAGMA {name}").fetchone()[0] for name in ("page_count", "freelist_count")
        )
        size = db.execute("PRAGMA page_size").fetchone()[0]
    assert (pages - free) * size <= 400_000


async def test_the_store_keeps_each_notebooks_newest_run_whatever_its_size(tmp_path):
    """What the store cannot drop (a thread) over its budget alone: it dropped every finished
    run, the one that had just ended too. Each notebook keeps its newest."""
    store = RunStore(tmp_path / "runs.sqlite", max_bytes=300_000)
    store.open()
    try:
        thread = {"id": "t", "messages": [{"role": "user", "content": "x" * 400_000}]}
        store.save_conversation("/root/a.ipynb", thread)
        for number in range(6):
            run = {"id": f"run-{number}", "created": float(number)}
            store.save_run(f"/root/{'ab'[number % 2]}.ipynb", run, "finished")
            store.append_event(run["id"], {"seq": 0, "type": "step"})
            await store.flush()
        kept = [run["id"] for run in await store.runs(None, "/root/")]
        assert kept == ["run-4", "run-5"]
        assert await store.events("run-5", 0) == [{"seq": 0, "type": "step"}]
    finally:
        store.close()


@pytest.fixture
def small_disk(tmp_path):
    """A file system of 512 KiB (a tmpfs; mounting needs root, as CI has)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(disk)])
    if mounted.returncode:
        pytest.skip("no tmpfs can be mounted here (not root)")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


async def test_a_full_disk_fails_the_writes_alone(small_disk, caplog):
    """The disk fills up: the store says so once and the reads still answer; once room is made
    it writes again."""
    store = RunStore(small_disk / "runs.sqlite")
    store.open()
    try:
        filler = small_disk / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as file:
            while True:
                file.write(b"x" * 4096)
                file.flush()
        caplog.clear()
        for seq in range(40):
            store.append_event("run", {"seq": seq, "output": "y" * 20_000})
            await asyncio.wait_for(store.flush(), 10)
        assert store.state.startswith("failing: database or disk is full"), store.state
        failures = [
            r for r in caplog.records if r.name.endswith("store") and r.levelname == "ERROR"
        ]
        assert len(failures) == 1, failures
        assert await store.run("none") is None  # reads answer
        filler.unlink()
        store.append_event("run", {"seq": 40, "type": "step"})
        await asyncio.wait_for(store.flush(), 10)
        assert store.state == f"ok: {small_disk / 'runs.sqlite'}"
    finally:
        store.close()
