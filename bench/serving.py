"""What the benchmarks that drive real servers share: a free port, the Jupyter server process
with the extension on a replayed model, its readiness, the end of a server and its kernels, the
times the model sent its tokens, and percentiles."""

from __future__ import annotations

import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from jupyter_notebook_agent.testing.replay_server import ChatCompletionsHandler

TOKEN = "bench-token"
API_KEY = "sk-bench"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def summary(values: list[float]) -> str:
    """A progress line's `p50 ..., p99 ...` of some milliseconds."""
    if not values:
        return "none"
    return f"p50 {statistics.median(values):.1f} ms, p99 {percentile(values, 99):.1f} ms"


def start_jupyter(
    app: str,
    work: Path,
    port: int,
    model: str,
    model_url: str,
    *extra: str,
    sandboxed: bool = False,
) -> subprocess.Popen[bytes]:
    """`app` (jupyter_server or jupyterlab) with the extension on the replayed `model`, code in
    a local kernel (or, `sandboxed`, in sandbox kernels with the warm pool), in a process group
    of its own. Notebooks are served from work/notebooks; the log goes to work/server.log."""
    local = [
        "--NotebookAgent.kernel_name=python3",
        "--NotebookAgent.allow_unsandboxed=True",
        "--NotebookAgent.warm_pool_size=0",
    ]
    (work / "notebooks").mkdir(exist_ok=True)
    command = [
        sys.executable,
        "-m",
        app,
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={work / 'notebooks'}",
        "--ServerApp.open_browser=False",
        "--ServerApp.jpserver_extensions={'jupyter_notebook_agent': True}",
        f"--IdentityProvider.token={TOKEN}",
        f"--NotebookAgent.model=openai:{model}",
        f"--NotebookAgent.base_url={model_url}",
        f"--NotebookAgent.api_key={API_KEY}",
        *([] if sandboxed else local),
        *extra,
    ]
    if not any(arg.startswith("--NotebookAgent.store_path=") for arg in extra):
        command.append(f"--NotebookAgent.store_path={work / 'runs.sqlite'}")
    if os.geteuid() == 0:
        command.append("--allow-root")
    env = os.environ | {"JUPYTER_RUNTIME_DIR": str(work / "runtime")}
    with (work / "server.log").open("wb") as log:
        return subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


AUTH = {"Authorization": f"token {TOKEN}"}
"""The header of a request to the Jupyter servers the benchmarks start."""


def wait_ready(url: str, server: subprocess.Popen[bytes], path: str = "api/status") -> None:
    """Until the server answers `path` (with the token, which a gateway ignores)."""
    request = urllib.request.Request(f"{url}{path}", headers=AUTH)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}; see its log")
        try:
            with urllib.request.urlopen(request, timeout=2):
                return
        except (OSError, urllib.error.URLError):
            time.sleep(0.2)
    raise RuntimeError(f"the server did not answer /{path} within 60 s")


def stop(server: subprocess.Popen[bytes]) -> None:
    """Ends the server and its kernels (its own process group): SIGTERM, then SIGKILL."""
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    try:
        os.killpg(server.pid, signal.SIGKILL)  # any kernel left in its process group
    except ProcessLookupError:
        pass


@contextmanager
def running(process: subprocess.Popen[bytes], log: Path) -> Iterator[None]:
    """While a server is needed: on a failure, the tail of its log; at the end, its end (and its
    kernels')."""
    try:
        yield
    except BaseException:
        print(log.read_text()[-4000:], file=sys.stderr)
        raise
    finally:
        stop(process)


@contextmanager
def sends_stamped(
    sent: dict[tuple[str, str], float],
    tag: re.Pattern[bytes],
    tokens: Callable[[dict[str, Any]], Iterable[str]],
    clock: Callable[[], float],
) -> Iterator[None]:
    """While open, the replay server stamps with `clock` each token it sends, into `sent`:
    (the `tag` found in the request, so that streams of the same words are told apart; each
    token `tokens` finds in a chunk's delta) -> the time it was sent."""
    send = ChatCompletionsHandler._send

    async def stamped(
        handler: ChatCompletionsHandler,
        base: dict[str, Any],
        choices: list[dict[str, Any]],
        **extra: Any,
    ) -> None:
        found = tag.search(handler.request.body)
        if choices and found:
            now = clock()
            for token in tokens(choices[0]["delta"]):
                sent[found.group().decode(), token] = now
        await send(handler, base, choices, **extra)

    with mock.patch.object(ChatCompletionsHandler, "_send", stamped):
        yield
