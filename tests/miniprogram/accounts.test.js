// The account from the mini-program: the device a login names, the account's user_id and
// sessions on the page, ending one of them, logging out everywhere and deleting the account.
// The real app and page in the strict runtime, with the real WASM module, against the real
// server in dev mode; where a test needs the server to say no, a small backend of its own.
// The runtime's `holdAnswers` keeps the server's 204 from the app until the test has looked:
// nothing may change on the phone before it comes.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { Device } = require('./runtime.js');
const { FAST, withServer, loggedIn, issueToken, apiServer, waitFor } = require('./support.js');

const PENDING_KEY = FAST.logout_storage_key;
/** The runtime's phone, as "<model> / <system>". */
const PHONE = 'iPhone 15 Pro<iPhone16,1> / iOS 17.4.1';

/** The body of the app's POST /login calls, parsed. */
function logins(rt) {
  return rt.calls.filter((c) => c.api === 'request' && c.method === 'POST' && c.path === '/login').map((c) => JSON.parse(c.body));
}

/** The app's requests of `method path`. */
function calls(rt, method, pathname) {
  return rt.calls.filter((c) => c.api === 'request' && c.method === method && c.path === pathname);
}

/** Whether the server still takes `token`. */
async function live(server, token) {
  return (await server.api('GET', '/checklogin', undefined, token)).body.is_login;
}

/** What the phone keeps of the login: the token's keys and the pending logouts. */
function kept(device) {
  return { token: device.get('token'), expiry: typeof device.get('token_expires_at_ms'), pending: device.get(PENDING_KEY) };
}

/** Waits for one answer of `method path` to be held back; resolves with that call. */
async function held(rt, method, pathname) {
  await waitFor(`${method} ${pathname} to be answered (and held)`, () => rt.held.some((h) => h.call.method === method && h.call.path === pathname));
  return rt.held.find((h) => h.call.method === method && h.call.path === pathname).call;
}

/**
 * A stand-in for the whole backend: POST /login issues tok-1, tok-2, …; other paths answer
 * `api(hit, token)`. wx.login codes still come from the real server's simulator.
 */
async function fakeBackend(t, api) {
  let issued = 0;
  return apiServer(t, (hit) => {
    if (hit.method === 'POST' && hit.url === '/login') {
      issued += 1;
      return { status: 200, body: { token: `tok-${issued}`, expires_in: 3600 } };
    }
    const match = /^Bearer (\S+)$/.exec(hit.headers.authorization || '');
    return api(hit, match ? match[1] : null);
  });
}

/** A backend whose /me and /me/sessions answer as a healthy server's, and the rest `other`. */
function account(other) {
  return (hit, token) => {
    if (hit.method === 'GET' && hit.url === '/me') return { status: 200, body: { user_id: 'u-1', openid: 'o-1', appid: 'wxdevsimulator00', expires_at: 0 } };
    if (hit.method === 'GET' && hit.url === '/me/sessions') return { status: 200, body: { sessions: [] } };
    return other(hit, token);
  };
}

// ---- the device a login names ------------------------------------------------------------

test('a login names the phone: "<model> / <system>" from wx.getDeviceInfo', async (t) => {
  const { server, launch } = await withServer(t);
  const rt = launch();
  const token = await rt.app.ensureLogin();
  assert.deepEqual(logins(rt).map((body) => body.device), [PHONE]);
  assert.equal(rt.count('getDeviceInfo'), 1);
  assert.equal(rt.count('getSystemInfoSync'), 0, 'not the API newer base libraries deprecate');
  assert.equal((await server.api('GET', '/me', undefined, token)).status, 200, 'the server takes it');
});

test('on a base library before 2.20.1 the device comes from wx.getSystemInfoSync', async (t) => {
  const { launch } = await withServer(t);
  const rt = launch({ libVersion: '2.19.0' });
  await rt.app.ensureLogin();
  assert.deepEqual(logins(rt).map((body) => body.device), [PHONE]);
  assert.equal(rt.count('getSystemInfoSync'), 1);
});

test('a runtime that cannot describe the phone sends no device, and the login works', async (t) => {
  const { server, launch } = await withServer(t);
  const rt = launch({ device: new Device({ info: null }) });
  const token = await rt.app.ensureLogin();
  const [body] = logins(rt);
  assert.equal('device' in body, false, JSON.stringify(body));
  assert.equal(await live(server, token), true);
});

