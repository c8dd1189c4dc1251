import {
  expect,
  galata,
  IJupyterLabPageFixture,
  test
} from '@jupyterlab/galata';
import { Locator } from '@playwright/test';

/**
 * The side panel against a real JupyterLab, the model replayed from a recording
 * (ui-tests/recordings/) with its recorded timing. Code runs in the local kernel,
 * as jupyter_server_test_config.py allows explicitly: the sandbox has its own tests.
 */

const PLUGIN = 'jupyter-notebook-agent:plugin';

/** Settings that make the panel use a recording as its model. */
function recording(model: string): Record<string, unknown> {
  return { ...galata.DEFAULT_SETTINGS, [PLUGIN]: { model } };
}

async function openPanel(page: IJupyterLabPageFixture): Promise<Locator> {
  await page.evaluate(async () => {
    await window.jupyterapp.commands.execute('notebook-agent:open-panel');
  });
  const panel = page.locator('#jp-notebook-agent-panel');
  await expect(panel).toBeVisible();
  return panel;
}

async function ask(panel: Locator, request: string): Promise<void> {
  const box = panel.getByLabel('Request to the agent');
  await box.fill(request);
  await box.press('Enter');
}

/** The notebook cell whose input holds `text`. */
function cellWith(page: IJupyterLabPageFixture, text: string): Locator {
  return page
    .locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell')
    .filter({ has: page.locator('.jp-InputArea', { hasText: text }) });
}

/** A cell of the notebook in focus, read from its model by cell id (an off-screen cell may
 * not be rendered), or null when it has none with that id. */
async function modelCell(
  page: IJupyterLabPageFixture,
  cellId: string
): Promise<{ source: string; outputs: string; state?: string } | null> {
  return page.evaluate(id => {
    const widget = window.jupyterapp.shell.currentWidget as any;
    const cell = widget?.content?.model?.sharedModel?.cells.find(
      (each: any) => each.getId() === id
    );
    if (!cell) {
      return null;
    }
    const outputs = (cell.getOutputs?.() ?? [])
      .map((output: any) => [output.text ?? ''].flat().join(''))
      .join('');
    const state = cell.getMetadata('notebook_agent')?.state;
    return { source: cell.getSource(), outputs, state };
  }, cellId);
}

/**
 * Makes a notebook with `cells` through the Contents API, then opens it: one made from the menu
 * is renamed after it opens, and a save of its first name can answer 404 meanwhile.
 */
async function openNotebookMadeOnServer(
  page: IJupyterLabPageFixture,
  path: string,
  cells: Record<string, unknown>[] = []
): Promise<void> {
  const made = await page.request.put(`/api/contents/${path}`, {
    data: {
      type: 'notebook',
      format: 'json',
      content: {
        cells,
        metadata: {
          kernelspec: {
            name: 'python3',
            display_name: 'Python 3 (ipykernel)',
            language: 'python'
          }
        },
        nbformat: 4,
        nbformat_minor: 5
      }
    }
  });
  expect(made.ok()).toBe(true);
  await page.notebook.openByPath(path);
  await page.notebook.activate(path.split('/').pop()!);
}

/** The notebook as saved on disk, through the Contents API. */
async function savedCells(
  page: IJupyterLabPageFixture,
  path: string
): Promise<{ id: string; source: string; metadata: any }[]> {
  const response = await page.request.get(`/api/contents/${path}?content=1`);
  expect(response.ok()).toBe(true);
  const model = await response.json();
  return model.content.cells.map((cell: any) => ({
    ...cell,
    source: Array.isArray(cell.source) ? cell.source.join('') : cell.source
  }));
}

