// The mini-program's login, end to end: the real app.js and page, in the strict runtime, with
// the real WASM module, against the real server in dev mode. One server per test, so its
// simulator's counters belong to that test alone.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer, freePort } = require('../js/dev-server.js');
const { FAST, withServer, earlierLogin, loggedIn, issueToken, apiServer, waitFor } = require('./support.js');

const EXPIRY_KEY = FAST.expiry_storage_key;

/** The token as other code of the app reads it: the bare string under `token`. */
function storedToken(device) {
  return device.get('token');
}

test('first launch: one wx.login, one POST /login, token in storage and globalData, page shows it', async (t) => {
  const { server, device, launch } = await withServer(t);

  const rt = launch();
  const token = await rt.app.ensureLogin();

  assert.equal(rt.count('login'), 1);
  assert.equal(rt.count('request', 'POST', '/login'), 1);
  assert.equal(rt.count('request', 'GET', '/checklogin'), 0, 'no check without a stored token');
  assert.equal(rt.app.globalData.token, token);
  assert.equal(storedToken(device), token);
  assert.equal(typeof device.get(EXPIRY_KEY), 'number');
  assert.deepEqual((await server.api('GET', '/checklogin', undefined, token)).body, { is_login: true });
  assert.equal(rt.count('WXWebAssembly.instantiate'), 1);
  assert.deepEqual(rt.calls.find((c) => c.api === 'WXWebAssembly.instantiate'), { api: 'WXWebAssembly.instantiate', path: '/miniprogram_npm/wx-login-client/wasm/client_bg.wasm.br' });
  // The client is the npm package as miniprogram-ci built it, required by name.
  const loaded = [...rt.modules.keys()];
  for (const file of ['index.js', 'lib/host.js', 'wasm/client.js']) assert.ok(loaded.includes(`/miniprogram_npm/wx-login-client/${file}`), loaded.join(' '));
  assert.ok(!loaded.some((key) => key.includes('node_modules')), loaded.join(' '));

  await waitFor('the page to show it', () => rt.page.data.state === 'logged-in');
  const text = rt.pageText();
  assert.match(text, /Logged in/);
  assert.match(text, /Log out/);
  assert.ok(text.includes(token.slice(-6)), text);
});

test('relaunch with the stored token: no wx.login, no POST /login, only the check', async (t) => {
  const { server, launch } = await withServer(t);
  const token = await earlierLogin(launch);

  const again = launch();
  assert.equal(await again.app.ensureLogin(), token);
  assert.equal(await loggedIn(again), token);
  await waitFor('the check', () => again.app.globalData.login.verified);
  assert.equal(again.count('login'), 0);
  assert.equal(again.count('request', 'POST', '/login'), 0);
  assert.equal(again.count('request', 'GET', '/checklogin'), 1);
  assert.equal(again.app.globalData.login.verified, true);
  assert.equal((await server.api('GET', '/sim/stats')).body.codes_issued, 1);
});

test('relaunch after the server forgot the session: the check replaces the token, with one login', async (t) => {
  const { server, device, launch } = await withServer(t);
  const old = await earlierLogin(launch);
  assert.equal((await server.api('POST', '/logout', undefined, old)).status, 204);

  const again = launch();
  // The saved token is handed out at once; the check in the background finds it revoked and
  // logs in again without anyone asking.
  assert.equal(await again.app.ensureLogin(), old);
  await waitFor('the new token', () => again.app.globalData.token !== '' && again.app.globalData.token !== old);
  const fresh = await loggedIn(again);
  assert.notEqual(fresh, old);
  assert.equal(await again.app.ensureLogin(), fresh);
  assert.equal(again.count('request', 'GET', '/checklogin'), 1);
  assert.equal(again.count('login'), 1);
  assert.equal(again.count('request', 'POST', '/login'), 1);
  assert.equal(storedToken(device), fresh);
  assert.equal((await server.api('GET', '/checklogin', undefined, fresh)).body.is_login, true);
});

test('pages calling ensureLogin concurrently share one login', async (t) => {
  const { launch } = await withServer(t);
  const rt = launch();
  // onLaunch already asked once; these join the same login.
  const tokens = await Promise.all([rt.app.ensureLogin(), rt.app.ensureLogin(), rt.app.ensureLogin(), rt.app.ensureLogin()]);
  assert.equal(new Set(tokens).size, 1);
  assert.equal(rt.count('login'), 1);
  assert.equal(rt.count('request', 'POST', '/login'), 1);
});

test('WeChat busy (-1) once: still ends logged in', async (t) => {
  const { server, launch } = await withServer(t);
  assert.equal((await server.api('POST', '/sim/faults', { errcodes: [-1] })).status, 204);

  const rt = launch();
  const token = await rt.app.ensureLogin();
  assert.equal(await loggedIn(rt), token);
  assert.equal((await server.api('GET', '/checklogin', undefined, token)).body.is_login, true);
  // The server retried code2Session itself; the fault was used up.
  assert.equal((await server.api('GET', '/sim/stats')).body.code2session_calls, 2);
  assert.equal(rt.count('login'), 1);
});

