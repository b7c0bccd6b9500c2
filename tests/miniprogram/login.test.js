// The mini-program's login, end to end: the real app.js and page, in the strict runtime, with
// the real WASM module, against the real server in dev mode. One server per test, so its
// simulator's counters belong to that test alone.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { Runtime, Device } = require('./runtime.js');
const { startServer, freePort } = require('../js/dev-server.js');

// Short backoff keeps the retry tests fast; everything else is the shipped config.
const FAST = { max_attempts: 3, base_backoff_ms: 50, max_backoff_ms: 400, storage_key: 'token' };

/** The app's config module pointed at `baseUrl`, with `machine` overrides. */
function configFor(baseUrl, machine = {}) {
  return { '/config.js': { baseUrl, requestTimeoutMs: 2000, machine: { ...FAST, ...machine } } };
}

async function waitFor(what, predicate, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Launches the app, tracks it for clean-up, and checks its health when the test ends. */
function launcher(t) {
  const runtimes = [];
  t.after(async () => {
    // Give late rejections a turn to surface before judging.
    await new Promise((r) => setTimeout(r, 20));
    for (const rt of runtimes) rt.close();
    for (const rt of runtimes) rt.assertHealthy();
  });
  return (options) => {
    const rt = new Runtime(options);
    runtimes.push(rt);
    return rt.launch();
  };
}

function storedToken(device) {
  const stored = device.get('token');
  return stored === '' ? '' : JSON.parse(stored).token;
}

async function loggedIn(rt) {
  await waitFor('logged-in', () => rt.app.globalData.login.state === 'logged-in' && rt.app.globalData.token !== '');
  return rt.app.globalData.token;
}

test('first launch: one wx.login, one POST /login, token in storage and globalData, page shows it', async (t) => {
  const server = await startServer();
  t.after(() => server.stop());
  const launch = launcher(t);
  const device = new Device();

  const rt = launch({ device, simBase: server.base, modules: configFor(server.base) });
  const token = await rt.app.ensureLogin();

  assert.equal(rt.count('login'), 1);
  assert.equal(rt.count('request', 'POST', '/login'), 1);
  assert.equal(rt.count('request', 'GET', '/checklogin'), 0, 'no check without a stored token');
  assert.equal(rt.app.globalData.token, token);
  assert.equal(storedToken(device), token);
  assert.deepEqual((await server.api('GET', '/checklogin', undefined, token)).body, { is_login: true });
  assert.equal(rt.count('WXWebAssembly.instantiate'), 1);
  assert.deepEqual(rt.calls.find((c) => c.api === 'WXWebAssembly.instantiate'), { api: 'WXWebAssembly.instantiate', path: '/wasm/client_bg.wasm.br' });

  await waitFor('the page to show it', () => rt.page.data.state === 'logged-in');
  const text = rt.pageText();
  assert.match(text, /Logged in/);
  assert.match(text, /Log out/);
  assert.ok(text.includes(token.slice(-6)), text);
});

test('relaunch with the stored token: no wx.login, no POST /login, only the check', async (t) => {
  const server = await startServer();
  t.after(() => server.stop());
  const launch = launcher(t);
  const device = new Device();
  const first = launch({ device, simBase: server.base, modules: configFor(server.base) });
  const token = await first.app.ensureLogin();
  first.close();

  const again = launch({ device, simBase: server.base, modules: configFor(server.base) });
  assert.equal(await again.app.ensureLogin(), token);
  assert.equal(await loggedIn(again), token);
  assert.equal(again.count('login'), 0);
  assert.equal(again.count('request', 'POST', '/login'), 0);
  assert.equal(again.count('request', 'GET', '/checklogin'), 1);
  assert.equal(again.app.globalData.login.verified, true);
  assert.equal((await server.api('GET', '/sim/stats')).body.codes_issued, 1);
});

test('relaunch after the server forgot the session: exactly one new login', async (t) => {
  const server = await startServer();
  t.after(() => server.stop());
  const launch = launcher(t);
  const device = new Device();
  const first = launch({ device, simBase: server.base, modules: configFor(server.base) });
  const old = await first.app.ensureLogin();
  first.close();
  assert.equal((await server.api('POST', '/logout', undefined, old)).status, 204);

  const again = launch({ device, simBase: server.base, modules: configFor(server.base) });
  const fresh = await again.app.ensureLogin();
  assert.notEqual(fresh, old);
  assert.equal(again.count('request', 'GET', '/checklogin'), 1);
  assert.equal(again.count('login'), 1);
  assert.equal(again.count('request', 'POST', '/login'), 1);
  assert.equal(storedToken(device), fresh);
  assert.equal(await loggedIn(again), fresh);
});

test('pages calling ensureLogin concurrently share one login', async (t) => {
  const server = await startServer();
  t.after(() => server.stop());
  const launch = launcher(t);
  const rt = launch({ simBase: server.base, modules: configFor(server.base) });
  // onLaunch already asked once; these join the same login.
  const tokens = await Promise.all([rt.app.ensureLogin(), rt.app.ensureLogin(), rt.app.ensureLogin(), rt.app.ensureLogin()]);
  assert.equal(new Set(tokens).size, 1);
  assert.equal(rt.count('login'), 1);
  assert.equal(rt.count('request', 'POST', '/login'), 1);
});

test('WeChat busy (-1) once: still ends logged in', async (t) => {
  const server = await startServer();
  t.after(() => server.stop());
  const launch = launcher(t);
  assert.equal((await server.api('POST', '/sim/faults', { errcodes: [-1] })).status, 204);

  const rt = launch({ simBase: server.base, modules: configFor(server.base) });
  const token = await rt.app.ensureLogin();
  assert.equal(await loggedIn(rt), token);
  assert.equal((await server.api('GET', '/checklogin', undefined, token)).body.is_login, true);
  // The server retried code2Session itself; the fault was used up.
  assert.equal((await server.api('GET', '/sim/stats')).body.code2session_calls, 2);
  assert.equal(rt.count('login'), 1);
});

test('WeChat busy with no server-side retry: the client backs off (Retry-After) and logs in', async (t) => {
  const server = await startServer({ env: { WECHAT_BUSY_RETRIES: '0' } });
  t.after(() => server.stop());
  const launch = launcher(t);
  await server.api('POST', '/sim/faults', { errcodes: [-1] });

  // The server answers 503 with Retry-After (5 s); the machine must wait at least that long.
  const rt = launch({ simBase: server.base, modules: configFor(server.base, { max_backoff_ms: 10000 }) });
  await waitFor('retry-waiting', () => rt.app.globalData.login.state === 'retry-waiting');
  assert.equal(rt.app.globalData.login.error.code, 'upstream_unavailable');
  assert.match(rt.pageText(), /retrying/);
  const token = await rt.app.ensureLogin();
  assert.equal(await loggedIn(rt), token);
  assert.equal(rt.count('login'), 2, 'a new code for the second round');
  assert.equal(rt.count('request', 'POST', '/login'), 2);
});

test('server down at launch: a clear error, no unhandled rejection; logs in once it is back', async (t) => {
  // WeChat (the simulator of one server) is up; our server's address is dead.
  const wechat = await startServer();
  t.after(() => wechat.stop());
  const launch = launcher(t);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;

  const rt = launch({ simBase: wechat.base, modules: configFor(base) });
  await assert.rejects(rt.app.ensureLogin(), (error) => error.code === 'network_error');
  await waitFor('failed', () => rt.app.globalData.login.state === 'failed');
  assert.equal(rt.app.globalData.login.error.code, 'network_error');
  assert.equal(rt.app.globalData.token, '');
  assert.equal(rt.count('request', 'POST', '/login'), FAST.max_attempts);
  const text = rt.pageText();
  assert.match(text, /Login failed/);
  assert.match(text, /network_error/);
  assert.match(text, /Log in/);
  assert.equal(rt.page.data.busy, false, 'the button is usable again');

  // The server comes back on that address. Each server checks codes with its own simulator,
  // so wx.login now goes there too (in production WeChat is one service).
  const server = await startServer({ port });
  t.after(() => server.stop());
  rt.simBase = server.base;
  rt.tap('onLogin');
  const token = await loggedIn(rt);
  assert.equal((await server.api('GET', '/checklogin', undefined, token)).body.is_login, true);
  assert.doesNotMatch(rt.pageText(), /network_error/);
});

test('server down at launch, back while the machine waits: its retry timer logs in', async (t) => {
  const wechat = await startServer();
  t.after(() => wechat.stop());
  const launch = launcher(t);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;

  const rt = launch({ simBase: wechat.base, modules: configFor(base, { max_attempts: 20, base_backoff_ms: 100, max_backoff_ms: 200 }) });
  const launchLogin = rt.app.ensureLogin(); // a page waiting for its token through the outage
  await waitFor('retry-waiting', () => rt.app.globalData.login.state === 'retry-waiting');
  assert.equal(rt.app.globalData.login.error.code, 'network_error');
  assert.match(rt.pageText(), /Cannot reach the server, retrying/);

  const server = await startServer({ port });
  t.after(() => server.stop());
  rt.simBase = server.base;
  const token = await launchLogin;
  assert.equal(await loggedIn(rt), token);
  assert.equal((await server.api('GET', '/checklogin', undefined, token)).body.is_login, true);
});

test('log out with the button, then log in again with it', async (t) => {
  const server = await startServer();
  t.after(() => server.stop());
  const launch = launcher(t);
  const device = new Device();
  const rt = launch({ device, simBase: server.base, modules: configFor(server.base) });
  const token = await loggedIn(rt);
  await waitFor('the page', () => rt.page.data.loggedIn);

  rt.tap('onLogout');
  await waitFor('logged-out', () => rt.page.data.state === 'logged-out');
  assert.equal(device.get('token'), '');
  assert.equal(rt.app.globalData.token, '');
  await waitFor('POST /logout', () => rt.count('request', 'POST', '/logout') === 1);
  const logout = rt.calls.find((c) => c.api === 'request' && c.path === '/logout');
  assert.equal(logout.headers.authorization, `Bearer ${token}`);
  // POST /logout is fire and forget; give it its turn before asking the server.
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual((await server.api('GET', '/checklogin', undefined, token)).body, { is_login: false });
  assert.match(rt.pageText(), /Logged out/);

  rt.tap('onLogin');
  const fresh = await loggedIn(rt);
  assert.notEqual(fresh, token);
  assert.equal(storedToken(device), fresh);
  assert.equal(rt.count('login'), 2);
  await waitFor('the page', () => rt.page.data.loggedIn);
  assert.match(rt.pageText(), /Logged in/);
});
