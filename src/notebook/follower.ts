import type { Notebook } from '@jupyterlab/notebook';
import { IDisposable } from '@lumino/disposable';

import { METADATA_KEY } from '../model/events';

/** What the person does to move about a notebook themselves. */
const MOVES = ['wheel', 'touchmove', 'keydown', 'pointerdown'] as const;

/**
 * Keeps the agent's cell in view as the agent writes or runs it, as the notebook does for the
 * person's own cells, until the person moves elsewhere: once they have moved since the last
 * cell was shown and that cell is out of view, the notebook stays where they put it. Bringing
 * that cell back into view (or `show`) makes it follow again.
 */
export class CellFollower implements IDisposable {
  constructor(private readonly notebook: Notebook) {
    for (const kind of MOVES) {
      notebook.node.addEventListener(kind, this._moved, {
        capture: true,
        passive: true
      });
    }
  }

  /** Brings the cell into view, unless the person moved away from the one shown last, or
   * is typing in a cell of their own (the notebook would scroll their cursor away). */
  follow(cellId: string): void {
    if (this._shown !== null && this._personMoved && !this._inView()) {
      return;
    }
    const editing = this.notebook.activeCell;
    if (
      this.notebook.mode === 'edit' &&
      editing &&
      editing.model.getMetadata(METADATA_KEY) === undefined
    ) {
      return;
    }
    this.show(cellId);
  }

  /** Brings the cell into view, whatever the person did. */
  show(cellId: string): Promise<void> {
    const index = this._indexOf(cellId);
    if (index < 0) {
      return Promise.resolve();
    }
    this._shown = cellId;
    this._personMoved = false;
    return this.notebook.scrollToItem(index, 'smart');
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    for (const kind of MOVES) {
      this.notebook.node.removeEventListener(kind, this._moved, {
        capture: true
      });
    }
  }

  /** Whether the cell shown last is on screen, in part at least. */
  private _inView(): boolean {
    const index = this._indexOf(this._shown ?? '');
    const cell = index < 0 ? undefined : this.notebook.widgets[index];
    if (!cell || !cell.node.isConnected) {
      return false; // removed, or not rendered: far from where the person is
    }
    const shown = cell.node.getBoundingClientRect();
    const view = this.notebook.node.getBoundingClientRect();
    return shown.bottom > view.top && shown.top < view.bottom;
  }

  private _indexOf(cellId: string): number {
    return this.notebook.widgets.findIndex(cell => cell.model.id === cellId);
  }

  private readonly _moved = (): void => {
    this._personMoved = true;
  };
  private _shown: string | null = null;
  private _personMoved = false;
  private _isDisposed = false;
}
