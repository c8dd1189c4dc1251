import { expect, galata, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import { Locator } from '@playwright/test';
import { ChildProcessWithoutNullStreams, spawn } from 'child_process';
import { hostname } from 'os';
import * as path from 'path';
import * as readline from 'readline';

/**
 * MCP both ways, against a real JupyterLab whose server runs code in sandbox kernels as
 * installed (the `sandbox` project). An outside agent in the person's open notebook: the MCP
 * SDK's own client (mcp_client.py) adds a cell over the server's MCP endpoint; it appears in the
 * open notebook as a proposal, runs in the notebook's sandbox, and the person accepts it in the
 * panel. And the agent as an MCP client: the replayed model (the `ui-mcp` recording) calls the
 * test tool server's `add`, which the server's configuration lists, and the call waits for the
 * person's approval in the panel.
 */

const PLUGIN = 'jupyter-notebook-agent:plugin';

// A sandbox kernel per notebook, on a CI machine: room to start one cold.
test.describe.configure({ timeout: 120_000 });

/** A new notebook, on its sandbox kernel, with the agent's panel open beside it. */
async function newNotebookAndPanel(
  page: IJupyterLabPageFixture
): Promise<{ notebook: string; panel: Locator }> {
  await page.menu.clickMenuItem('File>New>Notebook');
  await expect(page.locator('.jp-KernelName')).toHaveText(
    'Python 3 (sandbox)',
    { timeout: 60_000 }
  );
  const notebook: string = await page.evaluate(
    () => (window.jupyterapp.shell.currentWidget as any).context.path
  );
  await page.evaluate(async () => {
    await window.jupyterapp.commands.execute('notebook-agent:open-panel');
  });
  return { notebook, panel: page.locator('#jp-notebook-agent-panel') };
}

/** The outside agent, and its output a line at a time. */
function outsideAgent(
  url: string,
  notebook: string
): { agent: ChildProcessWithoutNullStreams; lines: AsyncIterator<string> } {
  const script = path.join(__dirname, '..', 'mcp_client.py');
  const agent = spawn('python', [script, url, notebook]);
  agent.stderr.on('data', data => process.stderr.write(data));
  const lines = readline
    .createInterface({ input: agent.stdout })
    [Symbol.asyncIterator]();
  return { agent, lines };
}

test('an outside agent’s cell is a proposal in the open notebook, run in the sandbox and accepted in the panel', async ({
  page,
  baseURL
}) => {
  const { notebook, panel } = await newNotebookAndPanel(page);

  const { agent, lines } = outsideAgent(
    `${baseURL}/notebook-agent/mcp`,
    notebook
  );
  const added = JSON.parse((await lines.next()).value);
  expect(added.status).toBe('ok');
  // Its code ran in the notebook's sandbox: a container's name, not this machine's.
  const ranOn = added.outputs[0].text.trim();
  expect(ranOn).not.toBe('');
  expect(ranOn).not.toBe(hostname());

  const proposed = page.locator('.jp-Notebook .jp-NotebookAgent-proposed');
  await expect(proposed).toHaveCount(1, { timeout: 30_000 });
  await expect(proposed.locator('.jp-OutputArea-output')).toHaveText(ranOn);
  await expect(panel).toContainText('galata-agent');

  await panel.getByRole('button', { name: 'Accept all' }).click();
  await expect(proposed).toHaveCount(0);
  const state = await page.evaluate(id => {
    const widget = window.jupyterapp.shell.currentWidget as any;
    const cell = widget.content.model.sharedModel.cells.find(
      (each: any) => each.getId() === id
    );
    return cell?.getMetadata('notebook_agent')?.state;
  }, added.cell_id);
  expect(state).toBe('accepted');

  agent.stdin.write('\n');
  expect(JSON.parse((await lines.next()).value)).toEqual({ ended: true });
  await new Promise(resolve => agent.on('exit', resolve));
});

/** Every event of the run so far, through its WebSocket, until it finished. */
async function finishedRunEvents(
  page: IJupyterLabPageFixture,
  notebook: string
): Promise<any[]> {
  const runs = await (
    await page.request.get(
      `/notebook-agent/runs?path=${encodeURIComponent(notebook)}`
    )
  ).json();
  const runId = runs.runs[runs.runs.length - 1].id;
  return page.evaluate(
    id =>
      new Promise<any[]>((resolve, reject) => {
        const settings = window.jupyterapp.serviceManager.serverSettings;
        const socket = new WebSocket(
          `${settings.wsUrl}notebook-agent/runs/${id}/events`
        );
        const events: any[] = [];
        socket.onmessage = message => {
          const event = JSON.parse(message.data);
          events.push(event);
          if (event.type === 'run_finished') {
            socket.close();
            resolve(events);
          }
        };
        socket.onerror = () => reject(new Error('the events socket failed'));
      }),
    runId
  );
}

test.describe('the agent calls the person’s MCP tools', () => {
  test.use({
    mockSettings: {
      ...galata.DEFAULT_SETTINGS,
      [PLUGIN]: { model: 'ui-mcp' }
    }
  });

  for (const [choice, status] of [
    ['Allow', 'ok'],
    ['Deny', 'denied']
  ]) {
    test(`a tool call waits in the panel; ${choice} ${
      status === 'ok' ? 'runs it' : 'tells the model'
    }`, async ({ page }) => {
      const { notebook, panel } = await newNotebookAndPanel(page);
      const box = panel.getByLabel('Request to the agent');
      await box.fill('Add 2 and 3 with my tools server');
      await box.press('Enter');

      const prompt = panel.getByRole('alertdialog', {
        name: 'Allow the tool add?'
      });
      await expect(prompt).toBeVisible({ timeout: 60_000 });
      await expect(prompt).toContainText('add of the MCP server tools');
      await expect(prompt.locator('pre')).toHaveText(
        JSON.stringify({ a: 2, b: 3 }, null, 2)
      );
      await prompt.getByRole('button', { name: choice, exact: true }).click();
      await expect(prompt).toHaveCount(0);
      await expect(panel.locator('.jp-NotebookAgent-outcome')).toContainText(
        'Asked the tools server.',
        { timeout: 30_000 }
      );

      const events = await finishedRunEvents(page, notebook);
      const decided = events.find(e => e.type === 'tool_approval_decided');
      expect(decided.decision).toBe(choice === 'Allow' ? 'approve' : 'deny');
      const result = events.find(
        e => e.type === 'tool_result' && e.name === 'tools__add'
      );
      expect(result.result.status).toBe(status);
      expect(JSON.stringify(result.result)).toContain(
        status === 'ok' ? '5' : 'the person did not allow'
      );
    });
  }

  test('a tool allowed always is listed in the panel, and Ask again makes the next call wait', async ({
    page
  }) => {
    const { panel } = await newNotebookAndPanel(page);
    const box = panel.getByLabel('Request to the agent');
    const prompt = panel.getByRole('alertdialog', {
      name: 'Allow the tool add?'
    });
    await box.fill('Add 2 and 3 with my tools server');
    await box.press('Enter');
    await prompt
      .getByRole('button', { name: 'Always allow this tool' })
      .click({ timeout: 60_000 });
    await expect(panel.locator('.jp-NotebookAgent-outcome')).toContainText(
      'Asked the tools server.',
      { timeout: 30_000 }
    );

    const allowed = panel.locator('.jp-NotebookAgent-allowed-tools');
    await expect(allowed.locator('summary')).toHaveText(
      '1 MCP tool runs without asking on this notebook'
    );
    await allowed.locator('summary').click();
    await expect(allowed.locator('code')).toHaveText('tools__add');
    await allowed
      .getByRole('button', { name: 'Ask again before tools__add runs' })
      .click();
    await expect(allowed).toHaveCount(0);

    await box.fill('Add them again');
    await box.press('Enter');
    await expect(prompt).toBeVisible({ timeout: 60_000 });
    await expect(prompt.locator('pre')).toHaveText(
      JSON.stringify({ a: 4, b: 4 }, null, 2)
    );
    await prompt.getByRole('button', { name: 'Allow', exact: true }).click();
    await expect(panel.locator('.jp-NotebookAgent-outcome')).toContainText(
      'Asked the tools server again.',
      { timeout: 30_000 }
    );
  });
});
