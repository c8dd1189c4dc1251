import type { ISharedCodeCell } from '@jupyter/ydoc';
import type { ICodeCellModel, MarkdownCell } from '@jupyterlab/cells';
import { NotebookModel } from '@jupyterlab/notebook';
import {
  acceptDialog,
  framePromise,
  NBTestUtils,
  waitForDialog
} from '@jupyterlab/testutils';
import { Widget } from '@lumino/widgets';

import { METADATA_KEY, RunEvent } from '../../model/events';
import { NotebookCellWriter } from '../cellWriter';
import { PROPOSED_CELL_CLASS, ProposedCellMarker } from '../proposedCells';

/** An event as the test writes it: the log numbers it. */
type EventBody = RunEvent extends infer E
  ? E extends RunEvent
    ? Omit<E, 'seq'>
    : never
  : never;

/** A run's log, numbered from 0 as the server numbers it. */
function log(...bodies: EventBody[]): RunEvent[] {
  return bodies.map((body, seq) => ({ ...body, seq }) as RunEvent);
}

function provenance(state: 'proposed' | 'accepted') {
  return { [METADATA_KEY]: { run_id: 'run-1', model: 'test-model', state } };
}

function proposed(
  cellId: string,
  index: number,
  options: {
    source?: string;
    cellType?: 'code' | 'markdown';
    /** The cell before it in the server's copy; by default one no notebook holds, so that
     * `index` places it. */
    after?: string | null;
  } = {}
): EventBody {
  const source = options.source ?? '';
  return {
    type: 'cell_proposed',
    cell_id: cellId,
    cell_type: options.cellType ?? 'code',
    source,
    index,
    after_cell_id: options.after === undefined ? 'not-here' : options.after,
    metadata: provenance('proposed'),
    streaming: source === '',
    call_id: `call-${cellId}`
  };
}

function delta(cellId: string, text: string, reset?: boolean): EventBody {
  return reset
    ? { type: 'cell_source_delta', cell_id: cellId, text, reset }
    : { type: 'cell_source_delta', cell_id: cellId, text };
}

const PI_OUTPUT = { output_type: 'stream', name: 'stdout', text: '3.14159\n' };

/** A whole run: cells streamed and not, outputs, an acceptance, a rejection, an edit, a move. */
const RUN = log(
  {
    type: 'run_started',
    run_id: 'run-1',
    task: 'print pi',
    model: 'test-model',
    max_steps: 10,
    execution: 'auto',
    conversation_id: 'conversation-1'
  },
  proposed('agent-1', 1),
  delta('agent-1', 'import math\n'),
  delta('agent-1', 'print(round(math.pi, 5))'),
  {
    type: 'cell_outputs',
    cell_id: 'agent-1',
    status: 'ok',
    outputs: [PI_OUTPUT],
    execution_count: 1
  },
  proposed('agent-2', 99, { source: '# Pi', cellType: 'markdown' }),
  { type: 'cell_accepted', cell_id: 'agent-1' },
  { type: 'cell_rejected', cell_id: 'agent-2', keep_state: false },
  proposed('agent-3', 2, { cellType: 'markdown' }),
  delta('agent-3', 'Draft'),
  delta('agent-3', '', true),
  delta('agent-3', 'Pi, to five '),
  delta('agent-3', 'places.'),
  {
    type: 'cell_edited',
    cell_id: 'agent-3',
    source: 'Pi, to five places.',
    version: 1
  },
  { type: 'cell_moved', cell_id: 'agent-3', index: 0, after_cell_id: null },
  { type: 'run_finished', success: true, reason: 'completed', summary: 'Done.' }
);

/** A notebook with one cell of the person's, and no undo history. */
function personNotebook(options: NotebookModel.IOptions = {}): NotebookModel {
  const model = new NotebookModel(options);
  model.fromJSON({
    nbformat: 4,
    nbformat_minor: 5,
    metadata: {},
    cells: [
      {
        id: 'person-1',
        cell_type: 'code',
        source: 'x = 1',
        metadata: { tags: ['mine'] },
        outputs: [],
        execution_count: null
      }
    ]
  });
  model.sharedModel.clearUndoHistory();
  return model;
}

