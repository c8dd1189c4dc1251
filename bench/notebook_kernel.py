"""Opening a notebook to a ready kernel, as the browser does it: sandbox against local, in one run.

A real Jupyter server with the extension runs as a subprocess, as root, so that it keeps its warm
pool of POOL sandbox kernels (the replay model server it needs is never asked). Each open is what
the notebook frontend does: POST /api/sessions for `nb-N.ipynb` with a kernelspec, then the
kernel's WebSocket (`/api/kernels/{id}/channels`, the default JSON protocol) and a
kernel_info_request on it. The kernel is ready when its kernel_info_reply arrives. ROUNDS rounds
open one notebook on each kernelspec, in alternating order so that drift hits both alike; each
session is deleted (its kernel shut down) before the next open. Before each open the pool is
full again: as many containers of the server as places in the pool, each kernel's sockets bound
(it is up), then SETTLE_S for the pool's own kernel_info and setup (a refill takes about 1.5 s).
A warm-up round goes first, not counted: a server's first open of each kind loads what later ones
find loaded.

open_sandbox_ms_p50: POST to kernel_info_reply with `python3-sandbox`, served by the warm pool.
open_local_ms_p50: the same with `python3`, a local ipykernel started by the server.
open_ratio: the first over the second (target <= 0.1 with the warm pool).
post_*_ms_p50: the POST alone, until the server answers with the session (its kernel started).
socket_*_ms_p50: from that answer to the WebSocket open (the server checks that the kernel is
alive and asks it for kernel_info before it accepts).
reply_*_ms_p50: from the WebSocket open to the kernel_info_reply (the server first nudges the
kernel until its IOPub answers, then relays the request).
idle_*_ms_p50: POST to the IOPub `idle` status of that request: the kernel free for code.
reopen_*_ms_p50: a second client's WebSocket to the same kernel, running and idle, to its
kernel_info_reply: what every open costs in the server whatever the kernel's start (a sandbox
kernel's is timed while the pool refills behind it, as its open was).
warm_claims: sandbox opens served by the pool (target: all of them; a cold start would carry
its own kernel's id on its container).
The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import docker
import nbformat
from serving import API_KEY, AUTH, free_port, running, start_jupyter, summary, wait_ready
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

from jupyter_notebook_agent.sandbox import LOCAL_KERNEL, SANDBOX_KERNEL
from jupyter_notebook_agent.sandbox.image import ensure_image
from jupyter_notebook_agent.sandbox.provisioner import LABEL
from jupyter_notebook_agent.testing.replay_server import ReplayScript, ReplayServerThread

ROUNDS = 16
POOL = 2
SETTLE_S = 1.0
"""After a refilled kernel has bound its sockets: its start's end, the pool's kernel_info and
the setup it runs in the kernel (tens of ms), with room to spare."""
MODEL = "bench-model"


@dataclass
class Opens:
    """One kernelspec's opens: milliseconds of each part, and of a second connection."""

    ready: list[float] = field(default_factory=list)
    posted: list[float] = field(default_factory=list)
    upgraded: list[float] = field(default_factory=list)
    replied: list[float] = field(default_factory=list)
    idle: list[float] = field(default_factory=list)
    reopened: list[float] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"ready {self.ready[-1]:.0f} ms (POST {self.posted[-1]:.0f}, WebSocket "
            f"{self.upgraded[-1]:.0f}, reply {self.replied[-1]:.0f}; again "
            f"{self.reopened[-1]:.0f})"
        )


def message(kind: str, session: str) -> dict:
    """A shell request in the Jupyter message protocol, as the JSON WebSocket carries it."""
    header = {
        "msg_id": uuid.uuid4().hex,
        "msg_type": kind,
        "username": "bench",
        "session": session,
        "date": datetime.now(timezone.utc).isoformat(),
        "version": "5.3",
    }
    return {
        "header": header,
        "parent_header": {},
        "metadata": {},
        "content": {},
        "channel": "shell",
        "buffers": [],
    }


