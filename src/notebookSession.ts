import { Notification } from '@jupyterlab/apputils';
import { NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
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
import { isSandbox } from './model/kernels';
import { RunModel } from './model/runModel';
import { NotebookCellWriter } from './notebook/cellWriter';
import { CellFollower } from './notebook/follower';
import { NotebookSaves } from './notebook/saves';

/** The kernel of a notebook, as the panel tells the person about it. */
export interface INotebookKernel {
  readonly name: string;
  readonly displayName: string;
  /** A sandbox by its kernelspec (the Docker provisioner, or declared isolated). */
  readonly sandboxed: boolean;
}

/** A cell the person rejected, by its run. */
export interface IRejectedCell {
  readonly runId: string;
  readonly cellId: string;
}

/** How often an open notebook looks for a run started elsewhere on it. */
const RUN_WATCH_MS = 2000;

/**
 * What the panel shows for one open notebook: its current run, live, its conversation with
 * the agent, its past runs, and its kernel, which the person and the agent share.
 *
 * While the notebook is open, this frontend is the writer of the run's cells into it: the run's
 * events are applied to the notebook's own model, so cells fill in token by token and the
 * person's typing elsewhere is kept. Closing the notebook disposes the session, and the server
 * takes the writing over.
 */
export class NotebookSession implements IDisposable {
  /**
   * @param mcpServers - The person's own MCP servers as their settings list them now: a run
   * this notebook starts, continues or regenerates with is offered their tools.
   */
  constructor(
    readonly panel: NotebookPanel,
    private readonly api: AgentAPI,
    private readonly mcpServers: () => Record<string, unknown>
  ) {
    panel.disposed.connect(() => this.dispose());
    panel.sessionContext.kernelChanged.connect(this._kernelChanged, this);
    this._saves = new NotebookSaves(panel.context);
    this._follower = new CellFollower(panel.content);
    this._watch = window.setInterval(
      () => void this.followRunStartedElsewhere(),
      RUN_WATCH_MS
    );
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

  /** The finished runs of the notebook's current conversation, oldest first. */
  get thread(): IRunInfo[] {
    return this._pastRuns
      .filter(
        run =>
          run.conversation_id === this._conversationId &&
          run.outcome !== null &&
          run.id !== this._run?.runId
      )
      .reverse();
  }

  /** Requests of the thread the model is no longer sent whole (a paragraph says what they
   * were), the oldest ones, to keep within the context budget. */
  get droppedRequests(): number {
    return this._droppedRequests;
  }

  /** The MCP tools the person allowed always on the notebook, as `{server}__{tool}`. */
  get allowedTools(): readonly string[] {
    return this._allowedTools;
  }

  /** Takes an "always" back: the tool's calls on the notebook, in the run going on too, wait
   * for the person again. */
  async askAgain(tool: string): Promise<void> {
    this._allowedTools = await this.api.askAgain(this.path, tool);
    this._changed.emit();
  }

  /** The notebook's kernel now; null while it has none. */
  get kernel(): INotebookKernel | null {
    const context = this.panel.sessionContext;
    const name = context.session?.kernel?.name;
    if (!name) {
      return null;
    }
    const spec = context.specsManager.specs?.kernelspecs[name];
    return {
      name,
      displayName: spec?.display_name ?? name,
      sandboxed: isSandbox(spec)
    };
  }

  /** Starts the notebook's conversation afresh: the next request sees none of the earlier
   * ones; the kernel keeps its state. */
  async newConversation(): Promise<void> {
    this._conversationId = (await this.api.newConversation(this.path)).id;
    this._droppedRequests = 0;
    this._changed.emit();
  }

  /** Changes the notebook's kernel (the person agreed: its state goes). */
  async switchKernel(name: string): Promise<void> {
    await this.panel.sessionContext.changeKernel({ name });
  }

  /** Restarts the notebook's kernel and runs again every code cell but the agent's proposed
   * ones, top to bottom (the person agreed: the kernel's state goes). */
  async restartAndRunAccepted(): Promise<void> {
    await this.panel.sessionContext.restartKernel();
    await this.runAccepted();
  }

  /** The interrupted run shown goes on where it stopped; with `runAccepted`, once every code
   * cell but the proposed ones ran again, top to bottom, in the kernel as it is (the person
   * agreed), to bring back what the run relied on. */
  async continueRun(runAccepted: boolean): Promise<void> {
    const runId = this._run?.runId;
    if (!runId) {
      return;
    }
    if (runAccepted) {
      await this.runAccepted();
    }
    await this.api.continue(runId, this.mcpServers());
  }

  private async runAccepted(): Promise<void> {
    const context = this.panel.sessionContext;
    const notebook = this.panel.content;
    const cells = notebook.widgets.filter(cell => {
      const provenance = cell.model.getMetadata(METADATA_KEY) as
        ICellProvenance | undefined;
      return cell.model.type === 'code' && provenance?.state !== 'proposed';
    });
    await NotebookActions.runCells(notebook, cells, context);
  }

  /** The source of the notebook's cell with that id; null for one it does not hold. */
  cellSource(cellId: string): string | null {
    const cell = this.panel.model?.sharedModel.cells.find(
      each => each.getId() === cellId
    );
    return cell ? cell.getSource() : null;
  }

  /** The cell's source before the run shown last rewrote it; null when it did not. */
  earlierSource(cellId: string): string | null {
    const versions = this._run?.cells.get(cellId)?.versions ?? [];
    return versions.length ? versions[versions.length - 1] : null;
  }

  /** Scrolls the notebook to the cell and makes it the active one; the notebook follows the
   * agent's cells again from there. */
  async showCell(cellId: string): Promise<void> {
    const notebook = this.panel.content;
    const index = notebook.widgets.findIndex(cell => cell.model.id === cellId);
    if (index >= 0) {
      notebook.activeCellIndex = index;
      await this._follower.show(cellId);
    }
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
    options: {
      execution?: 'auto' | 'ask';
      max_steps?: number;
      model?: string;
    }
  ): Promise<void> {
    this._starting = true; // the run about to start is this notebook's own to follow
    try {
      await this._saves.save();
      const mcpServers = this.mcpServers();
      const info = await this.api.startRun({
        path: this.path,
        prompt,
        writer: 'frontend',
        ...options,
        mcp_servers: Object.keys(mcpServers).length ? mcpServers : undefined
      });
      this.follow(info);
    } finally {
      this._starting = false;
    }
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

  /**
   * A run started on this notebook from elsewhere (an outside agent over MCP, another tab)
   * is followed once it appears, as on opening, unless this notebook shows one running.
   */
  async followRunStartedElsewhere(): Promise<void> {
    if (this.showsOwnRun() || this._watching || document.hidden) {
      return;
    }
    this._watching = true;
    try {
      const [latest] = (await this.api.runs(this.path)).reverse();
      if (latest?.state !== 'running' || latest.id === this._run?.runId) {
        return;
      }
      await this.refreshPastRuns();
      // Looked at again after the last wait: the person may have started a run meanwhile.
      const run = this._pastRuns[0];
      if (
        !this.showsOwnRun() &&
        run?.id === latest.id &&
        run.state === 'running'
      ) {
        this.follow(run, !this.panel.context.model.dirty);
      }
    } catch {
      // the server may be restarting: the next look tries again
    } finally {
      this._watching = false;
    }
  }

  /** Whether this notebook shows a run that is running, or is starting one itself. */
  private showsOwnRun(): boolean {
    return this._starting || (this._run?.running ?? false);
  }

  async refreshPastRuns(): Promise<void> {
    const [runs, conversation, allowedTools] = await Promise.all([
      this.api.runs(this.path),
      this.api.conversation(this.path),
      this.api.allowedTools(this.path)
    ]);
    this._pastRuns = runs.reverse();
    this._allowedTools = allowedTools;
    this._conversationId = conversation.id;
    this._droppedRequests = conversation.dropped_requests;
    this._changed.emit();
  }

  stop(): Promise<IRunInfo> | undefined {
    return this._run ? this.api.stop(this._run.runId) : undefined;
  }

  /** The person's decision on a call of an MCP tool the run shown waits on. */
  decideToolCall(
    callId: string,
    decision: 'approve' | 'always' | 'deny'
  ): Promise<IRunInfo> | undefined {
    const runId = this._run?.runId;
    if (!runId) {
      return undefined;
    }
    if (decision === 'deny') {
      return this.api.denyToolCall(runId, callId);
    }
    const approved = this.api.approveToolCall(
      runId,
      callId,
      decision === 'always'
    );
    if (decision === 'always') {
      void approved.then(() => this.refreshAllowedTools()).catch(() => null);
    }
    return approved;
  }

  private async refreshAllowedTools(): Promise<void> {
    this._allowedTools = await this.api.allowedTools(this.path);
    this._changed.emit();
  }

  accept(cellId: string): Promise<IRunInfo> | undefined {
    const runId = this.runOf(cellId);
    return runId ? this.api.accept(runId, cellId) : undefined;
  }

  reject(cellId: string): Promise<IRunInfo> | undefined {
    const rejected = this._reject(cellId);
    return rejected?.then(([info, cell]) => {
      this._cellsRejected.emit([cell]);
      return info;
    });
  }

  private _reject(
    cellId: string
  ): Promise<[IRunInfo, IRejectedCell]> | undefined {
    const runId = this.runOf(cellId);
    if (!runId) {
      return undefined;
    }
    return this.api
      .reject(runId, cellId)
      .then(info => [info, { runId, cellId }]);
  }

  /** Emitted with the cells the person rejected at once: they may want them back. */
  get cellsRejected(): ISignal<this, IRejectedCell[]> {
    return this._cellsRejected;
  }

  /** Whether `undoReject` can bring the cells back: only while their run is the one this
   * notebook shows, for an earlier run no longer writes into it. */
  canUndoReject(cells: readonly IRejectedCell[]): boolean {
    return cells.every(cell => cell.runId === this._run?.runId);
  }

  /** Brings back rejected cells (their run undoes it), the last rejected first. */
  async undoReject(cells: readonly IRejectedCell[]): Promise<void> {
    if (!this.canUndoReject(cells)) {
      throw new Error('the rejected cells are of an earlier run');
    }
    for (const { runId, cellId } of [...cells].reverse()) {
      await this.api.restore(runId, cellId);
    }
  }

  regenerate(
    cellId: string,
    instruction: string
  ): Promise<IRunInfo> | undefined {
    const runId = this.runOf(cellId);
    return runId
      ? this.api.regenerate(runId, cellId, instruction, this.mcpServers())
      : undefined;
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

  /** Rejects every proposed cell of the run shown. */
  async rejectAll(): Promise<void> {
    const cellIds = [...(this._run?.proposedCellIds ?? [])].reverse();
    const rejected: IRejectedCell[] = [];
    try {
      for (const cellId of cellIds) {
        const answer = await this._reject(cellId);
        if (answer) {
          rejected.push(answer[1]);
        }
      }
    } finally {
      if (rejected.length) {
        this._cellsRejected.emit(rejected);
      }
    }
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    window.clearInterval(this._watch);
    if (this._frame !== null) {
      cancelAnimationFrame(this._frame);
    }
    this._stream?.dispose();
    this._saves.dispose();
    this._follower.dispose();
    Signal.clearData(this);
  }

  /**
   * Subscribes to a run as the notebook's writer, from its first event: replaying the log
   * puts each cell where it belongs, whatever the file held already. Events the run had
   * before (its backlog) are applied without undo steps: the person never saw them happen.
   * With `reload`, events wait until the notebook is reloaded from disk, once connected.
   */
  private follow(info: IRunInfo, reload = false): void {
    if (this._run && !this._run.running) {
      this._stream?.handOver(); // its cells are in this notebook, which stays open
    } else {
      this._stream?.dispose();
    }
    const model = new RunModel({ runId: info.id });
    const writer = new NotebookCellWriter(this.panel.model!);
    const apply = (event: RunEvent): void => {
      const live = event.seq >= info.events;
      writer.apply(event, { undoable: live });
      if (
        live &&
        (event.type === 'cell_proposed' || event.type === 'cell_running')
      ) {
        this._follower.follow(event.cell_id);
      }
      if (event.type === 'error' && live) {
        Notification.error(event.message, { autoClose: 8000 });
      }
      if (event.type === 'run_finished') {
        if (live) {
          void this._saves.save(); // a replayed end changed nothing to save
        }
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

  private _kernelChanged(): void {
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

  private _saves: NotebookSaves;
  private _watch: number;
  private _watching = false;
  private _starting = false;
  private _follower: CellFollower;
  private _frame: number | null = null;
  private _run: RunModel | null = null;
  private _stream: RunEventStream | null = null;
  private _pastRuns: IRunInfo[] = [];
  private _conversationId = '';
  private _allowedTools: readonly string[] = [];
  private _droppedRequests = 0;
  private _isDisposed = false;
  private _changed = new Signal<this, void>(this);
  private _cellsRejected = new Signal<this, IRejectedCell[]>(this);
}
