import { Dialog, showDialog } from '@jupyterlab/apputils';
import type { Cell, ICellModel, MarkdownCell } from '@jupyterlab/cells';
import type { Notebook, NotebookPanel } from '@jupyterlab/notebook';
import {
  ITranslator,
  nullTranslator,
  TranslationBundle
} from '@jupyterlab/translation';
import type { IDisposable } from '@lumino/disposable';
import { Signal } from '@lumino/signaling';
import { PanelLayout, Widget } from '@lumino/widgets';

import { ICellProvenance, METADATA_KEY } from '../model/events';
import { lineDiff } from './lineDiff';

/** How a line of a diff begins, as in a unified diff. */
const SIGNS = { same: ' ', removed: '-', added: '+' } as const;

/** The class of a cell the agent proposed and the person has not accepted yet. */
export const PROPOSED_CELL_CLASS = 'jp-NotebookAgent-proposed';

const TOOLBAR_CLASS = 'jp-NotebookAgent-proposedToolbar';

/**
 * What the buttons of a proposed cell do; the marker knows nothing of how. A returned promise
 * keeps the cell's buttons disabled until it settles, so a click cannot be sent twice.
 */
export interface IProposedCellActions {
  accept(cellId: string): void | Promise<unknown>;
  reject(cellId: string): void | Promise<unknown>;
  regenerate(cellId: string, instruction: string): void | Promise<unknown>;
  /** The cell's source before the agent last rewrote it; null for a cell never rewritten. */
  earlierSource(cellId: string): string | null;
}

/**
 * Keeps every cell of a notebook whose metadata says `notebook_agent.state: 'proposed'` marked
 * with PROPOSED_CELL_CLASS and topped with an Accept / Reject / Regenerate toolbar, as cells come
 * and go and their metadata changes. It follows the notebook's model at construction.
 */
export class ProposedCellMarker implements IDisposable {
  constructor(
    widget: Notebook | NotebookPanel,
    private readonly _actions: IProposedCellActions,
    translator: ITranslator = nullTranslator
  ) {
    this._trans = translator.load('jupyter_notebook_agent');
    this._notebook = 'content' in widget ? widget.content : widget;
    this._notebook.model?.cells.changed.connect(this._update, this);
    this._notebook.disposed.connect(this.dispose, this);
    this._update();
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /** Removes every marking and stops following the notebook. */
  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    Signal.disconnectReceiver(this);
    // A disposed notebook took its cells, and their toolbars, with it.
    if (!this._notebook.isDisposed) {
      for (const cell of this._notebook.widgets) {
        this._mark(cell, false);
      }
    }
  }

  private _update(): void {
    for (const cell of this._notebook.widgets) {
      // Connecting again is a no-op: each cell model is followed once.
      cell.model.metadataChanged.connect(this._update, this);
      this._mark(cell, isProposed(cell.model));
    }
  }

  private _mark(cell: Cell, proposed: boolean): void {
    cell.toggleClass(PROPOSED_CELL_CLASS, proposed);
    // In the cell's own layout, first, as JupyterLab's cell toolbar: the layout keeps it in
    // place when a windowed notebook detaches and attaches the cell.
    const layout = cell.layout as PanelLayout;
    const toolbar = layout.widgets.find(
      child => child instanceof ProposedCellToolbar
    );
    if (proposed && !toolbar) {
      layout.insertWidget(
        0,
        new ProposedCellToolbar(cell.model, this._actions, this._trans)
      );
    } else if (!proposed && toolbar) {
      toolbar.dispose();
      // Accepted, markdown reads as the person's own does: rendered.
      if (cell.model.type === 'markdown' && !this._isDisposed) {
        (cell as MarkdownCell).rendered = true;
      }
    }
  }

  private readonly _notebook: Notebook;
  private readonly _trans: TranslationBundle;
  private _isDisposed = false;
}

function isProposed(model: ICellModel): boolean {
  const provenance = model.getMetadata(METADATA_KEY) as
    Partial<ICellProvenance> | undefined;
  return provenance?.state === 'proposed';
}

/**
 * What the person wants changed in a cell to regenerate: '' to just try again, null when
 * they cancelled. The toolbar's button and the palette's command both ask this way.
 */
export async function askForInstruction(
  trans: TranslationBundle
): Promise<string | null> {
  const answer = await showDialog({
    title: trans.__('Regenerate the cell'),
    body: new InstructionBody(trans),
    buttons: [
      Dialog.cancelButton({ label: trans.__('Cancel') }),
      Dialog.okButton({ label: trans.__('Regenerate') })
    ],
    focusNodeSelector: 'textarea'
  });
  return answer.button.accept ? (answer.value?.trim() ?? '') : null;
}

