// Helpers of the browser tests: start the real dev server (tests/js/dev-server.js) serving the
// built harness, and launch Debian's Chromium through playwright-core with a fresh profile.
// `cargo xtask test` builds both the server and the harness before running these tests.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');
const { startServer: startDevServer, freePort } = require('../js/dev-server.js');

const ROOT = path.resolve(__dirname, '../..');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = path.join(ROOT, 'tests/artifacts');

// As root, Chromium needs --no-sandbox; the rest stop it from calling hosts this machine
// cannot reach (see the project's browser-tests notes).
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** The dev server of tests/js/dev-server.js, serving the built harness. */
function startServer(options = {}) {
  return startDevServer({ ...options, harness: true });
}

/**
 * Chromium with a fresh profile of its own: a persistent context, so a reload keeps
 * localStorage as a phone keeps the mini-program's storage. Resolves with
 * { context, page, errors, requests, close() }, where `errors` collects uncaught page errors
 * and console errors and `requests` every request the page made ("METHOD /path").
 */
async function openBrowser() {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium (cargo xtask test does)`);
  }
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'harness-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1000, height: 900 },
  });
  const page = context.pages()[0] || (await context.newPage());
  const errors = [];
  const requests = [];
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console error: ${m.text()}`);
  });
  page.on('request', (r) => requests.push(`${r.method()} ${new URL(r.url()).pathname}`));
  return {
    context,
    page,
    errors,
    requests,
    async close() {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

module.exports = { startServer, openBrowser, freePort, ARTIFACTS };
