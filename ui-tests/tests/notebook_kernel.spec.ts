import { expect, galata, test } from '@jupyterlab/galata';
import { Locator } from '@playwright/test';

/**
 * The agent in the person's notebook, against a real JupyterLab whose server runs code in
 * sandbox kernels as installed (the `sandbox` project): one kernel shared by the person and
 * the agent, the person's variables, and one conversation per notebook. The model is the
 * `ui-thread` recording: a cell that uses the person's `df`, its outcome, and a follow-up.
 */

const PLUGIN = 'jupyter-notebook-agent:plugin';

test.use({
  mockSettings: {
    ...galata.DEFAULT_SETTINGS,
    [PLUGIN]: { model: 'ui-thread' }
  }
});
// A sandbox kernel per notebook, on a CI machine: room to start one cold.
test.describe.configure({ timeout: 120_000 });

async function ask(panel: Locator, request: string): Promise<void> {
  const box = panel.getByLabel('Request to the agent');
  await box.fill(request);
  await box.press('Enter');
}

test('the agent works in the notebook’s sandboxed kernel and keeps the thread', async ({
  page
}) => {
  // A new notebook starts the sandbox at once: no dialog offers a local kernel first.
  await page.menu.clickMenuItem('File>New>Notebook');
  await expect(page.locator('.jp-KernelName')).toHaveText(
    'Python 3 (sandbox)',
    { timeout: 60_000 }
  );
  await expect(page.locator('.jp-Dialog')).toHaveCount(0);
  const path: string = await page.evaluate(
    () => (window.jupyterapp.shell.currentWidget as any).context.path
  );

  await page.notebook.setCell(
    0,
    'code',
    "import pandas as pd\ndf = pd.DataFrame({'amount': [10.0, 5.0, 7.5]})\nprint(len(df))"
  );
  await page.notebook.runCell(0);
  expect(await page.notebook.getCellTextOutput(0)).toEqual(['3\n']);

  await page.evaluate(async () => {
    await window.jupyterapp.commands.execute('notebook-agent:open-panel');
  });
  const panel = page.locator('#jp-notebook-agent-panel');
  await ask(panel, 'What is the total amount?');
  await expect(panel.locator('.jp-NotebookAgent-outcome')).toContainText(
    'The total amount is 22.5.',
    { timeout: 60_000 }
  );
  const agentOutput = page
    .locator('.jp-Notebook .jp-NotebookAgent-proposed .jp-OutputArea-output')
    .first();
  await expect(agentOutput).toHaveText('22.5');

  // The run executed in the kernel the toolbar shows.
  const runs = await (
    await page.request.get(
      `/notebook-agent/runs?path=${encodeURIComponent(path)}`
    )
  ).json();
  const kernelId = await page.evaluate(
    () =>
      (window.jupyterapp.shell.currentWidget as any).sessionContext.session
        .kernel.id
  );
  expect(runs.runs[0].kernel_id).toBe(kernelId);

  // The person's next cell uses the agent's variable: one kernel for both.
  const cellCount = await page.notebook.getCellCount();
  await page.notebook.addCell('code', 'print(total * 2)');
  await page.notebook.runCell(cellCount);
  expect(await page.notebook.getCellTextOutput(cellCount)).toEqual(['45.0\n']);

  // A follow-up continues the thread: the model is sent the first request and its result.
  await ask(panel, 'Remind me of the total');
  await expect(panel.locator('.jp-NotebookAgent-outcome')).toContainText(
    'As before: the total amount is 22.5.',
    { timeout: 60_000 }
  );
  // The panel reads as the thread: the earlier request, what the agent said, its outcome.
  const thread = panel.locator('.jp-NotebookAgent-thread');
  await expect(thread).toContainText('What is the total amount?');
  await expect(thread).toContainText('I use your df.');
  await expect(thread).toContainText('The total amount is 22.5.');
  const conversation = async () =>
    (
      await page.request.get(
        `/notebook-agent/conversation?path=${encodeURIComponent(path)}`
      )
    ).json();
  const sent = JSON.stringify((await conversation()).messages);
  expect(sent).toContain('What is the total amount?');
  expect(sent).toContain('The total amount is 22.5.');
  expect(sent).toContain('Remind me of the total');

  // A new conversation: nothing of the earlier requests is sent any more.
  await panel.getByRole('button', { name: 'New conversation' }).click();
  await expect.poll(async () => (await conversation()).messages.length).toBe(0);
  await expect(thread).toContainText('The agent remembers 0 earlier requests');
});
