// The mini-program's logout reaches the server whatever the network does: the real app and
// page in the strict runtime, with the real WASM module, against the real server in dev mode.
// The runtime's `failRequests` makes POST /logout fail as with the network down (wx.request's
// `fail`, nothing reaches the server); a relaunch is a new runtime over the same device.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { FAST, withServer, loggedIn, waitFor } = require('./support.js');

const PENDING_KEY = FAST.logout_storage_key;
const offline = (call) => call.path === '/logout';

/** The app's POST /logout calls so far. */
function logouts(rt) {
  return rt.calls.filter((c) => c.api === 'request' && c.path === '/logout');
}

/** Whether the server still takes `token`, asked both ways a client would. */
async function liveOnServer(server, token) {
  const check = (await server.api('GET', '/checklogin', undefined, token)).body.is_login;
  const me = (await server.api('GET', '/me', undefined, token)).status;
  assert.equal(me === 200, check, `/checklogin says ${check}, /me answers ${me}`);
  return check;
}

/** Logs in, taps "Log out" with the network down for POST /logout, and waits for it to fail. */
async function logOutOffline(rt, device) {
  const token = await loggedIn(rt);
  await waitFor('the page', () => rt.page.data.loggedIn);
  rt.tap('onLogout');
  await waitFor('logged-out', () => rt.page.data.state === 'logged-out');
  // Logged out on the device at once, whatever the network does; the token is kept for its
  // revoke.
  assert.equal(device.get('token'), '');
  assert.equal(device.get('token_expires_at_ms'), '');
  assert.equal(rt.app.globalData.token, '');
  assert.deepEqual(device.get(PENDING_KEY), [token]);
  await waitFor('the failed POST /logout', () => logouts(rt).some((c) => c.failed));
  assert.equal(logouts(rt)[0].headers.authorization, `Bearer ${token}`);
  return token;
}

test('a logout interrupted by a network failure is sent again at the next launch, and the server ends that session', async (t) => {
  const { server, device, launch } = await withServer(t);
  const rt = launch({ failRequests: offline });
  const token = await logOutOffline(rt, device);
  // The failure was real: the session is still live on the server.
  assert.equal(await liveOnServer(server, token), true);
  rt.close();
  assert.deepEqual(device.get(PENDING_KEY), [token], 'kept across the relaunch');

  const again = launch();
  await waitFor('the resent POST /logout to be answered', () => logouts(again).some((c) => c.status !== undefined));
  const [resent] = logouts(again);
  assert.equal(resent.headers.authorization, `Bearer ${token}`);
  assert.equal(resent.status, 204);
  assert.equal(await liveOnServer(server, token), false, 'the server ended the session');
  await waitFor('the pending logout to be removed', () => device.get(PENDING_KEY) === '');
  // The relaunched app logged in afresh beside it (its page asked for a token); the revoke
  // did not touch the new session.
  const fresh = await loggedIn(again);
  assert.notEqual(fresh, token);
  assert.equal(await liveOnServer(server, fresh), true);
  assert.equal(logouts(again).length, 1, 'sent once, confirmed once');
});

test('while the app runs, a failed logout is retried until the server confirms it; a new login meanwhile keeps its token', async (t) => {
  const { server, device, launch } = await withServer(t);
  const rt = launch({ failRequests: offline });
  const old = await logOutOffline(rt, device);
  await waitFor('a retry after the backoff', () => logouts(rt).filter((c) => c.failed).length >= 2);
  assert.equal(rt.app.globalData.login.state, 'logged-out', 'retries do not log in');

  // The user logs in again while the revoke is pending: nothing waits for it.
  rt.tap('onLogin');
  const fresh = await loggedIn(rt);
  assert.notEqual(fresh, old);
  assert.equal(device.get('token'), fresh);
  assert.deepEqual(device.get(PENDING_KEY), [old]);

  // The network comes back: the next attempt is confirmed.
  rt.failRequests = undefined;
  await waitFor('a POST /logout answered 204', () => logouts(rt).some((c) => c.status === 204));
  await waitFor('the pending logout to be removed', () => device.get(PENDING_KEY) === '');
  assert.equal(await liveOnServer(server, old), false);
  assert.equal(await liveOnServer(server, fresh), true);
  for (const call of logouts(rt)) {
    assert.equal(call.headers.authorization, `Bearer ${old}`, 'only the logged-out token is ever revoked');
  }
  assert.equal(rt.app.globalData.token, fresh);
  assert.equal(rt.app.globalData.login.state, 'logged-in');
});
