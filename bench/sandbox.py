"""What the sandbox costs over a local kernel, measured side by side in one run.

cold_start_ratio: container start to kernel_info reply, over a local ipykernel's (target <= 1.5).
warm_claim_ms_p50: a kernel start served by the warm pool, to a connected kernel whose code runs in
its folder (target <= 20).
execute_rtt_ratio: `1+1` round trip in the sandbox over a local kernel (target <= 1.1).
idle_memory_mb: memory of an idle sandbox kernel's container, as its cgroup counts it.
engine_start_ms_p50: the engine's create and start of a container that runs `true`: the part of a
cold start that a local kernel does not pay, whatever the kernel inside does.
read_large_ratio, read_small_ratio: reading the notebook's folder from the sandbox kernel over the
same from a local kernel: a 64 MB file, and 2,000 files of 4 kB. A server run as root lends the
folder through bindfs (FUSE), so this is bindfs's cost; under a person's server, a plain bind's.
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

from jupyter_notebook_agent.kernels import JupyterKernelSession
from jupyter_notebook_agent.sandbox import LOCAL_KERNEL, SANDBOX_KERNEL
from jupyter_notebook_agent.sandbox.image import ensure_image
from jupyter_notebook_agent.sandbox.pool import WarmPool

STARTS = 6
CLAIMS = 10
ROUNDS = 10
PER_ROUND = 30


async def start_ms(kernel_name: str, cwd: str) -> tuple[float, JupyterKernelSession]:
    started = time.perf_counter()
    session = await JupyterKernelSession.start(kernel_name, cwd=cwd)
    return (time.perf_counter() - started) * 1000, session


def idle_memory_mb(session: JupyterKernelSession) -> float:
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


#: Run in a kernel in the folder: milliseconds to read the large file, then the small ones.
READS = """
import os, time
started = time.perf_counter()
with open("large.bin", "rb") as file:
    file.read()
large = (time.perf_counter() - started) * 1000
started = time.perf_counter()
for name in os.listdir("small"):
    with open(os.path.join("small", name), "rb") as file:
        file.read()
print(large, (time.perf_counter() - started) * 1000)
"""


def folder_to_read(folder: Path) -> None:
    (folder / "large.bin").write_bytes(os.urandom(64 * 2**20))
    (folder / "small").mkdir()
    for number in range(2000):
        (folder / "small" / f"{number}.bin").write_bytes(os.urandom(4096))


async def read_ms(session: JupyterKernelSession) -> tuple[float, float]:
    execution = await session.execute(READS, 120)
    large, small = "".join(o.text for o in execution.outputs if o.output_type == "stream").split()
    return float(large), float(small)


async def main() -> dict[str, float]:
    image = ensure_image()
    engine = docker.from_env()
    engine_starts = [engine_start_ms(engine, image) for _ in range(STARTS)]
    engine.close()
    with tempfile.TemporaryDirectory() as cwd:
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
            await asyncio.to_thread(folder_to_read, Path(cwd))
            reads: dict[str, list[tuple[float, float]]] = {"local": [], "sandbox": []}
            for number in range(ROUNDS + 1):  # the first warms the page cache: not counted
                for name, session in (("local", local), ("sandbox", sandbox)):
                    reads[name].append(await read_ms(session))
                print(f"reads {number}/{ROUNDS}: {reads['local'][-1]} {reads['sandbox'][-1]}")
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
        **read_figures(reads),
    }


def read_figures(reads: dict[str, list[tuple[float, float]]]) -> dict[str, float]:
    figures = {}
    for position, size in enumerate(("large", "small")):
        local = statistics.median(r[position] for r in reads["local"][1:])
        sandbox = statistics.median(r[position] for r in reads["sandbox"][1:])
        figures[f"local_read_{size}_ms_p50"] = round(local, 1)
        figures[f"sandbox_read_{size}_ms_p50"] = round(sandbox, 1)
        figures[f"read_{size}_ratio"] = round(sandbox / local, 2)
    return figures


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
