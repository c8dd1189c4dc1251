import { expect, test } from '@jupyterlab/galata';
import { ChildProcessWithoutNullStreams, spawn } from 'child_process';
import { hostname } from 'os';
import * as path from 'path';
import * as readline from 'readline';

/**
 * An outside agent in the person's open notebook, against a real JupyterLab whose server runs
 * code in sandbox kernels as installed (the `sandbox` project): the MCP SDK's own client
 * (mcp_client.py) adds a cell over the server's MCP endpoint; it appears in the open notebook
 * as a proposal, runs in the notebook's sandbox, and the person accepts it in the panel.
 */

// A sandbox kernel per notebook, on a CI machine: room to start one cold.
test.describe.configure({ timeout: 120_000 });

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
  const panel = page.locator('#jp-notebook-agent-panel');

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
