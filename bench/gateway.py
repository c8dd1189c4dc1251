"""Kernels through a Jupyter Enterprise Gateway against the same kernels started here.

A real Enterprise Gateway (its own environment, scripts/gateway-venv.sh) runs on 127.0.0.1 and
offers one kernelspec: this Python's ipykernel as a local process, the same kernel as the
baseline, so the figures are the gateway's own cost (HTTP, WebSocket, its relaying), not a
cluster's (pod scheduling, image pulls). Kernels are started and driven as the agent does it:
jupyter_client's kernel manager here, jupyter_server's gateway kernel manager with the agent's
client there (jupyter_notebook_agent.kernels.gateway). ROUNDS rounds, each starting one kernel
of each kind in turn, then timing EXECUTIONS `1+1` on each, interleaved.

gateway_start_ms_p50, local_start_ms_p50: a kernel's start to its kernel_info reply.
start_ratio: the first over the second.
gateway_rtt_ms_p50 / _p99, local_rtt_ms_p50 / _p99: `1+1` sent to its idle status received.
rtt_ratio: the p50s, gateway over local.
gateway_wait_cpu_percent, local_wait_cpu_percent: this process's CPU while a cell sleeps
WAIT_S, in percent of one core (waiting on a gateway kernel must not keep a core busy).
The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from serving import free_port, percentile, running, summary, wait_ready

from jupyter_notebook_agent.kernels import JupyterKernelSession, gateway

ROUNDS = 10
EXECUTIONS = 50
WAIT_S = 2.0
REPOSITORY = Path(__file__).resolve().parent.parent


def start_gateway(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Enterprise Gateway on a free port, offering `python3`: this Python's ipykernel (it
    answers once `wait_ready` says so)."""
    venv = subprocess.run(
        ["bash", str(REPOSITORY / "scripts" / "gateway-venv.sh")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[-1]
    spec = work / "kernels" / "python3" / "kernel.json"
    spec.parent.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec.write_text(json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"}))
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    environment |= {"JUPYTER_PATH": str(work), "JUPYTER_RUNTIME_DIR": str(work / "runtime")}
    with (work / "gateway.log").open("wb") as log:
        process = subprocess.Popen(
            [f"{venv}/bin/jupyter-enterprisegateway", "--ip=127.0.0.1", f"--port={port}"],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process, f"http://127.0.0.1:{port}"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def start(url: str | None, cwd: str) -> tuple[JupyterKernelSession, float]:
    """A ready kernel, on the gateway at `url` or here, and the milliseconds its start took."""
    started = time.perf_counter()
    if url:
        session = await gateway.start_kernel(url, "python3", cwd)
    else:
        session = await JupyterKernelSession.start("python3", cwd=cwd)
    return session, (time.perf_counter() - started) * 1000


async def round_trip(session: JupyterKernelSession) -> float:
    started = time.perf_counter()
    execution = await session.execute("1+1", timeout_s=30)
    if execution.status != "ok":
        raise RuntimeError(f"1+1 did not run: {execution}")
    return (time.perf_counter() - started) * 1000


async def wait_cpu_percent(session: JupyterKernelSession) -> float:
    """This process's CPU while the kernel sleeps WAIT_S, in percent of one core."""
    before, started = cpu_seconds(), time.perf_counter()
    await session.execute(f"import time; time.sleep({WAIT_S})", timeout_s=30)
    return 100 * (cpu_seconds() - before) / (time.perf_counter() - started)


async def main() -> dict[str, float]:
    # The gateway refuses kernels for root; a hub sets this to the person's name.
    os.environ.setdefault("KERNEL_USERNAME", "bench")
    starts: dict[str, list[float]] = {"gateway": [], "local": []}
    rtts: dict[str, list[float]] = {"gateway": [], "local": []}
    waits: dict[str, list[float]] = {"gateway": [], "local": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        process, url = start_gateway(work)
        with running(process, work / "gateway.log"):
            await asyncio.to_thread(wait_ready, f"{url}/", process, "api/kernelspecs")
            print(f"Enterprise Gateway at {url}")
            for number in range(1, ROUNDS + 1):
                sessions = {}
                for kind, where in (("gateway", url), ("local", None)):
                    sessions[kind], took = await start(where, tmp)
                    starts[kind].append(took)
                for _ in range(EXECUTIONS):
                    for kind, session in sessions.items():
                        rtts[kind].append(await round_trip(session))
                if number == 1:
                    for kind, session in sessions.items():
                        waits[kind].append(await wait_cpu_percent(session))
                for session in sessions.values():
                    await session.shutdown()
                print(
                    f"round {number}/{ROUNDS}: start gateway {starts['gateway'][-1]:.0f} ms, "
                    f"local {starts['local'][-1]:.0f} ms; 1+1 gateway "
                    f"{summary(rtts['gateway'][-EXECUTIONS:])}, local "
                    f"{summary(rtts['local'][-EXECUTIONS:])}"
                )
    median = statistics.median
    return {
        "rounds": ROUNDS,
        "executions": ROUNDS * EXECUTIONS,
        "gateway_start_ms_p50": round(median(starts["gateway"]), 1),
        "local_start_ms_p50": round(median(starts["local"]), 1),
        "start_ratio": round(median(starts["gateway"]) / median(starts["local"]), 3),
        "gateway_rtt_ms_p50": round(median(rtts["gateway"]), 3),
        "gateway_rtt_ms_p99": round(percentile(rtts["gateway"], 99), 3),
        "local_rtt_ms_p50": round(median(rtts["local"]), 3),
        "local_rtt_ms_p99": round(percentile(rtts["local"], 99), 3),
        "rtt_ratio": round(median(rtts["gateway"]) / median(rtts["local"]), 3),
        "gateway_wait_cpu_percent": round(waits["gateway"][0], 1),
        "local_wait_cpu_percent": round(waits["local"][0], 1),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
