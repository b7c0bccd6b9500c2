// The browser harness (client-wasm/harness), end to end: the leptos page running the login
// state machine in headless Chromium, against the real server in dev mode (its WeChat
// simulator answers code2Session). One server for the file; each test gets a fresh browser
// profile and measures the simulator's counters as differences, so tests do not see each
// other's logins. Tests in a file run one after another.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startServer, openBrowser, ARTIFACTS } = require('./support.js');

const STATE = '#login-state';

let server;
test.before(async () => {
  // The server retries WeChat's "busy" itself (WECHAT_BUSY_RETRIES, default 3), which would
  // hide it from the page; with 0 a busy answer reaches the machine, whose retry is under test.
  server = await startServer({ env: { WECHAT_BUSY_RETRIES: '0' } });
});
test.after(async () => {
  if (server) await server.stop();
});

/** A fresh browser for one test, closed (and checked for script errors) when it ends. */
async function browser(t) {
  const b = await openBrowser();
  t.after(async () => {
    await b.close();
    // HTTP error statuses the machine handles (503 while WeChat is "busy") are logged by
    // Chromium as "Failed to load resource"; anything else is a bug in the page.
    const unexpected = b.errors.filter((e) => !e.includes('Failed to load resource'));
    assert.deepEqual(unexpected, [], 'the page reported errors');
  });
  return b;
}

async function waitForState(page, state, timeout = 15000) {
  await page.waitForSelector(`${STATE}[data-state="${state}"]`, { timeout });
}

/** The token as the machine stored it: the bare string under `token`, as in the mini-program. */
async function storedToken(page) {
  return page.evaluate(() => localStorage.getItem('token'));
}

/** The stored expiry: its digits under `token_expires_at_ms` (localStorage keeps strings). */
async function storedExpiry(page) {
  return page.evaluate(() => localStorage.getItem('token_expires_at_ms'));
}

/** Clicks "Call /me" and waits for the answer; resolves with { status, code, text }. */
async function callMe(page) {
  await page.click('#call-me');
  await page.waitForFunction(() => {
    const status = document.querySelector('#me-result').dataset.status;
    return status !== 'none' && status !== 'pending';
  });
  return page.evaluate(() => {
    const el = document.querySelector('#me-result');
    return { status: el.dataset.status, code: el.dataset.code, text: el.textContent };
  });
}

function count(requests, wanted) {
  return requests.filter((r) => r === wanted).length;
}

async function statsDelta(before) {
  const now = await server.stats();
  return {
    code2session_calls: now.code2session_calls - before.code2session_calls,
    codes_issued: now.codes_issued - before.codes_issued,
  };
}

test('a first visit logs in and shows the state, expiry and log', async (t) => {
  const { page, requests } = await browser(t);
  const before = await server.stats();

  await page.goto(`${server.base}/harness/`);
  await waitForState(page, 'logged-in');

  const token = await storedToken(page);
  assert.ok(token, 'a token is stored in localStorage');
  assert.match(token, /^\S+$/, 'the bare token, not JSON');
  const expiry = Number(await storedExpiry(page));
  assert.ok(expiry > Date.now() + 6 * 24 * 3600 * 1000, `expiry ${expiry}`);
  assert.equal((await server.api('GET', '/checklogin', undefined, token)).body.is_login, true);
  assert.equal(count(requests, 'POST /login'), 1);
  assert.equal(count(requests, 'POST /sim/wx.login'), 1);
  assert.equal(count(requests, 'GET /checklogin'), 0, 'nothing stored, so nothing to check');
  assert.deepEqual(await statsDelta(before), { code2session_calls: 1, codes_issued: 1 });

  assert.match(await page.textContent('#expires'), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(in 6 d 23 h/);
  assert.match(await page.textContent('#token'), new RegExp(`^${token.slice(0, 10)}`));
  const log = await page.textContent('#log');
  for (const kind of ['"launched"', '"read_storage"', '"wx_login"', '"http_request"', '"token_changed"', '"state_changed"']) {
    assert.ok(log.includes(kind), `the log shows ${kind}`);
  }

  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'harness-logged-in.png'), fullPage: true });
});

