// Helpers of the mini-program test files (*.test.js here): launching the real
// app in the strict runtime against a server, waiting for it, and small HTTP servers of the
// tests' own. Not a test file itself (node --test picks *.test.js).
'use strict';

const http = require('node:http');
const { Runtime, Device, waitFor, nextTurn } = require('./runtime.js');
const { startServer } = require('../js/dev-server.js');

// Short backoff keeps the retry tests fast; everything else is the shipped config.
const FAST = { max_attempts: 3, base_backoff_ms: 50, max_backoff_ms: 400, storage_key: 'token', expiry_storage_key: 'token_expires_at_ms', logout_storage_key: 'logout_pending' };

/** The app's config module pointed at `baseUrl`, with `machine` overrides. */
function configFor(baseUrl, machine = {}) {
  return { '/config.js': { baseUrl, requestTimeoutMs: 2000, machine: { ...FAST, ...machine } } };
}

/** Launches the app, tracks it for clean-up, and checks its health when the test ends. */
function launcher(t) {
  const runtimes = [];
  t.after(async () => {
    for (const rt of runtimes) rt.close();
    // Rejections left unhandled by the app's last callbacks are reported within a turn.
    await nextTurn();
    for (const rt of runtimes) rt.assertHealthy();
  });
  return (options) => {
    const rt = new Runtime(options);
    runtimes.push(rt);
    return rt.launch();
  };
}

/**
 * The usual start of a test: a dev server of its own (stopped when the test ends; `env` adds
 * variables), one device (of the simulator's user `user`, its default user when unset), and
 * `launch(options)`, which starts the app on that device with that server's WeChat simulator,
 * and against that server unless `options.baseUrl` names another (a dead port, a fake
 * backend). `options.machine` overrides the client's config; the rest goes to Runtime.
 */
async function withServer(t, { env, user } = {}) {
  const server = await startServer(env ? { env } : {});
  t.after(() => server.stop());
  const start = launcher(t);
  const device = new Device({ user });
  const launch = ({ machine, baseUrl = server.base, ...options } = {}) =>
    start({ device, simBase: server.base, modules: configFor(baseUrl, machine), ...options });
  return { server, device, launch };
}

/** An earlier use of the app: launched, logged in, closed. Resolves with the token it left stored. */
async function earlierLogin(launch) {
  const first = launch();
  const token = await first.app.ensureLogin();
  first.close();
  return token;
}

/** Waits until the app is logged in with a token it knows; resolves with that token. */
async function loggedIn(rt) {
  await waitFor('logged-in', () => rt.app.globalData.login.state === 'logged-in' && rt.app.globalData.token !== '');
  return rt.app.globalData.token;
}

/** A token issued by `server` straight over HTTP, as another launch of the app would get it. */
async function issueToken(server) {
  const { code } = (await server.api('POST', '/sim/wx.login', {})).body;
  const login = await server.api('POST', '/login', { code });
  if (login.status !== 200) throw new Error(`POST /login answered ${login.status}: ${login.text}`);
  return login.body;
}

/**
 * An HTTP server of the test's own on 127.0.0.1 (port 0), answering with `handler(req, body)`
 * → { status, headers?, body? } (body: a string, or a value sent as JSON). Every request is
 * recorded in `hits` ({ method, url, headers, body }). Closed when the test ends.
 */
async function apiServer(t, handler) {
  const hits = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const hit = { method: req.method, url: req.url, headers: req.headers, body };
      hits.push(hit);
      const answer = handler(hit) || { status: 204 };
      const text = answer.body === undefined || typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body);
      const headers = { ...(typeof answer.body === 'object' ? { 'content-type': 'application/json' } : {}), ...answer.headers };
      res.writeHead(answer.status, headers).end(text);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  return { base: `http://127.0.0.1:${server.address().port}`, hits };
}

module.exports = { FAST, configFor, launcher, withServer, earlierLogin, loggedIn, issueToken, apiServer, waitFor };
