import { RunEvent } from '../events';
import { RunModel } from '../runModel';
import { initialRunState, IRunState, reduceRun } from '../runState';

type Fields<T extends RunEvent['type']> = Omit<
  Extract<RunEvent, { type: T }>,
  'seq' | 'type'
>;

/** Events numbered in the order they are added, as the server's log numbers them. */
class Log {
  readonly events: RunEvent[] = [];

  add<T extends RunEvent['type']>(type: T, fields: Fields<T>): this {
    this.events.push({
      seq: this.events.length,
      type,
      ...fields
    } as unknown as RunEvent);
    return this;
  }

  proposed(cellId: string, callId: string | null, streaming: boolean): this {
    return this.add('cell_proposed', {
      cell_id: cellId,
      cell_type: 'code',
      source: streaming ? '' : 'b = 2',
      index: 0,
      after_cell_id: null,
      metadata: {},
      streaming,
      call_id: callId
    });
  }

  call(callId: string, name: string, args: Record<string, unknown>): this {
    return this.add('tool_call', {
      call_id: callId,
      name,
      arguments: JSON.stringify(args)
    });
  }

  result(callId: string, name: string): this {
    return this.add('tool_result', {
      call_id: callId,
      name,
      result: { status: 'ok' },
      duration_s: 0.1
    });
  }

  turn(step: number): this {
    return this.add('model_turn', {
      step,
      content: '',
      tool_calls: [],
      usage: { prompt_tokens: 100, completion_tokens: 10, cached_tokens: 0 },
      ttft_s: 0.1,
      duration_s: 1,
      cut_short: ''
    });
  }

  outputs(cellId: string, status: 'running' | 'ok'): this {
    return this.add('cell_outputs', {
      cell_id: cellId,
      status,
      outputs: [{ output_type: 'stream', name: 'stdout', text: 'out\n' }],
      execution_count: 1
    });
  }
}

const STARTED = {
  run_id: 'run-1',
  task: 'Plot the sine',
  model: 'gpt-test',
  max_steps: 30,
  execution: 'ask' as const,
  conversation_id: 'conv-1'
};

/** A run with every kind of event: cells streamed and not, an edit, a review, a regenerate. */
function wholeRun(): RunEvent[] {
  return new Log()
    .add('run_started', STARTED)
    .add('step', { step: 1, max_steps: 30 })
    .add('message_delta', { text: 'I will ' })
    .add('message_delta', { text: 'plot it.' })
    .proposed('agent-1', 'call_0', true)
    .add('cell_source_delta', { cell_id: 'agent-1', text: 'a = 1' })
    .turn(1)
    .call('call_0', 'add_cell', { cell_type: 'code', source: 'a = 1' })
    .add('cell_accepted', { cell_id: 'agent-1' })
    .add('kernel_waiting', { reason: 'busy' })
    .add('cell_running', { cell_id: 'agent-1' })
    .outputs('agent-1', 'running')
    .outputs('agent-1', 'ok')
    .result('call_0', 'add_cell')
    .add('step', { step: 2, max_steps: 30 })
    .add('cell_source_delta', { cell_id: 'agent-1', text: '', reset: true })
    .add('cell_source_delta', { cell_id: 'agent-1', text: 'a = 2' })
    .turn(2)
    .call('call_0', 'edit_cell', { cell_id: 'agent-1', source: 'a = 2' })
    .add('cell_edited', {
      cell_id: 'agent-1',
      source: 'a = 2',
      version: 1,
      state: 'proposed'
    })
    .result('call_0', 'edit_cell')
    .add('step', { step: 3, max_steps: 30 })
    .turn(3)
    .call('call_0', 'add_cell', { source: 'b = 2', cell_type: 'code' })
    .proposed('agent-2', 'call_0', false)
    .add('cell_moved', {
      cell_id: 'agent-2',
      index: 1,
      after_cell_id: 'agent-1'
    })
    .result('call_0', 'add_cell')
    .add('cell_rejected', { cell_id: 'agent-2' })
    .add('cell_restored', {
      cell_id: 'agent-2',
      cell_type: 'code',
      source: 'b = 2',
      index: 1,
      after_cell_id: 'agent-1',
      metadata: {},
      outputs: [],
      execution_count: null
    })
    .add('kernel_restart_proposed', { reason: 'a module changed' })
    .add('error', { message: 'the model answered 500' })
    .add('run_finished', {
      success: false,
      reason: 'interrupted',
      summary: 'The server stopped.'
    })
    .add('run_continued', { step: 3 })
    .add('run_finished', {
      success: true,
      reason: 'completed',
      summary: 'Done.'
    })
    .add('cell_regenerating', {
      cell_id: 'agent-1',
      instruction: 'in red',
      source: 'a = 2',
      version: 1
    })
    .add('run_finished', {
      success: true,
      reason: 'completed',
      summary: 'Red.'
    }).events;
}