async def connect_ready(url: str) -> tuple[float, float, float]:
    """Connects to a kernel's channels at `url`, as a new client, and sends kernel_info_request:
    when the socket opened, when the reply came, and when its IOPub idle came (perf_counter)."""
    session = uuid.uuid4().hex
    channels = await websocket_connect(HTTPRequest(f"{url}?session_id={session}", headers=AUTH))
    opened = time.perf_counter()
    try:
        request = message("kernel_info_request", session)
        await channels.write_message(json.dumps(request))
        replied = idle = 0.0
        while not (replied and idle):
            text = await asyncio.wait_for(channels.read_message(), 60)
            now = time.perf_counter()
            if text is None:
                raise RuntimeError("the kernel's WebSocket closed before kernel_info_reply")
            reply = json.loads(text)
            if reply["parent_header"].get("msg_id") != request["header"]["msg_id"]:
                continue
            if reply["msg_type"] == "kernel_info_reply":
                replied = replied or now
            elif reply["msg_type"] == "status" and reply["content"]["execution_state"] == "idle":
                idle = idle or now
    finally:
        channels.close()
    return opened, replied, idle


@dataclass
class Server:
    """The Jupyter server under test, and the clients that reach it and its containers."""

    url: str
    root: Path
    log: Path
    pid: int
    client: AsyncHTTPClient
    engine: docker.DockerClient

    def containers(self) -> list[dict]:
        """Its sandbox containers, as the engine lists them sparsely."""
        owner = {"label": f"{LABEL}.owner={os.uname().nodename}:{self.pid}"}
        return [c.attrs for c in self.engine.containers.list(all=True, filters=owner, sparse=True)]

    def ran(self, kernel_id: str) -> str:
        """How a sandbox kernel runs: cold where a container carries its id (a cold start names its
        own), else warm, in a container of the pool it took over."""
        ids = {c["Labels"].get(f"{LABEL}.kernel-id") for c in self.containers()}
        return "cold" if kernel_id in ids else "warm"

    async def pool_full(self) -> None:
        """Waits until the server holds POOL containers (the last session's kernel gone, the
        refills made), each kernel's sockets bound in its socket folder, then SETTLE_S. Fails
        at once where the server's log says it keeps no pool."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if reason := no_pool_reason(self.log):
                raise RuntimeError(f"the server keeps no warm pool: {reason}")
            found = await asyncio.to_thread(self.containers)
            folders = [Path(c["Labels"][f"{LABEL}.socket-dir"]) for c in found]
            if len(found) == POOL and all(any(f.glob("kernel-*")) for f in folders):
                await asyncio.sleep(SETTLE_S)
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"the warm pool did not fill within 120 s: {len(found)} containers")

    async def open_notebook(self, number: int, kernel: str, opens: Opens) -> str:
        """Opens nb-`number`.ipynb on `kernel` to a ready kernel, into `opens`; then deletes
        the session, which shuts its kernel down. Returns how the kernel ran: "local", "warm"
        or "cold", asked before it goes."""
        name = f"nb-{number}.ipynb"
        nbformat.write(nbformat.v4.new_notebook(), self.root / name)
        body = {"path": name, "type": "notebook", "name": name, "kernel": {"name": kernel}}
        started = time.perf_counter()
        response = await self.client.fetch(
            f"{self.url}api/sessions", method="POST", headers=AUTH, body=json.dumps(body)
        )
        posted = time.perf_counter()
        session = json.loads(response.body)
        kernel_id = session["kernel"]["id"]
        ws_url = f"ws{self.url.removeprefix('http')}api/kernels/{kernel_id}/channels"
        try:
            opened, replied, idle = await connect_ready(ws_url)
            again = time.perf_counter()
            reopened = (await connect_ready(ws_url))[1]
            sandboxed = kernel != LOCAL_KERNEL
            how = await asyncio.to_thread(self.ran, kernel_id) if sandboxed else "local"
        finally:
            await self.client.fetch(
                f"{self.url}api/sessions/{session['id']}", method="DELETE", headers=AUTH
            )
        opens.ready.append((replied - started) * 1000)
        opens.posted.append((posted - started) * 1000)
        opens.upgraded.append((opened - posted) * 1000)
        opens.replied.append((replied - opened) * 1000)
        opens.idle.append((idle - started) * 1000)
        opens.reopened.append((reopened - again) * 1000)
        return how


def no_pool_reason(log: Path) -> str | None:
    """The server's line saying it keeps no warm pool, if it said so."""
    found = re.search(r".*No warm pool.*", log.read_text())
    return found.group() if found else None


