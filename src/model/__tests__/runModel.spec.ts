import { nullTranslator } from '@jupyterlab/translation';

import { activityText } from '../../words';
import { RunEvent } from '../events';
import { EventGapError, RunModel } from '../runModel';

/** What the panel says the run is doing ('' when it is not running). */
function activityOf(model: RunModel): string {
  const activity = model.activity;
  return activity
    ? activityText(nullTranslator.load('jupyterlab'), activity)
    : '';
}

type Fields<T extends RunEvent['type']> = Omit<
  Extract<RunEvent, { type: T }>,
  'seq' | 'type'
>;

/**
 * A run's event log as the server writes it (see agent/loop.py): each event gets the next seq
 * and is applied to the model at once. The helpers emit the sequences the loop emits.
 */
class Run {
  constructor(execution: 'auto' | 'ask' = 'auto') {
    this.model = new RunModel({ now: () => this.clock });
    this.emit('run_started', {
      run_id: 'run-1',
      task: 'Plot the sine',
      model: 'gpt-test',
      max_steps: 30,
      execution,
      conversation_id: 'conversation-1'
    });
  }

  readonly model: RunModel;
  readonly log: RunEvent[] = [];
  clock = 1000;

  emit<T extends RunEvent['type']>(type: T, fields: Fields<T>): RunEvent {
    const event = {
      seq: this.log.length,
      type,
      ...fields
    } as unknown as RunEvent;
    this.log.push(event);
    this.model.apply(event);
    return event;
  }

  step(step: number, maxSteps = 30): void {
    this.emit('step', { step, max_steps: maxSteps });
  }

  prose(...pieces: string[]): void {
    for (const text of pieces) {
      this.emit('message_delta', { text });
    }
  }

  /** A cell shown as the model writes its add_cell call `callId`. */
  streamCell(
    callId: string,
    id: string,
    cellType: 'code' | 'markdown',
    ...pieces: string[]
  ) {
    this.emit('cell_proposed', {
      cell_id: id,
      cell_type: cellType,
      source: '',
      index: this.model.cells.size,
      after_cell_id: null,
      metadata: {
        notebook_agent: {
          run_id: 'run-1',
          model: 'gpt-test',
          state: 'proposed'
        }
      },
      streaming: true,
      call_id: callId
    });
    this.delta(id, ...pieces);
  }

  delta(id: string, ...pieces: string[]): void {
    for (const text of pieces) {
      this.emit('cell_source_delta', { cell_id: id, text });
    }
  }

  turn(step: number, prompt: number, completion: number): void {
    this.emit('model_turn', {
      step,
      content: '',
      tool_calls: [],
      usage: {
        prompt_tokens: prompt,
        completion_tokens: completion,
        cached_tokens: 0
      },
      ttft_s: 0.2,
      duration_s: 1.5,
      cut_short: ''
    });
  }

  call(callId: string, name: string, args: Record<string, unknown>): void {
    this.emit('tool_call', {
      call_id: callId,
      name,
      arguments: JSON.stringify(args)
    });
  }

  result(callId: string, name: string, result: Record<string, unknown>) {
    this.emit('tool_result', {
      call_id: callId,
      name,
      result,
      duration_s: 0.1
    });
  }

  outputs(id: string, status: 'ok' | 'error' = 'ok', count = 1): void {
    this.emit('cell_outputs', {
      cell_id: id,
      status,
      outputs: [{ output_type: 'stream', name: 'stdout', text: 'out\n' }],
      execution_count: count
    });
  }

  finish(success = true, summary = 'Plotted the sine.'): void {
    this.emit('run_finished', {
      success,
      reason: success ? 'completed' : 'gave_up',
      summary
    });
  }

  /** A model turn that ends the run. */
  complete(step: number): void {
    this.step(step);
    this.turn(step, 10, 5);
    this.call(`call-end-${step}`, 'complete_task', {
      success: true,
      summary: 'Done.'
    });
    this.result(`call-end-${step}`, 'complete_task', { status: 'ok' });
    this.finish();
  }
}

