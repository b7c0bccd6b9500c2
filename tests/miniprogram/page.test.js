// The index page rendered by Tencent's miniprogram-simulate (the page is a Component(), which
// it renders with the official WXML compiler), in a DOM of jsdom's: its template and data show
// where the login stands, the user_id and openid from GET /me and the account's sessions once
// logged in, and its scan button opens the confirm page of a website's login code. The app is a stand-in that the test drives; the strict runtime's tests run the
// page against the real app and server.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { PACKAGE_ROOT, waitFor } = require('./runtime.js');

const TOOLS = path.resolve(__dirname, '../../tools/miniprogram');

/** A package of tools/miniprogram (`cargo xtask build` installs them with npm ci). */
function tool(name) {
  try {
    return require(require.resolve(name, { paths: [TOOLS] }));
  } catch (error) {
    throw new Error(`${name} is not installed in tools/miniprogram: run \`cargo xtask build\` (or npm ci there) first (${error.message})`);
  }
}

// miniprogram-simulate renders into a DOM, as under jest's jsdom environment.
const { JSDOM } = tool('jsdom');
const { window } = new JSDOM('<!doctype html><html><body></body></html>');
Object.assign(global, { window, document: window.document });
for (const name of ['Event', 'CustomEvent', 'Element', 'HTMLElement', 'Node', 'getComputedStyle']) global[name] = window[name];
const simulate = tool('miniprogram-simulate');

const LOGGED_OUT = { state: 'checking', verified: false, attempt: 0, expiresAt: null, error: null };
const LOGGED_IN = { state: 'logged-in', verified: true, attempt: 0, expiresAt: Date.now() + 3600e3, error: null };

// Two sessions of the account, as GET /me/sessions lists them (newest first).
const SESSIONS = [
  { id: 's-1', kind: 'miniprogram', appid: 'wxdevsimulator00', created_at: 1767225600, expires_at: 1767830400, ip: '127.0.0.1', device: 'iPhone 15 / iOS 18.1', current: true },
  { id: 's-0', kind: 'miniprogram', appid: 'wxdevsimulator00', created_at: 1767139200, expires_at: 1767744000, current: false },
];

/**
 * The app the page talks to: its login view and token, `onLoginChange` listeners the test calls
 * through `change(view, token)`, `request` answering GET /me with `userId` and `openid`,
 * `sessions` with SESSIONS, and the account's calls, recorded in `asked`.
 */
function fakeApp({ view = LOGGED_OUT, token = '', openid = 'o-simulated-user', userId = 'u-simulated' } = {}) {
  const listeners = [];
  const requests = [];
  const asked = [];
  const app = {
    globalData: { login: view, token },
    onLoginChange(listener) {
      listeners.push(listener);
      return () => listeners.splice(listeners.indexOf(listener), 1);
    },
    request(options) {
      requests.push(options);
      return Promise.resolve({ statusCode: 200, data: { user_id: userId, openid }, header: {} });
    },
    login: () => Promise.resolve(token),
    logout: () => Promise.resolve(),
    sessions() {
      asked.push('sessions');
      return Promise.resolve(SESSIONS);
    },
    endSession(id) {
      asked.push(`endSession ${id}`);
      return Promise.resolve();
    },
    logoutEverywhere() {
      asked.push('logoutEverywhere');
      change({ ...LOGGED_IN, state: 'logged-out' }, '');
      return Promise.resolve();
    },
    deleteAccount() {
      asked.push('deleteAccount');
      return Promise.reject(Object.assign(new Error('DELETE /me answered 403: log in again'), { code: 'reauth_required' }));
    },
  };
  const change = (next, nextToken) => {
    app.globalData = { login: next, token: nextToken };
    listeners.slice().forEach((listener) => listener(next, nextToken));
  };
  return { app, requests, listeners, asked, change };
}

/** Loads and attaches the index page with `app` as getApp(); detached when the test ends. */
function renderPage(t, app) {
  global.getApp = () => app;
  const page = simulate.render(simulate.load(path.join(PACKAGE_ROOT, 'pages/index/index')));
  page.attach(document.createElement('parent-wrapper'));
  t.after(() => page.detach());
  return page;
}

/** The page's visible text, one space between elements. */
function text(page) {
  return [...page.dom.querySelectorAll('*')]
    .filter((element) => element.children.length === 0)
    .map((element) => element.textContent.trim())
    .join(' ');
}

test('before login the page shows the state and a busy "Log in" button, and no openid', (t) => {
  const { app, requests } = fakeApp();
  const page = renderPage(t, app);
  assert.equal(page.data.state, 'checking');
  assert.equal(page.data.openid, '');
  assert.equal(page.querySelector('.title').dom.getAttribute('data-state'), 'checking');
  assert.equal(text(page), 'Checking the saved login… Log in Scan to log in on the web');
  assert.equal(page.querySelector('.action').dom.textContent, 'Log in');
  assert.equal(requests.length, 0, 'no profile without a token');
});

