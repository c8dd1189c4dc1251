import { ISignal, Signal } from '@lumino/signaling';

import { ICellProvenance, METADATA_KEY, Output, RunEvent } from './events';

type EventOf<T extends RunEvent['type']> = Extract<RunEvent, { type: T }>;

/** One cell the run wrote, as its events have built it so far. */
export interface IRunCell {
  readonly id: string;
  readonly cellType: 'code' | 'markdown';
  readonly source: string;
  readonly state: 'proposed' | 'accepted' | 'rejected';
  /** How its last execution ended ('running' while it runs); absent before it ran. */
  readonly status?: 'running' | 'ok' | 'error' | 'timeout' | 'died' | 'stopped';
  readonly outputs: readonly Output[];
  readonly executionCount: number | null;
  /** Its source is arriving token by token. */
  readonly streaming: boolean;
  /** Earlier sources, oldest first, as the server's run info lists them. */
  readonly versions: readonly string[];
  /** Where the server last placed it: its index then, and the cell it follows (null: first). */
  readonly index: number;
  readonly afterCellId: string | null;
}

/** The agent's prose of one model turn (markdown). */
export interface IRunMessage {
  readonly step: number;
  readonly text: string;
}

export interface IRunOutcome {
  readonly success: boolean;
  readonly reason: string;
  readonly summary: string;
}

/**
 * An event arrived ahead of one the model has not seen. The stream never skips, so this means
 * the subscription lost something: subscribe again from `expected`.
 */
export class EventGapError extends Error {
  constructor(
    readonly expected: number,
    readonly received: number
  ) {
    super(`run event ${received} arrived before event ${expected}`);
    this.name = 'EventGapError';
  }
}

/**
 * The frontend's state of one run, built only by applying its events in seq order: a
 * subscription from any point, replayed or live, ends in the same state as the server's log.
 */
export class RunModel {
  constructor(options: RunModel.IOptions = {}) {
    this._runId = options.runId ?? '';
    this._now = options.now ?? (() => Date.now());
  }

  /** Emitted after each applied event, with that event. */
  get changed(): ISignal<this, RunEvent> {
    return this._changed;
  }

  /** The run's id: the one given, else run_started's ('' until then). */
  get runId(): string {
    return this._runId;
  }

  get task(): string {
    return this._task;
  }

  /** The model's name. */
  get model(): string {
    return this._model;
  }

  /** 'auto' until run_started says otherwise. */
  get execution(): 'auto' | 'ask' {
    return this._execution;
  }

  /** The seq of the last applied event; -1 before any. */
  get lastSeq(): number {
    return this._lastSeq;
  }

  /** From run_started to run_finished, and again while a finished run goes on to regenerate. */
  get running(): boolean {
    return this._running;
  }

  /** The model turn it is on (0 before the first). */
  get step(): number {
    return this._step;
  }

  /** The step the run ends at; a resumed run gets more. */
  get maxSteps(): number {
    return this._maxSteps;
  }

  /** What it is doing now, for the panel to say (see `activityText`); null when not running. */
  get activity(): IActivity | null {
    if (!this._running) {
      return null;
    }
    if (this._waitingForKernel) {
      return { doing: 'awaiting-kernel', cell: null };
    }
    if (this._tool) {
      return this._toolActivity(this._tool);
    }
    const writing =
      this._writingCellId === null
        ? undefined
        : this._cells.get(this._writingCellId);
    if (writing?.streaming) {
      return { doing: 'writing', cell: firstLine(writing.source) };
    }
    return { doing: this._step > 0 ? 'thinking' : 'starting', cell: null };
  }

  /** The cell `activity` is about (the one written, run or waited on); null for none. */
  get activityCellId(): string | null {
    if (!this._running) {
      return null;
    }
    const cellId = this._tool ? this._tool.cellId : this._writingCellId;
    return cellId !== null && this._cells.get(cellId)?.state !== 'rejected'
      ? cellId
      : null;
  }

  /** When run_started was applied (ms since the epoch); null before. */
  get startedAt(): number | null {
    return this._startedAt;
  }

  /** When run_finished was last applied; null while running or before. */
  get finishedAt(): number | null {
    return this._finishedAt;
  }

