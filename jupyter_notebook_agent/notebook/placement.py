"""Where a cell goes in a notebook that may have changed since the run placed it.

A run says where it put a cell by the cell it follows (`after_cell_id`, None: it came first) and
by its index then. The person may have added, moved or deleted cells meanwhile, so the neighbour
decides where it is still there, the index where it is not. The frontend places cells by the same
rule (src/notebook/placement.ts); `src/notebook/__tests__/placements.json` holds both to it.
"""

from __future__ import annotations

from collections.abc import Sequence


def placement(ids: Sequence[str | None], after_cell_id: str | None, index: int) -> int:
    """The index a cell takes among the cells `ids` (itself not among them): right after
    `after_cell_id` where they hold it, first when it followed none, else `index`, within
    the notebook."""
    if after_cell_id is None:
        return 0
    if after_cell_id in ids:
        return ids.index(after_cell_id) + 1
    return max(0, min(index, len(ids)))