/** What the notebook holds, cell by cell, in order. */
function cells(model: NotebookModel) {
  return model.sharedModel.cells.map(cell => ({
    id: cell.getId(),
    type: cell.cell_type,
    source: cell.getSource(),
    state: (cell.getMetadata(METADATA_KEY) as { state?: string } | undefined)
      ?.state,
    ...(cell.cell_type === 'code'
      ? {
          outputs: (cell as ISharedCodeCell).getOutputs(),
          executionCount: (cell as ISharedCodeCell).execution_count
        }
      : {})
  }));
}

const PERSON = {
  id: 'person-1',
  type: 'code',
  source: 'x = 1',
  state: undefined,
  outputs: [],
  executionCount: null
};

/** Applies the events of RUN from `from` up to (not including) `to`. */
function applyRun(
  writer: NotebookCellWriter,
  from: number,
  to = RUN.length,
  options?: { undoable?: boolean }
): void {
  RUN.slice(from, to).forEach(event => writer.apply(event, options));
}

describe('NotebookCellWriter', () => {
  it('writes a run into the notebook, phase by phase, by cell id', () => {
    const model = personNotebook();
    const writer = new NotebookCellWriter(model);

    applyRun(writer, 0, 2);
    expect(cells(model)).toEqual([
      PERSON,
      {
        id: 'agent-1',
        type: 'code',
        source: '',
        state: 'proposed',
        outputs: [],
        executionCount: null
      }
    ]);
    expect(model.sharedModel.cells[1].getMetadata(METADATA_KEY)).toEqual(
      provenance('proposed')[METADATA_KEY]
    );

    applyRun(writer, 2, 4);
    expect(cells(model)[1].source).toBe(
      'import math\nprint(round(math.pi, 5))'
    );

    applyRun(writer, 4, 5);
    expect(cells(model)[1]).toMatchObject({
      outputs: [PI_OUTPUT],
      executionCount: 1
    });
    // The view's own model of the outputs follows the shared one.
    expect((model.cells.get(1) as ICodeCellModel).outputs.length).toBe(1);

    applyRun(writer, 5, 6);
    expect(cells(model).map(cell => [cell.id, cell.type, cell.source])).toEqual(
      [
        ['person-1', 'code', 'x = 1'],
        ['agent-1', 'code', 'import math\nprint(round(math.pi, 5))'],
        ['agent-2', 'markdown', '# Pi']
      ]
    );

    applyRun(writer, 6, 7);
    expect(cells(model).map(cell => cell.state)).toEqual([
      undefined,
      'accepted',
      'proposed'
    ]);
    expect(model.sharedModel.cells[1].getMetadata(METADATA_KEY)).toEqual(
      provenance('accepted')[METADATA_KEY]
    );

    applyRun(writer, 7, 8);
    expect(cells(model).map(cell => cell.id)).toEqual(['person-1', 'agent-1']);

    applyRun(writer, 8, 10);
    expect(cells(model)[2]).toEqual({
      id: 'agent-3',
      type: 'markdown',
      source: 'Draft',
      state: 'proposed'
    });

    applyRun(writer, 10, 11);
    expect(cells(model)[2].source).toBe('');

    applyRun(writer, 11, 14);
    expect(cells(model)[2].source).toBe('Pi, to five places.');

    applyRun(writer, 14);
    expect(cells(model)).toEqual([
      {
        id: 'agent-3',
        type: 'markdown',
        source: 'Pi, to five places.',
        state: 'proposed'
      },
      PERSON,
      {
        id: 'agent-1',
        type: 'code',
        source: 'import math\nprint(round(math.pi, 5))',
        state: 'accepted',
        outputs: [PI_OUTPUT],
        executionCount: 1
      }
    ]);
    expect(model.sharedModel.cells[1].getMetadata('tags')).toEqual(['mine']);
  });

  it('keeps what the person types mid-stream, in their cell and in the agent’s', () => {
    const model = personNotebook();
    const writer = new NotebookCellWriter(model);
    applyRun(writer, 0, 3);
    const person = model.sharedModel.cells[0];
    person.updateSource(5, 5, '\ny = 2');
    const agent = model.sharedModel.cells[1];
    agent.updateSource(0, 0, '# the person’s note\n');

    applyRun(writer, 3, 5);

    expect(person.getSource()).toBe('x = 1\ny = 2');
    expect(agent.getSource()).toBe(
      '# the person’s note\nimport math\nprint(round(math.pi, 5))'
    );
  });

  it('updates a cell proposed twice instead of adding a second', () => {
    const model = personNotebook();
    const writer = new NotebookCellWriter(model);
    const first = proposed('agent-1', 1, { source: 'a = 1' });
    const again = log(
      first,
      first,
      proposed('agent-1', 0, { source: 'a = 2' })
    );

    writer.apply(again[0]);
    writer.apply(again[1]);
    expect(cells(model).map(cell => [cell.id, cell.source])).toEqual([
      ['person-1', 'x = 1'],
      ['agent-1', 'a = 1']
    ]);
    writer.apply(again[2]);

    expect(cells(model).map(cell => [cell.id, cell.source])).toEqual([
      ['person-1', 'x = 1'],
      ['agent-1', 'a = 2']
    ]);
  });

  it('skips events for a cell that is not in the notebook', () => {
    const model = personNotebook();
    const writer = new NotebookCellWriter(model);
    applyRun(writer, 0, 2);
    model.sharedModel.deleteCell(1);
    const before = cells(model);

    expect(() => applyRun(writer, 2, 8)).not.toThrow();
    expect(() =>
      log(
        delta('gone', 'x'),
        { type: 'cell_edited', cell_id: 'gone', source: 'x' },
        { type: 'cell_moved', cell_id: 'gone', index: 0, after_cell_id: null },
        { type: 'cell_accepted', cell_id: 'gone' },
        { type: 'cell_rejected', cell_id: 'gone' }
      ).forEach(event => writer.apply(event))
    ).not.toThrow();

    // agent-2 was proposed anew, then rejected; the deleted agent-1 stays deleted.
    expect(cells(model)).toEqual(before);
  });

  it('keeps the cell ids of a notebook older than nbformat 4.5 when it is saved', () => {
    const model = new NotebookModel();
    model.fromJSON({
      nbformat: 4,
      nbformat_minor: 4,
      metadata: {},
      cells: [{ cell_type: 'markdown', source: '# Mine', metadata: {} }]
    });
    const writer = new NotebookCellWriter(model);

    writer.apply(log(proposed('agent-1', 1, { source: 'a = 1' }))[0]);

    const saved = model.toJSON();
    expect(saved.nbformat_minor).toBe(5);
    expect(saved.cells[1].id).toBe('agent-1');
  });

  describe('replaying the log from seq 0', () => {
    it('does not rewrite the cells a notebook already holds', () => {
      const done = personNotebook();
      applyRun(new NotebookCellWriter(done), 0);
      const reopened = new NotebookModel();
      reopened.fromJSON(done.toJSON());
      // agent-3 is written through its versions again: the log passes "Draft" first.
      const [, person, agent1] = reopened.sharedModel.cells;
      const changes = jest.fn();
      person.changed.connect(changes);
      agent1.changed.connect(changes);

      applyRun(new NotebookCellWriter(reopened), 0, undefined, {
        undoable: false
      });

      expect(cells(reopened)).toEqual(cells(done));
      expect(changes).not.toHaveBeenCalled();
    });

    it('appends only what a half-written cell lacks, then goes on live', () => {
      const model = personNotebook();
      model.sharedModel.insertCell(1, {
        id: 'agent-1',
        cell_type: 'code',
        source: 'import math\npr',
        metadata: provenance('proposed')
      });
      const edits: unknown[] = [];
      model.sharedModel.cells[1].changed.connect((_, change) =>
        edits.push(change.sourceChange)
      );
      const writer = new NotebookCellWriter(model);

      applyRun(writer, 0, 4, { undoable: false });

      expect(edits).toEqual([
        [{ retain: 14 }, { insert: 'int(round(math.pi, 5))' }]
      ]);
      applyRun(writer, 4);
      expect(cells(model)).toEqual(cells(runFromScratch()));
    });

    it('adds no undo step', () => {
      const model = personNotebook();
      applyRun(new NotebookCellWriter(model), 0, undefined, {
        undoable: false
      });

      expect(model.sharedModel.canUndo()).toBe(false);
    });
  });

  describe('undo', () => {
    it('takes a streamed cell back in one step, per-cell undo (the default)', () => {
      const model = personNotebook();
      const writer = new NotebookCellWriter(model);
      applyRun(writer, 0, 7);
      model.sharedModel.cells[0].updateSource(5, 5, '\ny = 2');
      // Ctrl+Z in the agent's cell does not take its text back a few tokens at a time.
      expect(model.sharedModel.cells[1].canUndo()).toBe(false);

      // agent-2's insertion is the last step; agent-1's the one before.
      model.sharedModel.undo();
      expect(cells(model).map(cell => cell.id)).toEqual([
        'person-1',
        'agent-1'
      ]);
      model.sharedModel.undo();

      expect(cells(model).map(cell => [cell.id, cell.source])).toEqual([
        ['person-1', 'x = 1\ny = 2']
      ]);
      expect(model.sharedModel.canUndo()).toBe(false);
    });

    it('keeps the person’s steps apart from the agent’s, document-wide undo', () => {
      const model = personNotebook({ disableDocumentWideUndoRedo: false });
      const writer = new NotebookCellWriter(model);
      const person = model.sharedModel.cells[0];
      person.updateSource(5, 5, '\ny = 2');
      applyRun(writer, 0, 4);
      person.updateSource(0, 0, '# mine\n');
      applyRun(writer, 4, 5);

      model.sharedModel.undo();
      expect(cells(model).map(cell => [cell.id, cell.source])).toEqual([
        ['person-1', 'x = 1\ny = 2'],
        ['agent-1', 'import math\nprint(round(math.pi, 5))']
      ]);
      model.sharedModel.undo();
      expect(cells(model).map(cell => cell.id)).toEqual(['person-1']);
      model.sharedModel.undo();
      expect(cells(model)).toEqual([PERSON]);
    });
  });
});

