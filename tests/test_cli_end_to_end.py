"""The headless agent end to end: the installed CLI, the real openai client over HTTP, a kernel."""

from __future__ import annotations

import json
import sys
from itertools import pairwise
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from .conftest import LOCAL, RECORDINGS, observer_plugin


def text_outputs(nb: nbformat.NotebookNode) -> list[list[str]]:
    """Each code cell's text: streams and plain-text results, images left out."""
    texts = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell_texts = []
        for output in cell.outputs:
            if output.output_type == "stream":
                cell_texts.append(output.text)
            elif output.output_type == "execute_result":
                cell_texts.append(output.data["text/plain"])
        texts.append(cell_texts)
    return texts


def test_recorded_run_fixes_its_error_plots_and_completes(tmp_path, replay_server, run_cli):
    out = tmp_path / "sine.ipynb"
    with replay_server(RECORDINGS / "sine_plot.json", api_key="sk-test") as server:
        result = run_cli(
            "run", "Plot a sine wave and summarise it", "-o", out,
            "--base-url", server.base_url, *LOCAL,
        )  # fmt: skip
        requests = server.script.requests
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Unsandboxed" in result.stdout
    assert "Done (completed)" in result.stdout
    assert "NameError" in result.stdout  # the progress showed the error the agent then fixed

    nb = nbformat.read(out, as_version=4)
    nbformat.validate(nb)
    assert (nb.nbformat, nb.nbformat_minor) == (4, 5)
    assert [c.id for c in nb.cells] == ["agent-1", "agent-2", "agent-3", "agent-4"]
    assert [c.cell_type for c in nb.cells] == ["markdown", "code", "code", "code"]
    run_ids = {c.metadata["notebook_agent"]["run_id"] for c in nb.cells}
    assert len(run_ids) == 1
    assert {c.metadata["notebook_agent"]["model"] for c in nb.cells} == {"gpt-4o-mini"}
    fixed = nb.cells[2]
    assert fixed.source.startswith("y_max = y.max()")
    assert [o.output_type for o in fixed.outputs] == ["stream"]
    assert fixed.outputs[0].text == "max = 1.000, mean = 0.000\n"
    plot = nb.cells[3]
    assert any("image/png" in o.get("data", {}) for o in plot.outputs)
    # The run's record, as the server's runs keep it too.
    assert nb.metadata["notebook_agent"]["runs"] == [
        {
            "run_id": run_ids.pop(),
            "task": "Plot a sine wave and summarise it",
            "model": "gpt-4o-mini",
            "state": "finished",
            "success": True,
            "reason": "completed",
        }
    ]

    # The real client streamed native tool calls, and the history only ever grew.
    assert len(requests) == 5
    assert all(r["stream"] and r["tools"] for r in requests)
    for earlier, later in pairwise(requests):
        assert later["messages"][: len(earlier["messages"])] == earlier["messages"]
    error_result = json.loads(requests[2]["messages"][-1]["content"])
    assert error_result["cell_id"] == "agent-3"
    assert error_result["status"] == "error"
    assert error_result["outputs"][0]["ename"] == "NameError"
    image = json.loads(requests[4]["messages"][-1]["content"])["outputs"][0]
    assert image["mime"] == "image/png" and image["width"] > 100 and image["bytes"] > 1000

    # The notebook stands on its own: a fresh kernel gives the same text, top to bottom.
    rerun = nbformat.read(out, as_version=4)
    NotebookClient(rerun, timeout=60, resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert text_outputs(rerun) == text_outputs(nb)
    assert text_outputs(nb) == [["101 samples\n"], ["max = 1.000, mean = 0.000\n"], []]

    # The transcript beside it holds every turn with its timing and tokens, and every result.
    lines = [
        json.loads(line) for line in out.with_suffix(".transcript.jsonl").read_text().splitlines()
    ]
    turns = [e for e in lines if e["type"] == "model_turn"]
    assert len(turns) == 5
    assert turns[0]["usage"]["prompt_tokens"] == 812
    assert all(t["duration_s"] > 0 for t in turns)
    assert [e["name"] for e in lines if e["type"] == "tool_result"] == [
        "add_cell", "add_cell", "add_cell", "edit_cell", "add_cell", "complete_task",
    ]  # fmt: skip
    assert lines[-1]["type"] == "run_finished" and lines[-1]["success"] is True
    assert "sk-test" not in out.read_text() + out.with_suffix(".transcript.jsonl").read_text()


def test_record_then_replay_gives_the_same_notebook(tmp_path, replay_server, run_cli):
    recorded = tmp_path / "recorded.json"
    with replay_server(RECORDINGS / "sine_plot.json") as server:
        first = run_cli(
            "run", "Plot a sine wave", "-o", "first.ipynb", "--base-url", server.base_url,
            "--record", recorded, *LOCAL,
        )  # fmt: skip
    assert first.returncode == 0, first.stdout + first.stderr
    second = run_cli(
        "run", "Plot a sine wave", "-o", "second.ipynb", "--model", f"replay:{recorded}",
        *LOCAL,
    )  # fmt: skip
    assert second.returncode == 0, second.stdout + second.stderr
    one = nbformat.read(tmp_path / "first.ipynb", as_version=4)
    two = nbformat.read(tmp_path / "second.ipynb", as_version=4)
    assert [c.source for c in one.cells] == [c.source for c in two.cells]
    assert text_outputs(one) == text_outputs(two)
    assert {c.metadata["notebook_agent"]["model"] for c in two.cells} == {"replay:gpt-4o-mini"}


def test_observers_from_entry_points_see_every_event(tmp_path: Path, replay_server, run_cli):
    seen = tmp_path / "seen.jsonl"
    plugin = observer_plugin(tmp_path / "plugin", seen)
    result = run_cli(
        "run", "Plot", "-o", "o.ipynb", "--model", f"replay:{RECORDINGS / 'sine_plot.json'}",
        *LOCAL, env={"PYTHONPATH": str(plugin)},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    events = [json.loads(line) for line in seen.read_text().splitlines()]
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "run_started" and events[-1]["type"] == "run_finished"
    assert "message_delta" in {e["type"] for e in events}


def test_a_kernel_that_cannot_start_is_reported_and_the_notebook_says_so(tmp_path, run_cli):
    """The agent starts the run's kernel, in the command line as in the server: one that dies
    at once ends the run as a kernel error, said on the terminal and in the notebook."""
    spec = tmp_path / "jupyter" / "kernels" / "broken"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-c", "raise SystemExit(1)", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Broken"}))
    result = run_cli(
        "run", "Plot", "-o", "o.ipynb", "--model", f"replay:{RECORDINGS / 'sine_plot.json'}",
        "--kernel", "broken", "--allow-unsandboxed",
        env={"JUPYTER_PATH": str(tmp_path / "jupyter")},
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Failed (kernel_error)" in result.stdout
    assert "no kernel to run code in" in result.stdout
    nb = nbformat.read(tmp_path / "o.ipynb", as_version=4)
    nbformat.validate(nb)
    (record,) = nb.metadata["notebook_agent"]["runs"]
    assert (record["state"], record["success"], record["reason"]) == (
        "finished",
        False,
        "kernel_error",
    )
    assert nb.metadata["kernelspec"]["name"] == "broken"
