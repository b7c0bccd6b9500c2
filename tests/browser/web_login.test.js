// Web login by mini-program code, end to end: the harness's web login page
// (/harness/web-login, running client-wasm/harness/web-login.js) in headless Chromium, the
// demo mini-program's confirm page in the strict mini-program runtime, and one real server
// in dev mode between them. The test reads the code the page shows with a real QR decoder
// (zbarimg), opens the mini-program where that code points, and confirms or denies there.
// One server for the file (its own for the expiry test); each test gets fresh browser
// profiles. Tests in a file run one after another.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startServer, openBrowser, ARTIFACTS } = require('./support.js');
const { waitFor, PACKAGE_ROOT } = require('../miniprogram/runtime.js');
const scan = require('./scan.js');

const PAGE = scan.CONFIRM_PAGE;
const { SCANNED, scanned } = scan;
const STATUS = '#web-login-status';
const SESSION_COOKIE = '__Host-wxlogin';
const TICKET_COOKIE = '__Host-wxlogin-ticket-';

// Debug for the web login only, in JSON: its "web-login status sent" lines carry the delay
// between a ticket's change and the event that told the browser. The ticket limits are
// raised: every test asks for tickets from the same address.
const SERVER_ENV = {
  LOG_FORMAT: 'json',
  RUST_LOG: 'warn,server::cli=info,server::web_login=debug',
  WEB_LOGIN_RATE_PER_MINUTE: '600',
  WEB_LOGIN_RATE_BURST: '100',
  WEB_LOGIN_MAX_TICKETS_PER_CLIENT: '100',
};

let server;
test.before(async () => {
  const npm = path.join(PACKAGE_ROOT, 'miniprogram_npm/wx-login-client');
  if (!fs.existsSync(npm)) {
    throw new Error(`the mini-program's npm package is missing at ${npm}: build it with \`cargo xtask test wasm\``);
  }
  server = await startServer({ env: SERVER_ENV });
});
test.after(async () => {
  if (server) await server.stop();
});

/**
 * A fresh browser for one test, closed (and checked for script errors) when it ends. `urls`
 * collects the full URL of every request of the whole profile, page or not.
 */
async function browser(t, { initScript } = {}) {
  const b = await openBrowser();
  const urls = [];
  b.context.on('request', (r) => urls.push(r.url()));
  if (initScript) await b.context.addInitScript(initScript);
  t.after(async () => {
    await b.close();
    // The page's first GET /me answers 401 before a login, which Chromium logs as "Failed to
    // load resource"; anything else is a bug in the page.
    const unexpected = b.errors.filter((e) => !e.includes('Failed to load resource'));
    assert.deepEqual(unexpected, [], 'the page reported errors');
  });
  return { ...b, urls };
}

async function waitForStatus(page, status, timeout = 10000) {
  await page.waitForSelector(`${STATUS}[data-status="${status}"]`, { timeout });
}

/** The mini-program on a phone of its own, against `on`'s server. */
function phone(t, on = server) {
  return scan.phone(t, on);
}

/** The mini-program's own account on the file's server. */
function phoneAccount(rt) {
  return scan.phoneAccount(server, rt);
}

/** The text of the code the web login page shows, read by zbarimg. */
function decodeShownCode(page, name) {
  return scan.decodeShownCode(page, '#web-login-qr', name);
}

/** Opens the web login page and waits for its first code; resolves with the ticket id. */
async function openWithCode(page, on = server) {
  await page.goto(`${on.base}/harness/web-login`);
  return shownTicket(page);
}

/** The ticket of the code the page shows, once its picture has loaded. */
async function shownTicket(page) {
  await waitForStatus(page, 'pending');
  const src = await page.getAttribute('#web-login-qr', 'src');
  const match = /^\/web-login\/([^/]+)\/qr\.png$/.exec(src || '');
  assert.ok(match, `the code's src: ${src}`);
  await page.waitForFunction(() => {
    const img = document.querySelector('#web-login-qr');
    return img && img.complete && img.naturalWidth > 0;
  });
  return decodeURIComponent(match[1]);
}

/** The cookie of `name` in the browser's profile, or undefined. */
async function cookie(context, name) {
  return (await context.cookies()).find((c) => c.name === name);
}

/** The server's "web-login status sent" lines of ticket `id`, as {status, delay_ms}. */
function statusesSent(id) {
  const sent = [];
  for (const line of server.output().split('\n')) {
    if (!line.startsWith('{')) continue;
    let entry;
    try {
      entry = JSON.parse(line);
    } catch {
      continue;
    }
    const fields = { ...entry, ...(entry.fields || {}) };
    if (fields.message === 'web-login status sent' && fields.ticket === id) {
      sent.push({ status: fields.status, delay_ms: Number(fields.delay_ms) });
    }
  }
  return sent;
}

/** The account's id on the page, once shown. */
async function shownUserId(page, timeout) {
  await page.waitForFunction(() => (document.querySelector('#web-user-id')?.textContent || '') !== '', null, { timeout });
  return (await page.textContent('#web-user-id')).trim();
}