/** The time the test applies the event at. */
const timeOf = (event: RunEvent): number => 1000 + 100 * event.seq;

function reduceAll(events: RunEvent[]): IRunState {
  return events.reduce(
    (state, event) => reduceRun(state, event, timeOf(event)),
    initialRunState()
  );
}

/** A copy sharing nothing with `value`. */
function copyDeep<T>(value: T): T {
  if (value instanceof Map) {
    return new Map([...value].map(([key, each]) => [key, copyDeep(each)])) as T;
  }
  if (value instanceof Set) {
    return new Set([...value].map(copyDeep)) as T;
  }
  if (Array.isArray(value)) {
    return value.map(copyDeep) as T;
  }
  if (typeof value === 'object' && value !== null) {
    const copy: Record<string, unknown> = {};
    for (const [key, each] of Object.entries(value)) {
      copy[key] = copyDeep(each);
    }
    return copy as T;
  }
  return value;
}

/** Makes every change to `value`, however deep, throw (maps and sets included). */
function freezeDeep<T>(value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) {
    return value;
  }
  if (value instanceof Map || value instanceof Set) {
    for (const method of ['set', 'add', 'delete', 'clear']) {
      Object.defineProperty(value, method, {
        value: () => {
          throw new TypeError(`${method} on a frozen collection`);
        }
      });
    }
    for (const entry of value) {
      // A map's entries are [key, value] pairs, a set's its values.
      freezeDeep(entry);
    }
  } else {
    Object.values(value).forEach(freezeDeep);
  }
  return Object.freeze(value);
}

