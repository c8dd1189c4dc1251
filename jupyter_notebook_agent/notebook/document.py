"""The notebook an agent run writes into: nbformat cells addressed by id, with provenance."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

import nbformat
from nbformat import NotebookNode

from .outputs import cut, digest

#: Key of the cell and notebook metadata this package writes.
METADATA_KEY = "notebook_agent"

CellType = Literal["code", "markdown"]
CellState = Literal["proposed", "accepted"]


class CellNotFound(KeyError):
    """No cell with that id: the message lists the ids that exist."""

    def __str__(self) -> str:
        return str(self.args[0])


def upgraded(notebook: NotebookNode) -> NotebookNode:
    """The notebook as nbformat 4.5, in place: what JupyterLab makes of an older one (most files
    on disk are 4.4, cells without ids). Each cell without an id gets one from its position, so
    that two reads of one unchanged file agree on them, as the writer's merge needs."""
    if (notebook.get("nbformat"), notebook.get("nbformat_minor", 0)) >= (4, 5):
        return notebook
    notebook.nbformat, notebook.nbformat_minor = 4, 5
    taken = {cell.get("id") for cell in notebook.cells}
    for position, cell in enumerate(notebook.cells):
        if not cell.get("id"):
            cell_id = f"cell-{position}"
            while cell_id in taken:
                cell_id += "-"
            cell.id = cell_id
            taken.add(cell_id)
    return notebook


class NotebookDocument:
    """An nbformat 4.5 notebook with the operations the agent needs, by cell id."""

    def __init__(self, notebook: NotebookNode | None = None) -> None:
        self.nb = upgraded(notebook) if notebook is not None else nbformat.v4.new_notebook()
        self._agent_cells = sum(1 for cell in self.nb.cells if METADATA_KEY in cell.metadata)

    @classmethod
    def read(cls, path: str | Path) -> NotebookDocument:
        return cls(nbformat.read(path, as_version=4))

    def write(self, path: str | Path) -> None:
        """Atomically: a crash mid-write leaves the previous file, never half of one."""
        path = Path(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as stream:
                nbformat.write(self.nb, stream)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    def new_cell_id(self) -> str:
        """Ids in writing order (`agent-1`, `agent-2`...), stable so that recordings replay."""
        taken = {cell.get("id") for cell in self.nb.cells}
        while True:
            self._agent_cells += 1
            cell_id = f"agent-{self._agent_cells}"
            if cell_id not in taken:
                return cell_id

    def index(self, cell_id: str) -> int:
        for position, cell in enumerate(self.nb.cells):
            if cell.get("id") == cell_id:
                return position
        ids = ", ".join(cell.get("id", "?") for cell in self.nb.cells) or "none"
        raise CellNotFound(f"no cell has id {cell_id!r}; the notebook's cell ids: {ids}")

    def has(self, cell_id: str) -> bool:
        return any(cell.get("id") == cell_id for cell in self.nb.cells)

    def cell(self, cell_id: str) -> NotebookNode:
        return self.nb.cells[self.index(cell_id)]

    def add(
        self,
        cell_type: CellType,
        source: str,
        provenance: dict[str, Any],
        after_cell_id: str | None = None,
    ) -> tuple[NotebookNode, int]:
        """A new cell after `after_cell_id` (at the end when None); returns it and its index."""
        position = len(self.nb.cells) if after_cell_id is None else self.index(after_cell_id) + 1
        make = nbformat.v4.new_code_cell if cell_type == "code" else nbformat.v4.new_markdown_cell
        cell = make(source=source, id=self.new_cell_id())
        cell.metadata[METADATA_KEY] = provenance
        self.nb.cells.insert(position, cell)
        return cell, position

    def remove(self, cell_id: str) -> NotebookNode:
        return self.nb.cells.pop(self.index(cell_id))

    def withdraw(self, cell_id: str) -> None:
        """Removes a cell that should never have been written, and frees its id for the next."""
        self.remove(cell_id)
        if cell_id == f"agent-{self._agent_cells}":
            self._agent_cells -= 1

    def summary(
        self, total_chars: int = 20_000, source_chars: int = 1_000, output_chars: int = 300
    ) -> list[dict[str, Any]]:
        """Each cell as the model sees a notebook it did not write: its id, type and source,
        and a code cell's latest outputs as digests, each bounded. Past `total_chars`, the
        earlier cells go by their first line: the latest are what a request most likely
        continues."""
        cells: list[dict[str, Any]] = []
        used = 0
        for c in reversed(self.nb.cells):
            cell: dict[str, Any] = {
                "cell_id": c.get("id"),
                "cell_type": c.cell_type,
                "source": cut(c.source, source_chars),
            }
            if c.cell_type == "code" and c.get("outputs"):
                cell["outputs"] = digest(c.outputs, output_chars)
            size = len(json.dumps(cell))
            if used + size > total_chars:
                cell = {"cell_id": c.get("id"), "cell_type": c.cell_type}
                cell["first_line"] = cut(c.source.split("\n")[0], 100)
                size = len(json.dumps(cell))
            used += size
            cells.append(cell)
        return cells[::-1]


def keep_run_record(nb: NotebookNode, record: dict[str, Any]) -> None:
    """The run's entry in the notebook's list of runs, by its run_id, as `record` says."""
    runs = nb.metadata.setdefault(METADATA_KEY, {}).setdefault("runs", [])
    for existing in runs:
        if existing.get("run_id") == record["run_id"]:
            existing.update(record)
            return
    runs.append(dict(record))
