import type {
  ISharedCell,
  ISharedCodeCell,
  YCodeCell,
  YNotebook
} from '@jupyter/ydoc';
import type * as nbformat from '@jupyterlab/nbformat';
import type { INotebookModel } from '@jupyterlab/notebook';
import { JSONExt, PartialJSONValue } from '@lumino/coreutils';

import { ICellProvenance, METADATA_KEY, RunEvent } from '../model/events';
import { placement } from './placement';

type CellProposed = Extract<RunEvent, { type: 'cell_proposed' }>;
type CellRestored = Extract<RunEvent, { type: 'cell_restored' }>;

/**
 * Writes an agent run's cells into the notebook open in JupyterLab, from the run's events.
 *
 * While this frontend is the run's writer the server leaves the file alone, so each event is
 * applied here, to the notebook's shared model, by nbformat cell id: the person's cells are
 * never touched, and an event for a cell the person deleted is skipped.
 *
 * Catching up: a frontend that subscribes late replays the run's log from seq 0 through `apply`;
 * there is no separate reconcile. cell_proposed inserts a cell the notebook lacks and, for one
 * it already holds (the server wrote it into the file), only fills in missing metadata and
 * follows the log without writing while the cell's source still starts with what the log has
 * built so far. So the text of cells the notebook already holds is not rewritten token by token,
 * and a cell the server wrote half of gets only the rest appended. A cell the log rejects later
 * is inserted and deleted again. Streamed text is not idempotent: a reconnect must resume from
 * the event after the last one applied, or replay from seq 0.
 *
 * Undo: a live cell_proposed is one step of its own on the notebook's undo stack (capturing is
 * stopped on either side, so it never merges with an edit of the person's made within the
 * undo manager's 500 ms window). Everything else is written with this writer as the Yjs
 * transaction's origin, which no undo manager tracks: streamed text, edits, outputs,
 * acceptance, moves, rejection. Undoing the step removes the cell with all that was written
 * into it since (Yjs deletes a type's content with it), so one streamed cell is one step.
 * A Y.UndoManager cannot add later transactions to an earlier step; tracking each delta would
 * instead put it in the cell's own undo stack (JupyterLab's default per-cell undo) or merge it
 * with the person's typing (document-wide undo), and undo would peel the agent's text off a
 * few tokens at a time. @jupyter/ydoc moves a cell by copying it, so a moved cell is no longer
 * undoable. Events applied with `undoable: false` (a replayed backlog) add no step.
 */
export class NotebookCellWriter {
  constructor(model: INotebookModel) {
    // What JupyterLab's notebook models share; ISharedNotebook lacks the undo manager and the
    // nbformat_minor setter this needs.
    this._notebook = model.sharedModel as YNotebook;
  }

  /**
   * Applies one event of the run; events that do not change cells are ignored.
   *
   * @param options.undoable - whether a cell it inserts is a step the person can undo
   *   (default true); false for events replayed from the log, which the person did not see.
   */
  apply(
    event: RunEvent,
    { undoable = true }: { undoable?: boolean } = {}
  ): void {
    if (!undoable && isPassing(event)) {
      // Replayed, a cell's run is over: its last outputs follow in the log, and the notebook
      // holds them already. Applying these would clear and redraw them on every opening.
      return;
    }
    switch (event.type) {
      case 'cell_proposed':
        this._propose(event, undoable);
        break;
      case 'cell_source_delta':
        this._write(event.cell_id, cell =>
          this._append(cell, event.text, event.reset ?? false)
        );
        break;
      case 'cell_edited':
        this._write(event.cell_id, cell => {
          this._logSources.delete(event.cell_id);
          setSource(cell, event.source);
          if (event.state) {
            setState(cell, event.state);
          }
        });
        break;
      case 'cell_moved':
        this._write(event.cell_id, (_, index) => {
          // Where it goes once it is out of the way.
          const others = this._cellIds().filter(id => id !== event.cell_id);
          const target = placement(others, event.after_cell_id, event.index);
          if (target !== index) {
            this._notebook.moveCell(index, target);
          }
        });
        break;
      case 'cell_running':
        // As when the person runs a cell: `[*]`, and the last run's outputs go.
        this._running.add(event.cell_id);
        this._write(event.cell_id, cell => keepOutputs(cell, []));
        this._write(event.cell_id, cell => setRunning(cell));
        break;
      case 'cell_outputs': {
        const outputs = event.outputs as nbformat.IOutput[];
        // In two transactions: JupyterLab's code cell model, told of a stream output replaced
        // by another in one change, merges the two into the new one.
        const kept = this._write(event.cell_id, cell =>
          keepOutputs(cell, outputs)
        );
        this._write(event.cell_id, cell =>
          appendOutputs(cell, outputs.slice(kept ?? 0))
        );
        if (event.status !== 'running') {
          this._ran(event.cell_id, event.execution_count);
        }
        break;
      }
      case 'cell_accepted':
        this._write(event.cell_id, cell => accept(cell));
        break;
      case 'cell_rejected':
        this._logSources.delete(event.cell_id);
        this._running.delete(event.cell_id);
        this._write(event.cell_id, (_, index) =>
          this._notebook.deleteCell(index)
        );
        break;
      case 'cell_restored':
        this._restore(event);
        break;
      case 'run_finished':
        // A log that ends mid-cell (its server was killed) leaves no cell marked running.
        for (const cellId of this._running) {
          this._ran(cellId, undefined);
        }
        break;
    }
  }