test('a reload in the same profile is logged in again from storage, without a new login', async (t) => {
  const { page, requests } = await browser(t);
  await page.goto(`${server.base}/harness/`);
  await waitForState(page, 'logged-in');
  const token = await storedToken(page);

  const before = await server.stats();
  requests.length = 0;
  await page.reload();
  await waitForState(page, 'logged-in');

  assert.equal(await storedToken(page), token, 'the same token');
  assert.equal(count(requests, 'POST /login'), 0);
  assert.equal(count(requests, 'POST /sim/wx.login'), 0);
  assert.equal(count(requests, 'GET /checklogin'), 1, 'the stored token is verified once');
  assert.deepEqual(await statsDelta(before), { code2session_calls: 0, codes_issued: 0 });
  assert.equal((await page.textContent('#verified')).trim(), 'yes');
});

test('log out reaches logged-out and the server no longer accepts the token', async (t) => {
  const { page } = await browser(t);
  await page.goto(`${server.base}/harness/`);
  await waitForState(page, 'logged-in');
  const token = await storedToken(page);
  assert.equal((await server.api('GET', '/checklogin', undefined, token)).body.is_login, true);

  // POST /logout is fire and forget for the machine; wait for its answer before asking.
  const loggedOut = page.waitForResponse((r) => new URL(r.url()).pathname === '/logout');
  await page.click('#logout');
  await waitForState(page, 'logged-out');
  assert.equal((await loggedOut).status(), 204);

  assert.equal(await storedToken(page), null, 'storage is cleared');
  assert.equal((await page.textContent('#token')).trim(), 'none');
  const check = await server.api('GET', '/checklogin', undefined, token);
  assert.equal(check.status, 200);
  assert.equal(check.body.is_login, false);

  // Not sticky: logging in again works.
  await page.click('#login');
  await waitForState(page, 'logged-in');
  assert.notEqual(await storedToken(page), token);
});

test('a logout the network drops is kept and sent again after a reload, and the server ends the session', async (t) => {
  const { page, requests } = await browser(t);
  await page.goto(`${server.base}/harness/`);
  await waitForState(page, 'logged-in');
  const token = await storedToken(page);

  // The network drops POST /logout: fetch fails, as wx.request's `fail` would.
  const dropped = [];
  let firstDropped;
  const droppedOnce = new Promise((resolve) => (firstDropped = resolve));
  await page.route('**/logout', (route) => {
    dropped.push(route.request().headers().authorization);
    firstDropped();
    return route.abort('internetdisconnected');
  });
  await page.click('#logout');
  await waitForState(page, 'logged-out');
  await page.waitForFunction(() => localStorage.getItem('token') === null);
  // localStorage keeps strings only: the pending logouts as their JSON text.
  assert.equal(await page.evaluate(() => localStorage.getItem('logout_pending')), JSON.stringify([token]));
  await droppedOnce;
  assert.ok(dropped.every((auth) => auth === `Bearer ${token}`));
  assert.equal((await server.api('GET', '/checklogin', undefined, token)).body.is_login, true, 'the session is still live');

  // A reload with the network back: the logout is sent again and confirmed.
  await page.unroute('**/logout');
  requests.length = 0;
  const resent = page.waitForResponse((r) => new URL(r.url()).pathname === '/logout');
  await page.reload();
  assert.equal((await resent).status(), 204);
  assert.equal((await resent).request().headers().authorization, `Bearer ${token}`);
  await page.waitForFunction(() => localStorage.getItem('logout_pending') === null);
  assert.equal((await server.api('GET', '/checklogin', undefined, token)).body.is_login, false);
  // The reloaded page logged in afresh beside it.
  await waitForState(page, 'logged-in');
  assert.notEqual(await storedToken(page), token);
  assert.equal(count(requests, 'POST /logout'), 1);
});