def p50(values: list[float]) -> float:
    return round(statistics.median(values), 1)


async def main() -> dict[str, float]:
    ensure_image()
    engine = docker.from_env()
    client = AsyncHTTPClient()
    opens = {SANDBOX_KERNEL: Opens(), LOCAL_KERNEL: Opens()}
    script = ReplayScript(turns=[], model=MODEL, api_key=API_KEY)
    with tempfile.TemporaryDirectory() as tmp, ReplayServerThread(script) as model:
        work = Path(tmp)
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        server = start_jupyter(
            "jupyter_server",
            work,
            port,
            MODEL,
            model.base_url,
            f"--NotebookAgent.warm_pool_size={POOL}",
            sandboxed=True,
        )
        log = work / "server.log"
        with running(server, log):
            await asyncio.to_thread(wait_ready, url, server)
            under_test = Server(url, work / "notebooks", log, server.pid, client, engine)
            await under_test.pool_full()
            print(f"server ready, its pool of {POOL} full; a warm-up round")
            first = {kernel: Opens() for kernel in opens}
            for kernel in opens:
                await under_test.open_notebook(0, kernel, first[kernel])
                await under_test.pool_full()
            ran: list[str] = []
            for number in range(1, ROUNDS + 1):
                order = list(opens) if number % 2 else list(reversed(opens))
                for kernel in order:
                    how = await under_test.open_notebook(number, kernel, opens[kernel])
                    if kernel == SANDBOX_KERNEL:
                        ran.append(how)
                    await under_test.pool_full()
                sandbox, local = opens[SANDBOX_KERNEL], opens[LOCAL_KERNEL]
                print(
                    f"round {number}/{ROUNDS}: sandbox ({ran[-1]}) {sandbox.line()}; "
                    f"local {local.line()}"
                )
            print(f"sandbox: {summary(opens[SANDBOX_KERNEL].ready)}")
            print(f"local: {summary(opens[LOCAL_KERNEL].ready)}")
    sandbox, local = opens[SANDBOX_KERNEL], opens[LOCAL_KERNEL]
    return {
        "open_sandbox_ms_p50": p50(sandbox.ready),
        "open_local_ms_p50": p50(local.ready),
        "open_ratio": round(statistics.median(sandbox.ready) / statistics.median(local.ready), 3),
        "post_sandbox_ms_p50": p50(sandbox.posted),
        "post_local_ms_p50": p50(local.posted),
        "socket_sandbox_ms_p50": p50(sandbox.upgraded),
        "socket_local_ms_p50": p50(local.upgraded),
        "reply_sandbox_ms_p50": p50(sandbox.replied),
        "reply_local_ms_p50": p50(local.replied),
        "idle_sandbox_ms_p50": p50(sandbox.idle),
        "idle_local_ms_p50": p50(local.idle),
        "reopen_sandbox_ms_p50": p50(sandbox.reopened),
        "reopen_local_ms_p50": p50(local.reopened),
        "open_sandbox_ms_max": round(max(sandbox.ready), 1),
        "first_open_sandbox_ms": round(first[SANDBOX_KERNEL].ready[0], 1),
        "first_open_local_ms": round(first[LOCAL_KERNEL].ready[0], 1),
        "warm_claims": ran.count("warm"),
        "rounds": ROUNDS,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
