"""Shared fixtures: recordings, the OpenAI-compatible replay server, a local kernel, the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.auth.authorizer import Authorizer

import jupyter_notebook_agent
from jupyter_notebook_agent.kernels import JupyterKernelSession
from jupyter_notebook_agent.llm.base import ModelTurn, ToolCall
from jupyter_notebook_agent.llm.replay import load_recording, save_recording
from jupyter_notebook_agent.sandbox import SANDBOX_KERNEL
from jupyter_notebook_agent.testing.replay_server import ReplayScript, ReplayServerThread
from jupyter_notebook_agent.testing.tiny_model import write_tiny_gguf

from .agent_api import AgentAPI

pytest_plugins = ("pytest_jupyter.jupyter_server",)

RECORDINGS = Path(__file__).parent / "recordings"
CLI = Path(sys.executable).with_name("jupyter-notebook-agent")
SANDBOX_KERNELSPEC = Path(jupyter_notebook_agent.__file__).parent / "sandbox" / "kernelspec"
#: CLI arguments for a local kernel: tests of the agent itself, not of the sandbox.
LOCAL = ("--kernel", "python3", "--allow-unsandboxed")


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (now)."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


@pytest.fixture(scope="session", autouse=True)
def hf_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Hugging Face hub is never reached from the tests: its cache is theirs, filled by them
    (set before anything imports huggingface_hub, which reads these once)."""
    cache = tmp_path_factory.mktemp("hf-cache")
    os.environ.update(HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1")
    return cache


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random-weight llama the llama-cpp tests run (written, not downloaded)."""
    return write_tiny_gguf(tmp_path_factory.mktemp("models") / "tiny.gguf")


def put_in_hub_cache(cache: Path, repo: str, filename: str, source: Path) -> Path:
    """Places a file in the hub cache's own layout, as a finished download leaves it."""
    revision = "0" * 40
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(revision)
    target = folder / "snapshots" / revision / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def tool(name: str, arguments: dict[str, Any] | str, call_id: str = "") -> ToolCall:
    """A tool call as a model would send it; a str passes arguments through unparsed."""
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return ToolCall(id=call_id or f"call_{name}", name=name, arguments=raw)


def turn(*calls: ToolCall, content: str = "") -> ModelTurn:
    return ModelTurn(content=content, tool_calls=list(calls))


def add_cell_turn(source: str) -> ModelTurn:
    return turn(tool("add_cell", {"cell_type": "code", "source": source}))


def complete(summary: str = "done", success: bool = True) -> ModelTurn:
    return turn(tool("complete_task", {"success": success, "summary": summary}))


def observer_plugin(folder: Path, seen: Path) -> Path:
    """A package, importable from `folder`, whose entry point in the observers' group writes
    each event's number and type to `seen`: what a tracking service's plugin would be."""
    info = folder / "run_observer-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: run-observer\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[jupyter_notebook_agent.observers]\nlog = run_observer:observe\n"
    )
    (folder / "run_observer.py").write_text(
        "import json\n"
        "def observe(event):\n"
        f"    with open({str(seen)!r}, 'a') as f:\n"
        "        f.write(json.dumps({'seq': event['seq'], 'type': event['type']}) + '\\n')\n"
    )
    return folder


@pytest.fixture
def write_recording(tmp_path: Path) -> Callable[..., Path]:
    """Writes turns to a recording file and returns its path."""

    def write(*turns: ModelTurn, model: str = "test-model", name: str = "rec.json") -> Path:
        path = tmp_path / name
        save_recording(path, model, list(turns))
        return path

    return write