test('WeChat busy once on the first login: the machine retries with a fresh code and logs in', async (t) => {
  const { page, requests } = await browser(t);
  const fault = await server.api('POST', '/sim/faults', { errcodes: [-1] });
  assert.ok(fault.status < 300, `POST /sim/faults answered ${fault.status}`);
  const before = await server.stats();

  await page.goto(`${server.base}/harness/`);
  await waitForState(page, 'logged-in');

  assert.equal(count(requests, 'POST /sim/wx.login'), 2, 'a fresh code for the retry');
  assert.equal(count(requests, 'POST /login'), 2);
  assert.deepEqual(await statsDelta(before), { code2session_calls: 2, codes_issued: 2 });
  const log = await page.textContent('#log');
  assert.ok(log.includes('"state":"retry-waiting"'), 'the log shows the retry');
  assert.equal((await page.textContent('#attempt')).trim(), '0');
});

test('the trouble buttons: busy retries after a delay, an invalid code retries at once', async (t) => {
  const { page } = await browser(t);
  await page.goto(`${server.base}/harness/`);
  await waitForState(page, 'logged-in');
  let token = await storedToken(page);

  for (const button of ['#sim-busy', '#sim-invalid-code']) {
    const before = await server.stats();
    await page.click(button);
    // A fresh login: two codes (the failed one and the retry's), then a new token.
    await page.waitForFunction(
      (old) => {
        const stored = localStorage.getItem('token');
        const state = document.querySelector('#login-state').dataset.state;
        return stored !== null && stored !== old && state === 'logged-in';
      },
      token,
      { timeout: 15000 },
    );
    assert.deepEqual(await statsDelta(before), { code2session_calls: 2, codes_issued: 2 }, button);
    token = await storedToken(page);
  }
  const log = await page.textContent('#log');
  assert.ok(log.includes('next code2Session answers errcode -1'));
  assert.ok(log.includes('next code2Session answers errcode 40029'));
});

test('forget drops the cached token; a reload then logs in afresh', async (t) => {
  const { page, requests } = await browser(t);
  await page.goto(`${server.base}/harness/`);
  await waitForState(page, 'logged-in');

  await page.click('#forget');
  await page.waitForFunction(() => localStorage.getItem('token') === null);
  requests.length = 0;
  await page.reload();
  await waitForState(page, 'logged-in');
  assert.equal(count(requests, 'GET /checklogin'), 0);
  assert.equal(count(requests, 'POST /login'), 1);
});

test('Call /me shows the answer: status and body with the openid', async (t) => {
  const { page } = await browser(t);
  await page.goto(`${server.base}/harness/`);
  await waitForState(page, 'logged-in');
  const token = await storedToken(page);
  const me = await server.api('GET', '/me', undefined, token);
  assert.equal(me.status, 200, me.text);

  const shown = await callMe(page);
  assert.equal(shown.status, '200');
  assert.match(shown.text, /^HTTP 200/);
  assert.ok(shown.text.includes(`"openid":"${me.body.openid}"`), shown.text);
});

test('Call /me with a token revoked on the server: one new login, then the retry answers 200', async (t) => {
  const { page, requests } = await browser(t);
  await page.goto(`${server.base}/harness/`);
  await waitForState(page, 'logged-in');
  const old = await storedToken(page);
  assert.equal((await server.api('POST', '/logout', undefined, old)).status, 204);

  requests.length = 0;
  const shown = await callMe(page);
  assert.equal(shown.status, '200', shown.text);
  assert.equal(count(requests, 'GET /me'), 2, 'the 401 and the retry');
  assert.equal(count(requests, 'POST /login'), 1);
  assert.equal(count(requests, 'POST /sim/wx.login'), 1);
  const fresh = await storedToken(page);
  assert.notEqual(fresh, old);
  assert.match(await page.textContent('#token'), new RegExp(`^${fresh.slice(0, 10)}`));
});

