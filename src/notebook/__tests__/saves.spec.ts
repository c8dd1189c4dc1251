import { Signal } from '@lumino/signaling';

import { ISavable, NotebookSaves } from '../saves';

/** A document context as JupyterLab's behaves: a save says started, then completed, and the
 * test decides when each save ends. */
class Context implements ISavable {
  model = { dirty: true };
  saveState = new Signal<unknown, string>(this);
  /** The saves in flight at once, at most, over the test. */
  mostAtOnce = 0;
  saves = 0;
  private inFlight: (() => void)[] = [];

  save(): Promise<void> {
    this.saves += 1;
    this.saveState.emit('started');
    this.mostAtOnce = Math.max(this.mostAtOnce, this.inFlight.length + 1);
    return new Promise(resolve =>
      this.inFlight.push(() => {
        this.model.dirty = false;
        this.saveState.emit('completed');
        resolve();
      })
    );
  }

  /** Ends the oldest save in flight. */
  finishOne(): void {
    this.inFlight.shift()?.();
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) {
    await Promise.resolve();
  }
}

describe('NotebookSaves', () => {
  afterEach(() => jest.useRealTimers());

  it('waits for a save under way (autosave) before it saves', async () => {
    const context = new Context();
    const saves = new NotebookSaves(context);
    void context.save(); // autosave, in flight
    context.model.dirty = true;
    const mine = saves.save();
    await settle();
    expect(context.mostAtOnce).toBe(1);
    context.finishOne();
    context.model.dirty = true; // changed since: the panel's save is still due
    await settle();
    context.finishOne();
    await mine;
    expect(context.saves).toBe(2);
    expect(context.mostAtOnce).toBe(1);
  });

  it('makes its own saves one at a time, and skips one with nothing to save', async () => {
    const context = new Context();
    const saves = new NotebookSaves(context);
    const first = saves.save();
    const second = saves.save();
    await settle();
    context.finishOne();
    await Promise.all([first, second]);
    expect(context.saves).toBe(1);
    expect(context.mostAtOnce).toBe(1);
  });

  it('does not wait for good on a save that never says it ended', async () => {
    jest.useFakeTimers();
    const context = new Context();
    const saves = new NotebookSaves(context);
    context.saveState.emit('started'); // the person cancelled its "File Changed" dialog
    const mine = saves.save();
    await settle();
    expect(context.saves).toBe(0);
    jest.advanceTimersByTime(10_000);
    await settle();
    context.finishOne();
    await mine;
    expect(context.saves).toBe(1);
  });
});
