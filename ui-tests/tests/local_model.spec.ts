import { expect, test } from '@jupyterlab/galata';

/**
 * A JupyterLab whose server has no model configured (the `no-model` project of
 * playwright.config.js): the panel offers the default local model, downloads it only when asked,
 * and says in plain words why the download failed (the hub cannot be reached from the tests).
 */

test('with no model configured the panel offers the local model, and downloads it on request', async ({
  page
}, testInfo) => {
  const downloads: string[] = [];
  // The requests that start a download (a GET only reads one's progress).
  page.on('request', request => {
    const url = request.url();
    if (
      url.includes('notebook-agent/local-model/download') &&
      request.method() !== 'GET'
    ) {
      downloads.push(request.method());
    }
  });
  await page.notebook.createNew('offline.ipynb');
  await page.evaluate(async () => {
    await window.jupyterapp.commands.execute('notebook-agent:open-panel');
  });
  const panel = page.locator('#jp-notebook-agent-panel');
  const offer = panel.locator('.jp-NotebookAgent-local-model');
  await expect(offer).toContainText('hf:tests/absent-GGUF/absent.gguf');
  await expect(offer).toContainText('your data stays on this machine');
  expect(downloads).toEqual([]); // nothing downloads unasked

  await offer.getByRole('button', { name: 'Download and use it' }).click();
  await expect(offer.locator('.jp-NotebookAgent-error')).toHaveText(
    'the model hub cannot be reached from this server: use a model file on disk or an endpoint'
  );
  expect(downloads).toEqual(['POST']);
  await panel.screenshot({
    path: testInfo.outputPath('local-model-offer.png')
  });
  // It can be asked again.
  await expect(
    offer.getByRole('button', { name: 'Download and use it' })
  ).toBeEnabled();
});
