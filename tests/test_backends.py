"""Model backends are found by a model string's prefix: ours from a table, another package's
through the entry point group `jupyter_notebook_agent.backends`."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from jupyter_notebook_agent.llm import ModelError, backend, backends, load_model, parse_model_string
from jupyter_notebook_agent.llm.replay import ReplayModel

from .conftest import LOCAL, RECORDINGS

#: A backend of another package: its model completes the task with the name it was given.
ECHO_BACKEND = """
from jupyter_notebook_agent.llm.base import ModelTurn, ToolCall
import json

class EchoModel:
    def __init__(self, name, greeting):
        self.name, self.greeting, self.context_tokens = name, greeting, None

    @classmethod
    def from_settings(cls, name, settings):
        return cls(name, settings.get("base_url") or "no endpoint")

    def warm(self, messages, tools):
        return 0

    async def stream(self, messages, tools):
        summary = f"{self.name} ({self.greeting})"
        arguments = json.dumps({"success": True, "summary": summary})
        yield ModelTurn(tool_calls=[ToolCall("call_0", "complete_task", arguments)])

    async def aclose(self):
        pass
"""


def echo_plugin(folder: Path) -> Path:
    info = folder / "echo_backend-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-backend\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[jupyter_notebook_agent.backends]\n"
        "echo = echo_backend:EchoModel\n"
        "replay = echo_backend:EchoModel\n"  # ours stay ours
    )
    (folder / "echo_backend.py").write_text(ECHO_BACKEND)
    return folder


def test_a_backend_of_another_package_runs_the_agent(tmp_path, run_cli):
    plugin = echo_plugin(tmp_path / "plugin")
    out = tmp_path / "echo.ipynb"
    result = run_cli(
        "run", "say hello", "-o", out, "--model", "echo:hello there", *LOCAL,
        env={"PYTHONPATH": str(plugin)},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hello there (no endpoint)" in result.stdout
    (record,) = nbformat.read(out, as_version=4).metadata["notebook_agent"]["runs"]
    assert record["model"] == "hello there"


def test_a_package_cannot_take_over_one_of_ours(tmp_path):
    """`replay:` stays the replay backend whatever another package declares."""
    plugin = echo_plugin(tmp_path / "plugin")
    code = textwrap.dedent(
        """
        from jupyter_notebook_agent.llm import backend, backends
        print(sorted(backends()), backend("replay").__name__, backend("echo").__name__)
        """
    )
    found = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(plugin), "PATH": "/usr/bin:/bin"},
        check=True,
    ).stdout.split()
    assert found == [
        "['echo',",
        "'llama-cpp',",
        "'openai',",
        "'replay']",
        "ReplayModel",
        "EchoModel",
    ]


def test_our_backends_are_the_table_and_a_prefix_names_one():
    assert {"openai", "llama-cpp", "replay"} <= set(backends())
    assert backend("replay") is ReplayModel
    assert parse_model_string("replay:x.json") == ("replay", "x.json")
    assert parse_model_string("qwen2.5-coder:7b") == ("openai", "qwen2.5-coder:7b")
    model = load_model(f"replay:{RECORDINGS / 'sine_plot.json'}")
    assert isinstance(model, ReplayModel) and model.warm([], []) == 0


def test_a_backend_that_cannot_be_imported_is_said_plainly(monkeypatch):
    monkeypatch.setitem(backends(), "broken", "no_such_module_here:Model")
    with pytest.raises(ModelError, match="the model backend 'broken' cannot be loaded"):
        load_model("broken:x")


def test_a_backend_that_fails_its_own_way_is_said_plainly(monkeypatch):
    """Another package's backend that raises what it likes (here: it has no from_settings)."""
    monkeypatch.setitem(backends(), "odd", "json:JSONDecoder")
    with pytest.raises(ModelError, match="the model backend 'odd' could not make 'x'"):
        load_model("odd:x")
