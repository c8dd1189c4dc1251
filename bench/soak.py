"""A soak of the server with sandbox kernels: RUNS runs, AT_ONCE at a time, some flooding their
output, some stopped mid-cell, some whose kernel dies; then the server is shut down.

A real Jupyter server runs as a subprocess with the warm pool, its kernels in Docker; the model is
a replay server in this process. Each run's notebook sits in a folder named for what its cell
does (the cell reads the name), so one recording serves every kind.

leaked_containers: sandbox containers of the server left once it has shut down (target 0).
leaked_socket_folders: kernel socket folders left in its temp folder, likewise (target 0).
leaked_mounts: folders still lent (mounted) once it has shut down (target 0).
containers_while_idle: its containers after the runs, before the shutdown: the warm pool's.
memory_ratio: the server's resident memory after the runs over the same after a warm-up round of
KEPT runs, which loads what a server loads on its first runs (the model's client, its types) and
fills the window of finished runs it keeps (target <= 1.2).
memory_second_half_ratio: the same after the runs over after half of them: what a leak would make
grow, where the first half also reaches the allocator's high-water mark for floods at AT_ONCE.
runs_per_s: runs finished per second over the soak.
The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import docker
import nbformat
from serving import API_KEY, AUTH, free_port, running, start_jupyter, wait_ready
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from jupyter_notebook_agent.llm.base import ModelTurn, ToolCall
from jupyter_notebook_agent.sandbox.image import ensure_image
from jupyter_notebook_agent.sandbox.provisioner import LABEL
from jupyter_notebook_agent.testing.replay_server import ReplayScript, ReplayServerThread

RUNS = 200
AT_ONCE = 20
POOL = 2
#: Finished runs the server keeps (with their events and cells, by design): few, so that the
#: warm-up round fills that window and the memory figure shows what else stays.
KEPT = 2 * AT_ONCE
MODEL = "soak-model"
#: What each kind of run's cell does, chosen by the name of its notebook's folder.
CELL = """
import os, sys, time
kind = os.path.basename(os.getcwd()).split("-")[0]
if kind == "flood":
    for _ in range(100):
        print("x" * 100_000)
elif kind == "die":
    os.kill(os.getpid(), 9)
elif kind == "stop":
    time.sleep(60)
