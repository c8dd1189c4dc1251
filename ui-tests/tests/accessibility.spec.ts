import AxeBuilder from '@axe-core/playwright';
import {
  expect,
  galata,
  IJupyterLabPageFixture,
  test
} from '@jupyterlab/galata';
import { Locator } from '@playwright/test';

/**
 * The panel at the narrowest the sidebar goes, in the light and the dark theme: axe-core finds
 * no serious or critical violation of WCAG 2.1 AA, and the rows keep their layout as a slow run
 * goes on (its recording runs a cell for twelve seconds).
 */

test.use({
  mockSettings: {
    ...galata.DEFAULT_SETTINGS,
    'jupyter-notebook-agent:plugin': { model: 'ui-progress' }
  }
});
test.describe.configure({ timeout: 120_000 });

/** What the agent's interface holds: the panel and its marks on proposed cells. */
const OURS = ['#jp-notebook-agent-panel', '.jp-NotebookAgent-proposedToolbar'];

async function seriousViolations(
  page: IJupyterLabPageFixture
): Promise<string[]> {
  // JupyterLab's shell is positioned absolutely in a body of no height that hides its
  // overflow: axe then takes all text for clipped away, and checks the contrast of none.
  // A body as high as the window changes nothing on screen.
  await page.evaluate(() => {
    document.body.style.height = '100vh';
  });
  let builder = new AxeBuilder({ page }).withTags([
    'wcag2a',
    'wcag2aa',
    'wcag21a',
    'wcag21aa',
    'best-practice'
  ]);
  for (const selector of OURS) {
    builder = builder.include(selector);
  }
  const results = await builder.analyze();
  return results.violations
    .filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(
      v =>
        `${v.id} (${v.impact}): ${v.help}\n` +
        v.nodes
          .map(node => `  ${node.target} ${node.failureSummary}`)
          .join('\n')
    );
}

/** Drags the sidebar's edge as far as it goes, to the sidebar's minimum width. */
async function narrowest(
  page: IJupyterLabPageFixture,
  panel: Locator
): Promise<number> {
  const box = (await panel.boundingBox())!;
  const viewport = page.viewportSize()!;
  await page.mouse.move(box.x - 2, box.y + 200);
  await page.mouse.down();
  await page.mouse.move(viewport.width - 20, box.y + 200, { steps: 10 });
  await page.mouse.up();
  return (await panel.boundingBox())!.width;
}

async function top(locator: Locator): Promise<number> {
  return (await locator.boundingBox())!.y;
}

test('the panel is accessible and keeps its rows at the narrowest width, light and dark', async ({
  page
}, testInfo) => {
  await page.notebook.createNew('narrow.ipynb');
  await page.evaluate(async () => {
    await window.jupyterapp.commands.execute('notebook-agent:open-panel');
  });
  const panel = page.locator('#jp-notebook-agent-panel');
  await expect(panel).toBeVisible();
  expect(await narrowest(page, panel)).toBeLessThanOrEqual(252);

  const box = panel.getByLabel('Request to the agent');
  await box.fill('Count to twelve, slowly');
  await box.press('Enter');
  const stop = panel.getByRole('button', { name: 'Stop' });
  const acceptAll = panel.getByRole('button', { name: 'Accept all' });
  const rejectAll = panel.getByRole('button', { name: 'Reject all' });
  await expect(rejectAll).toBeVisible({ timeout: 30_000 });
  await expect(
    page.locator('.jp-Cell .jp-InputPrompt', { hasText: '[*]:' })
  ).toBeVisible();

  // Reject all beside Accept all; Stop stays where it is while the time grows (past 10 s).
  expect(await top(rejectAll)).toBe(await top(acceptAll));
  const stopAt = await stop.boundingBox();
  for (let tick = 0; tick < 8; tick++) {
    await page.waitForTimeout(500);
    expect(await stop.boundingBox()).toEqual(stopAt);
  }

  expect(await seriousViolations(page)).toEqual([]);
  await panel.screenshot({
    path: testInfo.outputPath('narrow-light-running.png')
  });

  await page.theme.setDarkTheme();
  expect(await seriousViolations(page)).toEqual([]);
  await panel.screenshot({
    path: testInfo.outputPath('narrow-dark-running.png')
  });

  await expect(panel.locator('.jp-NotebookAgent-outcome')).toContainText(
    'Counted to twelve.',
    { timeout: 60_000 }
  );
  expect(await seriousViolations(page)).toEqual([]);
  await panel.screenshot({ path: testInfo.outputPath('narrow-dark-done.png') });
  await page.theme.setLightTheme();
  expect(await seriousViolations(page)).toEqual([]);
  await panel.screenshot({
    path: testInfo.outputPath('narrow-light-done.png')
  });
});