test.describe('the notebook agent panel', () => {
  test.use({ mockSettings: recording('ui-flow') });

  test('cells stream in with outputs and a plot; accept, reject, regenerate', async ({
    page,
    tmpPath
  }, testInfo) => {
    const name = 'flow.ipynb';
    await page.notebook.createNew(name);
    const panel = await openPanel(page);
    await expect(panel.getByText(`Notebook: ${tmpPath}/${name}`)).toBeVisible();
    await expect(panel.getByText('Model: ui-flow')).toBeVisible();

    await ask(panel, 'Add up 0 to 4, then plot something');
    await expect(panel.getByRole('button', { name: 'Stop' })).toBeVisible();
    // What the panel says, all along the run: never an internal id or an outcome's code.
    const said: string[] = [];
    const listening = setInterval(
      () =>
        void panel.innerText().then(
          text => said.push(text),
          () => {}
        ),
      100
    );
    // The first code cell fills in while the model writes it.
    await expect
      .poll(async () => (await modelCell(page, 'agent-2'))?.source ?? '', {
        timeout: 30_000
      })
      .toMatch(/^total/);
    const proposed = page.locator('.jp-Notebook .jp-NotebookAgent-proposed');
    await expect(proposed).toHaveCount(5, { timeout: 30_000 });
    await expect(panel.locator('.jp-NotebookAgent-outcome')).toContainText(
      'The total is 10, with a plot.',
      { timeout: 30_000 }
    );
    clearInterval(listening);
    said.push(await panel.innerText());
    expect(said.some(text => text.includes('Writing “total'))).toBe(true);
    for (const text of said) {
      expect(text).not.toMatch(
        /agent-\d|gave_up|max_steps|time_limit|context_budget|format_errors|model_error|kernel_error/
      );
    }
    expect(await modelCell(page, 'agent-2')).toEqual({
      source: 'total = sum(range(5))\nprint(total)',
      outputs: '10\n',
      state: 'proposed'
    });
    await expect(
      page.locator('.jp-Notebook .jp-OutputArea-output img')
    ).toHaveCount(1);
    await panel.screenshot({ path: testInfo.outputPath('panel-light.png') });
    await cellWith(page, 'print(total)').screenshot({
      path: testInfo.outputPath('proposed-cell-light.png')
    });

    await cellWith(page, 'print(total)')
      .getByRole('button', { name: 'Accept' })
      .click();
    await expect(proposed).toHaveCount(4);
    await cellWith(page, 'a cell to reject')
      .getByRole('button', { name: 'Reject' })
      .click();
    await expect.poll(() => modelCell(page, 'agent-4')).toBeNull();
    // Reject can be taken back, from the notification it leaves.
    await page
      .locator('.jp-Notification-Toast-info')
      .getByRole('button', { name: 'Undo' })
      .click();
    await expect
      .poll(async () => (await modelCell(page, 'agent-4'))?.state)
      .toBe('proposed');
    await expect(proposed).toHaveCount(4);
    await cellWith(page, 'a cell to reject')
      .getByRole('button', { name: 'Reject' })
      .click();
    await expect.poll(() => modelCell(page, 'agent-4')).toBeNull();
    await cellWith(page, 'print(total * 2)')
      .getByRole('button', { name: 'Regenerate' })
      .click();
    // A few lines for the instruction; Enter sends it.
    const instruction = page.locator('.jp-Dialog textarea');
    await instruction.fill('triple it');
    await instruction.press('Enter');
    await expect
      .poll(() => modelCell(page, 'agent-5'), { timeout: 30_000 })
      .toEqual({
        source: 'print(total * 3)',
        outputs: '30\n',
        state: 'proposed'
      });
    await expect(panel.locator('.jp-NotebookAgent-outcome')).toContainText(
      'Rewritten as asked.',
      { timeout: 30_000 }
    );
    // Until it is accepted, the rewritten cell shows what changed.
    const rewritten = cellWith(page, 'print(total * 3)');
    await rewritten.getByRole('button', { name: 'Changes' }).click();
    await expect(
      rewritten.locator('.jp-NotebookAgent-proposedToolbar-diff')
    ).toHaveText('- print(total * 2)\n+ print(total * 3)\n');

    await page.notebook.save();
    const cells = await savedCells(page, `${tmpPath}/${name}`);
    const agentCells = cells.filter(cell => cell.metadata.notebook_agent);
    expect(agentCells.map(cell => cell.id)).toEqual([
      'agent-1',
      'agent-2',
      'agent-3',
      'agent-5'
    ]);
    expect(agentCells[1].metadata.notebook_agent.state).toBe('accepted');
    expect(agentCells[3].source).toBe('print(total * 3)');
    expect(cells.some(cell => cell.source.includes('a cell to reject'))).toBe(
      false
    );

    await page.theme.setDarkTheme();
    await panel.screenshot({ path: testInfo.outputPath('panel-dark.png') });
    await cellWith(page, 'print(total * 3)').screenshot({
      path: testInfo.outputPath('proposed-cell-dark.png')
    });
  });
});

