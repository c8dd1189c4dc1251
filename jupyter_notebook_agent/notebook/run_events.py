"""A run's events applied to a copy of its notebook. The server's writer keeps the run's cells
this way, as the frontend keeps the open notebook's (src/notebook/cellWriter.ts): from the events
alone, by the same placement rule, so that both write what the run's log says."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import nbformat
from nbformat import NotebookNode

from .document import METADATA_KEY
from .placement import placement


def apply_event(notebook: NotebookNode, event: Mapping[str, Any]) -> None:
    """Brings `notebook` in line with one event of its run; events that change no cell (and a
    running cell's outputs so far, which its last ones follow) leave it as it is."""
    kind, cell_id = event["type"], event.get("cell_id")
    ids = [cell.get("id") for cell in notebook.cells]
    if kind in ("cell_proposed", "cell_restored"):
        if cell_id not in ids:
            position = placement(ids, event["after_cell_id"], event["index"])
            notebook.cells.insert(position, _new_cell(event))
        return
    if cell_id not in ids:
        return
    position = ids.index(cell_id)
    cell = notebook.cells[position]
    if kind == "cell_source_delta":
        cell.source = ("" if event.get("reset") else cell.source) + event["text"]
    elif kind == "cell_edited":
        cell.source = event["source"]
        if event.get("state"):
            cell.metadata[METADATA_KEY]["state"] = event["state"]
    elif kind == "cell_accepted":
        cell.metadata[METADATA_KEY]["state"] = "accepted"
    elif kind == "cell_outputs" and event["status"] != "running":
        cell.outputs, cell.execution_count = list(event["outputs"]), event["execution_count"]
    elif kind == "cell_moved":
        del notebook.cells[position]
        others = ids[:position] + ids[position + 1 :]
        notebook.cells.insert(placement(others, event["after_cell_id"], event["index"]), cell)
    elif kind == "cell_rejected":
        del notebook.cells[position]


def _new_cell(event: Mapping[str, Any]) -> NotebookNode:
    code = event["cell_type"] == "code"
    make = nbformat.v4.new_code_cell if code else nbformat.v4.new_markdown_cell
    metadata = copy.deepcopy(event["metadata"])
    cell = make(event["source"], id=event["cell_id"], metadata=metadata)
    if code and event["type"] == "cell_restored":
        cell.outputs, cell.execution_count = list(event["outputs"]), event["execution_count"]
    return cell
