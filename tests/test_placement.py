"""One rule places a cell in a notebook that changed since the run placed it: the frontend's
(src/notebook/placement.ts) and the server's pass the same cases."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from jupyter_notebook_agent.notebook.merge import merge_run_cells
from jupyter_notebook_agent.notebook.placement import placement

CASES = json.loads(
    (Path(__file__).parent.parent / "src/notebook/__tests__/placements.json").read_text()
)["cases"]


@pytest.mark.parametrize("case", CASES, ids=lambda case: f"{case['after']}@{case['index']}")
def test_the_server_places_a_cell_as_the_frontend_does(case):
    assert placement(case["ids"], case["after"], case["index"]) == case["expected"]


def notebook(*ids: str) -> nbformat.NotebookNode:
    cells = [nbformat.v4.new_code_cell(cell_id, id=cell_id) for cell_id in ids]
    return nbformat.v4.new_notebook(cells=cells)


def test_the_writer_places_the_runs_cells_by_the_same_rule():
    """The person added a cell at the top and deleted the one the agent's second cell follows,
    while the run wrote two cells."""
    run = notebook("intro", "agent-1", "load", "agent-2")
    on_disk = notebook("new-top", "intro")
    merge_run_cells(on_disk, run, {"agent-1", "agent-2"}, set())
    ids = [cell.id for cell in on_disk.cells]
    # agent-1 follows intro, which is there; agent-2 followed load, which is gone: its index.
    assert ids == ["new-top", "intro", "agent-1", "agent-2"]
    assert ids.index("agent-1") == placement(["new-top", "intro"], "intro", 1)


def test_the_writer_removes_rejected_cells_and_keeps_the_record():
    run = notebook("a", "agent-1")
    on_disk = notebook("a", "agent-1", "agent-0")
    record = {"run_id": "r1", "state": "finished"}
    merge_run_cells(on_disk, run, {"agent-1"}, {"agent-0"}, record)
    assert [cell.id for cell in on_disk.cells] == ["a", "agent-1"]
    assert on_disk.metadata["notebook_agent"]["runs"] == [record]