test('a stored token in the first JSON format is used without a login and rewritten', async (t) => {
  const { page, requests } = await browser(t);
  const { code } = (await server.api('POST', '/sim/wx.login', {})).body;
  const { token, expires_in: expiresIn } = (await server.api('POST', '/login', { code })).body;
  const expiresAt = Date.now() + expiresIn * 1000;

  // Open the origin's storage, put the previous version's value there, then start for real.
  await page.goto(`${server.base}/harness/`);
  await waitForState(page, 'logged-in');
  await page.evaluate(
    ([stored]) => {
      localStorage.clear();
      localStorage.setItem('token', stored);
    },
    [JSON.stringify({ token, expires_at_ms: expiresAt })],
  );
  requests.length = 0;
  await page.reload();
  await waitForState(page, 'logged-in');

  assert.equal(count(requests, 'POST /login'), 0);
  assert.equal(count(requests, 'POST /sim/wx.login'), 0);
  assert.equal(await storedToken(page), token, 'rewritten as the bare token');
  assert.equal(await storedExpiry(page), String(expiresAt));
});

/**
 * Clicks `button`, waits for the page's call to `apiPath` to be answered and `result` to show
 * it; resolves with { status, code, text, json } (json: the body under the `HTTP <status>`
 * line, parsed). The button marks `result` pending at once, so a result shown earlier is never
 * taken for this one.
 */
async function clickForResult(page, button, result, apiPath) {
  const answered = page.waitForResponse((r) => new URL(r.url()).pathname === apiPath);
  await page.click(button);
  await answered;
  await page.waitForFunction((selector) => {
    const status = document.querySelector(selector).dataset.status;
    return status !== 'none' && status !== 'pending';
  }, result);
  const shown = await page.evaluate((selector) => {
    const el = document.querySelector(selector);
    return { status: el.dataset.status, code: el.dataset.code, text: el.textContent };
  }, result);
  const [, ...body] = shown.text.split('\n');
  return { ...shown, json: JSON.parse(body.join('\n')) };
}

/** The harness logged in; resolves with its page, request log and token. */
async function loggedInHarness(t) {
  const { page, requests } = await browser(t);
  await page.goto(`${server.base}/harness/`);
  await waitForState(page, 'logged-in');
  return { page, requests, token: await storedToken(page) };
}

test('Get phone number: the simulator code goes to /wx/phone with the token; the number given, or the simulator own', async (t) => {
  const { page, requests, token } = await loggedInHarness(t);

  await page.fill('#sim-phone-number', '13912345678');
  const issued = page.waitForResponse((r) => new URL(r.url()).pathname === '/sim/phone-code');
  const given = await clickForResult(page, '#get-phone', '#phone-result', '/wx/phone');
  const { code } = await (await issued).json();
  assert.equal(given.status, '200', given.text);
  assert.deepEqual(given.json, { phoneNumber: '+8613912345678', purePhoneNumber: '13912345678', countryCode: '86' });
  assert.equal(count(requests, 'POST /sim/phone-code'), 1);
  assert.equal(count(requests, 'POST /wx/phone'), 1);
  assert.equal((await server.api('GET', '/me', undefined, token)).body.phone.purePhoneNumber, '13912345678');

  // Without a number the simulator binds the code to the user's own, which /me then shows.
  await page.fill('#sim-phone-number', '');
  const own = await clickForResult(page, '#get-phone', '#phone-result', '/wx/phone');
  assert.equal(own.status, '200', own.text);
  assert.match(own.json.purePhoneNumber, /^1\d{10}$/);
  assert.notEqual(own.json.purePhoneNumber, '13912345678');
  assert.deepEqual((await server.api('GET', '/me', undefined, token)).body.phone, own.json);
  // A phone code is a credential: the page's log names the call, not the code.
  const log = await page.textContent('#log');
  assert.ok(log.includes('POST /wx/phone → 200'), log);
  assert.ok(!log.includes(code), 'the phone code is not in the log');
});

