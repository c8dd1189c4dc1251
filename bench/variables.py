"""What telling the model the kernel's names costs, on a kernel that holds a lot.

The kernel holds a 1,000,000-row, 500-column float32 DataFrame (2 GB), made last so that the
summary describes it, and 200 other names: ints, strings, lists, small arrays, functions.
inspection_ms_p50: the summary's round trip (`kernel_variables`, decoding included; target < 200).
trivial_ms_p50: the round trip of the user expression `1` on the same kernel, in interleaved
rounds of the same run: the floor any inspection pays.
inspection_ratio: the first over the second.
chars, max_chars: the summary's length and its bound (chars <= max_chars).
The kernel is a local one (`python3`); `--kernel python3-sandbox` runs the same in the sandbox.
The frame alone takes 1.95 GiB of the sandbox's default memory limit (2g), so any other
allocation would get the kernel killed: the run raises the limit to 6g.
The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable

from traitlets.config import Config

from jupyter_notebook_agent.agent.variables import kernel_variables
from jupyter_notebook_agent.kernels import JupyterKernelSession
from jupyter_notebook_agent.sandbox import LOCAL_KERNEL, SANDBOX_KERNEL

ROWS = 1_000_000
COLUMNS = 500
OTHERS = 200
MAX_CHARS = 4000
ROUNDS = 10
PER_ROUND = 10
SANDBOX_MEMORY = "6g"


def holdings() -> str:
    """The code that fills the kernel: the other names, of five kinds in turn, then the frame."""
    lines = ["import numpy as np, pandas as pd"]
    for number in range(OTHERS // 5):
        lines += [
            f"n{number} = {number}",
            f"s{number} = 'text {number} ' * 10",
            f"l{number} = list(range({number}))",
            f"a{number} = np.ones((10, 10))",
            f"def f{number}(x, y=1):\n    return x + y",
        ]
    lines.append(
        f"df = pd.DataFrame(np.random.default_rng(0).random(({ROWS}, {COLUMNS}), dtype=np.float32),"
        f" columns=[f'c{{n}}' for n in range({COLUMNS})], copy=False)"
    )
    return "\n".join(lines)


def check_memory() -> None:
    """The frame, made in the kernel, must fit with room to spare."""
    frame_bytes = ROWS * COLUMNS * 4
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if available < 2 * frame_bytes:
        raise SystemExit(f"{frame_bytes / 2**30:.1f} GiB frame: {available / 2**30:.1f} GiB free")


async def timed_ms(work: Awaitable[object]) -> float:
    started = time.perf_counter()
    await work
    return (time.perf_counter() - started) * 1000


async def main(kernel_name: str) -> dict[str, object]:
    check_memory()
    config = Config()
    if kernel_name == SANDBOX_KERNEL:
        config.DockerSandbox.memory = SANDBOX_MEMORY
    with tempfile.TemporaryDirectory() as cwd:
        session = await JupyterKernelSession.start(kernel_name, cwd=cwd, config=config)
        try:
            started = time.perf_counter()
            made = await session.execute(holdings(), 600)
            assert made.status == "ok", made.outputs
            print(f"kernel {kernel_name} filled in {time.perf_counter() - started:.1f} s")
            text = await kernel_variables(session, max_chars=MAX_CHARS)
            assert "df: DataFrame (1000000 rows, 500 columns)" in text, text
            print(text)
            for _ in range(3):  # warm up
                await session.evaluate("1")
                await kernel_variables(session, max_chars=MAX_CHARS)
            inspection, trivial = [], []
            for number in range(ROUNDS):
                for _ in range(PER_ROUND):
                    trivial.append(await timed_ms(session.evaluate("1")))
                    inspection.append(
                        await timed_ms(kernel_variables(session, max_chars=MAX_CHARS))
                    )
                print(
                    f"round {number + 1}/{ROUNDS}: inspection p50 "
                    f"{statistics.median(inspection):.1f} ms, trivial p50 "
                    f"{statistics.median(trivial):.2f} ms"
                )
        finally:
            await session.shutdown()
    return {
        "kernel": kernel_name,
        "inspection_ms_p50": round(statistics.median(inspection), 2),
        "trivial_ms_p50": round(statistics.median(trivial), 3),
        "inspection_ratio": round(statistics.median(inspection) / statistics.median(trivial), 1),
        "chars": len(text),
        "max_chars": MAX_CHARS,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel", default=LOCAL_KERNEL, choices=[LOCAL_KERNEL, SANDBOX_KERNEL])
    print(json.dumps(asyncio.run(main(parser.parse_args().kernel))))
