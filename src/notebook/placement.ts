/**
 * Where a cell goes in a notebook that may have changed since the run placed it: right after the
 * cell it followed where the notebook still holds that cell, first when it followed none, else
 * at its index then, within the notebook. The server's writer places cells by the same rule
 * (jupyter_notebook_agent/notebook/placement.py); `__tests__/placements.json` holds both to it.
 *
 * @param ids - The notebook's cells now, without the cell placed.
 */
export function placement(
  ids: readonly string[],
  afterCellId: string | null,
  index: number
): number {
  if (afterCellId === null) {
    return 0;
  }
  const neighbour = ids.indexOf(afterCellId);
  return neighbour >= 0
    ? neighbour + 1
    : Math.max(0, Math.min(index, ids.length));
}