test.describe('a notebook saved while the agent writes into it', () => {
  test.use({
    mockSettings: {
      ...recording('ui-thread'),
      '@jupyterlab/docmanager-extension:plugin': {
        autosave: true,
        autosaveInterval: 1
      }
    }
  });
  test.describe.configure({ timeout: 120_000 });

  test('no File Changed dialog over a run and its follow-up, with autosave on', async ({
    page,
    tmpPath
  }) => {
    await openNotebookMadeOnServer(page, `${tmpPath}/autosave.ipynb`);
    await page.notebook.setCell(
      0,
      'code',
      "import pandas as pd\ndf = pd.DataFrame({'amount': [10.0, 5.0, 7.5]})"
    );
    await page.notebook.runCell(0);
    const panel = await openPanel(page);
    const outcome = panel.locator('.jp-NotebookAgent-outcome');
    await ask(panel, 'What is the total amount?');
    await expect(outcome).toContainText('The total amount is 22.5.', {
      timeout: 60_000
    });
    await ask(panel, 'Remind me of the total');
    await expect(outcome).toContainText('As before', { timeout: 60_000 });
    await page.waitForTimeout(2_500); // autosaves, every second
    await page.notebook.save();
    await page.waitForTimeout(1_000);
    await expect(page.locator('.jp-Dialog')).toHaveCount(0);
  });
});

test.describe('a slow cell of the agent', () => {
  test.use({ mockSettings: recording('ui-progress') });
  test.describe.configure({ timeout: 120_000 });

  test('shows [*] and its output as it runs; the notebook follows the agent until the person scrolls away', async ({
    page,
    tmpPath
  }) => {
    const notes = Array.from({ length: 30 }, (_, index) => ({
      cell_type: 'markdown',
      id: `note-${index}`,
      metadata: {},
      source: `Note ${index} of the person's`
    }));
    await openNotebookMadeOnServer(page, `${tmpPath}/long.ipynb`, notes);
    const panel = await openPanel(page);
    await ask(panel, 'Count to twelve, slowly');

    // Written at the end of a long notebook, the cell is brought into view, and runs as the
    // person's own cells do: [*], then its output line by line.
    const counting = cellWith(page, 'for step in range(12)');
    await expect(counting).toBeInViewport({ timeout: 30_000 });
    await expect(counting.locator('.jp-InputPrompt')).toHaveText('[*]:');
    await expect(counting.locator('.jp-OutputArea')).toContainText('step 2', {
      timeout: 20_000
    });
    await expect(counting.locator('.jp-OutputArea')).not.toContainText(
      'step 11'
    );
    await expect(counting.locator('.jp-InputPrompt')).toHaveText('[*]:');

    // The person scrolls back to the top; the activity in the panel takes them to the cell.
    const notebook = page.locator('.jp-NotebookPanel:not(.lm-mod-hidden)');
    const first = notebook.locator('.jp-Cell[data-windowed-list-index="0"]');
    const scrollToTop = async (): Promise<void> => {
      await notebook.locator('.jp-WindowedPanel-outer').hover();
      for (let turn = 0; turn < 10; turn++) {
        await page.mouse.wheel(0, -5000);
        await page.waitForTimeout(50);
      }
      await expect(first).toBeInViewport();
    };
    await scrollToTop();
    await panel
      .locator('.jp-NotebookAgent-activity')
      .getByRole('button', { name: /Running “import time”/ })
      .click();
    await expect(counting).toBeInViewport();

    // Scrolled away again, the notebook stays where the person put it.
    await scrollToTop();
    await expect(panel.locator('.jp-NotebookAgent-outcome')).toContainText(
      'Counted to twelve.',
      { timeout: 60_000 }
    );
    await expect
      .poll(async () => (await modelCell(page, 'agent-2'))?.source)
      .toBe('Counted to twelve.');
    await expect(first).toBeInViewport();
    const counted = await modelCell(page, 'agent-1');
    expect(counted?.outputs).toBe(
      Array.from({ length: 12 }, (_, step) => `step ${step}\n`).join('')
    );
  });
});