describe('RunModel', () => {
  it('starts empty', () => {
    const model = new RunModel({ runId: 'run-9' });
    expect(model.runId).toBe('run-9');
    expect(model.lastSeq).toBe(-1);
    expect(model.running).toBe(false);
    expect(activityOf(model)).toBe('');
    expect(model.startedAt).toBeNull();
    expect(model.elapsedMs(5000)).toBe(0);
    expect(model.outcome).toBeNull();
    expect(model.cells.size).toBe(0);
  });

  it('follows a whole run: prose, a streamed cell, its outputs, the finish', () => {
    const run = new Run();
    const model = run.model;
    expect(model.runId).toBe('run-1');
    expect(model.task).toBe('Plot the sine');
    expect(model.model).toBe('gpt-test');
    expect(model.execution).toBe('auto');
    expect(model.maxSteps).toBe(30);
    expect(model.running).toBe(true);
    expect(model.startedAt).toBe(1000);
    expect(activityOf(model)).toBe('Starting…');

    run.step(1);
    expect(model.step).toBe(1);
    expect(activityOf(model)).toBe('Thinking…');
    run.prose('I will ', 'plot **the sine**.');
    expect(model.messages).toEqual([
      { step: 1, text: 'I will plot **the sine**.' }
    ]);
    expect(activityOf(model)).toBe('Thinking…');

    run.streamCell('call-1', 'agent-1', 'code', 'import numpy', ' as np\n');
    const streaming = model.cells.get('agent-1')!;
    expect(streaming.source).toBe('import numpy as np\n');
    expect(streaming.streaming).toBe(true);
    expect(activityOf(model)).toBe('Writing “import numpy as np”…');
    expect(model.activityCellId).toBe('agent-1');

    run.turn(1, 1200, 80);
    expect(model.cells.get('agent-1')!.streaming).toBe(false);
    run.call('call-1', 'add_cell', {
      cell_type: 'code',
      source: 'import numpy as np\n'
    });
    expect(activityOf(model)).toBe('Running “import numpy as np”…');
    expect(model.activityCellId).toBe('agent-1');
    run.outputs('agent-1');
    run.result('call-1', 'add_cell', { cell_id: 'agent-1', status: 'ok' });

    expect(model.cells.get('agent-1')).toEqual({
      id: 'agent-1',
      cellType: 'code',
      source: 'import numpy as np\n',
      state: 'proposed',
      status: 'ok',
      outputs: [{ output_type: 'stream', name: 'stdout', text: 'out\n' }],
      executionCount: 1,
      streaming: false,
      versions: [],
      index: 0,
      afterCellId: null
    });
    expect(model.proposedCellIds).toEqual(['agent-1']);

    run.clock = 4000;
    run.step(2);
    run.prose('Done.');
    run.turn(2, 1400, 30);
    run.call('call-2', 'complete_task', { success: true, summary: 'Done.' });
    expect(activityOf(model)).toBe('Finishing…');
    expect(model.activityCellId).toBeNull();
    run.result('call-2', 'complete_task', { status: 'ok' });
    run.clock = 6500;
    run.finish();

    expect(model.running).toBe(false);
    expect(activityOf(model)).toBe('');
    expect(model.finishedAt).toBe(6500);
    expect(model.elapsedMs(99999)).toBe(5500);
    expect(model.outcome).toEqual({
      success: true,
      reason: 'completed',
      summary: 'Plotted the sine.'
    });
    expect(model.messages).toEqual([
      { step: 1, text: 'I will plot **the sine**.' },
      { step: 2, text: 'Done.' }
    ]);
    expect(model.lastSeq).toBe(run.log.length - 1);
  });

  it('sums the tokens of every model turn', () => {
    const run = new Run();
    run.step(1);
    run.turn(1, 1000, 50);
    run.step(2);
    run.turn(2, 1100, 70);
    expect(run.model.promptTokens).toBe(2100);
    expect(run.model.completionTokens).toBe(120);
    expect(run.model.tokens).toBe(2220);
  });

  it('runs again when an interrupted run continues, from its next event', () => {
    const run = new Run();
    run.step(1);
    run.emit('run_finished', {
      success: false,
      reason: 'interrupted',
      summary: 'The server stopped while this run was working.'
    });
    expect(run.model.running).toBe(false);
    run.clock = 5000;
    run.emit('run_continued', { step: 1 });
    expect(run.model.running).toBe(true);
    expect(run.model.elapsedMs(5000 + 300)).toBe(300);
    run.complete(2);
    expect(run.model.running).toBe(false);
    expect(run.model.outcome?.reason).toBe('completed');
  });

  it('counts elapsed time up to now while running', () => {
    const run = new Run();
    expect(run.model.elapsedMs(1000 + 2500)).toBe(2500);
    expect(run.model.finishedAt).toBeNull();
  });

  it('emits changed once per applied event, with the event', () => {
    const model = new RunModel();
    const seen: RunEvent[] = [];
    model.changed.connect((_, event) => seen.push(event));
    const started: RunEvent = {
      seq: 0,
      type: 'run_started',
      run_id: 'run-1',
      task: 't',
      model: 'm',
      max_steps: 3,
      execution: 'auto',
      conversation_id: 'conversation-1'
    };
    expect(model.apply(started)).toBe(true);
    expect(seen).toEqual([started]);
  });

  it('ignores an event applied already', () => {
    const run = new Run();
    run.step(1);
    run.prose('Hello');
    const delta = run.log[2];
    const seen: RunEvent[] = [];
    run.model.changed.connect((_, event) => seen.push(event));

    expect(run.model.apply(delta)).toBe(false);
    expect(run.model.apply(run.log[0])).toBe(false);
    expect(run.model.messages).toEqual([{ step: 1, text: 'Hello' }]);
    expect(run.model.lastSeq).toBe(2);
    expect(seen).toEqual([]);
  });

  it('throws on a gap and stays as it was', () => {
    const run = new Run();
    const ahead: RunEvent = {
      seq: 5,
      type: 'message_delta',
      text: 'lost'
    };
    expect(() => run.model.apply(ahead)).toThrow(EventGapError);
    try {
      run.model.apply(ahead);
    } catch (error) {
      expect(error).toMatchObject({ expected: 1, received: 5 });
    }
    expect(run.model.lastSeq).toBe(0);
    expect(run.model.messages).toEqual([]);
  });

  it('builds the same state from a replayed log', () => {
    const run = new Run();
    run.step(1);
    run.streamCell('c1', 'agent-1', 'markdown', '# Si', 'ne');
    run.turn(1, 10, 2);
    run.call('c1', 'add_cell', { cell_type: 'markdown', source: '# Sine' });
    run.result('c1', 'add_cell', { cell_id: 'agent-1', status: 'ok' });
    const replayed = new RunModel();
    run.log.forEach(event => replayed.apply(event));
    expect([...replayed.cells.values()]).toEqual([...run.model.cells.values()]);
    expect(replayed.lastSeq).toBe(run.model.lastSeq);
  });

  describe('in ask mode', () => {
    function proposeCode(run: Run): void {
      run.step(1);
      run.streamCell('c1', 'agent-1', 'code', 'print(1)');
      run.turn(1, 10, 2);
      run.call('c1', 'add_cell', { cell_type: 'code', source: 'print(1)' });
    }

    it('waits for the person to accept a proposed code cell, then runs it', () => {
      const run = new Run('ask');
      proposeCode(run);
      expect(run.model.execution).toBe('ask');
      expect(activityOf(run.model)).toBe(
        'Waiting for you to accept “print(1)”'
      );

      run.emit('cell_accepted', { cell_id: 'agent-1' });
      expect(run.model.cells.get('agent-1')!.state).toBe('accepted');
      expect(run.model.proposedCellIds).toEqual([]);
      expect(activityOf(run.model)).toBe('Running “print(1)”…');

      run.outputs('agent-1');
      run.result('c1', 'add_cell', { cell_id: 'agent-1', status: 'ok' });
      expect(activityOf(run.model)).toBe('Thinking…');
    });

    it('stops waiting when the person rejects the cell', () => {
      const run = new Run('ask');
      proposeCode(run);
      run.emit('cell_rejected', { cell_id: 'agent-1', keep_state: false });
      expect(run.model.cells.get('agent-1')!.state).toBe('rejected');
      expect(run.model.proposedCellIds).toEqual([]);
      expect(activityOf(run.model)).toBe('Thinking…');
      run.result('c1', 'add_cell', { cell_id: 'agent-1', status: 'rejected' });
    });

    it('waits again after an edit proposes the cell again', () => {
      const run = new Run('ask');
      proposeCode(run);
      run.emit('cell_accepted', { cell_id: 'agent-1' });
      run.outputs('agent-1', 'error');
      run.result('c1', 'add_cell', { cell_id: 'agent-1', status: 'error' });

      run.step(2);
      run.emit('cell_source_delta', {
        cell_id: 'agent-1',
        text: '',
        reset: true
      });
      run.delta('agent-1', 'print(2)');
      run.turn(2, 10, 2);
      run.call('c2', 'edit_cell', { cell_id: 'agent-1', source: 'print(2)' });
      run.emit('cell_edited', {
        cell_id: 'agent-1',
        source: 'print(2)',
        version: 1,
        state: 'proposed'
      });
      expect(run.model.cells.get('agent-1')!.versions).toEqual(['print(1)']);
      expect(run.model.proposedCellIds).toEqual(['agent-1']);
      expect(activityOf(run.model)).toBe(
        'Waiting for you to accept “print(2)”'
      );
    });
  });

  it('edits a cell: a reset empties it, the deltas refill it, the old source is a version', () => {
    const run = new Run();
    run.step(1);
    run.streamCell('c1', 'agent-1', 'code', '1 / 0');
    run.turn(1, 10, 2);
    run.call('c1', 'add_cell', { cell_type: 'code', source: '1 / 0' });
    run.outputs('agent-1', 'error');
    run.result('c1', 'add_cell', { cell_id: 'agent-1', status: 'error' });
    expect(run.model.cells.get('agent-1')!.status).toBe('error');

    run.step(2);
    run.emit('cell_source_delta', {
      cell_id: 'agent-1',
      text: '',
      reset: true
    });
    expect(run.model.cells.get('agent-1')!.source).toBe('');
    expect(activityOf(run.model)).toBe('Writing a cell…');
    run.delta('agent-1', '1 / ', '2');
    expect(run.model.cells.get('agent-1')!.source).toBe('1 / 2');
    run.turn(2, 10, 2);
    run.call('c2', 'edit_cell', { cell_id: 'agent-1', source: '1 / 2' });
    expect(activityOf(run.model)).toBe('Running “1 / 2”…');
    run.emit('cell_edited', {
      cell_id: 'agent-1',
      source: '1 / 2',
      version: 1,
      state: 'proposed'
    });
    run.outputs('agent-1', 'ok', 2);

    const cell = run.model.cells.get('agent-1')!;
    expect(cell.source).toBe('1 / 2');
    expect(cell.versions).toEqual(['1 / 0']);
    expect(cell.status).toBe('ok');
    expect(cell.executionCount).toBe(2);
  });

  it('restores an edit the model botched without counting a version', () => {
    const run = new Run();
    run.step(1);
    run.streamCell('c1', 'agent-1', 'code', 'x = 1');
    run.turn(1, 10, 2);
    run.step(2);
    run.emit('cell_source_delta', {
      cell_id: 'agent-1',
      text: '',
      reset: true
    });
    run.delta('agent-1', 'x =');
    run.turn(2, 10, 2);
    run.emit('tool_call', {
      call_id: 'c2',
      name: 'edit_cell',
      arguments: '{"cell_id": "agent-1", "source'
    });
    run.emit('cell_edited', { cell_id: 'agent-1', source: 'x = 1' });
    const cell = run.model.cells.get('agent-1')!;
    expect(cell.source).toBe('x = 1');
    expect(cell.versions).toEqual([]);
  });

  it('marks a cell the model withdrew as rejected', () => {
    const run = new Run();
    run.step(1);
    run.streamCell('c1', 'agent-1', 'code', 'pri');
    run.turn(1, 10, 2);
    run.call('c1', 'add_cell', {});
    run.emit('cell_rejected', {
      cell_id: 'agent-1',
      reason: "the model's call was malformed"
    });
    expect(run.model.cells.get('agent-1')!.state).toBe('rejected');
    expect(run.model.proposedCellIds).toEqual([]);
  });

  it('keeps a moved cell at its new index', () => {
    const run = new Run();
    run.step(1);
    run.streamCell('c1', 'agent-1', 'code', 'a = 1');
    run.streamCell('c2', 'agent-2', 'code', 'b = 2');
    run.emit('cell_moved', {
      cell_id: 'agent-2',
      index: 0,
      after_cell_id: null
    });
    expect(run.model.cells.get('agent-2')).toMatchObject({
      index: 0,
      afterCellId: null
    });
    expect(run.model.proposedCellIds).toEqual(['agent-1', 'agent-2']);
  });

  it('takes the state of a headless run’s cells from their metadata', () => {
    const run = new Run();
    run.step(1);
    run.emit('cell_proposed', {
      cell_id: 'agent-1',
      cell_type: 'code',
      source: 'x = 1',
      index: 0,
      after_cell_id: null,
      metadata: {
        notebook_agent: { run_id: 'run-1', model: 'm', state: 'accepted' }
      },
      streaming: false,
      call_id: null
    });
    expect(run.model.cells.get('agent-1')!.state).toBe('accepted');
    expect(run.model.proposedCellIds).toEqual([]);
  });

  it('tells which cell each add_cell call runs, streamed or not', () => {
    const run = new Run();
    run.step(1);
    // Three calls in one answer; the second named its cell type after its source, so its cell
    // appears only once the call runs.
    run.streamCell('c1', 'agent-1', 'code', 'a = 1');
    run.streamCell('c3', 'agent-2', 'code', 'c = 3');
    run.turn(1, 10, 2);

    run.call('c1', 'add_cell', { cell_type: 'code', source: 'a = 1' });
    expect(activityOf(run.model)).toBe('Running “a = 1”…');
    run.outputs('agent-1');
    run.result('c1', 'add_cell', { cell_id: 'agent-1', status: 'ok' });

    run.call('c2', 'add_cell', { source: 'b = 2', cell_type: 'code' });
    run.emit('cell_proposed', {
      cell_id: 'agent-3',
      cell_type: 'code',
      source: 'b = 2',
      index: 1,
      after_cell_id: 'agent-1',
      metadata: {},
      streaming: false,
      call_id: 'c2'
    });
    expect(activityOf(run.model)).toBe('Running “b = 2”…');
    run.outputs('agent-3');
    run.result('c2', 'add_cell', { cell_id: 'agent-3', status: 'ok' });

    run.call('c3', 'add_cell', { cell_type: 'code', source: 'c = 3' });
    expect(activityOf(run.model)).toBe('Running “c = 3”…');
  });

  it('ties each add_cell call to the cell streamed under its id, whatever their sources', () => {
    const run = new Run();
    run.step(1);
    run.streamCell('c1', 'agent-1', 'code', 'x = 1');
    run.streamCell('c2', 'agent-2', 'code', 'x = 1');
    run.turn(1, 10, 2);

    // Only the ids tie a call to its cell: the order the calls run in does not.
    run.call('c2', 'add_cell', { cell_type: 'code', source: 'x = 1' });
    expect(activityOf(run.model)).toBe('Running “x = 1”…');
    expect(run.model.activityCellId).toBe('agent-2');
    run.outputs('agent-2');
    run.result('c2', 'add_cell', { cell_id: 'agent-2', status: 'ok' });

    run.call('c1', 'add_cell', { cell_type: 'code', source: 'x = 1' });
    expect(activityOf(run.model)).toBe('Running “x = 1”…');
    expect(run.model.activityCellId).toBe('agent-1');
  });

  it('names no cell for a call whose cell is not streamed until it appears', () => {
    const run = new Run();
    run.step(1);
    // The first call named its cell type after its source; the second's cell, with the same
    // source, streamed.
    run.streamCell('c2', 'agent-1', 'code', 'x = 1');
    run.turn(1, 10, 2);

    run.call('c1', 'add_cell', { source: 'x = 1', cell_type: 'code' });
    expect(activityOf(run.model)).toBe('Writing a cell…');
    expect(run.model.activityCellId).toBeNull();
    run.emit('cell_proposed', {
      cell_id: 'agent-2',
      cell_type: 'code',
      source: 'x = 1',
      index: 0,
      after_cell_id: null,
      metadata: {},
      streaming: false,
      call_id: 'c1'
    });
    expect(run.model.activityCellId).toBe('agent-2');
    run.outputs('agent-2');
    run.result('c1', 'add_cell', { cell_id: 'agent-2', status: 'ok' });

    run.call('c2', 'add_cell', { cell_type: 'code', source: 'x = 1' });
    expect(run.model.activityCellId).toBe('agent-1');
  });

  it('forgets the call ids of earlier steps, which a backend may use again', () => {
    const run = new Run();
    run.step(1);
    run.streamCell('call_0', 'agent-1', 'code', 'a = 1');
    run.turn(1, 10, 2);
    run.call('call_0', 'add_cell', { cell_type: 'code', source: 'a = 1' });
    expect(run.model.activityCellId).toBe('agent-1');
    run.outputs('agent-1');
    run.result('call_0', 'add_cell', { cell_id: 'agent-1', status: 'ok' });

    run.step(2);
    run.turn(2, 10, 2);
    run.call('call_0', 'add_cell', { source: 'b = 2', cell_type: 'code' });
    expect(activityOf(run.model)).toBe('Writing a cell…');
    expect(run.model.activityCellId).toBeNull();
  });

  it('says what the other tools do', () => {
    const run = new Run();
    run.step(1);
    run.turn(1, 10, 2);
    run.call('c1', 'execute_code', { code: 'df.head()' });
    expect(activityOf(run.model)).toBe('Running code…');
    run.result('c1', 'execute_code', { status: 'ok' });
    run.call('c2', 'restart_kernel', {});
    expect(activityOf(run.model)).toBe('Restarting the kernel…');
    run.result('c2', 'restart_kernel', { status: 'ok' });
    run.call('c3', 'add_cell', { cell_type: 'markdown', source: '# A' });
    expect(activityOf(run.model)).toBe('Writing a cell…');
    run.emit('cell_proposed', {
      cell_id: 'agent-1',
      cell_type: 'markdown',
      source: '# A',
      index: 0,
      after_cell_id: null,
      metadata: {},
      streaming: false,
      call_id: 'c3'
    });
    expect(activityOf(run.model)).toBe('Writing “# A”…');
    run.result('c3', 'add_cell', { cell_id: 'agent-1', status: 'ok' });
    expect(activityOf(run.model)).toBe('Thinking…');
  });

  it('says it waits while the person’s cell runs, until the agent’s runs', () => {
    const run = new Run();
    run.step(1);
    run.streamCell('call-1', 'agent-1', 'code', 'print(df.shape)');
    run.call('call-1', 'add_cell', {
      cell_type: 'code',
      source: 'print(df.shape)'
    });
    expect(activityOf(run.model)).toBe('Running “print(df.shape)”…');
    run.emit('kernel_waiting', { reason: 'busy' });
    expect(activityOf(run.model)).toBe('Waiting for your cell to finish…');
    run.outputs('agent-1');
    expect(activityOf(run.model)).toBe('Thinking…');
  });

  it('keeps a restart the agent may not do, for the person to decide', () => {
    const run = new Run();
    expect(run.model.restartProposal).toBeNull();
    run.step(1);
    run.emit('kernel_restart_proposed', {
      reason: 'the agent asked to restart'
    });
    run.complete(2);
    expect(run.model.restartProposal).toBe('the agent asked to restart');
  });

  it('collects error events', () => {
    const run = new Run();
    run.step(1);
    run.emit('error', { message: 'the model answered 500' });
    run.emit('run_finished', {
      success: false,
      reason: 'model_error',
      summary: 'the model answered 500'
    });
    expect(run.model.errors).toEqual(['the model answered 500']);
    expect(run.model.outcome).toMatchObject({
      success: false,
      reason: 'model_error'
    });
  });

  it('goes on after the finish to regenerate a cell, keeping the old source', () => {
    const run = new Run();
    run.step(1);
    run.streamCell('c1', 'agent-1', 'code', 'plot(x)');
    run.turn(1, 10, 2);
    run.call('c1', 'add_cell', { cell_type: 'code', source: 'plot(x)' });
    run.outputs('agent-1');
    run.result('c1', 'add_cell', { cell_id: 'agent-1', status: 'ok' });
    run.clock = 3000;
    run.complete(2);
    expect(run.model.elapsedMs(3000)).toBe(2000);
    const firstOutcome = run.model.outcome;

    // The person regenerates the cell a minute later.
    run.clock = 63000;
    run.emit('cell_regenerating', {
      cell_id: 'agent-1',
      instruction: 'in red',
      source: 'plot(x)',
      version: 0
    });
    expect(run.model.running).toBe(true);
    expect(run.model.finishedAt).toBeNull();
    expect(run.model.outcome).toBe(firstOutcome);
    expect(run.model.cells.get('agent-1')!.versions).toEqual(['plot(x)']);
    expect(activityOf(run.model)).toBe('Thinking…');

    run.step(3, 32);
    expect(run.model.maxSteps).toBe(32);
    run.emit('cell_source_delta', {
      cell_id: 'agent-1',
      text: '',
      reset: true
    });
    run.delta('agent-1', "plot(x, color='red')");
    expect(activityOf(run.model)).toBe("Writing “plot(x, color='red')”…");
    run.turn(3, 10, 2);
    run.call('c3', 'edit_cell', {
      cell_id: 'agent-1',
      source: "plot(x, color='red')"
    });
    run.emit('cell_edited', {
      cell_id: 'agent-1',
      source: "plot(x, color='red')",
      version: 1,
      state: 'proposed'
    });
    expect(activityOf(run.model)).toBe("Running “plot(x, color='red')”…");
    run.outputs('agent-1', 'ok', 2);
    run.result('c3', 'edit_cell', { cell_id: 'agent-1', status: 'ok' });
    run.clock = 65000;
    run.complete(4);

    const cell = run.model.cells.get('agent-1')!;
    expect(cell.versions).toEqual(['plot(x)']);
    expect(cell.source).toBe("plot(x, color='red')");
    expect(run.model.running).toBe(false);
    expect(run.model.finishedAt).toBe(65000);
    expect(run.model.elapsedMs(70000)).toBe(2000 + 2000);
    expect(run.model.outcome).not.toBe(firstOutcome);
    expect(run.model.step).toBe(4);
  });

  it('keeps each regenerated version once', () => {
    const run = new Run();
    run.step(1);
    run.streamCell('c1', 'agent-1', 'code', 'v1');
    run.turn(1, 10, 2);
    const regenerate = () =>
      run.emit('cell_regenerating', {
        cell_id: 'agent-1',
        instruction: '',
        source: 'v1',
        version: 0
      });
    regenerate();
    regenerate();
    expect(run.model.cells.get('agent-1')!.versions).toEqual(['v1']);
  });

  it('replaces a changed cell’s record instead of mutating it', () => {
    const run = new Run();
    run.step(1);
    run.streamCell('c1', 'agent-1', 'code', 'a');
    const before = run.model.cells.get('agent-1')!;
    run.delta('agent-1', 'b');
    expect(before.source).toBe('a');
    expect(run.model.cells.get('agent-1')!.source).toBe('ab');
  });
});