@pytest.fixture
def replay_server() -> Callable[..., Any]:
    """Serves a recording over real HTTP on 127.0.0.1 for the real openai client."""

    @contextmanager
    def serve(recording: Path, **options: Any) -> Iterator[ReplayServerThread]:
        model, turns = load_recording(recording)
        with ReplayServerThread(ReplayScript(turns=turns, model=model, **options)) as server:
            yield server

    return serve


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Runs the installed `jupyter-notebook-agent` command, as a person would."""

    def run(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 180):
        environment = {**os.environ, "OPENAI_API_KEY": "sk-test", "COLUMNS": "200"} | (env or {})
        return subprocess.run(
            [str(CLI), *map(str, args)],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture
def kernel(
    tmp_path: Path, jp_asyncio_loop: asyncio.AbstractEventLoop
) -> Iterator[JupyterKernelSession]:
    """A local ipykernel, on the loop the async tests run on; these tests exercise the agent."""
    session = jp_asyncio_loop.run_until_complete(
        JupyterKernelSession.start("python3", cwd=str(tmp_path))
    )
    yield session
    jp_asyncio_loop.run_until_complete(session.shutdown())


@pytest.fixture(autouse=True)
def sandbox_kernelspec(jp_data_dir: Path) -> None:
    """The sandbox kernelspec where `pip install` puts it: pytest-jupyter gives each test
    Jupyter folders of its own, so the test servers would not see the installed one."""
    shutil.copytree(SANDBOX_KERNELSPEC, jp_data_dir / "kernels" / SANDBOX_KERNEL)


SECRET = "sk-secret-never-shown"
"""The replayed endpoint's API key: it must show up nowhere the server sends or writes."""


@pytest.fixture
def replay() -> Iterator[ReplayServerThread]:
    """An OpenAI-compatible endpoint over HTTP, its turns set by each test (script.turns)."""
    with ReplayServerThread(ReplayScript(turns=[], model="test-model", api_key=SECRET)) as server:
        yield server


def runs_server_config(
    replay: ReplayServerThread, authorizer: type[Authorizer] | None = None
) -> dict[str, Any]:
    """The extension on the replayed model, running code in a local kernel (tests of runs; the
    sandbox has its own), writing files soon after each change; `authorizer`: what the person
    may do (all, by default)."""
    config: dict[str, Any] = {
        "ServerApp": {"jpserver_extensions": {"jupyter_notebook_agent": True}},
        "NotebookAgent": {
            "warm_pool_size": 0,
            "model": "openai:test-model",
            "base_url": replay.base_url,
            "api_key": SECRET,
            "kernel_name": "python3",
            "allow_unsandboxed": True,
            "save_interval": 0.05,
        },
    }
    if authorizer is not None:
        config["ServerApp"]["authorizer_class"] = authorizer
    return config


@pytest.fixture
def api(jp_fetch: Any, jp_ws_fetch: Any) -> AgentAPI:
    """This extension's REST and WebSocket API, under the server's base URL; every answer is
    checked against rest-api.yml."""
    return AgentAPI(jp_fetch, jp_ws_fetch)


@pytest.fixture
def extension(jp_serverapp: Any) -> Any:
    """The server's NotebookAgent extension app."""
    (app,) = jp_serverapp.extension_manager.extension_apps["jupyter_notebook_agent"]
    return app


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    """A Jupyter server with this extension enabled, as `pip install` enables it; without a warm
    pool, which the tests that are about it turn on."""
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_notebook_agent": True}},
        "NotebookAgent": {"warm_pool_size": 0},
    }


#: Read at collection, before pytest-jupyter points HOME at a test's folder: where caches live.
CACHE_HOME = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")


@pytest.fixture(scope="session")
def gateway_venv() -> Path:
    """Jupyter Enterprise Gateway's own environment, with its source release's etc/ (the Helm
    chart, the kernel launchers): scripts/gateway-venv.sh makes it once, then checks it."""
    made = subprocess.run(
        ["bash", str(Path(__file__).parent.parent / "scripts" / "gateway-venv.sh")],
        env=os.environ | {"XDG_CACHE_HOME": CACHE_HOME},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert made.returncode == 0, made.stderr[-3000:]
    return Path(made.stdout.split()[-1])