test.describe('a notebook renamed', () => {
  test.use({ mockSettings: recording('ui-thread') });

  test('keeps its history; a new notebook of the old name has none', async ({
    page,
    tmpPath
  }) => {
    await page.notebook.createNew('draft.ipynb');
    const panel = await openPanel(page);
    await ask(panel, 'What is the total amount?');
    await expect(panel.locator('.jp-NotebookAgent-outcome')).toContainText(
      'The total amount is 22.5.',
      { timeout: 60_000 }
    );
    await page.notebook.save();
    await page.notebook.close();
    const renamed = await page.request.patch(
      `/api/contents/${tmpPath}/draft.ipynb`,
      { data: { path: `${tmpPath}/sales_analysis.ipynb` } }
    );
    expect(renamed.ok()).toBe(true);

    // Made on the server: the menu's new notebook is renamed after it opens, a race of its own.
    await openNotebookMadeOnServer(page, `${tmpPath}/draft.ipynb`);
    await expect(
      panel.getByText(`Notebook: ${tmpPath}/draft.ipynb`)
    ).toBeVisible();
    await expect(panel.getByText('What is the total amount?')).toHaveCount(0);

    await page.notebook.openByPath(`${tmpPath}/sales_analysis.ipynb`);
    await expect(
      panel.getByText(`Notebook: ${tmpPath}/sales_analysis.ipynb`)
    ).toBeVisible();
    await expect(panel.getByText('What is the total amount?')).toBeVisible();
  });
});

test('Ctrl+Alt+I puts the cursor in the request box', async ({ page }) => {
  await page.notebook.createNew('focus.ipynb');
  await page.notebook.setCell(0, 'code', 'x = 1');
  await page.keyboard.press('Escape'); // command mode: letters are notebook commands
  await page.keyboard.press('Control+Alt+I');
  await page.keyboard.type('load data');
  const panel = page.locator('#jp-notebook-agent-panel');
  await expect(panel.getByLabel('Request to the agent')).toHaveValue(
    'load data'
  );
  expect(await page.notebook.getCellCount()).toBe(1);
});