test('a device name past 128 characters is cut to 128, and the server takes the login', async (t) => {
  const { server, launch } = await withServer(t);
  const model = '非常长的型号名称'.repeat(20);
  const rt = launch({ device: new Device({ info: { model, system: 'Android 14' } }) });
  const token = await rt.app.ensureLogin();
  const [body] = logins(rt);
  assert.equal([...body.device].length, 128);
  assert.ok(model.startsWith(body.device));
  assert.equal(await live(server, token), true);
});

// ---- user_id and sessions on the page ----------------------------------------------------

test("the page shows the account's user_id and its sessions; End ends another one", async (t) => {
  const { server, launch } = await withServer(t);
  // The same WeChat user logged in elsewhere (another phone of theirs).
  const other = (await issueToken(server)).token;
  const rt = launch();
  const token = await loggedIn(rt);

  const me = await server.api('GET', '/me', undefined, token);
  assert.equal(me.status, 200, me.text);
  assert.equal(typeof me.body.user_id, 'string');
  await waitFor('the user_id on the page', () => rt.page.data.userId !== '');
  assert.equal(rt.page.data.userId, me.body.user_id);
  assert.ok(rt.pageText().includes(`Account ${me.body.user_id}`), rt.pageText());

  await waitFor('two sessions on the page', () => rt.page.data.sessions.length === 2 || rt.page.data.sessionsError !== '');
  assert.equal(rt.page.data.sessionsError, '');
  const listed = (await server.api('GET', '/me/sessions', undefined, token)).body.sessions;
  const mine = listed.find((s) => s.current);
  const theirs = listed.find((s) => !s.current);
  assert.equal(mine.device, PHONE, 'the device this login named');
  const [first, second] = rt.page.data.sessions;
  assert.deepEqual([first.id, second.id], listed.map((s) => s.id), 'newest first, as the server lists them');
  const shown = rt.page.data.sessions.find((s) => s.current);
  assert.equal(shown.id, mine.id);
  assert.equal(shown.name, PHONE);
  assert.match(shown.detail, /^since \d{4}-\d\d-\d\d \d\d:\d\d UTC/);
  const text = rt.pageText();
  assert.match(text, /This phone/);
  assert.match(text, /End/);
  assert.match(text, /Log out everywhere/);
  assert.match(text, /Delete account/);

  rt.tapItem('onEndSession', { id: theirs.id });
  await waitFor('one session left on the page', () => rt.page.data.sessions.length === 1);
  assert.equal(rt.page.data.sessions[0].id, mine.id);
  assert.equal(calls(rt, 'DELETE', `/me/sessions/${theirs.id}`)[0].headers.authorization, `Bearer ${token}`);
  assert.equal(await live(server, other), false, 'the other session is over');
  assert.equal(await live(server, token), true, 'this one is not');
  assert.equal(rt.app.globalData.login.state, 'logged-in');
});

test('endSession of an id the account does not have rejects with not_found', async (t) => {
  const { launch } = await withServer(t);
  const rt = launch();
  await rt.app.ensureLogin();
  await assert.rejects(rt.app.endSession('no-such-session'), (error) => {
    assert.equal(error.code, 'not_found');
    assert.equal(error.status, 404);
    return true;
  });
  await assert.rejects(rt.app.endSession(''), (error) => error.code === 'invalid_request');
});

// ---- logging out everywhere --------------------------------------------------------------

