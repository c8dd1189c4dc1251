"""Event delivery through the server extension: a model's token to a WebSocket client.

A real Jupyter server runs as a subprocess; the replay model server runs in a thread of this
process, so the time each token is sent and the time a client receives it share one clock.
After a warm-up round, ROUNDS times: RUNS runs start together and each streams WORDS tokens at
TOKENS_PER_S, so tokens reach the server in bursts of RUNS, the hard case.

event_latency_ms_p50: token sent by the model to message_delta received over WebSocket (target
<= 5).
event_latency_ms_p99: the same, 99th percentile (target <= 50).
tokens_received: the tokens timed; one sent before its client subscribed would be a backlog,
not a delivery, and is left out (TTFT_S makes that rare).
event_latency_ratio: that p50 over the p50 of a baseline in the same run: the same streams read
straight from the model server by plain SSE clients, RUNS at once, in the same rounds.
server_cpu_percent: CPU time of the server process over the wall time of the runs, in percent
of one core.
store_latency_p99_ratio: event_latency_ms_p99 with the run store (the default) over the same of a
second server with none (`store_path=memory`), their rounds alternating (target <= 1.1).
store_events_per_s: events the run store writes per second at saturation: STORE_EVENTS events of
a run's size appended at once, then flushed.
The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from serving import (
    API_KEY,
    AUTH,
    free_port,
    percentile,
    running,
    sends_stamped,
    start_jupyter,
    summary,
    wait_ready,
)
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

from jupyter_notebook_agent.llm.base import ModelTurn, ToolCall
from jupyter_notebook_agent.server.store import RunStore
from jupyter_notebook_agent.testing.replay_server import (
    ReplayScript,
    ReplayServerThread,
)

RUNS = 20
WORDS = 200
TOKENS_PER_S = 50.0
ROUNDS = 3
TTFT_S = 0.5
"""Long enough for every client to have subscribed before its first token is sent."""
MODEL = "bench-model"
STORE_EVENTS = 50_000
TAG = re.compile(rb"bench-(?:run|sse)-\d+")

SENT: dict[tuple[str, str], float] = {}
"""When each token was sent: (the tag in its stream's prompt, its text) -> perf_counter."""


def prose(delta: dict[str, Any]) -> list[str]:
    """The text a chunk of a prose turn carries: one token."""
    return [delta["content"]] if delta.get("content") else []


def script() -> ReplayScript:
    """Turn 1: WORDS words at TOKENS_PER_S and no tool call; turn 2, after the agent's reminder
    to call a tool, ends the run."""
    prose = ModelTurn(
        content=" ".join(f"w{i:03d}" for i in range(WORDS)),
        ttft_s=TTFT_S,
        duration_s=TTFT_S + (WORDS - 1) / TOKENS_PER_S,
    )
    done = ModelTurn(
        tool_calls=[ToolCall("c", "complete_task", '{"success": true, "summary": "ok"}')]
    )
    return ReplayScript(turns=[prose, done], model=MODEL, speed=1, api_key=API_KEY)


def cpu_seconds(pid: int) -> float:
    """User and system time of a process so far, from /proc (no psutil needed)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def server_run(client: AsyncHTTPClient, url: str, root: Path, tag: str) -> list[float]:
    """One run over REST, its events over WebSocket: the latency of each message_delta."""
    name = f"{tag}.ipynb".replace("bench-", "")  # the notebook's name must not hold the tag
    nbformat.write(nbformat.v4.new_notebook(), root / "notebooks" / name)
    response = await client.fetch(
        f"{url}notebook-agent/runs",
        method="POST",
        headers=AUTH,
        body=json.dumps({"path": name, "prompt": f"Say the words. {tag}"}),
    )
    run_id = json.loads(response.body)["id"]
    ws_url = f"ws{url.removeprefix('http')}notebook-agent/runs/{run_id}/events?from=0"
    events = await websocket_connect(HTTPRequest(ws_url, headers=AUTH))
    opened = time.perf_counter()
    latencies = []
    try:
        while True:
            message = await asyncio.wait_for(events.read_message(), 60)
            received = time.perf_counter()
            if message is None:
                raise RuntimeError(f"run {run_id}: the socket closed before run_finished")
            event = json.loads(message)
            if event["type"] == "message_delta":
                sent = SENT[tag, event["text"]]
                if sent >= opened:  # a backlog sent on subscribing would not be a fair figure
                    latencies.append((received - sent) * 1000)
            elif event["type"] == "run_finished":
                if not event["success"]:
                    raise RuntimeError(f"run {run_id} failed: {event}")
                return latencies
    finally:
        events.close()


async def sse_stream(client: AsyncHTTPClient, model_url: str, tag: str) -> list[float]:
    """The baseline: the same prose read straight from the model server, chunk by chunk."""
    latencies: list[float] = []
    pending = b""

    def on_chunk(chunk: bytes) -> None:
        nonlocal pending
        received = time.perf_counter()
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            if line.startswith(b"data: {"):
                choices = json.loads(line[6:])["choices"]
                text = choices[0]["delta"].get("content") if choices else None
                if text:
                    latencies.append((received - SENT[tag, text]) * 1000)

    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": tag}]}
    await client.fetch(
        f"{model_url}/chat/completions",
        method="POST",
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        body=json.dumps(body),
        streaming_callback=on_chunk,
        request_timeout=60,
    )
    return latencies


@dataclass
class Round:
    """What one round measured: latencies in ms, and the server's CPU and wall seconds."""

    through_server: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    wall_s: float = 0.0


async def one_round(
    client: AsyncHTTPClient, url: str, model_url: str, root: Path, pid: int, first: int
) -> Round:
    """RUNS plain SSE streams at once, then RUNS runs through the server at once."""
    tags = range(first, first + RUNS)
    measured = Round()
    for latencies in await asyncio.gather(
        *(sse_stream(client, model_url, f"bench-sse-{i}") for i in tags)
    ):
        measured.baseline += latencies
    cpu_before, started = cpu_seconds(pid), time.perf_counter()
    for latencies in await asyncio.gather(
        *(server_run(client, url, root, f"bench-run-{i}") for i in tags)
    ):
        measured.through_server += latencies
    measured.wall_s = time.perf_counter() - started
    measured.cpu_s = cpu_seconds(pid) - cpu_before
    return measured


async def store_events_per_s(folder: Path) -> float:
    """STORE_EVENTS message_delta events appended to a run store at once, until durable."""
    store = RunStore(folder / "saturated.sqlite")
    store.open()
    try:
        started = time.perf_counter()
        for seq in range(STORE_EVENTS):
            event = {"seq": seq, "type": "message_delta", "text": f"w{seq % 1000:03d}"}
            store.append_event("saturation", event)
        await store.flush()
        return STORE_EVENTS / (time.perf_counter() - started)
    finally:
        store.close()


async def main() -> dict[str, float]:
    AsyncHTTPClient.configure(None, max_clients=2 * RUNS)
    client = AsyncHTTPClient()
    totals = {"store": Round(), "memory": Round()}
    with (
        tempfile.TemporaryDirectory() as tmp,
        ReplayServerThread(script()) as model,
        sends_stamped(SENT, TAG, prose, time.perf_counter),
        contextlib.ExitStack() as servers,
    ):
        urls, pids, roots = {}, {}, {}
        for kind in totals:  # with the run store (the default), and without
            roots[kind] = root = Path(tmp) / kind
            root.mkdir()
            port = free_port()
            urls[kind] = f"http://127.0.0.1:{port}/"
            server = start_jupyter(
                "jupyter_server",
                root,
                port,
                MODEL,
                model.base_url,
                "--NotebookAgent.max_steps=5",
                f"--NotebookAgent.max_active_runs={RUNS}",
                f"--NotebookAgent.max_active_runs_per_user={RUNS}",
                *(["--NotebookAgent.store_path=memory"] if kind == "memory" else []),
            )
            servers.enter_context(running(server, root / "server.log"))
            await asyncio.to_thread(wait_ready, urls[kind], server)
            pids[kind] = server.pid
        first = 0
        print(f"servers ready, with and without the run store; a warm-up round of {RUNS} runs")
        for kind in totals:
            await one_round(client, urls[kind], model.base_url, roots[kind], pids[kind], first)
            first += RUNS
        for number in range(1, ROUNDS + 1):
            for kind, total in totals.items():
                measured = await one_round(
                    client, urls[kind], model.base_url, roots[kind], pids[kind], first
                )
                first += RUNS
                total.through_server += measured.through_server
                total.baseline += measured.baseline
                total.cpu_s += measured.cpu_s
                total.wall_s += measured.wall_s
                print(
                    f"round {number}/{ROUNDS} ({kind}): server "
                    f"{summary(measured.through_server)}; sse baseline "
                    f"{summary(measured.baseline)}; server cpu "
                    f"{100 * measured.cpu_s / measured.wall_s:.1f}%"
                )
        saturated = await store_events_per_s(Path(tmp))
    total, memory = totals["store"], totals["memory"]
    through_server, baseline = total.through_server, total.baseline
    return {
        "runs": ROUNDS * RUNS,
        "tokens_sent": ROUNDS * RUNS * WORDS,
        "tokens_received": len(through_server),
        "event_latency_ms_p50": round(statistics.median(through_server), 3),
        "event_latency_ms_p99": round(percentile(through_server, 99), 3),
        "event_latency_ms_max": round(max(through_server), 3),
        "baseline_latency_ms_p50": round(statistics.median(baseline), 3),
        "baseline_latency_ms_p99": round(percentile(baseline, 99), 3),
        "event_latency_ratio": round(
            statistics.median(through_server) / statistics.median(baseline), 3
        ),
        "server_cpu_percent": round(100 * total.cpu_s / total.wall_s, 1),
        "store_off_latency_ms_p99": round(percentile(memory.through_server, 99), 3),
        "store_latency_p99_ratio": round(
            percentile(through_server, 99) / percentile(memory.through_server, 99), 3
        ),
        "store_events_per_s": round(saturated),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
