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

/** A tool call being carried out, between its tool_call and its tool_result. */
export interface IToolInProgress {
  readonly callId: string;
  readonly name: string;
  /** The cell an add_cell or edit_cell call works on, once known. */
  readonly cellId: string | null;
  /** The cell's outputs came back during this call. */
  readonly ran: boolean;
}

/** A call of an MCP server's tool that waits for the person's approval. */
export interface IToolApproval {
  readonly callId: string;
  /** The MCP server's name in the configuration. */
  readonly server: string;
  /** The tool's name on its server. */
  readonly tool: string;
  readonly arguments: Record<string, unknown>;
}

/**
 * The state of one run, as its events up to `lastSeq` built it. A plain value, never changed
 * in place: `reduceRun` makes the next one, so views may compare by identity.
 */
export interface IRunState {
  /** The run's id: the one given, else run_started's ('' until then). */
  readonly runId: string;
  readonly task: string;
  /** The model's name. */
  readonly model: string;
  /** 'auto' until run_started says otherwise. */
  readonly execution: 'auto' | 'ask';
  /** The seq of the last applied event; -1 before any. */
  readonly lastSeq: number;
  /** From run_started to run_finished, and again while a finished run goes on to regenerate. */
  readonly running: boolean;
  /** The model turn it is on (0 before the first). */
  readonly step: number;
  /** The step the run ends at; a resumed run gets more. */
  readonly maxSteps: number;
  /** When run_started was applied (ms since the epoch); null before. */
  readonly startedAt: number | null;
  /** When run_finished was last applied; null while running or before. */
  readonly finishedAt: number | null;
  /** Running time of the stretches before the current one. */
  readonly earlierMs: number;
  /** When the current stretch of running began; null while not running. */
  readonly stretchStart: number | null;
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** The agent's prose, one entry per step that had any. */
  readonly messages: readonly IRunMessage[];
  /** Every cell the run wrote, rejected ones included, in the order they were proposed. */
  readonly cells: ReadonlyMap<string, IRunCell>;
  /** The messages of the run's error events. */
  readonly errors: readonly string[];
  /** Why a restart of the notebook's kernel would help; null when none was suggested. */
  readonly restartProposal: string | null;
  /** The conversation the run continues ('' before run_started says). */
  readonly conversationId: string;
  /** The notebook's kernel is busy with the person's cell; the agent's code waits. */
  readonly waitingForKernel: boolean;
  /** The last run_finished's outcome (kept while a resumed run goes on, as the server does). */
  readonly outcome: IRunOutcome | null;
  readonly tool: IToolInProgress | null;
  /** The cells receiving source from the model's answer under way. */
  readonly streamingCellIds: ReadonlySet<string>;
  /** The cell that last received streamed source. */
  readonly writingCellId: string | null;
  /** The cell each tool call of the current step proposed, by call id: some backends number
   * their calls afresh each turn, so this holds one step only. */
  readonly cellsOfCalls: ReadonlyMap<string, string>;
  /** The source an edit under way replaces, from its reset until its cell_edited. */
  readonly sourceBeforeEdit: ReadonlyMap<string, string>;
  /** The calls of MCP tools waiting for the person's approval, oldest first. */
  readonly approvals: readonly IToolApproval[];
}

/** A run before its first event. */
export function initialRunState(runId = ''): IRunState {
  return {
    runId,
    task: '',
    model: '',
    execution: 'auto',
    lastSeq: -1,
    running: false,
    step: 0,
    maxSteps: 0,
    startedAt: null,
    finishedAt: null,
    earlierMs: 0,
    stretchStart: null,
    promptTokens: 0,
    completionTokens: 0,
    messages: [],
    cells: new Map(),
    errors: [],
    restartProposal: null,
    conversationId: '',
    waitingForKernel: false,
    outcome: null,
    tool: null,
    streamingCellIds: new Set(),
    writingCellId: null,
    cellsOfCalls: new Map(),
    sourceBeforeEdit: new Map(),
    approvals: []
  };
}

/**
 * The state after `event`, the run's next one (seq `lastSeq + 1`: the caller keeps the order).
 * Pure: `state` is left as it was, and `now` (ms since the epoch) is the only clock, the time
 * the event is applied at.
 */
export function reduceRun(
  state: IRunState,
  event: RunEvent,
  now: number
): IRunState {
  return { ...reduceEvent(state, event, now), lastSeq: event.seq };
}