print("done", kind)
"""
KINDS = ["plain", "plain", "flood", "stop", "die"]


def script() -> ReplayScript:
    cell = json.dumps({"cell_type": "code", "source": CELL})
    done = json.dumps({"success": True, "summary": "done"})
    turns = [
        ModelTurn(tool_calls=[ToolCall("c1", "add_cell", cell)]),
        ModelTurn(tool_calls=[ToolCall("c2", "complete_task", done)]),
    ]
    return ReplayScript(turns=turns, model=MODEL, api_key=API_KEY)


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


async def call(
    client: AsyncHTTPClient, url: str, method: str, body: object = None
) -> dict | list | None:
    request = HTTPRequest(
        url,
        method=method,
        headers=AUTH,
        body=None if body is None else json.dumps(body),
        request_timeout=300,
    )
    answer = (await client.fetch(request)).body
    return json.loads(answer) if answer else None


async def one_run(client: AsyncHTTPClient, url: str, root: Path, number: int) -> str:
    kind = KINDS[number % len(KINDS)]
    folder = root / f"{kind}-{number}".replace("--", "-warmup-")
    folder.mkdir()
    nbformat.write(nbformat.v4.new_notebook(), folder / "soak.ipynb")
    body = {"path": f"{folder.name}/soak.ipynb", "prompt": f"soak {number}"}
    while True:
        try:
            run = await call(client, f"{url}notebook-agent/runs", "POST", body)
            break
        except HTTPClientError as error:
            if error.code != 429:
                raise
            await asyncio.sleep(0.2)
    if kind == "stop":
        await asyncio.sleep(2)
        await call(client, f"{url}notebook-agent/runs/{run['id']}/stop", "POST", {})
    kernel_id = None
    while True:
        try:
            answer = await call(client, f"{url}notebook-agent/runs/{run['id']}", "GET")
        except HTTPClientError as error:  # finished, and forgotten among KEPT newer ones
            if error.code != 404:
                raise
            outcome = "forgotten"
            break
        kernel_id = answer["kernel_id"]
        if answer["state"] != "running":
            outcome = answer["outcome"]["reason"]
            break
        await asyncio.sleep(0.25)
    await close_notebook(client, url, body["path"], kernel_id)
    return f"{kind}:{outcome}"


async def close_notebook(
    client: AsyncHTTPClient, url: str, path: str, kernel_id: str | None
) -> None:
    """The person is done with the notebook: its session, and so its kernel, goes (a run works
    in the notebook's own kernel, which outlives the run). A kernel the server is restarting
    after its death cannot be shut down until it is back (jupyter_server answers 500 then), and
    its session may be gone meanwhile (listed while the kernel seemed dead, it was dropped):
    the kernel is then shut down by its id."""
    sessions = await call(client, f"{url}api/sessions", "GET")
    routes = [f"api/sessions/{s['id']}" for s in sessions if s["path"] == path]
    if not routes and kernel_id:
        kernels = {k["id"] for k in await call(client, f"{url}api/kernels", "GET")}
        routes = [f"api/kernels/{kernel_id}"] if kernel_id in kernels else []
    for route in routes:
        for attempt in range(60):
            try:
                await call(client, f"{url}{route}", "DELETE")
                break
            except HTTPClientError as error:
                if error.code != 500 or attempt == 59:
                    raise
                await asyncio.sleep(0.5)


def sandbox_containers(engine: docker.DockerClient, pid: int) -> int:
    owner = {"label": f"{LABEL}.owner={os.uname().nodename}:{pid}"}
    return len(engine.containers.list(all=True, filters=owner, sparse=True))


def lent_mounts(temp: Path) -> int:
    with open("/proc/self/mountinfo") as mountinfo:
        return sum(1 for line in mountinfo if line.split()[4].startswith(str(temp)))


async def main() -> dict[str, float]:
    ensure_image()
    engine = docker.from_env()
    client = AsyncHTTPClient(max_clients=2 * AT_ONCE)
    with (
        tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp,  # a leaked mount stays
        ReplayServerThread(script()) as model,
    ):
        work, temp = Path(tmp), Path(tmp) / "temp"
        temp.mkdir()
        os.environ["TMPDIR"] = str(temp)  # the server's socket folders and staging go here
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        server = start_jupyter(
            "jupyter_server",
            work,
            port,
            MODEL,
            model.base_url,
            f"--NotebookAgent.warm_pool_size={POOL}",
            f"--NotebookAgent.max_active_runs={AT_ONCE}",
            f"--NotebookAgent.max_active_runs_per_user={AT_ONCE}",
            f"--NotebookAgent.finished_runs_kept={KEPT}",
            "--NotebookAgent.execution_timeout=30",
            sandboxed=True,
        )
        server_log = work / "server.log"
        with running(server, server_log):
            await asyncio.to_thread(wait_ready, url, server)
            for _ in range(600):  # the warm pool fills
                if sandbox_containers(engine, server.pid) >= POOL:
                    break
                await asyncio.sleep(0.2)
            slots = asyncio.Semaphore(AT_ONCE)
            outcomes: Counter[str] = Counter()

            memory_half: list[float] = []

            async def limited(number: int) -> None:
                async with slots:
                    outcomes[await one_run(client, url, work / "notebooks", number)] += 1
                    done = sum(outcomes.values())
                    if done % 20 == 0:
                        print(f"{done} runs: {dict(outcomes)}")
                    if number >= 0 and done == RUNS // 2:
                        memory_half.append(resident_mb(server.pid))

            print(f"server ready; a warm-up round of {KEPT} runs")
            await asyncio.gather(*(limited(n) for n in range(-KEPT, 0)))
            outcomes.clear()
            await asyncio.sleep(1)
            memory_before = resident_mb(server.pid)
            print(f"{memory_before:.0f} MB; {RUNS} runs, {AT_ONCE} at a time")
            started = time.perf_counter()
            await asyncio.gather(*(limited(n) for n in range(RUNS)))
            took = time.perf_counter() - started
            await asyncio.sleep(5)  # a restarter left running would start a kernel meanwhile
            memory_after = resident_mb(server.pid)
            idle = sandbox_containers(engine, server.pid)
            pid = server.pid
        leaked = sandbox_containers(engine, pid)
        sockets = [
            folder
            for folder in temp.glob("notebook-agent-*")
            if not folder.name.startswith(("notebook-agent-lent-", "notebook-agent-masks-"))
        ]
        for folder in sockets:  # what it held says which kernel it was and how far it came
            print(f"leaked {folder.name}: {sorted(p.name for p in folder.iterdir())}")
            print(server_log.read_text()[-3000:])
        figures = {
            "runs": RUNS,
            "outcomes": dict(outcomes),
            "leaked_containers": leaked,
            "leaked_socket_folders": len(sockets),
            "leaked_mounts": lent_mounts(temp),
            "containers_while_idle": idle,
            "memory_mb_before": round(memory_before, 1),
            "memory_mb_after": round(memory_after, 1),
            "memory_ratio": round(memory_after / memory_before, 3),
            "memory_mb_half": round(memory_half[0], 1),
            "memory_second_half_ratio": round(memory_after / memory_half[0], 3),
            "runs_per_s": round(RUNS / took, 2),
        }
    return figures


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
