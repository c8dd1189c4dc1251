import { Notification } from '@jupyterlab/apputils';
import { NotebookPanel } from '@jupyterlab/notebook';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { AgentAPI } from './model/api';
import {
  ICellProvenance,
  IRunInfo,
  METADATA_KEY,
  RunEvent
} from './model/events';
import { RunEventStream } from './model/eventStream';
import { RunModel } from './model/runModel';
import { NotebookCellWriter } from './notebook/cellWriter';

/**
 * What the panel shows for one open notebook: its current run, live, and its past runs.
 *
 * While the notebook is open, this frontend is the writer of the run's cells into it: the run's
 * events are applied to the notebook's own model, so cells fill in token by token and the
 * person's typing elsewhere is kept. Closing the notebook disposes the session, and the server
 * takes the writing over.
 */
export class NotebookSession implements IDisposable {
  constructor(
    readonly panel: NotebookPanel,
    private readonly api: AgentAPI
  ) {
    panel.disposed.connect(() => this.dispose());
  }

  /** The notebook's path now (it follows renames). */
  get path(): string {
    return this.panel.context.path;
  }

  /** The run this notebook is showing, live; null before the first. */
  get run(): RunModel | null {
    return this._run;
  }

  get pastRuns(): IRunInfo[] {
    return this._pastRuns;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /** Emitted when anything the panel shows changed. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Saves the notebook (the agent reads it from disk), then starts a run on it. */
  async start(
    prompt: string,
    options: { execution?: 'auto' | 'ask'; max_steps?: number; model?: string }
  ): Promise<void> {
    if (this.panel.context.model.dirty) {
      await this.panel.context.save();
    }
    const info = await this.api.startRun({
      path: this.path,
      prompt,
      writer: 'frontend',
      ...options
    });
    this.follow(info);
  }

  /**
   * Follows the notebook's latest run again once it is opened (after a reload, say). While
   * no frontend wrote, the server wrote the file; a run still going may have written it after
   * this notebook was loaded, so an unchanged notebook is reloaded from disk once this frontend
   * holds the writing.
   */
  async resume(): Promise<void> {
    await this.refreshPastRuns();
    const latest = this._pastRuns[0];
    if (latest && this._run?.runId !== latest.id) {
      const reload =
        latest.state === 'running' && !this.panel.context.model.dirty;
      this.follow(latest, reload);
    }
  }

  async refreshPastRuns(): Promise<void> {
    this._pastRuns = (await this.api.runs(this.path)).reverse();
    this._changed.emit();
  }

  stop(): Promise<IRunInfo> | undefined {
    return this._run ? this.api.stop(this._run.runId) : undefined;
  }

  accept(cellId: string): Promise<IRunInfo> | undefined {
    const runId = this.runOf(cellId);
    return runId ? this.api.accept(runId, cellId) : undefined;
  }

  reject(cellId: string): Promise<IRunInfo> | undefined {
    const runId = this.runOf(cellId);
    return runId ? this.api.reject(runId, cellId) : undefined;
  }

  regenerate(
    cellId: string,
    instruction: string
  ): Promise<IRunInfo> | undefined {
    const runId = this.runOf(cellId);
    return runId ? this.api.regenerate(runId, cellId, instruction) : undefined;
  }

  /** The run that wrote the cell, as its provenance says: an earlier run's cell may still
   * be proposed. The run shown, for a cell the notebook does not hold yet. */
  private runOf(cellId: string): string | undefined {
    const cell = this.panel.model?.sharedModel.cells.find(
      each => each.getId() === cellId
    );
    const provenance = cell?.getMetadata(METADATA_KEY) as
      ICellProvenance | undefined;
    return provenance?.run_id ?? this._run?.runId;
  }

  async acceptAll(): Promise<void> {
    for (const cellId of this._run?.proposedCellIds ?? []) {
      await this.accept(cellId);
    }
  }

  async rejectAll(): Promise<void> {
    for (const cellId of [...(this._run?.proposedCellIds ?? [])].reverse()) {
      await this.reject(cellId);
    }
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    if (this._frame !== null) {
      cancelAnimationFrame(this._frame);
    }
    this._stream?.dispose();
    Signal.clearData(this);
  }

  /**
   * Subscribes to a run as the notebook's writer, from its first event: replaying the log
   * puts each cell where it belongs, whatever the file held already. Events the run had
   * before (its backlog) are applied without undo steps: the person never saw them happen.
   * With `reload`, events wait until the notebook is reloaded from disk, once connected.
   */
  private follow(info: IRunInfo, reload = false): void {
    this._stream?.dispose();
    const model = new RunModel({ runId: info.id });
    const writer = new NotebookCellWriter(this.panel.model!);
    const apply = (event: RunEvent): void => {
      const live = event.seq >= info.events;
      writer.apply(event, { undoable: live });
      if (event.type === 'error' && live) {
        Notification.error(event.message, { autoClose: 8000 });
      }
      if (event.type === 'run_finished') {
        void this.panel.context.save();
        void this.refreshPastRuns();
      }
      this.changedSoon();
    };
    let waiting: RunEvent[] | null = reload ? [] : null;
    model.changed.connect((_, event: RunEvent) =>
      waiting ? waiting.push(event) : apply(event)
    );
    this._run = model;
    this._stream = new RunEventStream({
      runId: info.id,
      model,
      settings: this.api.settings,
      role: 'writer'
    });
    this._stream.failed.connect((_, error) =>
      Notification.error(error.message, { autoClose: false })
    );
    if (waiting) {
      // Once connected, the server writes no more: what is on disk then is its last word.
      const stream = this._stream;
      const reloadOnce = (): void => {
        if (!stream.connected) {
          return;
        }
        stream.connectionChanged.disconnect(reloadOnce);
        void this.panel.context.revert().finally(() => {
          const backlog = waiting ?? [];
          waiting = null;
          backlog.forEach(apply);
        });
      };
      stream.connectionChanged.connect(reloadOnce);
    }
    this._changed.emit();
  }

  /** One `changed` per animation frame however many events arrive: a cell streaming at
   * tokens a frame does not re-render the panel for each. */
  private changedSoon(): void {
    if (this._frame === null) {
      this._frame = requestAnimationFrame(() => {
        this._frame = null;
        this._changed.emit();
      });
    }
  }

  private _frame: number | null = null;
  private _run: RunModel | null = null;
  private _stream: RunEventStream | null = null;
  private _pastRuns: IRunInfo[] = [];
  private _isDisposed = false;
  private _changed = new Signal<this, void>(this);
}