function reduceEvent(
  state: IRunState,
  event: RunEvent,
  now: number
): IRunState {
  switch (event.type) {
    case 'run_started':
      return resume(
        {
          ...state,
          runId: event.run_id,
          task: event.task,
          model: event.model,
          maxSteps: event.max_steps,
          execution: event.execution,
          conversationId: event.conversation_id ?? '',
          startedAt: now
        },
        now
      );
    case 'run_continued':
      return resume(state, now);
    case 'step':
      return {
        ...resume(state, now),
        step: event.step,
        maxSteps: event.max_steps,
        tool: null,
        cellsOfCalls: new Map()
      };
    case 'message_delta':
      return addProse(state, event.text);
    case 'model_turn':
      return stopStreaming({
        ...state,
        promptTokens: state.promptTokens + event.usage.prompt_tokens,
        completionTokens: state.completionTokens + event.usage.completion_tokens
      });
    case 'tool_call':
      return {
        ...state,
        tool: {
          callId: event.call_id,
          name: event.name,
          cellId: cellOfCall(state, event),
          ran: false
        }
      };
    case 'tool_result':
      return {
        ...state,
        waitingForKernel: false,
        tool: state.tool?.callId === event.call_id ? null : state.tool
      };
    case 'tool_approval_requested':
      return {
        ...state,
        approvals: [
          ...state.approvals,
          {
            callId: event.call_id,
            server: event.server,
            tool: event.tool,
            arguments: event.arguments
          }
        ]
      };
    case 'tool_approval_decided':
      return {
        ...state,
        approvals: state.approvals.filter(a => a.callId !== event.call_id)
      };
    case 'cell_proposed':
      return propose(state, event);
    case 'cell_source_delta':
      return appendSource(state, event);
    case 'cell_edited':
      return edit(state, event);
    case 'cell_moved':
      return updateCell(state, event.cell_id, () => ({
        index: event.index,
        afterCellId: event.after_cell_id
      }));
    case 'kernel_waiting':
      return { ...state, waitingForKernel: true };
    case 'kernel_restart_proposed':
      return { ...state, restartProposal: event.reason };
    case 'cell_running':
      return updateCell(state, event.cell_id, () => ({
        status: 'running',
        outputs: []
      }));
    case 'cell_outputs':
      return receiveOutputs(state, event);
    case 'cell_accepted':
      return updateCell(state, event.cell_id, () => ({ state: 'accepted' }));
    case 'cell_rejected':
      return updateCell(state, event.cell_id, () => ({
        state: 'rejected',
        streaming: false
      }));
    case 'cell_restored':
      return updateCell(state, event.cell_id, () => ({
        state: 'proposed',
        source: event.source,
        outputs: event.outputs,
        executionCount: event.execution_count,
        index: event.index,
        afterCellId: event.after_cell_id
      }));
    case 'cell_regenerating':
      // The server counts the version once the rewrite lands; show it from now on.
      return resume(
        updateCell(state, event.cell_id, cell =>
          cell.versions.length === event.version
            ? { versions: [...cell.versions, event.source] }
            : {}
        ),
        now
      );
    case 'error':
      return { ...state, errors: [...state.errors, event.message] };
    case 'run_finished':
      return finish(state, event, now);
  }
}

/** Running from now on; a finished run that goes on starts a new stretch of elapsed time. */
function resume(state: IRunState, now: number): IRunState {
  return state.running
    ? state
    : { ...state, running: true, finishedAt: null, stretchStart: now };
}

function finish(
  state: IRunState,
  event: EventOf<'run_finished'>,
  now: number
): IRunState {
  const stretch =
    state.stretchStart === null ? 0 : Math.max(0, now - state.stretchStart);
  return stopStreaming({
    ...state,
    earlierMs: state.earlierMs + stretch,
    stretchStart: null,
    running: false,
    waitingForKernel: false,
    finishedAt: now,
    outcome: {
      success: event.success,
      reason: event.reason,
      summary: event.summary
    },
    tool: null
  });
}

function addProse(state: IRunState, text: string): IRunState {
  const messages = state.messages;
  const last = messages.length - 1;
  if (last >= 0 && messages[last].step === state.step) {
    const message = messages[last];
    return {
      ...state,
      messages: [
        ...messages.slice(0, last),
        { step: message.step, text: message.text + text }
      ]
    };
  }
  return { ...state, messages: [...messages, { step: state.step, text }] };
}

