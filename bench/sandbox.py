"""What the sandbox costs over a local kernel, measured side by side in one run.

cold_start_ratio: container start to kernel_info reply, over a local ipykernel's (target <= 1.5).
warm_claim_ms_p50: a kernel start served by the warm pool, to a connected kernel whose code runs in
its folder (target <= 20).
execute_rtt_ratio: `1+1` round trip in the sandbox over a local kernel (target <= 1.1).
idle_memory_mb: memory of an idle sandbox kernel's container, as its cgroup counts it.
engine_start_ms_p50: the engine's create and start of a container that runs `true`: the part of a
cold start that a local kernel does not pay, whatever the kernel inside does.
The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import docker
from agent_overhead import bare_round_trips

from jupyter_notebook_agent.agent import KernelSession
from jupyter_notebook_agent.sandbox import LOCAL_KERNEL, SANDBOX_KERNEL
from jupyter_notebook_agent.sandbox.image import ensure_image
from jupyter_notebook_agent.sandbox.pool import WarmPool

STARTS = 6
CLAIMS = 10
ROUNDS = 10
PER_ROUND = 30


async def start_ms(kernel_name: str, cwd: str) -> tuple[float, KernelSession]:
    started = time.perf_counter()
    session = await KernelSession.start(kernel_name, cwd=cwd)
    return (time.perf_counter() - started) * 1000, session


def idle_memory_mb(session: KernelSession) -> float:
    stats = session.manager.provisioner.container.stats(stream=False)["memory_stats"]
    cache = stats.get("stats", {}).get("cache", 0) or stats.get("stats", {}).get("inactive_file", 0)
    return (stats["usage"] - cache) / 2**20


def engine_start_ms(engine: docker.DockerClient, image: str) -> float:
    started = time.perf_counter()
    container = engine.containers.create(image, ["true"], network_mode="none")
    try:
        container.start()
        return (time.perf_counter() - started) * 1000
    finally:
        container.remove(force=True)


async def warm_claims(root: str) -> list[float]:
    """Each claim waits for a full pool first, as a person's next notebook would find it."""
    pool = WarmPool(Path(root), size=2)
    pool.start()
    times = []
    try:
        for number in range(CLAIMS):
            await pool.full()
            elapsed, session = await start_ms(SANDBOX_KERNEL, root)
            times.append(elapsed)
            await session.shutdown()
            print(f"warm claim {number + 1}/{CLAIMS}: {elapsed:.1f} ms")
    finally:
        await pool.close()
    return times


async def main() -> dict[str, float]:
    image = ensure_image()
    engine = docker.from_env()
    engine_starts = [engine_start_ms(engine, image) for _ in range(STARTS)]
    engine.close()
    with tempfile.TemporaryDirectory() as cwd:
        if os.getuid() == 0:
            os.chown(cwd, 1000, 1000)
        local_starts, sandbox_starts = [], []
        for number in range(STARTS):  # interleaved, so that drift hits both alike
            for name, starts in ((LOCAL_KERNEL, local_starts), (SANDBOX_KERNEL, sandbox_starts)):
                elapsed, session = await start_ms(name, cwd)
                starts.append(elapsed)
                await session.shutdown()
            print(
                f"start {number + 1}/{STARTS}: local {local_starts[-1]:.0f} ms, "
                f"sandbox {sandbox_starts[-1]:.0f} ms"
            )
        _, local = await start_ms(LOCAL_KERNEL, cwd)
        _, sandbox = await start_ms(SANDBOX_KERNEL, cwd)
        try:
            await bare_round_trips(local, 20)
            await bare_round_trips(sandbox, 20)
            local_rtt, sandbox_rtt = [], []
            for number in range(ROUNDS):
                local_rtt += await bare_round_trips(local, PER_ROUND)
                sandbox_rtt += await bare_round_trips(sandbox, PER_ROUND)
                print(
                    f"round {number + 1}/{ROUNDS}: local p50 {statistics.median(local_rtt):.3f} ms,"
                    f" sandbox p50 {statistics.median(sandbox_rtt):.3f} ms"
                )
            await asyncio.sleep(2)
            memory = await asyncio.to_thread(idle_memory_mb, sandbox)
        finally:
            await local.shutdown()
            await sandbox.shutdown()
        claims = await warm_claims(cwd)
    return {
        "local_start_ms_p50": round(statistics.median(local_starts), 1),
        "sandbox_start_ms_p50": round(statistics.median(sandbox_starts), 1),
        "warm_claim_ms_p50": round(statistics.median(claims), 1),
        "cold_start_ratio": round(
            statistics.median(sandbox_starts) / statistics.median(local_starts), 3
        ),
        "local_execute_rtt_ms_p50": round(statistics.median(local_rtt), 3),
        "sandbox_execute_rtt_ms_p50": round(statistics.median(sandbox_rtt), 3),
        "execute_rtt_ratio": round(
            statistics.median(sandbox_rtt) / statistics.median(local_rtt), 3
        ),
        "idle_memory_mb": round(memory, 1),
        "engine_start_ms_p50": round(statistics.median(engine_starts), 1),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
