import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import { Locator } from '@playwright/test';

/**
 * A run that a killed server left (the `interrupted` project, see interrupted_server.py): the
 * server was killed while the run's first cell slept in the kernel, and started again. The
 * person finds the run interrupted, rejects its cell, and lets it continue once the notebook's
 * own cells ran again in the new kernel. The model is the `ui-interrupted` recording.
 */

test.describe.configure({ timeout: 120_000 });

function cellWith(page: IJupyterLabPageFixture, text: string): Locator {
  return page
    .locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell')
    .filter({ has: page.locator('.jp-InputArea', { hasText: text }) });
}

test('a run a killed server left is reviewed, then continued', async ({
  page
}) => {
  await page.evaluate(async () => {
    // At the server's root, not in the test's own folder, where the file browser is.
    await window.jupyterapp.commands.execute('docmanager:open', {
      path: 'interrupted.ipynb'
    });
    await window.jupyterapp.commands.execute('notebook-agent:open-panel');
  });
  await expect(cellWith(page, 'base = 40')).toBeVisible();
  const panel = page.locator('#jp-notebook-agent-panel');
  const offer = panel.locator('.jp-NotebookAgent-continue-offer');
  await expect(offer).toBeVisible({ timeout: 30_000 });
  await expect(panel.locator('.jp-NotebookAgent-outcome')).toContainText(
    'Interrupted: the server stopped'
  );

  const sleeping = cellWith(page, 'time.sleep(300)');
  await sleeping.getByRole('button', { name: 'Reject' }).click();
  await expect(sleeping).toHaveCount(0);

  await offer.getByRole('button', { name: 'Continue' }).click();
  await page
    .locator('.jp-Dialog')
    .getByRole('button', { name: 'Run the cells again, then continue' })
    .click();
  await expect(panel.locator('.jp-NotebookAgent-outcome')).toContainText(
    'The answer is 42',
    { timeout: 60_000 }
  );
  await expect(offer).toHaveCount(0);
  await expect(
    cellWith(page, 'answer = base + 2').locator('.jp-OutputArea-output')
  ).toHaveText('42');
});
