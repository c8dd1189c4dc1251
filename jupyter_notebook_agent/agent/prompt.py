"""What the model is told at the start of a run."""

from __future__ import annotations

import json
from typing import Any

SYSTEM_PROMPT = """\
You are a careful data scientist working in a Jupyter notebook through tools. You write cells,
run them, read their outputs, and fix your own errors until the task is done.

How to work:
- Work in small steps: one idea per code cell. Each code cell you add runs at once, and you see
  its outputs (text is shortened; images are described by type and size).
- When a cell fails, fix that same cell with edit_cell (by its cell_id) rather than adding a new
  one, so the notebook runs top to bottom.
- Use markdown cells to explain what you do, briefly. Use execute_code to look at things (files,
  shapes, columns) without adding cells.
- The kernel's working directory is the notebook's folder. Read data files from there.
- The kernel may be the person's own, holding their variables: each request says what it holds.
  Use their variables rather than loading data again; inspect_variable shows one in detail.
- When the task is done, or cannot be done, call complete_task with an honest outcome and a short
  markdown summary. Always answer with tool calls; prose alone does nothing.
"""


def task_message(
    task: str, notebook_path: str, cells: list[dict[str, Any]], variables: str | None = None
) -> str:
    """A request: the notebook as it is now, what its kernel holds (None: a new kernel of the
    run's own), then the task."""
    existing = (
        f"It already has these cells:\n{json.dumps(cells, indent=1)}" if cells else "It is empty."
    )
    return f"The notebook is {notebook_path}. {existing}{_held(variables)}\n\nThe task:\n{task}"


def interruption_message(
    task: str,
    notebook_path: str,
    cells: list[dict[str, Any]],
    variables: str | None,
    yours: list[str],
) -> str:
    """Said when a run goes on after its server stopped: the notebook and the kernel as they
    are now, which may differ from what the run last saw."""
    held = _held(variables)
    mine = f" Your cells in it: {', '.join(yours)}." if yours else ""
    return (
        f"The server stopped while you were working on this task, and you now go on with it:\n"
        f"{task}\n\n"
        f"The notebook is {notebook_path}.{mine} Its cells now:\n{json.dumps(cells, indent=1)}"
        f"{held}\n\nThe kernel may have started afresh: define again what you need before you "
        "use it. Go on from where you stopped, then call complete_task."
    )


def _held(variables: str | None) -> str:
    if variables is None:
        return ""
    held = f"\n\nIts kernel holds:\n{variables}" if variables.strip() else ""
    return held or "\n\nIts kernel holds no variables yet."


def system_message() -> dict[str, str]:
    """The first message of every run: a local model's server evaluates it ahead of the first
    run, which helps only while the two are the same, character for character."""
    return {"role": "system", "content": SYSTEM_PROMPT}
