// Logging in on a website by scanning a mini-program code: the website shows a code for
// pages/web-login/confirm whose scene is a login ticket's id. WeChat opens the page with the
// scene in its query (or the home page's scan button navigates there); the page claims the
// ticket (POST /web-login/{id}/scan), shows the browser, and confirms or denies it. The real
// app, page and package in the strict runtime, against a backend of the test's own that keeps
// tickets as the server's contract says; wx.login codes come from the real server's simulator.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { withServer, loggedIn, apiServer, waitFor } = require('./support.js');

const PAGE = 'pages/web-login/confirm';
// A ticket id as the server makes them: 22 characters of base64url.
const ID = 'Zm9vYmFy-_0123456789Ab';
const BROWSER = { ip: '203.0.113.9', device: 'Chrome on Windows', created_at: 1764870000 };
// The scan's launch scene: a mini-program code, scanned with WeChat's own scanner.
const SCANNED = 1047;

/**
 * A backend that keeps web login tickets as the server's contract says, and issues tok-1,
 * tok-2, … from POST /login, all of one account. `tickets` preset by id: `{}` open, `owner`
 * another account's scan, `expired`, `closed`. `answer(action, id, hit)`, when it returns
 * something, answers a web login call instead (for refusals the model does not make). Tokens
 * in `refused` get 401. Resolves with { base, hits, tickets, refused, webLogins() }.
 */
async function ticketBackend(t, { tickets = { [ID]: {} }, answer = () => undefined } = {}) {
  let issued = 0;
  const refused = new Set();
  const error = (status, code, message) => ({ status, body: { error: { code, message } } });
  const server = await apiServer(t, (hit) => {
    if (hit.method === 'POST' && hit.url === '/login') {
      issued += 1;
      return { status: 200, body: { token: `tok-${issued}`, expires_in: 3600 } };
    }
    const match = /^Bearer (tok-\d+)$/.exec(hit.headers.authorization || '');
    const known = match !== null && !refused.has(match[1]);
    // A later launch checks its stored token.
    if (hit.method === 'GET' && hit.url === '/checklogin') return { status: 200, body: { is_login: known } };
    const call = /^\/web-login\/([^/]+)\/(scan|confirm|deny)$/.exec(hit.url);
    if (hit.method !== 'POST' || !call) return error(404, 'not_found', 'no such route');
    if (!known) return error(401, 'unauthorized', 'log in');
    const [, id, action] = call;
    const given = answer(action, id, hit);
    if (given) return given;
    const ticket = tickets[decodeURIComponent(id)];
    if (!ticket) return error(404, 'ticket_not_found', 'no such ticket');
    if (ticket.expired) return error(410, 'ticket_expired', 'the ticket expired');
    if (ticket.owner && ticket.owner !== 'me') return error(409, 'ticket_taken', 'another account scanned it');
    if (ticket.closed) return error(409, 'ticket_closed', 'the ticket is closed');
    if (action === 'scan') {
      ticket.owner = 'me';
      return { status: 200, body: { browser: BROWSER } };
    }
    if (ticket.owner !== 'me') return error(409, 'ticket_closed', 'not scanned');
    ticket.closed = action === 'confirm' ? 'confirmed' : 'denied';
    return { status: 204 };
  });
  const webLogins = () => server.hits.filter((h) => h.url.startsWith('/web-login/'));
  return { ...server, tickets, refused, webLogins };
}

/** The app opened by WeChat at the confirm page, as a scanned code opens it. */
function openedByCode(launch, backend, scene, options = {}) {
  return launch({ baseUrl: backend.base, entry: { path: PAGE, query: scene === undefined ? {} : { scene }, scene: SCANNED }, ...options });
}

/** Waits until the confirm page is past `state` (loading, or an answer under way). */
function settled(rt, state) {
  return waitFor(`the page past ${state}`, () => rt.page.route === PAGE && rt.page.data.state !== state);
}

/** A web login request as the backend saw it: method, path, token, body. */
function seen(hit) {
  return { method: hit.method, url: hit.url, authorization: hit.headers.authorization, type: hit.headers['content-type'], body: hit.body };
}

function sent(action, token, id = ID) {
  return { method: 'POST', url: `/web-login/${id}/${action}`, authorization: `Bearer ${token}`, type: 'application/json', body: '{}' };
}

// ---- the page opened by a scanned code ---------------------------------------------------