function runFromScratch(): NotebookModel {
  const model = personNotebook();
  applyRun(new NotebookCellWriter(model), 0);
  return model;
}

describe('ProposedCellMarker', () => {
  function setUp() {
    const model = personNotebook();
    const notebook = NBTestUtils.createNotebook();
    notebook.model = model;
    Widget.attach(notebook, document.body);
    const earlier = new Map<string, string>();
    const actions = {
      accept: jest.fn(),
      reject: jest.fn(),
      regenerate: jest.fn(),
      earlierSource: (cellId: string) => earlier.get(cellId) ?? null
    };
    const marker = new ProposedCellMarker(notebook, actions);
    const writer = new NotebookCellWriter(model);
    return { model, notebook, actions, marker, writer, earlier };
  }

  function buttons(notebook: ReturnType<typeof setUp>['notebook'], i: number) {
    return Array.from(
      notebook.widgets[i].node.querySelectorAll<HTMLButtonElement>(
        '.jp-NotebookAgent-proposedToolbar button'
      )
    ).filter(button => !button.hidden);
  }

  it('marks proposed cells, with buttons that call the actions', async () => {
    const { notebook, actions, marker, writer } = setUp();
    applyRun(writer, 0, 6);

    expect(
      notebook.widgets.map(cell => cell.hasClass(PROPOSED_CELL_CLASS))
    ).toEqual([false, true, true]);
    const [accept, reject, regenerate] = buttons(notebook, 1);
    expect([accept, reject, regenerate].map(b => b.textContent)).toEqual([
      'Accept',
      'Reject',
      'Regenerate…'
    ]);
    expect(buttons(notebook, 0)).toEqual([]);

    accept.click();
    reject.click();
    expect(actions.accept).toHaveBeenCalledWith('agent-1');
    expect(actions.reject).toHaveBeenCalledWith('agent-1');

    const regenerated = new Promise(resolve =>
      actions.regenerate.mockImplementation((...args) => resolve(args))
    );
    regenerate.click();
    await waitForDialog();
    const instruction = document.querySelector<HTMLTextAreaElement>(
      '.jp-Dialog textarea'
    )!;
    instruction.value = ' plot it on a log scale ';
    await acceptDialog();
    expect(await regenerated).toEqual(['agent-1', 'plot it on a log scale']);

    marker.dispose();
    notebook.dispose();
  });

  it('follows acceptance, rejection and moves', () => {
    const { notebook, marker, writer } = setUp();
    applyRun(writer, 0, 6);

    applyRun(writer, 6, 7);
    expect(notebook.widgets[1].hasClass(PROPOSED_CELL_CLASS)).toBe(false);
    expect(buttons(notebook, 1)).toEqual([]);

    applyRun(writer, 7);
    expect(
      notebook.widgets.map(cell => [
        cell.model.id,
        cell.hasClass(PROPOSED_CELL_CLASS),
        buttons(notebook, notebook.widgets.indexOf(cell)).length
      ])
    ).toEqual([
      ['agent-3', true, 3],
      ['person-1', false, 0],
      ['agent-1', false, 0]
    ]);

    marker.dispose();
    expect(notebook.widgets[0].hasClass(PROPOSED_CELL_CLASS)).toBe(false);
    expect(buttons(notebook, 0)).toEqual([]);
    notebook.dispose();
  });

  it('shows what a rewrite changed, following the source, until accepted', () => {
    const { model, notebook, marker, writer, earlier } = setUp();
    applyRun(writer, 0, 4);
    expect(buttons(notebook, 1).map(b => b.textContent)).not.toContain(
      'Changes'
    );
    earlier.set('agent-1', 'import math\nprint(math.pi)');
    model.sharedModel.cells[1].setSource(
      'import math\nprint(round(math.pi, 5))'
    );
    const changes = buttons(notebook, 1)[3];
    expect(changes.textContent).toBe('Changes');
    changes.click();
    const diff = () =>
      notebook.widgets[1].node.querySelector(
        '.jp-NotebookAgent-proposedToolbar-diff'
      );
    expect(changes.getAttribute('aria-expanded')).toBe('true');
    expect(
      Array.from(diff()!.children).map(row => [row.tagName, row.textContent])
    ).toEqual([
      ['SPAN', '  import math\n'],
      ['DEL', '- print(math.pi)\n'],
      ['INS', '+ print(round(math.pi, 5))\n']
    ]);
    changes.click();
    expect(diff()).toBeNull();
    marker.dispose();
    notebook.dispose();
  });

  it('renders a markdown cell once it is accepted', () => {
    const { notebook, marker, writer } = setUp();
    const markdown = log(
      proposed('agent-1', 1, {
        source: '# Results',
        cellType: 'markdown',
        after: 'person-1'
      }),
      { type: 'cell_accepted', cell_id: 'agent-1' }
    );
    writer.apply(markdown[0]);
    const cell = notebook.widgets[1] as MarkdownCell;
    cell.rendered = false; // as the agent wrote it
    writer.apply(markdown[1]);
    expect(cell.rendered).toBe(true);
    marker.dispose();
    notebook.dispose();
  });

  it('disables the buttons while an action is pending', async () => {
    const { notebook, actions, marker, writer } = setUp();
    applyRun(writer, 0, 2);
    let settle = () => {};
    actions.accept.mockReturnValue(
      new Promise<void>(resolve => (settle = resolve))
    );

    buttons(notebook, 1)[0].click();
    expect(buttons(notebook, 1).map(button => button.disabled)).toEqual([
      true,
      true,
      true
    ]);
    settle();
    await framePromise();
    expect(buttons(notebook, 1).map(button => button.disabled)).toEqual([
      false,
      false,
      false
    ]);

    notebook.dispose();
    expect(marker.isDisposed).toBe(true);
  });
});