  /**
   * Milliseconds spent running: up to `now` while running, up to the finish once finished.
   * The wait between a finish and a regenerate does not count.
   */
  elapsedMs(now: number): number {
    const current =
      this._running && this._stretchStart !== null
        ? Math.max(0, now - this._stretchStart)
        : 0;
    return this._earlierMs + current;
  }

  /** Prompt plus completion tokens of every model turn. */
  get tokens(): number {
    return this._promptTokens + this._completionTokens;
  }

  get promptTokens(): number {
    return this._promptTokens;
  }

  get completionTokens(): number {
    return this._completionTokens;
  }

  /** The agent's prose, one entry per step that had any. */
  get messages(): readonly IRunMessage[] {
    return this._messages;
  }

  /** Every cell the run wrote, rejected ones included, in the order they were proposed. */
  get cells(): ReadonlyMap<string, IRunCell> {
    return this._cells;
  }

  /** The cells still awaiting the person's verdict, in the order they were proposed. */
  get proposedCellIds(): readonly string[] {
    return [...this._cells.values()]
      .filter(cell => cell.state === 'proposed')
      .map(cell => cell.id);
  }

  /** The messages of the run's error events. */
  get errors(): readonly string[] {
    return this._errors;
  }

  /** Why a restart of the notebook's kernel would help, which only the person may do; null
   * when none was suggested. */
  get restartProposal(): string | null {
    return this._restartProposal;
  }

  /** The conversation the run continues ('' before run_started says). */
  get conversationId(): string {
    return this._conversationId;
  }

  /** The last run_finished's outcome (kept while a resumed run goes on, as the server does). */
  get outcome(): IRunOutcome | null {
    return this._outcome;
  }

  /**
   * Applies the next event of the run.
   *
   * @returns false for an event already applied (seq ≤ lastSeq), which changes nothing.
   * @throws EventGapError when the event comes after one not applied yet (seq > lastSeq + 1);
   *   the model is left unchanged, so a subscription from `lastSeq + 1` recovers.
   */
  apply(event: RunEvent): boolean {
    if (event.seq <= this._lastSeq) {
      return false;
    }
    if (event.seq !== this._lastSeq + 1) {
      throw new EventGapError(this._lastSeq + 1, event.seq);
    }
    this._lastSeq = event.seq;
    this._handle(event);
    this._changed.emit(event);
    return true;
  }

  private _handle(event: RunEvent): void {
    switch (event.type) {
      case 'run_started':
        this._runId = event.run_id;
        this._task = event.task;
        this._model = event.model;
        this._maxSteps = event.max_steps;
        this._execution = event.execution;
        this._conversationId = event.conversation_id ?? '';
        this._startedAt = this._now();
        this._resume();
        break;
      case 'run_continued':
        this._resume();
        break;
      case 'step':
        this._resume();
        this._step = event.step;
        this._maxSteps = event.max_steps;
        this._tool = null;
        this._unclaimedCellIds = [];
        break;
      case 'message_delta':
        this._addProse(event.text);
        break;
      case 'model_turn':
        this._promptTokens += event.usage.prompt_tokens;
        this._completionTokens += event.usage.completion_tokens;
        this._stopStreaming();
        break;
      case 'tool_call':
        this._tool = {
          callId: event.call_id,
          name: event.name,
          cellId: this._cellOfCall(event.name, event.arguments),
          ran: false
        };
        break;
      case 'tool_result':
        this._waitingForKernel = false;
        if (this._tool?.callId === event.call_id) {
          this._tool = null;
        }
        break;
      case 'cell_proposed':
        this._propose(event);
        break;
      case 'cell_source_delta':
        this._appendSource(event);
        break;
      case 'cell_edited':
        this._edit(event);
        break;
      case 'cell_moved':
        this._update(event.cell_id, () => ({
          index: event.index,
          afterCellId: event.after_cell_id
        }));
        break;
      case 'kernel_waiting':
        this._waitingForKernel = true;
        break;
      case 'kernel_restart_proposed':
        this._restartProposal = event.reason;
        break;
      case 'cell_running':
        this._update(event.cell_id, () => ({ status: 'running', outputs: [] }));
        break;
      case 'cell_outputs':
        this._waitingForKernel = false;
        this._update(event.cell_id, () => ({
          status: event.status,
          outputs: event.outputs,
          executionCount: event.execution_count
        }));
        if (
          this._tool?.cellId === event.cell_id &&
          event.status !== 'running'
        ) {
          this._tool.ran = true;
        }
        break;
      case 'cell_accepted':
        this._update(event.cell_id, () => ({ state: 'accepted' }));
        break;
      case 'cell_rejected':
        this._update(event.cell_id, () => ({
          state: 'rejected',
          streaming: false
        }));
        break;
      case 'cell_restored':
        this._update(event.cell_id, () => ({
          state: 'proposed',
          source: event.source,
          outputs: event.outputs,
          executionCount: event.execution_count,
          index: event.index,
          afterCellId: event.after_cell_id
        }));
        break;
      case 'cell_regenerating':
        // The server counts the version once the rewrite lands; show it from now on.
        this._update(event.cell_id, cell =>
          cell.versions.length === event.version
            ? { versions: [...cell.versions, event.source] }
            : {}
        );
        this._resume();
        break;
      case 'error':
        this._errors.push(event.message);
        break;
      case 'run_finished':
        this._finish(event);
        break;
    }
  }