test('Decrypt open data: the data the simulator hands out opens on the server, with this session openid', async (t) => {
  const { page, requests, token } = await loggedInHarness(t);
  const me = (await server.api('GET', '/me', undefined, token)).body;

  const shown = await clickForResult(page, '#decrypt', '#decrypt-result', '/wx/decrypt');
  assert.equal(shown.status, '200', shown.text);
  assert.equal(shown.json.openId, me.openid);
  assert.equal(shown.json.watermark.appid, me.appid);
  assert.equal(typeof shown.json.nickName, 'string');
  assert.equal(count(requests, 'POST /sim/open-data'), 1);
  assert.equal(count(requests, 'POST /wx/decrypt'), 1);
});

test('Verify signature: the rawData signature is valid for this session; after a new login the old data is not', async (t) => {
  const { page, token } = await loggedInHarness(t);

  const shown = await clickForResult(page, '#verify-signature', '#signature-result', '/wx/verify-signature');
  assert.equal(shown.status, '200', shown.text);
  assert.deepEqual(shown.json, { valid: true });

  // The check is real: data signed under this session's key does not pass under the next one.
  // (The harness is the simulator's user dev-user.)
  const data = (await server.api('POST', '/sim/open-data', { user: 'dev-user' })).body;
  await page.click('#login');
  await page.waitForFunction((old) => localStorage.getItem('token') !== old && document.querySelector('#login-state').dataset.state === 'logged-in', token);
  const fresh = await storedToken(page);
  const stale = await server.api('POST', '/wx/verify-signature', { rawData: data.rawData, signature: data.signature }, fresh);
  assert.deepEqual(stale.body, { valid: false });
  const again = await clickForResult(page, '#verify-signature', '#signature-result', '/wx/verify-signature');
  assert.deepEqual(again.json, { valid: true }, 'the harness fetches data under the new key');
});

/** A login of the harness's simulator user made elsewhere (another phone of theirs): its token. */
async function otherLogin() {
  const { code } = (await server.api('POST', '/sim/wx.login', { user: 'dev-user' })).body;
  const login = await server.api('POST', '/login', { code });
  assert.equal(login.status, 200, login.text);
  return login.body.token;
}

async function live(token) {
  return (await server.api('GET', '/checklogin', undefined, token)).body.is_login;
}

/**
 * Holds the server's answer to the page's `method path` until `release()`: the request
 * reaches the server (which acts on it) and only its answer waits, as on a slow network.
 * Resolves `reached` with the request once the server has answered.
 */
async function holdAnswer(page, method, pathname) {
  let reached;
  const seen = new Promise((resolve) => (reached = resolve));
  let release;
  const released = new Promise((resolve) => (release = resolve));
  await page.route(
    (url) => url.pathname === pathname,
    async (route) => {
      if (route.request().method() !== method) return route.fallback();
      const response = await route.fetch();
      reached({ request: route.request(), status: response.status() });
      await released;
      return route.fulfill({ response });
    },
  );
  return { reached: seen, release: () => release() };
}

async function loadAccount(page) {
  await page.click('#load-account');
  await page.waitForFunction(() => ['loaded', 'error'].includes(document.querySelector('#sessions').dataset.status));
  return page.evaluate(() => ({
    status: document.querySelector('#sessions').dataset.status,
    code: document.querySelector('#sessions').dataset.code,
    rows: [...document.querySelectorAll('#sessions li.session')].map((li) => ({ id: li.dataset.id, current: li.dataset.current === 'true', text: li.textContent })),
  }));
}

