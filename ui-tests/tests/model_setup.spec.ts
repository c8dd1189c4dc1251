import { expect, test } from '@jupyterlab/galata';

/**
 * A JupyterLab whose server has no model configured (the `no-model` project): the person sets
 * up an OpenAI-compatible endpoint in the panel (the tests' replay endpoint, on the port
 * package.json gives it) and the agent works; the key typed in never comes back.
 */

const ENDPOINT = 'http://127.0.0.1:8990/v1';
const KEY = 'sk-typed-into-the-panel-5c1e';

test.afterEach(async ({ page }) => {
  // Back to the server's own configuration, for the other tests of this server.
  await page.request.put('/notebook-agent/model', { data: { model: '' } });
});

test('a model set up in the panel, from nothing to a working run; the key never comes back', async ({
  page
}, testInfo) => {
  const answers: Promise<string>[] = [];
  page.on('response', response => {
    answers.push(response.text().catch(() => ''));
  });
  await page.notebook.createNew('setup.ipynb');
  await page.evaluate(async () => {
    await window.jupyterapp.commands.execute('notebook-agent:open-panel');
  });
  const panel = page.locator('#jp-notebook-agent-panel');
  const setup = panel.getByRole('region', { name: 'Model setup' });
  await expect(setup).toBeVisible();
  await expect(panel.locator('.jp-NotebookAgent-model')).toHaveText(
    'No model ready'
  );
  const box = panel.getByLabel('Request to the agent');
  await box.fill('What is the total amount?');
  await expect(panel.getByRole('button', { name: 'Send' })).toBeDisabled();
  await expect(panel).toContainText('Choose a model above to send requests.');
  await panel.screenshot({ path: testInfo.outputPath('model-setup.png') });

  // A wrong URL is said in plain words, and nothing is lost.
  await setup.getByLabel('URL').fill('http://127.0.0.1:9/v1');
  await setup.getByRole('button', { name: 'List its models' }).click();
  await expect(
    setup.getByRole('alert').filter({ hasText: 'the endpoint' })
  ).toContainText('cannot be reached from this server');

  await setup.getByLabel('URL').fill(ENDPOINT);
  await setup.getByLabel('API key').fill(KEY);
  await setup.getByRole('button', { name: 'List its models' }).click();
  await setup
    .getByRole('combobox', { name: 'Model', exact: true })
    .selectOption('ui-thread');
  await setup.getByRole('button', { name: 'Use this endpoint' }).click();
  await expect(setup).toHaveCount(0);
  await expect(panel.locator('.jp-NotebookAgent-model')).toHaveText(
    'Model: ui-thread'
  );

  await expect(panel.getByRole('button', { name: 'Send' })).toBeEnabled();
  await box.press('Enter');
  await expect(panel.locator('.jp-NotebookAgent-outcome')).toContainText(
    'The total amount is 22.5.',
    { timeout: 60_000 }
  );

  // Opened again, the setup knows a key is set, and does not hold it.
  await panel.getByRole('button', { name: 'Change' }).click();
  const key = panel
    .getByRole('region', { name: 'Model setup' })
    .getByLabel('API key');
  await expect(key).toHaveValue('');
  await expect(key).toHaveAttribute(
    'placeholder',
    'set (leave empty to keep it)'
  );
  await page.evaluate(() => window.location.reload());
  await expect(
    page.locator('.jp-NotebookPanel:not(.lm-mod-hidden)')
  ).toBeVisible({ timeout: 30_000 });
  await page.evaluate(async () => {
    await window.jupyterapp.commands.execute('notebook-agent:open-panel');
  });
  await expect(panel.locator('.jp-NotebookAgent-model')).toHaveText(
    'Model: ui-thread'
  );

  const bodies = await Promise.all(answers);
  expect(bodies.length).toBeGreaterThan(20);
  expect(bodies.filter(body => body.includes(KEY))).toEqual([]);
});