describe('reduceRun', () => {
  it('gives equal states for the same events applied twice', () => {
    const events = wholeRun();
    const once = reduceAll(events);
    const twice = reduceAll(events);
    expect(twice).toEqual(once);
    expect(twice).not.toBe(once);
    expect(once.lastSeq).toBe(events.length - 1);
  });

  it('holds the MCP tool calls that wait for the person until each is decided', () => {
    const log = new Log()
      .add('run_started', STARTED)
      .add('step', { step: 1, max_steps: 30 })
      .call('call_0', 'tools__add', { a: 2, b: 3 })
      .add('tool_approval_requested', {
        call_id: 'call_0',
        server: 'tools',
        tool: 'add',
        arguments: { a: 2, b: 3 }
      })
      .call('call_1', 'tools__echo', { text: 'hi' })
      .add('tool_approval_requested', {
        call_id: 'call_1',
        server: 'tools',
        tool: 'echo',
        arguments: { text: 'hi' }
      });
    const waiting = reduceAll(log.events);
    expect(waiting.approvals.map(a => [a.callId, a.tool, a.arguments])).toEqual(
      [
        ['call_0', 'add', { a: 2, b: 3 }],
        ['call_1', 'echo', { text: 'hi' }]
      ]
    );
    log.add('tool_approval_decided', { call_id: 'call_0', decision: 'deny' });
    expect(reduceAll(log.events).approvals.map(a => a.callId)).toEqual([
      'call_1'
    ]);
  });

  it('leaves the state it is given as it was', () => {
    let state = initialRunState('run-1');
    for (const event of wholeRun()) {
      const before = copyDeep(state);
      const frozen = freezeDeep(state);
      const next = reduceRun(frozen, event, timeOf(event));
      expect(frozen).toEqual(before);
      expect(next).not.toBe(frozen);
      expect(next.lastSeq).toBe(event.seq);
      state = next;
    }
  });

  it('replaces only the records of the cells an event changes', () => {
    const events = wholeRun();
    const accepted = events.findIndex(event => event.type === 'cell_accepted');
    const before = reduceAll(events.slice(0, accepted));
    const after = reduceRun(before, events[accepted], 0);
    expect(after.cells).not.toBe(before.cells);
    expect(after.cells.get('agent-1')).not.toBe(before.cells.get('agent-1'));
    expect(after.cells.get('agent-1')!.state).toBe('accepted');
    expect(before.cells.get('agent-1')!.state).toBe('proposed');
    expect(after.messages).toBe(before.messages);
  });

  it('takes the time from its caller', () => {
    const events = new Log()
      .add('run_started', STARTED)
      .add('run_finished', { success: true, reason: 'completed', summary: '' })
      .add('run_continued', { step: 1 })
      .add('run_finished', {
        success: true,
        reason: 'completed',
        summary: ''
      }).events;
    const started = reduceRun(initialRunState(), events[0], 5000);
    expect(started).toMatchObject({
      running: true,
      startedAt: 5000,
      stretchStart: 5000
    });
    const finished = reduceRun(started, events[1], 7500);
    expect(finished).toMatchObject({
      running: false,
      finishedAt: 7500,
      earlierMs: 2500,
      stretchStart: null
    });
    // The wait before the run went on does not count.
    const continued = reduceRun(finished, events[2], 60000);
    expect(continued).toMatchObject({ finishedAt: null, stretchStart: 60000 });
    expect(reduceRun(continued, events[3], 61000).earlierMs).toBe(3500);
  });

  it('ties an add_cell call to its cell by call id, for the current step only', () => {
    const log = new Log()
      .add('step', { step: 1, max_steps: 3 })
      .proposed('agent-1', 'call_0', true)
      .proposed('agent-2', 'call_1', true)
      .turn(1)
      .call('call_1', 'add_cell', { cell_type: 'code', source: '' });
    const writing = reduceAll(log.events);
    expect(writing.cellsOfCalls).toEqual(
      new Map([
        ['call_0', 'agent-1'],
        ['call_1', 'agent-2']
      ])
    );
    expect(writing.tool).toEqual({
      callId: 'call_1',
      name: 'add_cell',
      cellId: 'agent-2',
      ran: false
    });

    log
      .result('call_1', 'add_cell')
      .add('step', { step: 2, max_steps: 3 })
      .call('call_0', 'add_cell', { source: 'b = 2', cell_type: 'code' });
    const nextStep = reduceAll(log.events);
    expect(nextStep.cellsOfCalls.size).toBe(0);
    expect(nextStep.tool?.cellId).toBeNull();

    log.proposed('agent-3', 'call_0', false);
    expect(reduceAll(log.events).tool?.cellId).toBe('agent-3');
  });

  it('leaves a call without its cell for a cell of another call', () => {
    const events = new Log()
      .add('step', { step: 1, max_steps: 3 })
      .call('call_0', 'add_cell', { source: 'b = 2', cell_type: 'code' })
      .proposed('agent-1', 'call_9', false)
      .proposed('agent-2', null, false).events;
    expect(reduceAll(events).tool?.cellId).toBeNull();
  });

  it('is the state RunModel holds after the same events', () => {
    const events = wholeRun();
    let clock = 0;
    const model = new RunModel({ now: () => clock });
    for (const event of events) {
      clock = timeOf(event);
      model.apply(event);
    }
    expect(model.state).toEqual(reduceAll(events));
  });
});
