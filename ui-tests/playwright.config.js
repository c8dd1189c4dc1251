/**
 * Configuration for Playwright using default from @jupyterlab/galata
 *
 * The browser is the system's Chromium (Debian's `chromium` package), not one
 * downloaded by Playwright: install it with `apt-get install chromium` and set
 * PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1. CHROMIUM_PATH overrides its location.
 */
const baseConfig = require('@jupyterlab/galata/lib/playwright-config');

module.exports = {
  ...baseConfig,
  reporter: [[process.env.CI ? 'github' : 'list'], ['html', { open: 'never' }]],
  use: {
    ...baseConfig.use,
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium'
    },
    // Recording video needs Playwright's own ffmpeg download: keep a trace instead.
    video: 'off',
    trace: 'retain-on-failure'
  },
  // One test at a time, as when there was one project: the runs' timing is part of what the
  // tests check, and two JupyterLabs busy at once would make it flaky.
  workers: 1,
  // The same tests at the server's root; base_url.spec.ts in a JupyterLab served under a
  // JupyterHub-style base URL, as JupyterHub serves a person's server at /user/NAME/; and
  // local_model.spec.ts in one whose server has no model configured; notebook_kernel.spec.ts
  // and mcp.spec.ts in one that runs code in sandbox kernels, as installed (the others use the
  // local kernel);
  // interrupted.spec.ts in one started after a server was killed mid-run (interrupted_server.py).
  projects: [
    {
      name: 'root',
      testIgnore:
        /(base_url|local_model|model_setup|notebook_kernel|mcp|interrupted)\.spec\.ts/
    },
    {
      name: 'base-url',
      testMatch: /base_url\.spec\.ts/,
      use: { baseURL: 'http://localhost:8889/user/galata' }
    },
    {
      name: 'no-model',
      testMatch: /(local_model|model_setup)\.spec\.ts/,
      use: { baseURL: 'http://localhost:8890' }
    },
    {
      name: 'sandbox',
      testMatch: /(notebook_kernel|mcp)\.spec\.ts/,
      use: { baseURL: 'http://localhost:8891' }
    },
    {
      name: 'interrupted',
      testMatch: /interrupted\.spec\.ts/,
      use: { baseURL: 'http://localhost:8892' }
    }
  ],
  webServer: [
    {
      command: 'jlpm start',
      url: 'http://localhost:8888/lab',
      timeout: 120 * 1000,
      reuseExistingServer: !process.env.CI
    },
    {
      command: 'jlpm start:base-url',
      url: 'http://localhost:8889/user/galata/lab',
      timeout: 120 * 1000,
      reuseExistingServer: !process.env.CI
    },
    {
      command: 'jlpm start:no-model',
      url: 'http://localhost:8890/lab',
      timeout: 120 * 1000,
      reuseExistingServer: !process.env.CI
    },
    {
      command: 'jlpm start:sandbox',
      url: 'http://localhost:8891/lab',
      timeout: 120 * 1000,
      reuseExistingServer: !process.env.CI
    },
    {
      command: 'jlpm start:interrupted',
      url: 'http://localhost:8892/lab',
      timeout: 120 * 1000,
      reuseExistingServer: !process.env.CI
    }
  ]
};