test('a scanned code opens the page: it logs in, claims the ticket, shows the browser, and Log in confirms it', async (t) => {
  const { launch } = await withServer(t);
  const backend = await ticketBackend(t);
  // WeChat gives the scene URL-encoded: here the "-" of the id is %2D.
  const rt = openedByCode(launch, backend, ID.replace('-', '%2D'));
  assert.deepEqual(rt.pages.map((p) => p.route), [PAGE], 'a cold start at the page itself');
  assert.equal(rt.page.data.state, 'loading');
  assert.match(rt.pageText(), /Checking the login code/);

  await settled(rt, 'loading');
  assert.equal(rt.page.data.state, 'scanned', rt.page.data.error);
  assert.deepEqual({ ...rt.page.data.browser }, BROWSER);
  assert.equal(rt.page.data.when, '2025-12-04 17:40 UTC');
  const text = rt.pageText();
  assert.match(text, /A browser asks to log in with your account: Chrome on Windows IP address 203\.0\.113\.9 Asked at 2025-12-04 17:40 UTC/);
  assert.match(text, /Log in on the web Deny$/);
  // The login came first, and the scan carried its token.
  const requests = rt.calls.filter((c) => c.api === 'request').map((c) => `${c.method} ${c.path}`);
  assert.deepEqual(requests, ['POST /login', `POST /web-login/${ID}/scan`]);
  assert.deepEqual(backend.webLogins().map(seen), [sent('scan', 'tok-1')]);

  rt.tap('onConfirm');
  assert.equal(rt.page.data.state, 'confirming');
  assert.equal(rt.page.data.busy, true, 'the buttons are disabled');
  rt.tap('onConfirm'); // a second tap while the first is under way sends nothing more
  await settled(rt, 'confirming');
  assert.equal(rt.page.data.state, 'confirmed', rt.page.data.error);
  assert.deepEqual(backend.webLogins().map(seen), [sent('scan', 'tok-1'), sent('confirm', 'tok-1')]);
  assert.equal(backend.tickets[ID].closed, 'confirmed');
  assert.equal(rt.pageText(), 'Logged in on the web The website is logging in with your account. You can close this page.');
  assert.equal(rt.app.globalData.login.state, 'logged-in', 'the phone stays logged in');
});

test('Deny turns the browser away', async (t) => {
  const { launch } = await withServer(t);
  const backend = await ticketBackend(t);
  const rt = openedByCode(launch, backend, ID);
  await settled(rt, 'loading');
  assert.equal(rt.page.data.state, 'scanned');

  rt.tap('onDeny');
  assert.equal(rt.page.data.state, 'denying');
  await settled(rt, 'denying');
  assert.equal(rt.page.data.state, 'denied', rt.page.data.error);
  assert.deepEqual(backend.webLogins().map(seen), [sent('scan', 'tok-1'), sent('deny', 'tok-1')]);
  assert.equal(backend.tickets[ID].closed, 'denied');
  assert.equal(rt.pageText(), 'Login denied The browser was turned away: it is not logged in.');
});

// ---- codes that cannot be used -----------------------------------------------------------

/** Opens the page for a ticket in `ticket`'s state; resolves once it has said why not. */
async function refusedWith(t, ticket) {
  const { launch } = await withServer(t);
  const backend = await ticketBackend(t, { tickets: { [ID]: ticket } });
  const rt = openedByCode(launch, backend, ID);
  await settled(rt, 'loading');
  assert.equal(rt.page.data.state, 'error');
  assert.equal(rt.page.data.asking, false, 'no Log in or Deny');
  assert.equal(rt.page.data.retry, false, 'trying again cannot help');
  assert.equal(backend.webLogins().length, 1, 'the scan only');
  assert.doesNotMatch(rt.pageText(), /Try again|Deny/);
  return rt;
}

test('an expired code (410) says so and asks for a new one', async (t) => {
  const rt = await refusedWith(t, { expired: true });
  assert.equal(rt.page.data.error, 'This login code has expired. Reload the page on the website to get a new code, then scan it again.');
  assert.equal(rt.pageText(), `Cannot log in on the web ${rt.page.data.error}`);
});

test('a code another account scanned first (409 ticket_taken) says so', async (t) => {
  const rt = await refusedWith(t, { owner: 'someone-else' });
  assert.match(rt.page.data.error, /^Someone else already scanned this login code, so it cannot log you in\./);
  assert.match(rt.page.data.error, /Reload the page on the website to get a new code/);
});

test('a code already used (409 ticket_closed) and an unknown code (404) say so', async (t) => {
  const used = await refusedWith(t, { closed: 'confirmed' });
  assert.match(used.page.data.error, /^This login code has already been used or answered\. Reload the page/);

  const { launch } = await withServer(t);
  const backend = await ticketBackend(t, { tickets: {} });
  const rt = openedByCode(launch, backend, ID);
  await settled(rt, 'loading');
  assert.match(rt.page.data.error, /^This login code is unknown, or expired long ago\. Reload the page/);
});