  /** The cell's run ended: its prompt shows the count (unchanged where `undefined`). */
  private _ran(
    cellId: string,
    executionCount: number | null | undefined
  ): void {
    this._running.delete(cellId);
    this._write(cellId, cell => {
      if (cell.cell_type === 'code') {
        const code = cell as ISharedCodeCell;
        if (executionCount !== undefined) {
          code.execution_count = executionCount;
        }
        if (code.executionState === 'running') {
          code.executionState = 'idle';
        }
      }
    });
  }

  /** Puts a rejected cell back as it was; one the notebook holds already is left alone. */
  private _restore(event: CellRestored): void {
    if (this._indexOf(event.cell_id) >= 0) {
      return;
    }
    const ran =
      event.cell_type === 'code'
        ? {
            outputs: event.outputs as nbformat.IOutput[],
            execution_count: event.execution_count
          }
        : {};
    this._notebook.transact(() => this._insert(event, ran), false, this);
  }

  /** Inserts the event's cell where it belongs, with `more` of nbformat's fields. */
  private _insert(
    event: CellProposed | CellRestored,
    more: Partial<nbformat.ICodeCell> = {}
  ): void {
    this._keepCellIds();
    this._notebook.insertCell(
      placement(this._cellIds(), event.after_cell_id, event.index),
      {
        id: event.cell_id,
        cell_type: event.cell_type,
        source: event.source,
        metadata: event.metadata as nbformat.IBaseCellMetadata,
        ...more
      }
    );
  }

  /** Inserts the cell, or brings one the notebook holds already in line with the event. */
  private _propose(event: CellProposed, undoable: boolean): void {
    if (this._indexOf(event.cell_id) >= 0) {
      this._write(event.cell_id, cell => {
        // What the cell holds came from a later point of the log than this event, or from
        // the person: the event only fills in what is missing.
        for (const [key, value] of Object.entries(event.metadata)) {
          if (cell.getMetadata(key) === undefined) {
            cell.setMetadata(key, value as PartialJSONValue);
          }
        }
        this._followLog(cell, event.source);
      });
      return;
    }
    const insert = (): void => this._insert(event);
    if (!undoable) {
      this._notebook.transact(insert, false, this);
      return;
    }
    this._notebook.undoManager.stopCapturing();
    insert();
    this._notebook.undoManager.stopCapturing();
  }

  /**
   * Cell ids are how the run finds its cells, in this notebook and in the file the server merges
   * into once no frontend writes; nbformat keeps them from 4.5 on, and @jupyter/ydoc drops them
   * when it serializes an older notebook.
   */
  private _keepCellIds(): void {
    if (this._notebook.nbformat === 4 && this._notebook.nbformat_minor < 5) {
      this._notebook.nbformat_minor = 5;
    }
  }

  private _append(cell: ISharedCell, text: string, reset: boolean): void {
    const logSource = this._logSources.get(cell.getId());
    if (logSource !== undefined) {
      this._followLog(cell, (reset ? '' : logSource) + text);
      return;
    }
    const end = cell.getSource().length;
    cell.updateSource(reset ? 0 : end, end, text);
  }

  /**
   * For a cell the notebook held before the log proposed it: writes nothing while its source
   * still starts with `logSource` (the log has not caught up with the file yet), and otherwise
   * rewrites it to `logSource` (an append where the log has got past the file), from when on
   * deltas are appended as usual.
   */
  private _followLog(cell: ISharedCell, logSource: string): void {
    const source = cell.getSource();
    if (source !== logSource && source.startsWith(logSource)) {
      this._logSources.set(cell.getId(), logSource);
      return;
    }
    this._logSources.delete(cell.getId());
    setSource(cell, logSource);
  }

