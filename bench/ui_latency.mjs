// The browser half of bench/ui_latency.py: for each notebook named on the command line, opens
// it in JupyterLab in headless Chromium, asks the agent to write the cell, and records when
// each marker of the cell's source reached the page over WebSocket and when it appeared in
// the cell's editor. Prints one JSON object: {"rounds": [...]}, times in ms since the epoch.
//
// Usage: node bench/ui_latency.mjs BASE_URL TOKEN PROMPT NOTEBOOK...; round i's prompt ends
// with the tag bench-ui-i, by which the model server's send times are told apart.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { chromium } = require('../ui-tests/node_modules/playwright-core');

const [baseUrl, token, prompt, ...notebooks] = process.argv.slice(2);
const MARKER = 'v(\\d{3}) = 1\\d{6}';
const TIMEOUT = 60000;

/** Runs in the page before the app: stamps each event frame as the page receives it. */
function hookSockets(markerSource) {
  const marker = new RegExp(markerSource, 'g');
  window.__bench = { frames: {}, shown: {}, painted: {} };
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      if (!String(args[0]).includes('/notebook-agent/runs/')) {
        return;
      }
      this.addEventListener('message', message => {
        const now = performance.timeOrigin + performance.now();
        const event = JSON.parse(message.data);
        if (event.type !== 'cell_source_delta') {
          return;
        }
        for (const [found] of String(event.text).matchAll(marker)) {
          window.__bench.frames[found] ??= now;
        }
      });
    }
  };
}

/** Runs in the page once the notebook is shown: stamps each marker as the editor shows it. */
function watchCells(markerSource) {
  const marker = new RegExp(markerSource, 'g');
  const notebook = document.querySelector('.jp-NotebookPanel-notebook');
  const { shown, painted } = window.__bench;
  const observer = new MutationObserver(() => {
    const now = performance.timeOrigin + performance.now();
    const fresh = [];
    for (const content of notebook.querySelectorAll('.jp-Cell .cm-content')) {
      for (const [found] of content.textContent.matchAll(marker)) {
        if (!(found in shown)) {
          shown[found] = now;
          fresh.push(found);
        }
      }
    }
    if (fresh.length) {
      // The frame that shows them: its animation callback runs just before it is painted.
      requestAnimationFrame(() => {
        const frame = performance.timeOrigin + performance.now();
        for (const found of fresh) {
          painted[found] = frame;
        }
      });
    }
  });
  observer.observe(notebook, {
    subtree: true,
    childList: true,
    characterData: true
  });
}

async function round(browser, notebook, tag) {
  // Tall enough that CodeMirror renders every line of the cell, not just a viewport's worth.
  const page = await browser.newPage({ viewport: { width: 1280, height: 4000 } });
  const frames = {};
  page.on('websocket', socket => {
    if (!socket.url().includes('/notebook-agent/runs/')) {
      return;
    }
    socket.on('framereceived', ({ payload }) => {
      const now = Date.now();
      const event = JSON.parse(String(payload));
      if (event.type !== 'cell_source_delta') {
        return;
      }
      for (const [found] of String(event.text).matchAll(new RegExp(MARKER, 'g'))) {
        frames[found] ??= now;
      }
    });
  });
  await page.addInitScript(hookSockets, MARKER);
  // A workspace of its own, so that no earlier round's notebook is restored beside it.
  await page.goto(
    `${baseUrl}lab/workspaces/${tag}/tree/${notebook}?reset&token=${token}`
  );
  await page.waitForFunction(() => window.jupyterapp?.started !== undefined, null, {
    timeout: TIMEOUT
  });
  await page.locator('.jp-NotebookPanel-notebook .jp-Cell').first().waitFor({ timeout: TIMEOUT });
  await page.evaluate(watchCells, MARKER);
  await page.evaluate(() => window.jupyterapp.commands.execute('notebook-agent:open-panel'));
  const request = page.getByLabel('Request to the agent');
  await request.fill(`${prompt} ${tag}`);
  await request.press('Enter');
  const shown = await page.waitForFunction(
    () => document.querySelector('.jp-NotebookAgent-outcome')?.textContent,
    null,
    { timeout: TIMEOUT }
  );
  const outcome = await shown.jsonValue();
  await page.waitForTimeout(200); // the last animation frames
  const inPage = await page.evaluate(() => window.__bench);
  await page.close();
  return {
    notebook,
    outcome,
    frames,
    page_frames: inPage.frames,
    shown: inPage.shown,
    painted: inPage.painted
  };
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true
});
try {
  const rounds = [];
  for (const [index, notebook] of notebooks.entries()) {
    rounds.push(await round(browser, notebook, `bench-ui-${index}`));
  }
  process.stdout.write(JSON.stringify({ rounds }) + '\n');
} finally {
  await browser.close();
}