test('log out everywhere: DELETE /me/sessions with the token; the phone is logged out only after the 204, and every session is over', async (t) => {
  const { server, device, launch } = await withServer(t);
  const other = (await issueToken(server)).token;
  const rt = launch({ holdAnswers: (call) => call.method === 'DELETE' && call.path === '/me/sessions' });
  const token = await loggedIn(rt);
  await waitFor('the page', () => rt.page.data.loggedIn);

  rt.tap('onLogoutEverywhere');
  const call = await held(rt, 'DELETE', '/me/sessions');
  assert.equal(call.headers.authorization, `Bearer ${token}`);
  // The server has ended the sessions, but its answer has not reached the phone: nothing has
  // changed here yet.
  assert.deepEqual(kept(device), { token, expiry: 'number', pending: '' });
  assert.equal(rt.app.globalData.token, token);
  assert.equal(rt.app.globalData.login.state, 'logged-in');
  assert.equal(rt.page.data.leaving, true, 'the button shows it is working');

  assert.equal(rt.releaseHeld(), 1);
  assert.equal(call.status, 204);
  await waitFor('logged-out', () => rt.app.globalData.login.state === 'logged-out');
  // Cleared as a logout clears, and nothing left to revoke: the server ended the session.
  assert.deepEqual(kept(device), { token: '', expiry: 'string', pending: '' });
  assert.equal(rt.app.globalData.token, '');
  assert.equal(rt.count('request', 'POST', '/logout'), 0);
  assert.equal(await live(server, token), false);
  assert.equal(await live(server, other), false, "the account's other session too");
  await waitFor('the notice', () => rt.page.data.notice !== '');
  assert.match(rt.pageText(), /Logged out of every session of your account/);
  assert.match(rt.pageText(), /Log in/);
  assert.equal(rt.page.data.userId, '');

  // Not sticky: a later ensureLogin logs in again, into the same account.
  const fresh = await rt.app.ensureLogin();
  assert.notEqual(fresh, token);
  assert.equal(await live(server, fresh), true);
});

test('log out everywhere without an answer: it rejects with network and the phone stays logged in', async (t) => {
  const { server, device, launch } = await withServer(t);
  const rt = launch({ failRequests: (call) => call.method === 'DELETE' });
  const token = await loggedIn(rt);

  await assert.rejects(rt.app.logoutEverywhere(), (error) => error.code === 'network');
  assert.deepEqual(kept(device), { token, expiry: 'number', pending: '' });
  assert.equal(rt.app.globalData.login.state, 'logged-in');
  assert.equal(await live(server, token), true);

  // From the page: the error is shown, the buttons are usable again.
  rt.tap('onLogoutEverywhere');
  await waitFor('the error on the page', () => rt.page.data.accountError !== '');
  assert.match(rt.pageText(), /Could not log out everywhere: .*\(network\)/);
  assert.equal(rt.page.data.accountBusy, false);
  assert.equal(device.get('token'), token);
});

test("log out everywhere refused by the server: it rejects with the server's code and nothing changes", async (t) => {
  const { device, launch } = await withServer(t);
  const backend = await fakeBackend(t, account(() => ({ status: 503, headers: { 'retry-after': '1' }, body: { error: { code: 'store_unavailable', message: 'down' } } })));
  const rt = launch({ baseUrl: backend.base });
  await loggedIn(rt);

  await assert.rejects(rt.app.logoutEverywhere(), (error) => {
    assert.equal(error.code, 'store_unavailable');
    assert.equal(error.status, 503);
    assert.match(error.message, /DELETE \/me\/sessions answered 503: down/);
    return true;
  });
  assert.deepEqual(kept(device), { token: 'tok-1', expiry: 'number', pending: '' });
  assert.equal(rt.app.globalData.login.state, 'logged-in');
  assert.equal(backend.hits.filter((h) => h.method === 'DELETE').length, 1);
});

// ---- deleting the account ----------------------------------------------------------------