test.describe('a run that goes on while the person does other things', () => {
  test.use({ mockSettings: recording('ui-slow') });
  // The slow recording streams for about 30 s: room for it and a busy CI machine.
  test.describe.configure({ timeout: 120_000 });

  /** Starts the slow recording on a new notebook; returns once its first cell streams. */
  async function startSlowRun(
    page: IJupyterLabPageFixture,
    name: string
  ): Promise<Locator> {
    await page.notebook.createNew(name);
    const panel = await openPanel(page);
    await ask(panel, 'Square some numbers, slowly');
    await expect
      .poll(async () => (await modelCell(page, 'agent-1'))?.source ?? '', {
        timeout: 30_000
      })
      .toMatch(/^step_0/);
    return panel;
  }

  test('Stop ends the run and takes back the half-written cell', async ({
    page
  }) => {
    const panel = await startSlowRun(page, 'stop.ipynb');
    await panel.getByRole('button', { name: 'Stop' }).click();
    await expect(panel.locator('.jp-NotebookAgent-outcome')).toContainText(
      'Stopped'
    );
    await expect(panel.getByRole('button', { name: 'Stop' })).toHaveCount(0);
    await expect.poll(() => modelCell(page, 'agent-1')).toBeNull();
  });

  test('a reload mid-run resubscribes and the run goes on', async ({
    page
  }) => {
    await startSlowRun(page, 'reload.ipynb');
    await page.evaluate(() => window.location.reload());
    // JupyterLab restores the open notebook; the agent finds the run going on in it.
    await expect(
      page.locator('.jp-NotebookPanel:not(.lm-mod-hidden)')
    ).toBeVisible({ timeout: 30_000 });
    const panel = await openPanel(page);
    await expect(panel.getByText('Square some numbers, slowly')).toBeVisible({
      timeout: 30_000
    });
    await expect(panel.getByRole('button', { name: 'Stop' })).toBeVisible();
    const full = Array.from(
      { length: 40 },
      (_, i) => `step_${i} = ${i} ** 2  # squares, one line at a time`
    ).join('\n');
    await expect
      .poll(async () => (await modelCell(page, 'agent-1'))?.source, {
        timeout: 30_000
      })
      .toBe(full);
  });

  test('Stop right after a reload frees the notebook for the next request', async ({
    page
  }) => {
    await startSlowRun(page, 'reload-stop.ipynb');
    await page.evaluate(() => window.location.reload());
    await expect(
      page.locator('.jp-NotebookPanel:not(.lm-mod-hidden)')
    ).toBeVisible({ timeout: 30_000 });
    const panel = await openPanel(page);
    await panel.getByRole('button', { name: 'Stop' }).click();
    await expect(panel.locator('.jp-NotebookAgent-outcome')).toContainText(
      'Stopped'
    );
    await ask(panel, 'Square them again');
    await expect(panel.getByText('Square them again')).toBeVisible();
    // On a busy machine (a fresh clone's whole suite) the next run can take over 5 s to show.
    await expect(panel.getByRole('button', { name: 'Stop' })).toBeVisible({
      timeout: 30_000
    });
    await expect(page.locator('.jp-Notification-Toast-error')).toHaveCount(0);
    await panel.getByRole('button', { name: 'Stop' }).click();
    await expect(panel.getByRole('button', { name: 'Stop' })).toHaveCount(0);
  });

  test('the person types in their own cell while the agent streams', async ({
    page
  }) => {
    await startSlowRun(page, 'typing.ipynb');
    await page.notebook.enterCellEditingMode(0);
    await page.keyboard.type('mine = 42');
    await expect
      .poll(
        async () =>
          (await modelCell(page, 'agent-1'))?.source.split('\n').length,
        { timeout: 30_000 }
      )
      .toBe(40);
    const first = await page.evaluate(() => {
      const widget = window.jupyterapp.shell.currentWidget as any;
      return widget.content.model.sharedModel.cells[0].getSource();
    });
    expect(first).toBe('mine = 42');
  });

  test('closing the notebook mid-run hands the writing to the server', async ({
    page,
    tmpPath
  }) => {
    await startSlowRun(page, 'close.ipynb');
    await page.notebook.save();
    await page.notebook.close(true);
    await page.waitForTimeout(2000); // the server writes the cells meanwhile
    await page.evaluate(async path => {
      await window.jupyterapp.commands.execute('docmanager:open', { path });
    }, `${tmpPath}/close.ipynb`);
    await expect(
      page.locator('.jp-NotebookPanel:not(.lm-mod-hidden)')
    ).toBeVisible();
    await expect
      .poll(() => modelCell(page, 'agent-1'), { timeout: 30_000 })
      .toMatchObject({ state: 'proposed' });
    await expect
      .poll(
        async () =>
          (await modelCell(page, 'agent-1'))?.source.split('\n').length,
        { timeout: 30_000 }
      )
      .toBe(40);
    await expect(
      page.locator('.jp-Notebook .jp-NotebookAgent-proposed')
    ).toHaveCount(1);
  });

  test('switching notebooks mid-run never sends cells to the wrong one', async ({
    page
  }) => {
    // Both notebooks exist before the run: creating one under load is not what is tested.
    await page.notebook.createNew('second.ipynb');
    await startSlowRun(page, 'first.ipynb');
    await page.notebook.activate('second.ipynb');
    const panel = await openPanel(page);
    await expect(panel.getByText(/Notebook: .*second\.ipynb/)).toBeVisible();
    await page.waitForTimeout(3000); // the first run streams on meanwhile
    expect(await modelCell(page, 'agent-1')).toBeNull();
    await page.notebook.activate('first.ipynb');
    await expect(panel.getByText(/Notebook: .*first\.ipynb/)).toBeVisible();
    await expect
      .poll(
        async () =>
          (await modelCell(page, 'agent-1'))?.source.split('\n').length,
        {
          timeout: 30_000
        }
      )
      .toBe(40);
  });
});