describe('placing cells in a notebook the person changed', () => {
  it('puts a cell after its neighbour, wherever the neighbour now is', () => {
    const model = personNotebook();
    const writer = new NotebookCellWriter(model);
    const events = log(
      proposed('agent-1', 1, { source: 'a = 1', after: 'person-1' }),
      proposed('agent-2', 2, { source: 'b = 2', after: 'agent-1' })
    );
    writer.apply(events[0]);
    // The person adds two cells on top meanwhile: the server's index 2 is stale now.
    model.sharedModel.insertCells(0, [
      { cell_type: 'code', source: 'new_1', id: 'person-2' },
      { cell_type: 'code', source: 'new_2', id: 'person-3' }
    ]);
    writer.apply(events[1]);
    expect(cells(model).map(cell => cell.id)).toEqual([
      'person-2',
      'person-3',
      'person-1',
      'agent-1',
      'agent-2'
    ]);
  });

  it('marks an edited cell proposed again when the server says so', () => {
    const model = personNotebook();
    const writer = new NotebookCellWriter(model);
    for (const event of log(
      proposed('agent-1', 1, { source: 'a = 1', after: 'person-1' }),
      { type: 'cell_accepted', cell_id: 'agent-1' },
      {
        type: 'cell_edited',
        cell_id: 'agent-1',
        source: 'a = 2',
        version: 1,
        state: 'proposed'
      }
    )) {
      writer.apply(event);
    }
    expect(cells(model)[1]).toMatchObject({
      source: 'a = 2',
      state: 'proposed'
    });
  });
});

