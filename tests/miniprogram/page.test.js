// The index page rendered by Tencent's miniprogram-simulate (the page is a Component(), which
// it renders with the official WXML compiler), in a DOM of jsdom's: its template and data show
// where the login stands, and the openid from GET /me once logged in. The app is a stand-in
// that the test drives; the strict runtime's tests run the page against the real app and server.
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

/**
 * The app the page talks to: its login view and token, `onLoginChange` listeners the test calls
 * through `change(view, token)`, and `request` answering GET /me with `openid`.
 */
function fakeApp({ view = LOGGED_OUT, token = '', openid = 'o-simulated-user' } = {}) {
  const listeners = [];
  const requests = [];
  const app = {
    globalData: { login: view, token },
    onLoginChange(listener) {
      listeners.push(listener);
      return () => listeners.splice(listeners.indexOf(listener), 1);
    },
    request(options) {
      requests.push(options);
      return Promise.resolve({ statusCode: 200, data: { openid }, header: {} });
    },
    login: () => Promise.resolve(token),
    logout: () => Promise.resolve(),
  };
  const change = (next, nextToken) => {
    app.globalData = { login: next, token: nextToken };
    listeners.slice().forEach((listener) => listener(next, nextToken));
  };
  return { app, requests, listeners, change };
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
  assert.equal(text(page), 'Checking the saved login… Log in');
  assert.equal(page.querySelector('.action').dom.textContent, 'Log in');
  assert.equal(requests.length, 0, 'no profile without a token');
});

test('once logged in the page fetches GET /me and shows the openid, and forgets it on logout', async (t) => {
  const { app, requests, change } = fakeApp({ openid: 'o-7f3a' });
  const page = renderPage(t, app);
  change(LOGGED_IN, 'token-0123456789abcdef');
  await waitFor('the openid on the page', () => page.data.openid === 'o-7f3a');
  assert.deepEqual(requests, [{ url: '/me' }]);
  assert.equal(page.data.state, 'logged-in');
  assert.equal(text(page), 'Logged in OpenID o-7f3a Token …abcdef Log out Share my phone number');

  change({ ...LOGGED_IN, state: 'logged-out' }, '');
  assert.equal(page.data.openid, '');
  assert.equal(text(page), 'Logged out Log in');
});

test('a page detached stops listening to the app', (t) => {
  const { app, listeners } = fakeApp();
  const page = renderPage(t, app);
  assert.equal(listeners.length, 1);
  page.detach();
  assert.equal(listeners.length, 0);
});
