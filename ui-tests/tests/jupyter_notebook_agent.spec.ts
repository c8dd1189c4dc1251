import { expect, test } from '@jupyterlab/galata';

/**
 * Don't load JupyterLab webpage before running the tests.
 * This is required to ensure we capture all log messages.
 */
test.use({ autoGoto: false });

test('should activate and reach the server extension', async ({ page }) => {
  const logs: string[] = [];

  page.on('console', message => {
    logs.push(message.text());
  });

  await page.goto();

  expect(
    logs.filter(
      s => s === 'JupyterLab extension jupyter-notebook-agent is activated!'
    )
  ).toHaveLength(1);

  // The plugin then asks GET {baseUrl}notebook-agent/status and logs the answer.
  await expect
    .poll(() =>
      logs.some(s => s.startsWith('jupyter-notebook-agent server status:'))
    )
    .toBe(true);
  expect(logs.filter(s => s.includes('server extension appears'))).toEqual(
    []
  );
});