test('once logged in the page fetches GET /me and the sessions and shows them, and forgets them on logout', async (t) => {
  const { app, requests, asked, change } = fakeApp({ openid: 'o-7f3a', userId: 'u-42' });
  const page = renderPage(t, app);
  change(LOGGED_IN, 'token-0123456789abcdef');
  await waitFor('the openid on the page', () => page.data.openid === 'o-7f3a');
  await waitFor('the sessions on the page', () => page.data.sessions.length === 2);
  assert.deepEqual(requests, [{ url: '/me' }]);
  assert.deepEqual(asked, ['sessions']);
  assert.equal(page.data.state, 'logged-in');
  assert.equal(page.data.userId, 'u-42');
  assert.equal(
    text(page),
    'Logged in Account u-42 OpenID o-7f3a Token …abcdef Log out Share my phone number ' +
      'Sessions iPhone 15 / iOS 18.1 since 2026-01-01 00:00 UTC · wxdevsimulator00 · 127.0.0.1 This phone ' +
      'miniprogram since 2025-12-31 00:00 UTC · wxdevsimulator00 End ' +
      'Log out everywhere Delete account Scan to log in on the web',
  );
  // Only another session has an End button, which names it.
  const ends = page.querySelectorAll('.session-end');
  assert.equal(ends.length, 1);
  ends[0].dispatchEvent('tap');
  await waitFor('the session ended', () => asked.includes('endSession s-0'));
  await waitFor('the list reloaded', () => asked.filter((a) => a === 'sessions').length === 2);

  change({ ...LOGGED_IN, state: 'logged-out' }, '');
  assert.equal(page.data.openid, '');
  assert.equal(page.data.userId, '');
  assert.deepEqual(page.data.sessions, []);
  assert.equal(text(page), 'Logged out Log in Scan to log in on the web');
});

test('"Log out everywhere" goes to the app and says so; a failed deletion says why', async (t) => {
  const { app, asked, change } = fakeApp();
  global.wx = { showModal: (options) => options.success({ confirm: true, cancel: false }) };
  t.after(() => delete global.wx);
  const page = renderPage(t, app);
  change(LOGGED_IN, 'token-0123456789abcdef');
  await waitFor('the sessions on the page', () => page.data.sessions.length === 2);

  const button = (label) => page.querySelectorAll('.action').find((b) => b.dom.textContent === label);
  button('Delete account').dispatchEvent('tap');
  await waitFor('the error', () => page.data.accountError !== '');
  assert.deepEqual(asked.slice(1), ['deleteAccount']);
  assert.match(text(page), /Could not delete your account: DELETE \/me answered 403: log in again \(reauth_required\)/);
  assert.equal(page.data.accountBusy, false);

  button('Log out everywhere').dispatchEvent('tap');
  await waitFor('the notice', () => page.data.notice !== '');
  assert.deepEqual(asked.slice(1), ['deleteAccount', 'logoutEverywhere']);
  assert.equal(text(page), 'Logged out Logged out of every session of your account. Log in Scan to log in on the web');
});

test('"Scan to log in on the web" opens the confirm page for a website\'s code, and says when a code is not one', async (t) => {
  const { app } = fakeApp();
  let code = { errMsg: 'scanCode:ok', scanType: 'WX_CODE', result: '', path: 'pages/web-login/confirm?scene=Zm9v_-1' };
  const opened = [];
  global.wx = { scanCode: (options) => options.success(code), navigateTo: (options) => opened.push(options.url) };
  t.after(() => delete global.wx);
  const page = renderPage(t, app);
  const scan = page.querySelectorAll('.action').find((b) => b.dom.textContent === 'Scan to log in on the web');

  scan.dispatchEvent('tap');
  await waitFor('the confirm page opened', () => opened.length === 1);
  assert.deepEqual(opened, ['/pages/web-login/confirm?scene=Zm9v_-1']);
  assert.equal(page.data.scanError, '');

  code = { errMsg: 'scanCode:ok', scanType: 'QR_CODE', result: 'https://example.com/' };
  scan.dispatchEvent('tap');
  await waitFor('the error', () => page.data.scanError !== '');
  assert.deepEqual(opened, ['/pages/web-login/confirm?scene=Zm9v_-1']);
  assert.equal(text(page), 'Checking the saved login… Log in Scan to log in on the web That is not a login code from the website. Scan the code the website shows.');
});

test('a page detached stops listening to the app', (t) => {
  const { app, listeners } = fakeApp();
  const page = renderPage(t, app);
  assert.equal(listeners.length, 1);
  page.detach();
  assert.equal(listeners.length, 0);
});