  /** Runs `change` on the cell with that id, untracked by undo, and returns what it returned;
   * skips a cell that is gone (undefined). */
  private _write<T>(
    cellId: string,
    change: (cell: ISharedCell, index: number) => T
  ): T | undefined {
    const index = this._indexOf(cellId);
    if (index < 0) {
      return undefined;
    }
    let result: T | undefined;
    this._notebook.transact(
      () => {
        result = change(this._notebook.cells[index], index);
      },
      false,
      this
    );
    return result;
  }

  private _cellIds(): string[] {
    return this._notebook.cells.map(cell => cell.getId());
  }

  private _indexOf(cellId: string): number {
    return this._notebook.cells.findIndex(cell => cell.getId() === cellId);
  }

  private readonly _notebook: YNotebook;
  /** Cells whose run began and has not ended, in this log. */
  private readonly _running = new Set<string>();
  /** Cells the notebook held before the log proposed them, with the source the log has built
   * for each so far; a cell leaves once the notebook's source and the log's meet. */
  private readonly _logSources = new Map<string, string>();
}

/** The start of a cell's run and its outputs so far: what a finished log supersedes. */
function isPassing(event: RunEvent): boolean {
  return (
    event.type === 'cell_running' ||
    (event.type === 'cell_outputs' && event.status === 'running')
  );
}

/**
 * Rewrites the cell's source from the first character that differs only: a source that grows
 * is appended to, and a cursor before the change keeps its place.
 */
function setSource(cell: ISharedCell, source: string): void {
  const current = cell.getSource();
  if (current === source) {
    return;
  }
  let start = 0;
  while (start < current.length && current[start] === source[start]) {
    start++;
  }
  // Yjs counts UTF-16 units: never split a surrogate pair.
  if (start > 0 && isHighSurrogate(current.charCodeAt(start - 1))) {
    start--;
  }
  cell.updateSource(start, current.length, source.slice(start));
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

/**
 * Brings the cell's outputs as far towards `outputs` as it can without redrawing those that
 * stay: keeps the ones they start with, appends to a stream that grew, removes the rest.
 * Returns how many of `outputs` the cell now holds (all, for a cell the person turned into
 * markdown).
 */
function keepOutputs(cell: ISharedCell, outputs: nbformat.IOutput[]): number {
  if (cell.cell_type !== 'code') {
    return outputs.length;
  }
  const code = cell as ISharedCodeCell;
  const current = code.getOutputs();
  let kept = 0;
  while (
    kept < current.length &&
    kept < outputs.length &&
    JSONExt.deepEqual(
      current[kept] as PartialJSONValue,
      outputs[kept] as PartialJSONValue
    )
  ) {
    kept++;
  }
  if (kept === current.length) {
    return kept;
  }
  const last = current[current.length - 1];
  const added = outputs[kept];
  if (kept === current.length - 1 && added && isSameStream(last, added)) {
    const text = streamText(last);
    const grown = streamText(added);
    if (grown.startsWith(text)) {
      // What @jupyter/ydoc's code cells do, though its interface does not say it.
      (code as YCodeCell).appendStreamOutput(kept, grown.slice(text.length));
      return kept + 1;
    }
  }
  // JupyterLab's output area still takes a removed last stream as the one to merge a new
  // stream of its name into, whatever output is last then: start afresh.
  if (last && added && isSameStream(last, added)) {
    kept = 0;
  }
  code.updateOutputs(kept, current.length, []);
  return kept;
}

function isSameStream(one: nbformat.IOutput, other: nbformat.IOutput): boolean {
  return (
    one.output_type === 'stream' &&
    other.output_type === 'stream' &&
    one.name === other.name
  );
}

function streamText(output: nbformat.IOutput): string {
  const text = (output as nbformat.IStream).text;
  return Array.isArray(text) ? text.join('') : text;
}

function appendOutputs(cell: ISharedCell, outputs: nbformat.IOutput[]): void {
  if (cell.cell_type === 'code' && outputs.length) {
    const code = cell as ISharedCodeCell;
    const end = code.getOutputs().length;
    code.updateOutputs(end, end, outputs);
  }
}

function setRunning(cell: ISharedCell): void {
  if (cell.cell_type === 'code') {
    (cell as ISharedCodeCell).executionState = 'running';
  }
}

function accept(cell: ISharedCell): void {
  setState(cell, 'accepted');
}

function setState(cell: ISharedCell, state: ICellProvenance['state']): void {
  const provenance = cell.getMetadata(METADATA_KEY) as
    ICellProvenance | undefined;
  // A person who deleted the provenance meant it: nothing to mark.
  if (provenance && provenance.state !== state) {
    cell.setMetadata(METADATA_KEY, { ...provenance, state });
  }
}