/** The page logged in through the mini-program; resolves with { id, rt, userId }. */
async function logInWithPhone(t, page) {
  const id = await openWithCode(page);
  const rt = await scanned(phone(t), id);
  rt.tap('onConfirm');
  await waitForStatus(page, 'logged-in', 5000);
  return { id, rt, userId: await shownUserId(page, 1000) };
}

test('the page shows a real mini-program code for its ticket, which only this browser can read', async (t) => {
  const { page, context } = await browser(t);
  const id = await openWithCode(page);
  assert.match(id, /^[A-Za-z0-9_-]{16,}$/, 'a ticket id of base64url');
  assert.equal(await decodeShownCode(page, 'web-login-code'), `pages/web-login/confirm?scene=${id}`);
  assert.match(await page.textContent(STATUS), /Scan the code with WeChat/);
  assert.equal(await page.title(), 'Log in with WeChat');

  // The ticket's secret: an HttpOnly, Secure, SameSite=Strict cookie of its own.
  const ticket = await cookie(context, TICKET_COOKIE + id);
  assert.ok(ticket, 'the ticket cookie is set');
  assert.deepEqual([ticket.httpOnly, ticket.secure, ticket.sameSite, ticket.path], [true, true, 'Strict', '/']);
  assert.equal(await page.evaluate(() => document.cookie), '', 'no cookie is readable by scripts');

  // This browser may read its ticket; another one that knows the id (from the code) may not.
  const own = await page.evaluate(async (id) => (await fetch(`/web-login/${id}`)).status, id);
  assert.equal(own, 200);
  const other = await browser(t);
  await other.page.goto(`${server.base}/healthz`);
  const answers = await other.page.evaluate(async (id) => {
    const out = {};
    for (const suffix of ['', '/events', '/qr.png']) {
      const res = await fetch(`/web-login/${id}${suffix}`);
      out[suffix || '/'] = [res.status, res.status === 404 ? (await res.json()).error.code : await res.text()];
    }
    return out;
  }, id);
  assert.deepEqual(answers, {
    '/': [404, 'ticket_not_found'],
    '/events': [404, 'ticket_not_found'],
    '/qr.png': [404, 'ticket_not_found'],
  });
  // The page of the other browser gets a ticket of its own, not this one.
  const otherId = await openWithCode(other.page);
  assert.notEqual(otherId, id);

  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'web-login-code.png'), fullPage: true });
});

test('scanned and confirmed in the mini-program: the page shows the same account within 3 s, with no secret in any URL', async (t) => {
  const { page, context, urls } = await browser(t);
  const id = await openWithCode(page);
  assert.equal(await decodeShownCode(page, 'web-login-code-confirmed'), `pages/web-login/confirm?scene=${id}`);
  const ticketSecret = (await cookie(context, TICKET_COOKIE + id)).value;

  const rt = await scanned(phone(t), id);
  assert.equal(rt.page.data.browser.device, 'Chrome on Linux', 'the phone shows which browser asks');
  assert.equal(rt.page.data.browser.ip, '127.0.0.1');
  await waitForStatus(page, 'scanned', 3000);
  assert.match(await page.textContent(STATUS), /confirm in the mini-program/);

  const tapped = Date.now();
  rt.tap('onConfirm');
  const userId = await shownUserId(page, 3000);
  const took = Date.now() - tapped;
  assert.ok(took < 3000, `the account was shown ${took} ms after the tap`);
  await waitFor('the phone says confirmed', () => rt.page.data.state === 'confirmed');
  assert.equal(userId, await phoneAccount(rt), 'the same account as the mini-program');
  await waitForStatus(page, 'logged-in', 1000);
  assert.equal(await page.$('#web-login-qr'), null, 'no code once logged in');
  assert.match(await page.textContent('#web-session'), /^web session until \d{4}-\d\d-\d\d \d\d:\d\d UTC$/);

  // At the server: the confirmed event left within a second of the confirmation.
  const sent = statusesSent(id);
  assert.deepEqual(sent.map((s) => s.status), ['pending', 'scanned', 'confirmed'], JSON.stringify(sent));
  const confirmed = sent.find((s) => s.status === 'confirmed');
  assert.ok(Number.isFinite(confirmed.delay_ms) && confirmed.delay_ms < 1000, `confirmed sent after ${confirmed.delay_ms} ms`);

  // The session: an HttpOnly cookie that no URL, and no script, ever saw; the ticket's
  // cookie is gone with its ticket.
  const session = await cookie(context, SESSION_COOKIE);
  assert.ok(session, 'the session cookie is set');
  assert.deepEqual([session.httpOnly, session.secure, session.sameSite, session.path], [true, true, 'Lax', '/']);
  assert.equal(await cookie(context, TICKET_COOKIE + id), undefined, 'the ticket cookie is cleared');
  assert.equal(await page.evaluate(() => document.cookie), '');
  assert.ok(urls.length >= 5, `requests recorded: ${urls.join(', ')}`);
  for (const secret of [ticketSecret, session.value]) {
    assert.ok(secret.length >= 16, 'a real secret to look for');
    const leaks = urls.filter((u) => u.includes(secret) || u.includes(encodeURIComponent(secret)));
    assert.deepEqual(leaks, [], 'no secret in a URL');
  }
  const paths = urls.map((u) => new URL(u).pathname);
  for (const wanted of ['/web-login', `/web-login/${id}/qr.png`, `/web-login/${id}/events`, `/web-login/${id}/complete`, '/me']) {
    assert.ok(paths.includes(wanted), `the page requested ${wanted}: ${paths.join(', ')}`);
  }
  // The cookie is the session: the server knows it as a web session of the account.
  const me = await page.evaluate(async () => {
    const res = await fetch('/me');
    return { status: res.status, body: await res.json() };
  });
  assert.equal(me.status, 200);
  assert.equal(me.body.user_id, userId);
  assert.equal(me.body.kind, 'web');

  await page.screenshot({ path: path.join(ARTIFACTS, 'web-login-logged-in.png'), fullPage: true });
});