  /** Running from now on; a finished run that goes on starts a new stretch of elapsed time. */
  private _resume(): void {
    if (this._running) {
      return;
    }
    this._running = true;
    this._finishedAt = null;
    this._stretchStart = this._now();
  }

  private _finish(event: EventOf<'run_finished'>): void {
    const now = this._now();
    if (this._stretchStart !== null) {
      this._earlierMs += Math.max(0, now - this._stretchStart);
    }
    this._stretchStart = null;
    this._running = false;
    this._waitingForKernel = false;
    this._finishedAt = now;
    this._outcome = {
      success: event.success,
      reason: event.reason,
      summary: event.summary
    };
    this._tool = null;
    this._stopStreaming();
  }

  private _addProse(text: string): void {
    const last = this._messages.length - 1;
    if (last >= 0 && this._messages[last].step === this._step) {
      const message = this._messages[last];
      this._messages[last] = { step: message.step, text: message.text + text };
    } else {
      this._messages.push({ step: this._step, text });
    }
  }

  private _propose(event: EventOf<'cell_proposed'>): void {
    const provenance = event.metadata[METADATA_KEY] as
      Partial<ICellProvenance> | undefined;
    this._cells.set(event.cell_id, {
      id: event.cell_id,
      cellType: event.cell_type,
      source: event.source,
      // A headless run writes its cells accepted.
      state: provenance?.state === 'accepted' ? 'accepted' : 'proposed',
      outputs: [],
      executionCount: null,
      streaming: event.streaming,
      versions: [],
      index: event.index,
      afterCellId: event.after_cell_id
    });
    if (event.streaming) {
      this._streamingCellIds.add(event.cell_id);
      this._writingCellId = event.cell_id;
      this._unclaimedCellIds.push(event.cell_id);
    } else if (this._tool?.name === 'add_cell') {
      // The call's cell appears only now (its type came after its source): any streamed cell
      // guessed for the call belongs to a later one.
      if (this._tool.cellId !== null) {
        this._unclaimedCellIds.unshift(this._tool.cellId);
      }
      this._tool.cellId = event.cell_id;
    }
  }

  private _appendSource(event: EventOf<'cell_source_delta'>): void {
    const cell = this._cells.get(event.cell_id);
    if (!cell) {
      return;
    }
    if (event.reset) {
      // An edit begins: the source it replaces becomes a version when the edit lands.
      this._sourceBeforeEdit.set(cell.id, cell.source);
    }
    const source = event.reset ? event.text : cell.source + event.text;
    this._cells.set(cell.id, { ...cell, source, streaming: true });
    this._streamingCellIds.add(cell.id);
    this._writingCellId = cell.id;
  }

  private _edit(event: EventOf<'cell_edited'>): void {
    const before = this._sourceBeforeEdit.get(event.cell_id);
    this._sourceBeforeEdit.delete(event.cell_id);
    this._update(event.cell_id, cell => {
      // `version` counts the versions the server keeps after this edit.
      const versions =
        event.version !== undefined && event.version > cell.versions.length
          ? [...cell.versions, before ?? cell.source]
          : cell.versions;
      return {
        source: event.source,
        state: event.state ?? cell.state,
        streaming: false,
        versions
      };
    });
  }

