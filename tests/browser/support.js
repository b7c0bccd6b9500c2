// Helpers of the browser tests: start the real dev server (target/debug/server) serving the
// built harness, and launch Debian's Chromium through playwright-core with a fresh profile.
// `cargo xtask test` builds both the server and the harness before running these tests.
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');

const ROOT = path.resolve(__dirname, '../..');
const SERVER_BIN = process.env.SERVER_BIN || path.join(ROOT, 'target/debug/server');
const HARNESS_DIR = process.env.HARNESS_DIR || path.join(ROOT, 'client-wasm/harness/dist');
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

/** A port nothing listens on right now (bound, read, released). */
function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/**
 * Starts the server in dev mode (no WECHAT_APPID: its simulator stands in for WeChat) with the
 * memory store, serving the harness, and waits for /healthz. `env` adds variables. Resolves
 * with { base, api(method, path, body?, token?), stats(), stop() }.
 */
async function startServer({ env: extraEnv = {} } = {}) {
  for (const [what, file, hint] of [
    ['server binary', SERVER_BIN, 'cargo build -p server'],
    ['harness', path.join(HARNESS_DIR, 'index.html'), 'cargo xtask build'],
  ]) {
    if (!fs.existsSync(file)) throw new Error(`${what} missing at ${file}: build it with \`${hint}\``);
  }
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const env = {
    ...process.env,
    LISTEN_ADDR: `127.0.0.1:${port}`,
    SESSION_STORE: 'memory',
    HARNESS_DIR,
    RUST_LOG: process.env.RUST_LOG || 'warn',
    ...extraEnv,
  };
  delete env.WECHAT_APPID;
  delete env.WECHAT_SECRET;
  const child = spawn(SERVER_BIN, [], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise((resolve) => child.once('exit', resolve));

  const api = async (method, pathname, body, token) => {
    const headers = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await fetch(base + pathname, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, body: json, text };
  };

  const deadline = Date.now() + 15000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}:\n${output}`);
    try {
      if ((await api('GET', '/healthz')).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`server did not become healthy on ${base}:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  return {
    base,
    api,
    output: () => output,
    /** The simulator's counters: { code2session_calls, codes_issued }. */
    async stats() {
      return (await api('GET', '/sim/stats')).body;
    },
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
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