test('a reload stays logged in; "not you? log out" ends the session, clears the cookie and shows a new code', async (t) => {
  const { page, context, requests } = await browser(t);
  const { id, userId } = await logInWithPhone(t, page);
  const token = (await cookie(context, SESSION_COOKIE)).value;

  requests.length = 0;
  await page.reload();
  await waitForStatus(page, 'logged-in');
  assert.equal(await shownUserId(page, 1000), userId);
  assert.ok(!requests.includes('POST /web-login'), 'no new ticket while logged in');

  await page.click('#web-logout');
  const fresh = await shownTicket(page);
  assert.notEqual(fresh, id, 'a new code');
  assert.equal(await page.$('#web-user-id'), null);
  assert.ok(requests.includes('POST /logout'));
  assert.equal(await cookie(context, SESSION_COOKIE), undefined, 'the session cookie is gone');
  const me = await page.evaluate(async () => (await fetch('/me')).status);
  assert.equal(me, 401, 'GET /me in the page');
  // The server ended the session, not only the browser its cookie.
  const replay = await fetch(`${server.base}/me`, { headers: { cookie: `${SESSION_COOKIE}=${token}` } });
  assert.equal(replay.status, 401, 'the old cookie no longer works');
});

test('denied in the mini-program: the page says so, logs nobody in, and gives a new code', async (t) => {
  const { page, context } = await browser(t);
  const id = await openWithCode(page);
  const rt = await scanned(phone(t), id);
  rt.tap('onDeny');
  await waitForStatus(page, 'denied', 3000);
  await waitFor('the phone says denied', () => rt.page.data.state === 'denied');
  assert.match(await page.textContent(STATUS), /denied/);
  assert.match(await page.textContent('#web-login-note'), /Nobody is logged in/);
  assert.equal(await page.$('#web-login-qr'), null, 'the dead code is gone');
  assert.equal(await page.$('#web-user-id'), null);
  assert.equal(await cookie(context, SESSION_COOKIE), undefined);
  assert.ok(statusesSent(id).some((s) => s.status === 'denied'));

  await page.click('#web-login-new-code');
  const fresh = await shownTicket(page);
  assert.notEqual(fresh, id);
  assert.equal(await decodeShownCode(page, 'web-login-code-after-deny'), `pages/web-login/confirm?scene=${fresh}`);
});

test('without EventSource the page polls the status every 2 s and still logs in', async (t) => {
  const { page, requests } = await browser(t, { initScript: 'delete window.EventSource;' });
  const { id, rt, userId } = await logInWithPhone(t, page);
  assert.equal(userId, await phoneAccount(rt));
  assert.ok(!requests.includes(`GET /web-login/${id}/events`), 'no event stream');
  assert.ok(requests.filter((r) => r === `GET /web-login/${id}`).length >= 2, 'polled');
});

test('an expired code says so and gives a new one (WEB_LOGIN_TTL=2s)', async (t) => {
  const short = await startServer({ env: { ...SERVER_ENV, WEB_LOGIN_TTL: '2s' } });
  t.after(() => short.stop());
  const { page } = await browser(t);
  const id = await openWithCode(page, short);
  await waitForStatus(page, 'expired', 6000);
  assert.match(await page.textContent('#web-login-note'), /new one/);
  assert.equal(await page.$('#web-login-qr'), null);

  // The phone that scans it too late is told so.
  const rt = phone(t, short)({ entry: { path: PAGE, query: { scene: id }, scene: SCANNED } });
  await waitFor('the confirm page past loading', () => rt.page.data.state !== 'loading');
  assert.equal(rt.page.data.state, 'error');
  assert.match(rt.page.data.error, /expired/);

  await page.click('#web-login-new-code');
  const fresh = await shownTicket(page);
  assert.notEqual(fresh, id);
});
