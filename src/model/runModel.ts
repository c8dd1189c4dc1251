import { ISignal, Signal } from '@lumino/signaling';

import { RunEvent } from './events';
import { activityCellId, IActivity, runActivity } from './runActivity';
import {
  IRunCell,
  IRunMessage,
  IRunOutcome,
  IRunState,
  IToolApproval,
  initialRunState,
  reduceRun
} from './runState';

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
 * It holds the current `IRunState`, keeps the events in order and tells of each change;
 * `reduceRun` says what each event does.
 */
export class RunModel {
  constructor(options: RunModel.IOptions = {}) {
    this._state = initialRunState(options.runId);
    this._now = options.now ?? (() => Date.now());
  }

  /** Emitted after each applied event, with that event. */
  get changed(): ISignal<this, RunEvent> {
    return this._changed;
  }

  /** The run as the events applied so far built it. */
  get state(): IRunState {
    return this._state;
  }

  /** The run's id: the one given, else run_started's ('' until then). */
  get runId(): string {
    return this._state.runId;
  }

  get task(): string {
    return this._state.task;
  }

  /** The model's name. */
  get model(): string {
    return this._state.model;
  }

  /** 'auto' until run_started says otherwise. */
  get execution(): 'auto' | 'ask' {
    return this._state.execution;
  }

  /** The seq of the last applied event; -1 before any. */
  get lastSeq(): number {
    return this._state.lastSeq;
  }

  /** From run_started to run_finished, and again while a finished run goes on to regenerate. */
  get running(): boolean {
    return this._state.running;
  }

  /** The model turn it is on (0 before the first). */
  get step(): number {
    return this._state.step;
  }

  /** The step the run ends at; a resumed run gets more. */
  get maxSteps(): number {
    return this._state.maxSteps;
  }

  /** What it is doing now, for the panel to say (see `activityText`); null when not running. */
  get activity(): IActivity | null {
    return runActivity(this._state);
  }

  /** The cell `activity` is about (the one written, run or waited on); null for none. */
  get activityCellId(): string | null {
    return activityCellId(this._state);
  }

  /** When run_started was applied (ms since the epoch); null before. */
  get startedAt(): number | null {
    return this._state.startedAt;
  }

  /** When run_finished was last applied; null while running or before. */
  get finishedAt(): number | null {
    return this._state.finishedAt;
  }

  /**
   * Milliseconds spent running: up to `now` while running, up to the finish once finished.
   * The wait between a finish and a regenerate does not count.
   */
  elapsedMs(now: number): number {
    const { running, stretchStart, earlierMs } = this._state;
    const current =
      running && stretchStart !== null ? Math.max(0, now - stretchStart) : 0;
    return earlierMs + current;
  }

  /** Prompt plus completion tokens of every model turn. */
  get tokens(): number {
    return this._state.promptTokens + this._state.completionTokens;
  }

  get promptTokens(): number {
    return this._state.promptTokens;
  }

  get completionTokens(): number {
    return this._state.completionTokens;
  }

  /** The agent's prose, one entry per step that had any. */
  get messages(): readonly IRunMessage[] {
    return this._state.messages;
  }

  /** Every cell the run wrote, rejected ones included, in the order they were proposed. */
  get cells(): ReadonlyMap<string, IRunCell> {
    return this._state.cells;
  }

  /** The cells still awaiting the person's verdict, in the order they were proposed. */
  get proposedCellIds(): readonly string[] {
    return [...this._state.cells.values()]
      .filter(cell => cell.state === 'proposed')
      .map(cell => cell.id);
  }

  /** The messages of the run's error events. */
  get errors(): readonly string[] {
    return this._state.errors;
  }

  /** Why a restart of the notebook's kernel would help, which only the person may do; null
   * when none was suggested. */
  get restartProposal(): string | null {
    return this._state.restartProposal;
  }

  /** The calls of MCP tools waiting for the person's approval. */
  get approvals(): readonly IToolApproval[] {
    return this._state.approvals;
  }

  /** The conversation the run continues ('' before run_started says). */
  get conversationId(): string {
    return this._state.conversationId;
  }

  /** The last run_finished's outcome (kept while a resumed run goes on, as the server does). */
  get outcome(): IRunOutcome | null {
    return this._state.outcome;
  }

  /**
   * Applies the next event of the run.
   *
   * @returns false for an event already applied (seq ≤ lastSeq), which changes nothing.
   * @throws EventGapError when the event comes after one not applied yet (seq > lastSeq + 1);
   *   the model is left unchanged, so a subscription from `lastSeq + 1` recovers.
   */
  apply(event: RunEvent): boolean {
    const lastSeq = this._state.lastSeq;
    if (event.seq <= lastSeq) {
      return false;
    }
    if (event.seq !== lastSeq + 1) {
      throw new EventGapError(lastSeq + 1, event.seq);
    }
    this._state = reduceRun(this._state, event, this._now());
    this._changed.emit(event);
    return true;
  }

  private _changed = new Signal<this, RunEvent>(this);
  private _now: () => number;
  private _state: IRunState;
}

export namespace RunModel {
  export interface IOptions {
    /** The run's id, known before its run_started arrives. */
    runId?: string;
    /** The clock for startedAt, finishedAt and elapsed time (ms); Date.now by default. */
    now?: () => number;
  }
}
