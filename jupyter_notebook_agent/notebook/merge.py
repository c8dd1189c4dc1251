"""Carrying a run's cells into a notebook that may have changed since the run read it.

The person may have saved edits, added or deleted cells while the agent worked. Only the cells
the run wrote are carried over, matched by cell id; everything else in the file stays as it is.
"""

from __future__ import annotations

import copy
from typing import Any

from nbformat import NotebookNode

from .document import keep_run_record
from .placement import placement


def merge_run_cells(
    target: NotebookNode,
    source: NotebookNode,
    written: set[str],
    removed: set[str],
    run_record: dict[str, Any] | None = None,
) -> NotebookNode:
    """Updates `target` in place: the `written` cells as they are in `source` (replaced where
    the ids match, otherwise placed by the cell they follow in `source`), the `removed` ones
    deleted, and the run's record kept in the notebook's metadata."""
    target.cells = [cell for cell in target.cells if cell.get("id") not in removed]
    for position, cell in enumerate(source.cells):
        cell_id = cell.get("id")
        if cell_id not in written:
            continue
        ids = [c.get("id") for c in target.cells]
        if cell_id in ids:
            target.cells[ids.index(cell_id)] = copy.deepcopy(cell)
            continue
        after = source.cells[position - 1].get("id") if position else None
        target.cells.insert(placement(ids, after, position), copy.deepcopy(cell))
    if run_record is not None:
        keep_run_record(target, run_record)
    return target
