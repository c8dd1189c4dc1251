"""The agent loop's own cost, with the model replayed at zero latency.

step_overhead_ms_p50: a step's wall time less the time the kernel spent executing (target <= 5).
execute_rtt_ratio: `1+1` through the agent's execute_code tool over a bare jupyter_client
execute on the same kernel, in interleaved rounds of the same run (target <= 1.2).
The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from itertools import pairwise
from pathlib import Path

from serving import percentile

from jupyter_notebook_agent.agent import Agent, AgentConfig, EventLog
from jupyter_notebook_agent.kernels import JupyterKernelSession
from jupyter_notebook_agent.llm.base import ModelTurn, ToolCall
from jupyter_notebook_agent.llm.replay import ReplayModel, save_recording
from jupyter_notebook_agent.notebook import NotebookDocument

STEPS = 200
ROUNDS = 10
PER_ROUND = 30


class TimedKernel(JupyterKernelSession):
    """Adds up the time spent inside execute, so that it can be taken out of each step."""

    execute_s = 0.0

    async def execute(self, code: str, timeout_s: float, *args, **kwargs):  # type: ignore[override]
        started = time.perf_counter()
        try:
            return await super().execute(code, timeout_s, *args, **kwargs)
        finally:
            self.execute_s += time.perf_counter() - started


def recording(folder: Path, calls: list[tuple[str, dict]], name: str) -> Path:
    turns = [
        ModelTurn(tool_calls=[ToolCall(f"call_{i}", tool, json.dumps(args))])
        for i, (tool, args) in enumerate(calls)
    ]
    turns.append(
        ModelTurn(
            tool_calls=[ToolCall("end", "complete_task", '{"success": true, "summary": "ok"}')]
        )
    )
    path = folder / name
    save_recording(path, "bench", turns)
    return path


async def run_recorded(kernel: JupyterKernelSession, path: Path, events: EventLog) -> None:
    """The whole agent, on a fresh notebook, with the model replayed at zero latency."""
    model = ReplayModel(path)
    config = AgentConfig(max_steps=len(model.turns))
    outcome = await Agent(model, kernel, NotebookDocument(), config=config, events=events).run("b")
    assert outcome.success, outcome


async def step_overheads(kernel: TimedKernel, folder: Path) -> list[float]:
    """Per step: wall time between step events, less kernel execution time in that step."""
    calls = [
        ("add_cell", {"cell_type": "code", "source": f"x{i} = {i} * 2\nx{i}"}) for i in range(STEPS)
    ]
    marks: list[tuple[float, float]] = []
    events = EventLog()
    events.subscribe(
        lambda e: (
            e["type"] in ("step", "run_finished")
            and marks.append((time.perf_counter(), kernel.execute_s))
        )
    )
    await run_recorded(kernel, recording(folder, calls, "steps.json"), events)
    return [((t1 - t0) - (k1 - k0)) * 1000 for (t0, k0), (t1, k1) in pairwise(marks)][:STEPS]


async def tool_round_trips(kernel: JupyterKernelSession, folder: Path, count: int) -> list[float]:
    """`1+1` through the tool path: from the tool_call event to the tool_result event."""
    calls = [("execute_code", {"code": "1+1"})] * count
    started: dict[str, float] = {}
    times: list[float] = []

    def clock(event: dict) -> None:
        if event["type"] == "tool_call" and event["name"] == "execute_code":
            started[event["call_id"]] = time.perf_counter()
        elif event["type"] == "tool_result" and event["name"] == "execute_code":
            times.append((time.perf_counter() - started[event["call_id"]]) * 1000)

    events = EventLog()
    events.subscribe(clock)
    await run_recorded(kernel, recording(folder, calls, "rtt.json"), events)
    return times


async def bare_round_trips(kernel: JupyterKernelSession, count: int) -> list[float]:
    """`1+1` through jupyter_client alone: execute, outputs until idle, and the reply."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        await kernel.client.execute_interactive("1+1", output_hook=lambda msg: None, timeout=30)
        times.append((time.perf_counter() - started) * 1000)
    return times


async def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        kernel = await TimedKernel.start("python3", cwd=tmp)
        try:
            await bare_round_trips(kernel, 20)  # warm up the kernel and the sockets
            overheads = await step_overheads(kernel, folder)
            print(f"steps: {len(overheads)}, overhead p50 {statistics.median(overheads):.2f} ms")
            tool, bare = [], []
            for round_number in range(ROUNDS):
                tool += await tool_round_trips(kernel, folder, PER_ROUND)
                bare += await bare_round_trips(kernel, PER_ROUND)
                print(
                    f"round {round_number + 1}/{ROUNDS}: tool p50 {statistics.median(tool):.3f} ms,"
                    f" bare p50 {statistics.median(bare):.3f} ms"
                )
        finally:
            await kernel.shutdown()
    return {
        "step_overhead_ms_p50": round(statistics.median(overheads), 3),
        "step_overhead_ms_p90": round(percentile(overheads, 90), 3),
        "tool_execute_rtt_ms_p50": round(statistics.median(tool), 3),
        "bare_execute_rtt_ms_p50": round(statistics.median(bare), 3),
        "execute_rtt_ratio": round(statistics.median(tool) / statistics.median(bare), 3),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