test('a code that expires while the user looks: Log in meets 410 and the page says so', async (t) => {
  const { launch } = await withServer(t);
  const backend = await ticketBackend(t);
  const rt = openedByCode(launch, backend, ID);
  await settled(rt, 'loading');
  backend.tickets[ID].expired = true;
  rt.tap('onConfirm');
  await settled(rt, 'confirming');
  assert.equal(rt.page.data.state, 'error');
  assert.match(rt.page.data.error, /^This login code has expired\./);
  assert.equal(rt.page.data.asking, false);
});

test('a session that is not a mini-program one (403) is told, not retried', async (t) => {
  const { launch } = await withServer(t);
  const backend = await ticketBackend(t, {
    answer: () => ({ status: 403, body: { error: { code: 'miniprogram_session_required', message: 'a mini-program session is required' } } }),
  });
  const rt = openedByCode(launch, backend, ID);
  await settled(rt, 'loading');
  assert.match(rt.page.data.error, /^Only a login of this mini-program can log in on the web/);
  assert.equal(backend.webLogins().length, 1);
});

test('no answer: the page says what went wrong and Try again scans again', async (t) => {
  const { launch } = await withServer(t);
  const backend = await ticketBackend(t);
  const rt = openedByCode(launch, backend, ID, { failRequests: (call) => call.path.startsWith('/web-login/') });
  await settled(rt, 'loading');
  assert.equal(rt.page.data.state, 'error');
  assert.match(rt.page.data.error, /^Something went wrong: .*\(network\)\.$/);
  assert.equal(rt.page.data.retry, true);
  assert.match(rt.pageText(), /Try again$/);
  assert.equal(backend.webLogins().length, 0);

  rt.failRequests = undefined;
  rt.tap('onRetry');
  await settled(rt, 'loading');
  assert.equal(rt.page.data.state, 'scanned', rt.page.data.error);
  assert.equal(rt.page.data.error, '');
  assert.deepEqual(backend.webLogins().map(seen), [sent('scan', 'tok-1')]);
});

test('opened without a scene, or with one no login code carries: an error, and nothing is sent', async (t) => {
  const { launch } = await withServer(t);
  const backend = await ticketBackend(t);
  // No query, an empty scene and broken URL encoding carry nothing; a "/" or 33 characters
  // are no ticket id (the package refuses them before any request).
  const cases = [
    [undefined, /^No login code here/],
    ['', /^No login code here/],
    ['%E0%A4%A', /^No login code here/],
    ['ab%2Fcd', /^This is not a login code from the website/],
    ['x'.repeat(33), /^This is not a login code from the website/],
  ];
  for (const [scene, message] of cases) {
    const rt = openedByCode(launch, backend, scene);
    await waitFor('the page to say why', () => rt.page.data.state === 'error');
    assert.match(rt.page.data.error, message, String(scene));
    assert.equal(rt.page.data.retry, false);
    assert.match(rt.pageText(), /^Cannot log in on the web /);
    await loggedIn(rt); // the app's own login at launch goes ahead as always
    rt.close();
  }
  assert.deepEqual(backend.webLogins(), [], 'no web login request');
});

// ---- the package: logging in first, ids, double taps ---------------------------------------

test('scan logs in first when there is no token, and again when the token is refused', async (t) => {
  const { launch } = await withServer(t);
  const backend = await ticketBackend(t);
  const rt = launch({ baseUrl: backend.base });
  assert.equal(await loggedIn(rt), 'tok-1');
  await rt.app.logout();
  assert.equal(rt.app.globalData.token, '');

  // Logged out: the scan waits for a new login and goes with its token.
  const answer = await rt.app.scanWebLogin(ID);
  assert.deepEqual(JSON.parse(JSON.stringify(answer)), { browser: BROWSER });
  assert.deepEqual(backend.webLogins().map(seen), [sent('scan', 'tok-2')]);

  // The server no longer takes tok-2: one new login, and the call is sent once more.
  backend.refused.add('tok-2');
  await rt.app.confirmWebLogin(ID);
  assert.deepEqual(backend.webLogins().map(seen).slice(1), [sent('confirm', 'tok-2'), sent('confirm', 'tok-3')]);
  assert.equal(rt.app.globalData.token, 'tok-3');
});