describe('outputs of a cell that runs again', () => {
  it('replaces a stream output, never merges the old into the new', () => {
    const model = personNotebook();
    const writer = new NotebookCellWriter(model);
    const stream = (text: string) => ({
      output_type: 'stream',
      name: 'stdout',
      text
    });
    for (const event of log(
      proposed('agent-1', 1, { source: 'print(20)', after: 'person-1' }),
      {
        type: 'cell_outputs',
        cell_id: 'agent-1',
        status: 'ok',
        outputs: [stream('20\n')],
        execution_count: 1
      },
      {
        type: 'cell_outputs',
        cell_id: 'agent-1',
        status: 'ok',
        outputs: [stream('30\n')],
        execution_count: 2
      }
    )) {
      writer.apply(event);
    }
    const cell = model.cells.get(1) as ICodeCellModel;
    expect(cell.outputs.toJSON()).toEqual([stream('30\n')]);
    expect(
      (model.sharedModel.cells[1] as ISharedCodeCell).getOutputs()
    ).toEqual([stream('30\n')]);
  });
});

describe('a cell while it runs', () => {
  const stream = (text: string) => ({
    output_type: 'stream',
    name: 'stdout',
    text
  });
  const image = {
    output_type: 'display_data',
    data: { 'text/plain': '<Figure>' },
    metadata: {}
  };
  const outputs = (
    status: 'running' | 'ok',
    list: Record<string, unknown>[],
    count: number | null = null
  ): EventBody => ({
    type: 'cell_outputs',
    cell_id: 'agent-1',
    status,
    outputs: list as { output_type: string }[],
    execution_count: count
  });
  const running: EventBody = { type: 'cell_running', cell_id: 'agent-1' };

  /** A notebook, and a writer to which each call applies the run's next event. */
  function runningCell(): {
    apply: (body: EventBody) => void;
    cell: () => ICodeCellModel;
  } {
    const model = personNotebook();
    const writer = new NotebookCellWriter(model);
    let seq = 0;
    const apply = (body: EventBody): void =>
      writer.apply({ ...body, seq: seq++ } as RunEvent);
    apply(proposed('agent-1', 1, { source: 'slow()', after: 'person-1' }));
    return { apply, cell: () => model.cells.get(1) as ICodeCellModel };
  }

  it('shows [*] and its outputs as they come, then its count', () => {
    const { apply, cell } = runningCell();
    apply(running);
    expect(cell().executionState).toBe('running');
    apply(outputs('running', [image, stream('step 0\n')]));
    const [figure, printed] = [cell().outputs.get(0), cell().outputs.get(1)];
    expect(cell().outputs.toJSON()).toEqual([image, stream('step 0\n')]);
    apply(outputs('running', [image, stream('step 0\nstep 1\n')]));
    expect(cell().outputs.toJSON()).toEqual([
      image,
      stream('step 0\nstep 1\n')
    ]);
    // What did not change is not drawn again; the printed text grows in place.
    expect(cell().outputs.get(0)).toBe(figure);
    expect(cell().outputs.get(1)).toBe(printed);
    expect(cell().executionState).toBe('running');
    apply(outputs('ok', [image, stream('step 0\nstep 1\nstep 2\n')], 3));
    expect(cell().outputs.toJSON()).toEqual([
      image,
      stream('step 0\nstep 1\nstep 2\n')
    ]);
    expect(cell().executionState).toBe('idle');
    expect(cell().executionCount).toBe(3);
  });

  it('clears the outputs of its last run as it runs again, which leaves it unmodified', () => {
    const { apply, cell } = runningCell();
    apply(running);
    apply(outputs('ok', [stream('1\n')], 1));
    apply({ type: 'cell_edited', cell_id: 'agent-1', source: 'slower()' });
    expect(cell().isDirty).toBe(true);
    apply(running);
    expect(cell().outputs.length).toBe(0);
    expect(cell().executionState).toBe('running');
    expect(cell().isDirty).toBe(false);
  });

  it('takes a stream rewritten after another output (a progress line) whole', () => {
    const { apply, cell } = runningCell();
    apply(running);
    apply(outputs('running', [image, stream('10%')]));
    apply(outputs('running', [image, stream('20%')]));
    apply(outputs('ok', [image, stream('done')], 4));
    expect(cell().outputs.toJSON()).toEqual([image, stream('done')]);
  });

  it('leaves a finished cell alone when its log is replayed on opening', () => {
    const model = personNotebook();
    const events = log(
      proposed('agent-1', 1, { source: 'slow()', after: 'person-1' }),
      running,
      outputs('running', [stream('step 0\n')]),
      outputs('ok', [stream('step 0\nstep 1\n')], 2)
    );
    const live = new NotebookCellWriter(model);
    events.forEach(event => live.apply(event));
    const changes = jest.fn();
    model.sharedModel.cells[1].changed.connect(changes);
    const reopened = new NotebookCellWriter(model);
    events.forEach(event => reopened.apply(event, { undoable: false }));
    expect(changes).not.toHaveBeenCalled();
    expect((model.cells.get(1) as ICodeCellModel).outputs.toJSON()).toEqual([
      stream('step 0\nstep 1\n')
    ]);
  });

  it('is no longer marked running when the log ends mid-cell', () => {
    const { apply, cell } = runningCell();
    apply(running);
    apply(outputs('running', [stream('step 0\n')]));
    apply({
      type: 'run_finished',
      success: false,
      reason: 'interrupted',
      summary: ''
    });
    expect(cell().executionState).toBe('idle');
    expect(cell().outputs.toJSON()).toEqual([stream('step 0\n')]);
  });
});