test('WeChat busy with no server-side retry: the client backs off (Retry-After) and logs in', async (t) => {
  const { server, launch } = await withServer(t, { env: { WECHAT_BUSY_RETRIES: '0' } });
  await server.api('POST', '/sim/faults', { errcodes: [-1] });

  // The server answers 503 with Retry-After (5 s); the machine must wait at least that long.
  const rt = launch({ machine: { max_backoff_ms: 10000 } });
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
  const { launch } = await withServer(t);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;

  const rt = launch({ baseUrl: base });
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
  const { launch } = await withServer(t);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;

  const rt = launch({ baseUrl: base, machine: { max_attempts: 20, base_backoff_ms: 100, max_backoff_ms: 200 } });
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
  const { server, device, launch } = await withServer(t);
  const rt = launch();
  const token = await loggedIn(rt);
  await waitFor('the page', () => rt.page.data.loggedIn);

  rt.tap('onLogout');
  await waitFor('logged-out', () => rt.page.data.state === 'logged-out');
  assert.equal(device.get('token'), '');
  assert.equal(device.get(EXPIRY_KEY), '');
  assert.equal(rt.app.globalData.token, '');
  await waitFor('POST /logout', () => rt.count('request', 'POST', '/logout') === 1);
  const logout = rt.calls.find((c) => c.api === 'request' && c.path === '/logout');
  assert.equal(logout.headers.authorization, `Bearer ${token}`);
  // POST /logout is fire and forget for the app; the server has revoked the token once it
  // answered.
  await waitFor('the answer to POST /logout', () => logout.status !== undefined);
  assert.equal(logout.status, 204);
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

// ---- launch without waiting -------------------------------------------------------------------

test('relaunch with a saved, unexpired token: ensureLogin and request answer before the check does', async (t) => {
  const { launch } = await withServer(t);
  const token = await earlierLogin(launch);

  // The check's answer is held back: whatever resolves before it is released did not wait.
  const again = launch({ holdAnswers: (call) => call.path === '/checklogin' });
  assert.equal(await again.app.ensureLogin(), token);
  const check = again.calls.find((c) => c.api === 'request' && c.path === '/checklogin');
  assert.ok(check, 'the check went out');
  assert.equal(check.headers.authorization, `Bearer ${token}`);
  assert.equal(check.status, undefined, 'resolved while the check is unanswered');
  assert.equal(again.app.globalData.login.state, 'checking');
  assert.equal(again.app.globalData.token, token, 'the app knows the token already');

  // A business request goes out with the saved token too, still before the check's answer.
  const api = await apiServer(t, (hit) => ({ status: 200, body: { bearer: hit.headers.authorization } }));
  const res = await again.app.request({ url: `${api.base}/whoami` });
  assert.equal(res.statusCode, 200);
  assert.deepEqual({ ...res.data }, { bearer: `Bearer ${token}` });
  assert.equal(check.status, undefined, 'the check is still unanswered');

  await waitFor('the held check', () => again.held.length === 1);
  again.releaseHeld();
  await waitFor('verified', () => again.app.globalData.login.state === 'logged-in' && again.app.globalData.login.verified);
  assert.equal(check.status, 200);
  assert.equal(again.count('login'), 0);
  assert.equal(again.count('request', 'POST', '/login'), 0);
});

// ---- storage format ---------------------------------------------------------------------------

test('after a login, storage holds the bare token under "token" and the expiry as a number', async (t) => {
  const { server, launch } = await withServer(t);
  const before = Date.now();
  const rt = launch();
  const token = await rt.app.ensureLogin();

  // What other code of the app reads: wx.getStorageSync('token') is the token itself.
  assert.equal(rt.evaluate("typeof wx.getStorageSync('token')"), 'string');
  assert.equal(rt.evaluate("wx.getStorageSync('token')"), token);
  const expiry = rt.evaluate(`wx.getStorageSync('${EXPIRY_KEY}')`);
  assert.equal(typeof expiry, 'number');
  // The server issues week-long tokens.
  const week = 7 * 24 * 3600 * 1000;
  assert.ok(expiry >= before + week && expiry <= Date.now() + week, `expiry ${expiry}`);
  assert.equal(rt.app.globalData.login.expiresAt, expiry);
});

test('a device with the first JSON format under "token" keeps its session and is rewritten', async (t) => {
  const { server, device, launch } = await withServer(t);
  const { token, expires_in: expiresIn } = await issueToken(server);
  const expiresAt = Date.now() + expiresIn * 1000;
  // What the previous version of this app stored: JSON text, in a string.
  device.set('token', JSON.stringify({ token, expires_at_ms: expiresAt }));

  const rt = launch();
  assert.equal(await rt.app.ensureLogin(), token);
  await waitFor('verified', () => rt.app.globalData.login.verified);
  assert.equal(rt.count('login'), 0, 'no wx.login');
  assert.equal(rt.count('request', 'POST', '/login'), 0);
  assert.equal(device.get('token'), token, 'rewritten as the bare token');
  assert.equal(device.get(EXPIRY_KEY), expiresAt, 'with the expiry as a number');
  assert.equal(rt.app.globalData.login.expiresAt, expiresAt);
});

test("the original app's bare token (no expiry) is used as is and verified", async (t) => {
  const { server, device, launch } = await withServer(t);
  const { token } = await issueToken(server);
  device.set('token', token);

  const rt = launch();
  assert.equal(await rt.app.ensureLogin(), token);
  await waitFor('verified', () => rt.app.globalData.login.verified);
  assert.equal(rt.count('login'), 0);
  assert.equal(device.get('token'), token);
  assert.equal(device.get(EXPIRY_KEY), '', 'no expiry invented');
});

test('a saved token past its expiry is not used: one login, storage replaced', async (t) => {
  const { server, device, launch } = await withServer(t);
  const { token } = await issueToken(server);
  device.set('token', token);
  device.set(EXPIRY_KEY, Date.now() - 1000);

  const rt = launch();
  const fresh = await rt.app.ensureLogin();
  assert.notEqual(fresh, token);
  assert.equal(rt.count('request', 'GET', '/checklogin'), 0, 'an expired token is not even checked');
  assert.equal(rt.count('login'), 1);
  assert.equal(device.get('token'), fresh);
  assert.ok(device.get(EXPIRY_KEY) > Date.now());
});
