import { ISignal } from '@lumino/signaling';

/** What of a document context the panel's saves need (JupyterLab's DocumentContext). */
export interface ISavable {
  readonly model: { readonly dirty: boolean };
  /** started, then completed or failed; a save the person cancels in a dialog ends with
   * neither. */
  readonly saveState: ISignal<unknown, string>;
  save(): Promise<void>;
}

/** How long a save of the panel waits for one under way that never says it ended. */
const WAIT_LIMIT_MS = 10_000;

/**
 * The saves the panel makes of a notebook (before a run, after one), one at a time and never
 * while another save of it is under way. A save that starts while another is in flight finds
 * that first save's file on disk, newer than what it knows, and asks the person "File Changed:
 * overwrite or revert?"; JupyterLab's autosave and the panel's saves would meet so.
 */
export class NotebookSaves {
  constructor(private readonly context: ISavable) {
    context.saveState.connect(this._saveStateChanged, this);
  }

  /** Saves the notebook if it has changes, after the panel's earlier saves and any save
   * under way (waiting at most WAIT_LIMIT_MS for one that never says it ended). */
  save(): Promise<void> {
    const next = this._last.then(async () => {
      await this._underWayEnded();
      if (this.context.model.dirty) {
        await this.context.save();
      }
    });
    this._last = next.catch(() => undefined);
    return next;
  }

  dispose(): void {
    this.context.saveState.disconnect(this._saveStateChanged, this);
  }

  private _underWayEnded(): Promise<void> {
    if (this._underWay === 0) {
      return Promise.resolve();
    }
    return new Promise<void>(resolve => {
      const timer = setTimeout(() => {
        this._underWay = 0; // it never said it ended: the person cancelled its dialog
        done();
      }, WAIT_LIMIT_MS);
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this._waiting.push(done);
    });
  }

  private _saveStateChanged(_: unknown, state: string): void {
    this._underWay = Math.max(
      0,
      this._underWay + (state === 'started' ? 1 : -1)
    );
    if (this._underWay === 0) {
      this._waiting.splice(0).forEach(done => done());
    }
  }

  private _underWay = 0;
  private _waiting: (() => void)[] = [];
  private _last: Promise<void> = Promise.resolve();
}