test('delete account: a fresh wx.login and POST /login, DELETE /me with the new token, and the phone is logged out only after the 204', async (t) => {
  const { server, device, launch } = await withServer(t);
  const rt = launch({ holdAnswers: (call) => call.method === 'DELETE' && call.path === '/me' });
  const old = await loggedIn(rt);
  const userId = (await server.api('GET', '/me', undefined, old)).body.user_id;
  await waitFor('the page', () => rt.page.data.loggedIn);
  const before = { login: rt.count('login'), post: rt.count('request', 'POST', '/login') };

  rt.tap('onDeleteAccount');
  const call = await held(rt, 'DELETE', '/me');
  assert.equal(rt.count('showModal'), 1, 'asked first');
  assert.equal(rt.count('login'), before.login + 1, 'a new wx.login');
  assert.equal(rt.count('request', 'POST', '/login'), before.post + 1, 'a new POST /login');
  const fresh = device.get('token');
  assert.notEqual(fresh, old);
  assert.equal(call.headers.authorization, `Bearer ${fresh}`, 'DELETE /me with the new token');
  // Until the 204 reaches the phone, the fresh session is kept as any login's.
  assert.deepEqual(kept(device), { token: fresh, expiry: 'number', pending: '' });
  assert.equal(rt.app.globalData.token, fresh);
  // The account is gone on the server already: a request meets a 401, which must not log in
  // again (that would make a new account) while the deletion is under way.
  await assert.rejects(rt.app.request({ url: '/me' }), (error) => error.code === 'logged_out');

  rt.releaseHeld();
  assert.equal(call.status, 204);
  await waitFor('logged-out', () => rt.app.globalData.login.state === 'logged-out');
  assert.deepEqual(kept(device), { token: '', expiry: 'string', pending: '' });
  assert.equal(rt.app.globalData.token, '');
  assert.equal(rt.count('request', 'POST', '/logout'), 0);
  // The page's own requests that met the deletion did not log in either.
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(rt.count('login'), before.login + 1);
  assert.equal(rt.app.globalData.login.state, 'logged-out');
  assert.equal(await live(server, fresh), false);
  assert.equal(await live(server, old), false, "the account's earlier session went with it");
  await waitFor('the notice', () => rt.page.data.notice !== '');
  assert.match(rt.pageText(), /Your account was deleted/);

  // The account is gone: the next login of the same WeChat user makes a new one.
  const again = await rt.app.ensureLogin();
  const me = await server.api('GET', '/me', undefined, again);
  assert.equal(me.status, 200, me.text);
  assert.notEqual(me.body.user_id, userId);
});

test('delete account, cancelled in the dialog: nothing is sent', async (t) => {
  const { device, launch } = await withServer(t);
  const rt = launch({ confirmModals: false });
  const token = await loggedIn(rt);
  await waitFor('the page', () => rt.page.data.loggedIn);
  const logins = rt.count('login');
  rt.tap('onDeleteAccount');
  await waitFor('the dialog', () => rt.count('showModal') === 1);
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(rt.count('login'), logins);
  assert.equal(calls(rt, 'DELETE', '/me').length, 0);
  assert.equal(device.get('token'), token);
  assert.equal(rt.page.data.accountBusy, false);
});

test("delete account refused (reauth_required): it rejects with the server's code, the fresh session stays", async (t) => {
  const { device, launch } = await withServer(t);
  const backend = await fakeBackend(
    t,
    account(() => ({ status: 403, body: { error: { code: 'reauth_required', message: 'log in again, then retry' } } })),
  );
  const rt = launch({ baseUrl: backend.base });
  assert.equal(await loggedIn(rt), 'tok-1');

  await assert.rejects(rt.app.deleteAccount(), (error) => {
    assert.equal(error.code, 'reauth_required');
    assert.equal(error.status, 403);
    return true;
  });
  const [deletion] = backend.hits.filter((h) => h.method === 'DELETE');
  assert.equal(deletion.url, '/me');
  assert.equal(deletion.headers.authorization, 'Bearer tok-2', 'sent with the fresh login’s token');
  assert.deepEqual(kept(device), { token: 'tok-2', expiry: 'number', pending: '' });
  assert.equal(rt.app.globalData.login.state, 'logged-in');

  // From the page: the reason is shown.
  rt.tap('onDeleteAccount');
  await waitFor('the error on the page', () => rt.page.data.accountError !== '');
  assert.match(rt.pageText(), /Could not delete your account: DELETE \/me answered 403: log in again, then retry \(reauth_required\)/);
  assert.equal(device.get('token'), 'tok-3');
});

test('a second tap while the account is being deleted joins the first: one login, one DELETE /me', async (t) => {
  const { launch } = await withServer(t);
  const backend = await fakeBackend(t, account(() => ({ status: 204 })));
  const rt = launch({ baseUrl: backend.base });
  await loggedIn(rt);
  await Promise.all([rt.app.deleteAccount(), rt.app.deleteAccount()]);
  assert.equal(backend.hits.filter((h) => h.method === 'DELETE').length, 1);
  assert.equal(rt.count('request', 'POST', '/login'), 2, "the launch's and one fresh login");
  assert.equal(rt.app.globalData.login.state, 'logged-out');
});
