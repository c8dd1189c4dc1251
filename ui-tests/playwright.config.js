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
  webServer: {
    command: 'jlpm start',
    url: 'http://localhost:8888/lab',
    timeout: 120 * 1000,
    reuseExistingServer: !process.env.CI
  }
};
