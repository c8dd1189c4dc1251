"""The server's writer keeps the run's cells from the run's events alone (notebook/run_events.py),
as the frontend does: applied to the notebook the run started from, the events give the notebook
the agent holds, whatever the run did."""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat

from jupyter_notebook_agent.agent import Agent, AgentConfig, EventLog
from jupyter_notebook_agent.agent.run import RunRecord
from jupyter_notebook_agent.llm.replay import ReplayModel
from jupyter_notebook_agent.notebook import NotebookDocument
from jupyter_notebook_agent.notebook.run_events import apply_event
from jupyter_notebook_agent.server.writer import NotebookWriter

from .conftest import complete, tool, turn

RECORDINGS = Path(__file__).parent / "recordings"


def mirrored(notebook: NotebookDocument, events: EventLog) -> nbformat.NotebookNode:
    """A copy of the notebook as it is now, kept up to date from the events alone."""
    mirror = copy.deepcopy(notebook.nb)
    events.subscribe(lambda event: apply_event(mirror, event))
    return mirror


async def test_a_recorded_run_that_fixes_its_error(kernel):
    notebook, events = NotebookDocument(), EventLog()
    mirror = mirrored(notebook, events)
    agent = Agent(ReplayModel(RECORDINGS / "sine_plot.json"), kernel, notebook, events=events)
    assert (await agent.run("Plot a sine wave")).success
    assert len(notebook.nb.cells) == 4
    assert mirror.cells == notebook.nb.cells


async def test_cells_placed_among_the_persons_rejected_restored_and_accepted(
    kernel, write_recording
):
    person = [nbformat.v4.new_code_cell("x = 1", id="p1"), nbformat.v4.new_markdown_cell("# B")]
    nb = nbformat.v4.new_notebook(cells=person)
    nb.nbformat_minor = 4  # an nbformat 4.4 file: its cells get ids on reading
    for cell in nb.cells:
        del cell["id"]
    notebook, events = NotebookDocument(nb), EventLog()
    mirror = mirrored(notebook, events)
    first = notebook.nb.cells[0].id
    recording = write_recording(
        # Streamed at the end, then placed after the first cell once the call is whole.
        turn(
            tool("add_cell", {"cell_type": "code", "source": "y = x + 1", "after_cell_id": first})
        ),
        # Its type after its source: proposed once whole; then one that is too long.
        turn(tool("add_cell", '{"source": "print(y)", "cell_type": "code"}', "c2")),
        turn(tool("add_cell", {"cell_type": "code", "source": "z" * 200}, "c3")),
        turn(tool("edit_cell", {"cell_id": "agent-1", "source": "y = x + 2"}, "c4")),
        complete(),
    )
    agent = Agent(
        ReplayModel(recording),
        kernel,
        notebook,
        config=AgentConfig(max_cell_chars=100),
        events=events,
    )
    assert (await agent.run("add to x")).success
    assert [cell.id for cell in notebook.nb.cells] == [
        first,
        "agent-1",
        notebook.nb.cells[2].id,
        "agent-2",
    ]
    assert mirror.cells == notebook.nb.cells
    agent.reject("agent-1", keep_state=True)
    assert mirror.cells == notebook.nb.cells
    agent.restore("agent-1")
    agent.accept("agent-2")
    assert mirror.cells == notebook.nb.cells
    assert notebook.nb.cells[1].metadata["notebook_agent"]["state"] == "proposed"
    assert notebook.nb.cells[3].metadata["notebook_agent"]["state"] == "accepted"


def test_the_servers_writer_keeps_the_persons_cells_by_id_alone():
    """Its copy places the run's cells among the person's by their ids: a finished run the
    server keeps holds no second copy of the person's outputs (a megabyte here)."""
    person = nbformat.v4.new_code_cell("print('x' * 10**6)", id="person-1")
    person.outputs = [nbformat.v4.new_output("stream", text="x" * 10**6)]
    mine = nbformat.v4.new_code_cell("y = 1", id="agent-1")
    mine.metadata["notebook_agent"] = {"run_id": "r1", "model": "m", "state": "proposed"}
    notebook = nbformat.v4.new_notebook(cells=[person, mine])
    writer = NotebookWriter(None, None, "n.ipynb", notebook, RunRecord("r1", "t", "m", None))
    assert writer.notebook.cells == [{"id": "person-1"}, mine]
    assert writer.notebook.cells[1] is not mine