/** A few lines for what should change: an instruction is often a sentence or two. */
class InstructionBody extends Widget implements Dialog.IBodyWidget<string> {
  constructor(trans: TranslationBundle) {
    super();
    const label = document.createElement('label');
    label.textContent = trans.__(
      'What should change? Leave empty to just try again.'
    );
    this._text.rows = 4;
    this._text.className = 'jp-NotebookAgent-instruction';
    this._text.placeholder = trans.__('e.g. plot it on a log scale');
    // Enter regenerates, as in a one-line box; Shift+Enter starts a new line.
    this._text.addEventListener('keydown', event => {
      if (event.key === 'Enter' && !event.shiftKey) {
        event.preventDefault();
        this.node
          .closest('.jp-Dialog')
          ?.querySelector<HTMLButtonElement>('.jp-mod-accept')
          ?.click();
      }
    });
    label.append(this._text);
    this.node.append(label);
  }

  getValue(): string {
    return this._text.value;
  }

  private readonly _text = document.createElement('textarea');
}

/** Accept, Reject and Regenerate for one proposed cell: real buttons, so Tab reaches them and
 * Enter or Space presses them. */
class ProposedCellToolbar extends Widget {
  constructor(
    private readonly _cell: ICellModel,
    private readonly _actions: IProposedCellActions,
    private readonly _trans: TranslationBundle
  ) {
    super();
    this.addClass(TOOLBAR_CLASS);
    this.node.setAttribute('role', 'toolbar');
    this.node.setAttribute('aria-label', _trans.__('Proposed by the agent'));
    // Keys pressed on the buttons are theirs: Enter would otherwise reach the notebook's
    // shortcuts and put the cell in edit mode.
    this.node.setAttribute('data-lm-suppress-shortcuts', 'true');
    const label = document.createElement('span');
    label.className = `${TOOLBAR_CLASS}-label`;
    label.textContent = _trans.__('Proposed by the agent');
    this.node.append(
      label,
      this._button(
        _trans.__('Accept'),
        _trans.__('Keep this cell'),
        'jp-mod-accept',
        () => _actions.accept(_cell.id)
      ),
      this._button(
        _trans.__('Reject'),
        _trans.__('Remove this cell'),
        'jp-mod-reject',
        () => _actions.reject(_cell.id)
      ),
      this._button(
        _trans.__('Regenerate…'),
        _trans.__('Ask the agent to rewrite this cell'),
        'jp-mod-regenerate',
        () => this._regenerate()
      ),
      this._changes
    );
    this._changes.type = 'button';
    this._changes.className = `${TOOLBAR_CLASS}-button jp-mod-changes`;
    this._changes.textContent = _trans.__('Changes');
    this._changes.title = _trans.__(
      'What the agent changed when it rewrote it'
    );
    this._changes.addEventListener('click', () => this._toggleChanges());
    this._diff.className = `${TOOLBAR_CLASS}-diff`;
    this._diff.setAttribute('aria-label', _trans.__('Changes'));
    _cell.contentChanged.connect(this._showChanges, this);
    this._showChanges();
  }

  /** Changes is offered once the agent rewrote the cell; open, it follows the source. */
  private _showChanges(): void {
    const before = this._actions.earlierSource(this._cell.id);
    const after = this._cell.sharedModel.getSource();
    const changed = before !== null && before !== after;
    this._changes.hidden = !changed;
    this._changes.setAttribute('aria-expanded', String(this._open && changed));
    if (!this._open || !changed) {
      this._diff.remove();
      return;
    }
    this._diff.replaceChildren(
      ...lineDiff(before, after).map(line => {
        const row = document.createElement(
          line.kind === 'removed'
            ? 'del'
            : line.kind === 'added'
              ? 'ins'
              : 'span'
        );
        row.className = `jp-mod-${line.kind}`;
        row.textContent = `${SIGNS[line.kind]} ${line.text}\n`;
        return row;
      })
    );
    this.node.append(this._diff);
  }

  private _toggleChanges(): void {
    this._open = !this._open;
    this._showChanges();
  }

  private _button(
    label: string,
    title: string,
    modifier: string,
    action: () => void | Promise<unknown>
  ): HTMLButtonElement {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = `${TOOLBAR_CLASS}-button ${modifier}`;
    button.textContent = label;
    button.title = title;
    button.addEventListener('click', () => this._run(action));
    return button;
  }

  private async _regenerate(): Promise<void> {
    const instruction = await askForInstruction(this._trans);
    if (instruction !== null) {
      await this._actions.regenerate(this._cell.id, instruction);
    }
  }

  private _run(action: () => void | Promise<unknown>): void {
    const pending = action();
    if (!pending) {
      return;
    }
    this._setBusy(true);
    pending
      .catch(reason =>
        console.error('Notebook agent: the cell action failed', reason)
      )
      .finally(() => this._setBusy(false));
  }

  private readonly _changes = document.createElement('button');
  private readonly _diff = document.createElement('pre');
  private _open = false;

  private _setBusy(busy: boolean): void {
    this.node.querySelectorAll('button').forEach(button => {
      button.disabled = busy;
    });
  }
}