/**
 * The cell an add_cell or edit_cell call works on, where the events tell: edit_cell names it;
 * add_cell's cell is the one proposed under its call id, streamed while the model wrote the
 * call; a cell not streamed appears after the call (see `propose`).
 */
function cellOfCall(
  state: IRunState,
  event: EventOf<'tool_call'>
): string | null {
  switch (event.name) {
    case 'add_cell':
      return state.cellsOfCalls.get(event.call_id) ?? null;
    case 'edit_cell': {
      const cellId = parseArguments(event.arguments).cell_id;
      return typeof cellId === 'string' ? cellId : null;
    }
    default:
      return null;
  }
}

function propose(state: IRunState, event: EventOf<'cell_proposed'>): IRunState {
  const provenance = event.metadata[METADATA_KEY] as
    Partial<ICellProvenance> | undefined;
  const cell: IRunCell = {
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
  };
  let next: IRunState = {
    ...state,
    cells: new Map(state.cells).set(cell.id, cell)
  };
  if (event.call_id !== null) {
    next = {
      ...next,
      cellsOfCalls: new Map(next.cellsOfCalls).set(event.call_id, cell.id)
    };
  }
  if (event.streaming) {
    next = { ...next, ...streamingInto(next, cell.id) };
  }
  if (next.tool?.callId === event.call_id) {
    // Its call is under way: a cell not streamed appears only once the call runs.
    next = { ...next, tool: { ...next.tool, cellId: cell.id } };
  }
  return next;
}

/** The fields that say the model's answer is writing into the cell. */
function streamingInto(
  state: IRunState,
  cellId: string
): Pick<IRunState, 'streamingCellIds' | 'writingCellId'> {
  return {
    streamingCellIds: new Set(state.streamingCellIds).add(cellId),
    writingCellId: cellId
  };
}

function appendSource(
  state: IRunState,
  event: EventOf<'cell_source_delta'>
): IRunState {
  const cell = state.cells.get(event.cell_id);
  if (!cell) {
    return state;
  }
  const source = event.reset ? event.text : cell.source + event.text;
  return {
    ...state,
    cells: new Map(state.cells).set(cell.id, {
      ...cell,
      source,
      streaming: true
    }),
    // An edit begins: the source it replaces becomes a version when the edit lands.
    sourceBeforeEdit: event.reset
      ? new Map(state.sourceBeforeEdit).set(cell.id, cell.source)
      : state.sourceBeforeEdit,
    ...streamingInto(state, cell.id)
  };
}

function edit(state: IRunState, event: EventOf<'cell_edited'>): IRunState {
  const before = state.sourceBeforeEdit.get(event.cell_id);
  const sourceBeforeEdit = new Map(state.sourceBeforeEdit);
  sourceBeforeEdit.delete(event.cell_id);
  return updateCell({ ...state, sourceBeforeEdit }, event.cell_id, cell => {
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

function receiveOutputs(
  state: IRunState,
  event: EventOf<'cell_outputs'>
): IRunState {
  const next = updateCell(
    { ...state, waitingForKernel: false },
    event.cell_id,
    () => ({
      status: event.status,
      outputs: event.outputs,
      executionCount: event.execution_count
    })
  );
  const tool = next.tool;
  return tool?.cellId === event.cell_id && event.status !== 'running'
    ? { ...next, tool: { ...tool, ran: true } }
    : next;
}

/** Replaces the cell's record with a changed copy (so that views can compare by identity). */
function updateCell(
  state: IRunState,
  cellId: string,
  change: (cell: IRunCell) => Partial<IRunCell>
): IRunState {
  const cell = state.cells.get(cellId);
  return cell
    ? {
        ...state,
        cells: new Map(state.cells).set(cellId, { ...cell, ...change(cell) })
      }
    : state;
}

/** The model's answer ended: no cell gets more tokens from it. */
function stopStreaming(state: IRunState): IRunState {
  if (state.streamingCellIds.size === 0) {
    return state;
  }
  const cells = new Map(state.cells);
  for (const cellId of state.streamingCellIds) {
    const cell = cells.get(cellId);
    if (cell) {
      cells.set(cellId, { ...cell, streaming: false });
    }
  }
  return {
    ...state,
    cells,
    streamingCellIds: new Set(),
    writingCellId: null
  };
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