describe('a rejection undone', () => {
  it('puts the cell back where it was, with its outputs, proposed', () => {
    const model = personNotebook();
    const writer = new NotebookCellWriter(model);
    const output = { output_type: 'stream', name: 'stdout', text: '2\n' };
    const events = log(
      proposed('agent-1', 1, { source: 'print(2)', after: 'person-1' }),
      {
        type: 'cell_outputs',
        cell_id: 'agent-1',
        status: 'ok',
        outputs: [output],
        execution_count: 4
      },
      { type: 'cell_rejected', cell_id: 'agent-1' },
      {
        type: 'cell_restored',
        cell_id: 'agent-1',
        cell_type: 'code',
        source: 'print(2)',
        index: 1,
        after_cell_id: 'person-1',
        metadata: provenance('proposed'),
        outputs: [output],
        execution_count: 4
      }
    );
    events.slice(0, 3).forEach(event => writer.apply(event));
    expect(model.cells.length).toBe(1);
    writer.apply(events[3]);
    writer.apply(events[3]); // a replay does not add it twice
    const cells = model.sharedModel.cells.map(cell => cell.toJSON());
    expect(cells.map(cell => cell.id)).toEqual(['person-1', 'agent-1']);
    expect(cells[1]).toMatchObject({
      source: 'print(2)',
      outputs: [output],
      execution_count: 4,
      metadata: provenance('proposed')
    });
  });
});