test('an id the code cannot carry is refused without a request; a double call sends one', async (t) => {
  const { launch } = await withServer(t);
  const backend = await ticketBackend(t);
  const rt = launch({ baseUrl: backend.base });
  await loggedIn(rt);
  for (const id of ['', 'x'.repeat(33), 'ab/cd', 'a b', 'ab%2F', 'ticket=1', 'é', 42, null, undefined]) {
    for (const call of ['scanWebLogin', 'confirmWebLogin', 'denyWebLogin']) {
      await assert.rejects(rt.app[call](id), (error) => {
        assert.equal(error.code, 'invalid_request', `${call}(${JSON.stringify(id)})`);
        assert.match(error.message, /1 to 32 characters/);
        return true;
      });
    }
  }
  assert.deepEqual(backend.webLogins(), []);
  // The longest a code's scene can be is fine.
  const longest = 'A'.repeat(32);
  backend.tickets[longest] = {};
  await rt.app.scanWebLogin(longest);

  // A double tap: one scan, one confirm, both callers answered.
  await Promise.all([rt.app.scanWebLogin(ID), rt.app.scanWebLogin(ID)]);
  await Promise.all([rt.app.confirmWebLogin(ID), rt.app.confirmWebLogin(ID)]);
  assert.deepEqual(backend.webLogins().map((h) => h.url), [`/web-login/${longest}/scan`, `/web-login/${ID}/scan`, `/web-login/${ID}/confirm`]);
  // Done with it: a later call is sent, and meets the closed ticket.
  await assert.rejects(rt.app.denyWebLogin(ID), (error) => error.code === 'ticket_closed' && error.status === 409);
});

// ---- the home page's scan button ---------------------------------------------------------

test('the home page scans a code with wx.scanCode and opens the confirm page for it', async (t) => {
  const { launch } = await withServer(t);
  const backend = await ticketBackend(t);
  // WeChat gives `path` for a code of this mini-program.
  const rt = launch({ baseUrl: backend.base, scanner: () => ({ scanType: 'WX_CODE', result: '', path: `${PAGE}?scene=${ID}` }) });
  await loggedIn(rt);
  assert.match(rt.pageText(), /Scan to log in on the web/);

  rt.tap('onScanWebLogin');
  await waitFor('the confirm page', () => rt.pages.length === 2);
  assert.deepEqual(rt.calls.filter((c) => c.api === 'navigateTo'), [{ api: 'navigateTo', url: `/${PAGE}?scene=${ID}` }]);
  assert.equal(rt.page.route, PAGE);
  await settled(rt, 'loading');
  assert.equal(rt.page.data.state, 'scanned', rt.page.data.error);
  assert.deepEqual(backend.webLogins().map(seen), [sent('scan', 'tok-1')]);
  rt.tap('onConfirm');
  await settled(rt, 'confirming');
  assert.equal(rt.page.data.state, 'confirmed');
});

test('the scan button reads the ticket from `result` when WeChat gives no path, and says when a code is no login code', async (t) => {
  const { launch } = await withServer(t);
  const backend = await ticketBackend(t, { tickets: { [ID]: {}, 'a-b': {} } });
  const rt = launch({ baseUrl: backend.base });
  await loggedIn(rt);
  const home = rt.page;

  // Not the website's code: said on the home page, nowhere to go.
  for (const code of [
    { scanType: 'QR_CODE', result: 'https://example.com/?scene=abc' },
    { scanType: 'WX_CODE', result: '', path: 'pages/index/index?scene=abc' },
    { scanType: 'EAN_13', result: '4006381333931' },
  ]) {
    rt.scanner = () => code;
    home.setData({ scanError: '' });
    rt.tap('onScanWebLogin', home);
    await waitFor('the error', () => home.data.scanError !== '');
    assert.match(rt.pageText(home), /That is not a login code from the website/);
  }
  // The user closes the scanner: no error.
  rt.scanner = () => null;
  rt.tap('onScanWebLogin', home);
  await waitFor('the scan to end', () => rt.calls.filter((c) => c.api === 'scanCode').length === 4);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(home.data.scanError, '');
  assert.equal(rt.count('navigateTo'), 0);

  // A QR code whose text is the page's address: its scene, decoded, then encoded again for
  // the page (which decodes it once more).
  rt.scanner = () => ({ scanType: 'QR_CODE', result: `https://example.com/${PAGE}?from=web&scene=a%2Db` });
  rt.tap('onScanWebLogin', home);
  await waitFor('the confirm page', () => rt.pages.length === 2);
  assert.deepEqual(rt.calls.filter((c) => c.api === 'navigateTo').map((c) => c.url), [`/${PAGE}?scene=a-b`]);
  await settled(rt, 'loading');
  assert.equal(rt.page.data.state, 'scanned', rt.page.data.error);
  assert.deepEqual(backend.webLogins().map((h) => h.url), ['/web-login/a-b/scan']);
  assert.equal(home.data.scanError, '');
});
