import { expect, galata, test as base } from '@jupyterlab/galata';
import * as path from 'path';

/**
 * The panel in a JupyterLab served under a JupyterHub-style base URL, as JupyterHub serves a
 * person's server at /user/NAME/ (the `base-url` project of playwright.config.js): every request
 * and WebSocket of the extension goes under that base URL, and a run streams its cells into the
 * notebook as it does at the root.
 */

const BASE = '/user/galata/';
const PLUGIN = 'jupyter-notebook-agent:plugin';

/**
 * Galata's own helpers make the test's folder and end its kernels at the server's root path
 * (`/api/...`); under a base URL they are made and ended under it.
 */
const test = base.extend({
  tmpPath: async ({ request, baseURL }, use, testInfo) => {
    const folder = path.basename(testInfo.outputDir);
    const url = `${baseURL}/api/contents/${folder}`;
    expect((await request.put(url, { data: { type: 'directory' } })).ok()).toBe(true);
    await use(folder);
    await request.delete(url);
  },
  sessions: async ({ request, baseURL }, use) => {
    const sessions = new Map();
    await use(sessions);
    for (const id of sessions.keys()) {
      await request.delete(`${baseURL}/api/sessions/${id}`);
    }
  },
  kernels: async ({ request, baseURL }, use) => {
    const kernels = new Map();
    await use(kernels);
    for (const id of kernels.keys()) {
      await request.delete(`${baseURL}/api/kernels/${id}`);
    }
  }
});

test.use({
  mockSettings: { ...galata.DEFAULT_SETTINGS, [PLUGIN]: { model: 'ui-flow' } }
});

test('under a base URL the panel runs the agent, streams cells and accepts one', async ({
  page,
  baseURL,
  tmpPath
}) => {
  expect(new URL(baseURL!).pathname).toBe(BASE.replace(/\/$/, ''));
  const requests: string[] = [];
  const bundle: string[] = [];
  const sockets: string[] = [];
  page.on('request', request => {
    const url = new URL(request.url()).pathname;
    if (url.includes('/extensions/jupyter-notebook-agent/')) {
      bundle.push(url);
    } else if (url.includes('notebook-agent/')) {
      requests.push(url);
    }
  });
  page.on('websocket', socket => {
    if (socket.url().includes('notebook-agent/')) {
      sockets.push(new URL(socket.url()).pathname);
    }
  });
  await page.reload(); // from its first request on: the plugin's code, then its status

  const name = 'under-base.ipynb';
  await page.notebook.createNew(name);
  await page.evaluate(async () => {
    await window.jupyterapp.commands.execute('notebook-agent:open-panel');
  });
  const panel = page.locator('#jp-notebook-agent-panel');
  await expect(panel.getByText('Model: ui-flow')).toBeVisible();
  const box = panel.getByLabel('Request to the agent');
  await box.fill('Add up 0 to 4, then plot something');
  await box.press('Enter');

  const proposed = page.locator('.jp-Notebook .jp-NotebookAgent-proposed');
  await expect(proposed).toHaveCount(5, { timeout: 30_000 });
  await expect(panel.locator('.jp-NotebookAgent-outcome')).toContainText(
    'The total is 10, with a plot.',
    { timeout: 30_000 }
  );
  await expect(
    page
      .locator('.jp-Notebook .jp-OutputArea-output')
      .getByText('10', { exact: true })
  ).toBeVisible();
  await page
    .locator('.jp-Notebook .jp-Cell', { hasText: 'print(total)' })
    .first()
    .getByRole('button', { name: 'Accept' })
    .click();
  await expect(proposed).toHaveCount(4);

  // Everything of the extension went under the base URL: the plugin's code, the status, the
  // run, its events over a WebSocket, and the accept.
  expect(bundle.length).toBeGreaterThan(0);
  expect(
    bundle.every(url => url.startsWith(`${BASE}lab/extensions/jupyter-notebook-agent/`))
  ).toBe(true);
  expect(requests.filter(url => !url.startsWith(`${BASE}notebook-agent/`))).toEqual(
    []
  );
  expect(requests).toContain(`${BASE}notebook-agent/status`);
  expect(requests).toContain(`${BASE}notebook-agent/runs`);
  expect(requests.some(url => url.endsWith('/accept'))).toBe(true);
  expect(sockets.length).toBeGreaterThan(0);
  expect(
    sockets.every(url => /^\/user\/galata\/notebook-agent\/runs\/\w+\/events$/.test(url))
  ).toBe(true);

  await page.notebook.save();
  const saved = await page.request.get(
    `${baseURL}/api/contents/${tmpPath}/${name}?content=1`
  );
  expect(saved.ok()).toBe(true);
  const cells = (await saved.json()).content.cells;
  const accepted = cells.find(
    (cell: any) => cell.metadata.notebook_agent?.state === 'accepted'
  );
  expect(accepted.source).toBe('total = sum(range(5))\nprint(total)');
});