  /** Replaces the cell's record with a changed copy (so that views can compare by identity). */
  private _update(
    cellId: string,
    change: (cell: IRunCell) => Partial<IRunCell>
  ): void {
    const cell = this._cells.get(cellId);
    if (cell) {
      this._cells.set(cellId, { ...cell, ...change(cell) });
    }
  }

  /** The model's answer ended: no cell gets more tokens from it. */
  private _stopStreaming(): void {
    for (const cellId of this._streamingCellIds) {
      this._update(cellId, () => ({ streaming: false }));
    }
    this._streamingCellIds.clear();
    this._writingCellId = null;
  }

  /**
   * The cell an add_cell or edit_cell call works on, where the events tell. edit_cell names it;
   * add_cell's cell streamed while the model wrote the call (the events do not link the two, so
   * it is the first streamed cell of the turn not claimed yet, preferring one with the call's
   * source), or else appears after the call as a cell_proposed.
   */
  private _cellOfCall(name: string, json: string): string | null {
    if (name !== 'add_cell' && name !== 'edit_cell') {
      return null;
    }
    const args = parseArguments(json);
    if (name === 'edit_cell') {
      return typeof args.cell_id === 'string' ? args.cell_id : null;
    }
    const unclaimed = this._unclaimedCellIds;
    const sameSource = unclaimed.find(
      id => this._cells.get(id)?.source === args.source
    );
    const cellId = sameSource ?? unclaimed[0] ?? null;
    this._unclaimedCellIds = unclaimed.filter(id => id !== cellId);
    return cellId;
  }

  private _toolActivity(tool: IToolInProgress): IActivity {
    const doing = (what: Doing): IActivity => ({ doing: what, cell: null });
    switch (tool.name) {
      case 'add_cell':
      case 'edit_cell':
        return this._cellToolActivity(tool);
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

  private _cellToolActivity(tool: IToolInProgress): IActivity {
    const cell =
      tool.cellId === null ? undefined : this._cells.get(tool.cellId);
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
    if (this._execution === 'ask' && cell.state === 'proposed') {
      return { doing: 'awaiting-accept', cell: line };
    }
    return { doing: 'running', cell: line };
  }

  private _changed = new Signal<this, RunEvent>(this);
  private _now: () => number;
  private _runId: string;
  private _task = '';
  private _model = '';
  private _execution: 'auto' | 'ask' = 'auto';
  private _lastSeq = -1;
  private _running = false;
  private _step = 0;
  private _maxSteps = 0;
  private _startedAt: number | null = null;
  private _finishedAt: number | null = null;
  /** Running time of the stretches before the current one. */
  private _earlierMs = 0;
  /** When the current stretch of running began; null while not running. */
  private _stretchStart: number | null = null;
  private _promptTokens = 0;
  private _completionTokens = 0;
  private _messages: IRunMessage[] = [];
  private _cells = new Map<string, IRunCell>();
  private _errors: string[] = [];
  private _restartProposal: string | null = null;
  private _conversationId = '';
  /** The notebook's kernel is busy with the person's cell; the agent's code waits. */
  private _waitingForKernel = false;
  private _outcome: IRunOutcome | null = null;
  /** The tool call under way, between its tool_call and tool_result. */
  private _tool: IToolInProgress | null = null;
  private _streamingCellIds = new Set<string>();
  /** The cell that last received streamed source. */
  private _writingCellId: string | null = null;
  /** Cells streamed in this model turn that no add_cell call has claimed yet. */
  private _unclaimedCellIds: string[] = [];
  /** The source an edit under way replaces, from its reset until its cell_edited. */
  private _sourceBeforeEdit = new Map<string, string>();
}

export namespace RunModel {
  export interface IOptions {
    /** The run's id, known before its run_started arrives. */
    runId?: string;
    /** The clock for startedAt, finishedAt and elapsed time (ms); Date.now by default. */
    now?: () => number;
  }
}

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

/** A tool call being carried out, for `activity`. */
interface IToolInProgress {
  callId: string;
  name: string;
  /** The cell an add_cell or edit_cell call works on, once known. */
  cellId: string | null;
  /** The cell's outputs came back during this call. */
  ran: boolean;
}

/** The call's arguments as an object; the model may have written anything. */
function parseArguments(json: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(json);
    return typeof value === 'object' && value !== null
      ? (value as Record<string, unknown>)
      : {};
  } catch {
    return {};
  }
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