test('the account: user_id and the session list; End ends another session', async (t) => {
  const other = await otherLogin();
  const { page, token } = await loggedInHarness(t);
  const me = (await server.api('GET', '/me', undefined, token)).body;

  const listed = await loadAccount(page);
  assert.equal(listed.status, 'loaded', listed.code);
  assert.equal((await page.textContent('#user-id')).trim(), me.user_id);
  const server_ = (await server.api('GET', '/me/sessions', undefined, token)).body.sessions;
  assert.deepEqual(listed.rows.map((r) => r.id), server_.map((s) => s.id), 'as the server lists them, newest first');
  const mine = listed.rows.filter((r) => r.current);
  assert.equal(mine.length, 1);
  assert.match(mine[0].text, /this browser/);
  // The other login's own row, by its id: earlier tests' sessions of the account are live
  // too, and created_at (seconds) cannot tell apart sessions of the same second.
  const otherId = (await server.api('GET', '/me/sessions', undefined, other)).body.sessions.find((s) => s.current).id;
  const theirs = listed.rows.find((r) => r.id === otherId);
  assert.ok(theirs && !theirs.current, 'the other login is listed');

  const ended = page.waitForResponse((r) => r.request().method() === 'DELETE');
  await page.click(`#sessions li[data-id="${theirs.id}"] .end-session`);
  assert.equal((await ended).status(), 204);
  await page.waitForFunction((id) => document.querySelector('#sessions').dataset.status === 'loaded' && !document.querySelector(`#sessions li[data-id="${id}"]`), theirs.id);
  assert.equal(await live(other), false);
  assert.equal(await live(token), true);
  await waitForState(page, 'logged-in');
});

test('log out everywhere: DELETE /me/sessions; logged out only after the 204, and every session is over', async (t) => {
  const other = await otherLogin();
  const { page, requests, token } = await loggedInHarness(t);
  const held = await holdAnswer(page, 'DELETE', '/me/sessions');

  await page.click('#logout-everywhere');
  const { request, status } = await held.reached;
  assert.equal(status, 204);
  assert.equal(request.headers().authorization, `Bearer ${token}`);
  // The server ended the sessions; until its answer arrives, nothing changes here.
  assert.equal(await storedToken(page), token);
  assert.equal((await page.getAttribute(STATE, 'data-state')), 'logged-in');

  held.release();
  await waitForState(page, 'logged-out');
  assert.equal(await storedToken(page), null);
  assert.equal(await storedExpiry(page), null);
  assert.equal(await page.evaluate(() => localStorage.getItem('logout_pending')), null, 'nothing left to revoke');
  assert.equal(count(requests, 'POST /logout'), 0);
  assert.equal(await live(token), false);
  assert.equal(await live(other), false);
  await page.waitForFunction(() => document.querySelector('#account-result').dataset.status === '204');
});

test('delete account: a fresh login, DELETE /me with the new token; logged out only after the 204', async (t) => {
  const { page, requests, token } = await loggedInHarness(t);
  const userId = (await server.api('GET', '/me', undefined, token)).body.user_id;
  const held = await holdAnswer(page, 'DELETE', '/me');
  requests.length = 0;

  await page.click('#delete-account');
  const { request, status } = await held.reached;
  assert.equal(status, 204);
  assert.equal(count(requests, 'POST /sim/wx.login'), 1, 'a new wx.login');
  assert.equal(count(requests, 'POST /login'), 1, 'a new POST /login');
  const fresh = await storedToken(page);
  assert.notEqual(fresh, token);
  assert.equal(request.headers().authorization, `Bearer ${fresh}`);
  assert.equal((await page.getAttribute(STATE, 'data-state')), 'logged-in');

  held.release();
  await waitForState(page, 'logged-out');
  assert.equal(await storedToken(page), null);
  assert.equal(await page.evaluate(() => localStorage.getItem('logout_pending')), null);
  assert.equal(count(requests, 'POST /logout'), 0);
  assert.equal(await live(fresh), false);
  assert.equal(await live(token), false);
  assert.equal((await page.textContent('#user-id')).trim(), 'none');

  // The account is gone: logging in again makes a new one.
  await page.click('#login');
  await waitForState(page, 'logged-in');
  const again = (await server.api('GET', '/me', undefined, await storedToken(page))).body;
  assert.notEqual(again.user_id, userId);
});
