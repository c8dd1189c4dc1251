import { IRunState, IToolInProgress } from './runState';

/** What a run is doing, as the panel says it. */
export type Doing =
  | 'starting'
  | 'thinking'
  | 'writing'
  | 'running'
  | 'awaiting-accept'
  | 'awaiting-kernel'
  | 'running-code'
  | 'inspecting'
  | 'restarting'
  | 'finishing';

/** What a run is doing now, and the cell it is about (its first line; null for none). */
export interface IActivity {
  doing: Doing;
  cell: string | null;
}

/** What the run is doing now, for the panel to say (see `activityText`); null when not
 * running. */
export function runActivity(state: IRunState): IActivity | null {
  if (!state.running) {
    return null;
  }
  if (state.waitingForKernel) {
    return { doing: 'awaiting-kernel', cell: null };
  }
  if (state.tool) {
    return toolActivity(state, state.tool);
  }
  const writing =
    state.writingCellId === null
      ? undefined
      : state.cells.get(state.writingCellId);
  if (writing?.streaming) {
    return { doing: 'writing', cell: firstLine(writing.source) };
  }
  return { doing: state.step > 0 ? 'thinking' : 'starting', cell: null };
}

/** The cell `runActivity` is about (the one written, run or waited on); null for none. */
export function activityCellId(state: IRunState): string | null {
  if (!state.running) {
    return null;
  }
  const cellId = state.tool ? state.tool.cellId : state.writingCellId;
  return cellId !== null && state.cells.get(cellId)?.state !== 'rejected'
    ? cellId
    : null;
}

/** A cell as the person knows it: its first line with text, cut short; null while empty. */
export function firstLine(source: string): string | null {
  const line = source
    .split('\n')
    .map(each => each.trim())
    .find(each => each.length > 0);
  if (!line) {
    return null;
  }
  return line.length > 40 ? `${line.slice(0, 39)}…` : line;
}

function toolActivity(state: IRunState, tool: IToolInProgress): IActivity {
  const doing = (what: Doing): IActivity => ({ doing: what, cell: null });
  switch (tool.name) {
    case 'add_cell':
    case 'edit_cell':
      return cellToolActivity(state, tool);
    case 'execute_code':
      return doing('running-code');
    case 'inspect_variable':
      return doing('inspecting');
    case 'restart_kernel':
      return doing('restarting');
    case 'complete_task':
      return doing('finishing');
    default:
      return doing('thinking');
  }
}

function cellToolActivity(state: IRunState, tool: IToolInProgress): IActivity {
  const cell = tool.cellId === null ? undefined : state.cells.get(tool.cellId);
  if (!cell) {
    return { doing: 'writing', cell: null };
  }
  // The person knows a cell by what it says, not by its id.
  const line = firstLine(cell.source);
  if (cell.cellType === 'markdown') {
    return { doing: 'writing', cell: line };
  }
  if (tool.ran || cell.state === 'rejected') {
    return { doing: 'thinking', cell: null };
  }
  if (state.execution === 'ask' && cell.state === 'proposed') {
    return { doing: 'awaiting-accept', cell: line };
  }
  return { doing: 'running', cell: line };
}
