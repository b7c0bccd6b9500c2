// getApp().request(): wx.request for the app's own APIs with the session's token, one login and
// one retry after a 401, and errors with a `code`. The real app in the strict runtime, against
// the real server (dev mode) or, where a test needs an API to misbehave, a small server of the
// test's own.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { freePort } = require('../js/dev-server.js');
const { withServer, earlierLogin, loggedIn, apiServer, waitFor } = require('./support.js');

/** A plain copy of a sandbox value (objects of the sandbox's realm compare badly). */
const plain = (value) => JSON.parse(JSON.stringify(value));

/**
 * A stand-in for the whole backend: POST /login issues tok-1, tok-2, …; other paths answer
 * `api(hit, token)` (token: the bearer, or null). wx.login codes still come from `sim`.
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

test('a path is sent to baseUrl with the token; JSON comes back parsed', async (t) => {
  const { server, launch } = await withServer(t);
  const rt = launch();

  const res = await rt.app.request({ url: '/checklogin' });
  const token = await loggedIn(rt);
  assert.equal(res.statusCode, 200);
  assert.deepEqual(plain(res.data), { is_login: true });
  assert.equal(typeof res.header, 'object');
  const call = rt.calls.find((c) => c.api === 'request' && c.path === '/checklogin');
  assert.equal(call.url, `${server.base}/checklogin`);
  assert.equal(call.headers.authorization, `Bearer ${token}`);
});

test("the caller's method, data, headers and dataType pass through; its Authorization gives way", async (t) => {
  const { launch } = await withServer(t);
  const api = await apiServer(t, (hit) => ({ status: 201, body: { method: hit.method, url: hit.url, body: hit.body, auth: hit.headers.authorization, trace: hit.headers['x-trace'] } }));
  const rt = launch();
  const token = await rt.app.ensureLogin();

  const post = await rt.app.request({
    url: `${api.base}/things`,
    method: 'post',
    data: { name: 'x' },
    header: { 'X-Trace': 'abc', authorization: 'Bearer forged' },
    timeout: 1500,
  });
  assert.equal(post.statusCode, 201);
  assert.deepEqual(plain(post.data), { method: 'POST', url: '/things', body: '{"name":"x"}', auth: `Bearer ${token}`, trace: 'abc' });
  assert.equal(api.hits.filter((h) => h.headers.authorization === 'Bearer forged').length, 0);

  const get = await rt.app.request({ url: `${api.base}/things`, data: { page: 2 }, dataType: 'text' });
  assert.equal(typeof get.data, 'string', "dataType 'text' keeps the text");
  assert.equal(JSON.parse(get.data).url, '/things?page=2');
});

test('a bad url rejects with invalid_request, and nothing is sent', async (t) => {
  const { launch } = await withServer(t);
  const rt = launch();
  await rt.app.ensureLogin();
  // The page's own GET /me and GET /me/sessions, done first so that the count below is this
  // test's alone.
  await waitFor('the page to load the profile', () => rt.page.data.openid !== '' || rt.page.data.profileError !== '');
  await waitFor('the page to load the sessions', () => rt.page.data.sessions.length > 0 || rt.page.data.sessionsError !== '');
  const before = rt.count('request');
  for (const url of ['me', 'ftp://127.0.0.1/x', '//evil.example/x', '', undefined, 42, 'http://']) {
    await assert.rejects(rt.app.request({ url }), (error) => {
      assert.equal(error.code, 'invalid_request', String(url));
      assert.match(error.message, /absolute \(http:\/\/ or https:\/\/\) or a path starting with "\/"/);
      return true;
    });
  }
  await assert.rejects(rt.app.request(), (error) => error.code === 'invalid_request');
  assert.equal(rt.count('request'), before);
});

test('no answer rejects with network and the errMsg', async (t) => {
  const { launch } = await withServer(t);
  const rt = launch();
  await rt.app.ensureLogin();
  const dead = await freePort();
  await assert.rejects(rt.app.request({ url: `http://127.0.0.1:${dead}/x` }), (error) => {
    assert.equal(error.code, 'network');
    assert.match(error.message, /request:fail/);
    return true;
  });
});

test("no token to be had: the request rejects with the login's error and is never sent", async (t) => {
  const { launch } = await withServer(t);
  const api = await apiServer(t, () => ({ status: 200, body: {} }));
  const dead = `http://127.0.0.1:${await freePort()}`;
  const rt = launch({ baseUrl: dead });
  await assert.rejects(rt.app.request({ url: `${api.base}/x` }), (error) => error.code === 'network_error');
  assert.equal(api.hits.length, 0);
});

test('concurrent requests that get a 401 together cause one login and are all retried once', async (t) => {
  const { launch } = await withServer(t);
  // tok-1 (the launch's) is refused by the API; later tokens are fine. (The page's own /me and
  // /me/sessions are answered, so that only these requests see the 401s.)
  const backend = await fakeBackend(t, (hit, token) => {
    if (hit.url === '/me') return { status: 200, body: { user_id: 'u-1', openid: 'o-1' } };
    if (hit.url === '/me/sessions') return { status: 200, body: { sessions: [] } };
    if (token === 'tok-1' || token === null) return { status: 401, body: { error: { code: 'unauthorized', message: 'no' } } };
    return { status: 200, body: { token } };
  });
  const rt = launch({ baseUrl: backend.base });
  assert.equal(await rt.app.ensureLogin(), 'tok-1');

  const results = await Promise.all([1, 2, 3, 4, 5].map((n) => rt.app.request({ url: `/api/${n}` })));
  for (const res of results) {
    assert.equal(res.statusCode, 200);
    assert.deepEqual(plain(res.data), { token: 'tok-2' });
  }
  const apiHits = backend.hits.filter((h) => h.url.startsWith('/api/'));
  assert.equal(apiHits.length, 10, 'each request: the 401 and one retry');
  assert.equal(rt.count('login'), 2, "the launch's login and one more");
  assert.equal(rt.count('request', 'POST', '/login'), 2);
  assert.equal(rt.app.globalData.token, 'tok-2');
});

test('an API that always answers 401: unauthorized after exactly one retry, no login loop', async (t) => {
  const { server, launch } = await withServer(t);
  const api = await apiServer(t, () => ({ status: 401, body: { error: { code: 'unauthorized', message: 'never' } } }));
  const rt = launch();
  await rt.app.ensureLogin();
  const logins = rt.count('login');

  // One after another: each request gets its 401, one retry, and fails.
  for (let i = 1; i <= 3; i++) {
    await assert.rejects(rt.app.request({ url: `${api.base}/always` }), (error) => {
      assert.equal(error.code, 'unauthorized');
      return true;
    });
    assert.equal(api.hits.length, 2 * i, 'two hits per request');
  }
  // Several at once: the same.
  const together = await Promise.allSettled([1, 2, 3].map(() => rt.app.request({ url: `${api.base}/always` })));
  for (const outcome of together) {
    assert.equal(outcome.status, 'rejected');
    assert.equal(outcome.reason.code, 'unauthorized');
  }
  assert.equal(api.hits.length, 12);
  // The first 401 replaced the launch's token; the token issued for it being refused as well,
  // the session keeps it instead of logging in for every call.
  assert.equal(rt.count('login') - logins, 1, 'one login for six refused requests');
  assert.equal(rt.app.globalData.login.state, 'logged-in');
  assert.equal(rt.app.globalData.login.error.code, 'unauthorized');
  // The session itself is fine with the login server.
  const token = rt.app.globalData.token;
  assert.equal((await server.api('GET', '/checklogin', undefined, token)).body.is_login, true);
});

test('a 401 that comes after a logout rejects with logged_out and does not log in again', async (t) => {
  const { launch } = await withServer(t);
  const api = await apiServer(t, () => ({ status: 401, body: { error: { code: 'unauthorized', message: 'no' } } }));
  const rt = launch({ holdAnswers: (call) => call.url.startsWith(api.base) });
  await loggedIn(rt);
  const logins = rt.count('login');
  const pending = rt.app.request({ url: `${api.base}/slow` });
  await waitFor('the answer to be held', () => rt.held.length === 1);
  await rt.app.logout();
  rt.releaseHeld(() => true, { stop: true });
  await assert.rejects(pending, (error) => {
    assert.equal(error.code, 'logged_out');
    return true;
  });
  assert.equal(api.hits.length, 1, 'not sent again');
  assert.equal(rt.count('login'), logins, 'the user logged out: no login behind their back');
  assert.equal(rt.app.globalData.login.state, 'logged-out');
});

test('a token revoked on the server, then 5 concurrent GET /me: one login, all answered 200 alike', async (t) => {
  const { server, device, launch } = await withServer(t);
  const old = await earlierLogin(launch);
  assert.equal((await server.api('POST', '/logout', undefined, old)).status, 204);

  const rt = launch();
  const results = await Promise.all([1, 2, 3, 4, 5].map(() => rt.app.request({ url: '/me' })));
  const openids = new Set();
  for (const res of results) {
    assert.equal(res.statusCode, 200, JSON.stringify(plain(res.data)));
    assert.equal(typeof res.data.openid, 'string');
    assert.ok(res.data.openid.length > 0);
    openids.add(res.data.openid);
  }
  assert.equal(openids.size, 1, 'the same user');
  // They went out with the saved token at once (no waiting for the check), got 401s, and were
  // retried with the new one.
  const withOld = rt.calls.filter((c) => c.api === 'request' && c.path === '/me' && c.headers.authorization === `Bearer ${old}`);
  assert.ok(withOld.length >= 5, `${withOld.length} calls with the revoked token`);
  assert.ok(withOld.every((c) => c.status === 401));
  assert.equal(rt.count('login'), 1, 'one wx.login');
  assert.equal(rt.count('request', 'POST', '/login'), 1, 'one POST /login');
  const fresh = await loggedIn(rt);
  assert.notEqual(fresh, old);
  assert.equal(device.get('token'), fresh);
});

test('the page shows the openid from /me once logged in', async (t) => {
  const { server, launch } = await withServer(t);
  const rt = launch();
  const token = await loggedIn(rt);
  const me = await server.api('GET', '/me', undefined, token);
  assert.equal(me.status, 200, me.text);
  await waitFor('the openid on the page', () => rt.page.data.openid !== '');
  assert.equal(rt.page.data.openid, me.body.openid);
  assert.equal(rt.page.data.profileError, '');
  assert.ok(rt.pageText().includes(`OpenID ${me.body.openid}`), rt.pageText());

  // Logged out: no profile on show.
  rt.tap('onLogout');
  await waitFor('logged-out', () => rt.page.data.state === 'logged-out');
  assert.equal(rt.page.data.openid, '');
  assert.doesNotMatch(rt.pageText(), /OpenID/);
});

test('the page shows a failing /me instead of throwing', async (t) => {
  const { launch } = await withServer(t);
  const backend = await fakeBackend(t, () => ({ status: 503, body: { error: { code: 'store_unavailable', message: 'down' } } }));
  const rt = launch({ baseUrl: backend.base });
  await loggedIn(rt);
  await waitFor('the profile error', () => rt.page.data.profileError !== '');
  assert.match(rt.pageText(), /Cannot load your profile: HTTP 503 \(store_unavailable\)/);
  assert.equal(rt.page.data.openid, '');
  assert.match(rt.pageText(), /Logged in/);
  // (The launcher's clean-up asserts no uncaught error or unhandled rejection.)
});
