// Web login by mini-program code, the browser's side: the whole protocol in one plain ES
// module, no framework and no build step. Copy it into your site and call startWebLogin from
// the page that shows the code; see docs/web-login.md. The page must be served from the same
// site as the login server (the ticket's cookie is SameSite=Strict), so every URL here is a
// path on the page's own origin and fetch sends the cookies by itself.
//
//   import { startWebLogin } from './web-login.js';
//   const login = startWebLogin({
//     onStatus(status) { ... },       // see STATUSES below
//     onQr(url) { img.src = url; },   // a new code to show ('' when there is none)
//     onLoggedIn(me) { ... },         // GET /me's answer: {user_id, kind: "web", expires_at}
//     onError(error) { ... },         // {code, message, status}: offer a new code
//   });
//   login.newCode();   // after denied, expired or an error
//   login.logOut();    // POST /logout, then a new code
//   login.stop();      // leaving the page
//
// The browser's secrets never pass through this script: the ticket's secret and the session
// token are HttpOnly cookies, and every URL carries the ticket id only (it is in the code).
//
// The served harness runs this very file: the leptos page (client-wasm/harness) imports it
// through wasm-bindgen.

/**
 * What onStatus is told, in order: `checking` (is this browser logged in already?),
 * `starting` (asking for a ticket), then the ticket's own `pending`, `scanned`, `confirmed`,
 * `denied` or `expired`, then `logged-in` once the session cookie is set, or `error`.
 */
export const STATUSES = ['checking', 'starting', 'pending', 'scanned', 'confirmed', 'denied', 'expired', 'logged-in', 'error'];

/** How often the status is polled without Server-Sent Events. */
const POLL_MS = 2000;
/** A ticket's statuses after which nothing changes. */
const FINAL = ['confirmed', 'denied', 'expired'];

/**
 * Starts the web login: if the browser is logged in already (its session cookie answers
 * GET /me), onLoggedIn at once; otherwise a new ticket, its code and its status until the
 * person confirms. Returns { newCode(), logOut(), stop() }.
 */
export function startWebLogin(handlers = {}) {
  const on = (name, ...args) => {
    if (typeof handlers[name] === 'function') handlers[name](...args);
  };
  // Each code is one run; a newer run (or stop) silences everything an older one started.
  let run = 0;
  let events = null;
  let timer = null;

  function quiet() {
    run += 1;
    if (events) events.close();
    events = null;
    clearTimeout(timer);
    timer = null;
    return run;
  }

  function fail(mine, error) {
    if (mine !== run) return;
    quiet();
    on('onQr', '');
    on('onStatus', 'error');
    on('onError', error);
  }

  /** Resolves with the JSON body, or rejects with {code, message, status} from the error body. */
  async function call(method, path) {
    let response;
    try {
      response = await fetch(path, { method, credentials: 'same-origin', headers: { accept: 'application/json' } });
    } catch (e) {
      throw { code: 'network', message: `${method} ${path}: ${e && e.message ? e.message : e}`, status: 0 };
    }
    const text = await response.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    if (!response.ok) {
      const error = (body && body.error) || {};
      throw { code: error.code || `http_${response.status}`, message: error.message || `${method} ${path} answered ${response.status}`, status: response.status };
    }
    return body;
  }

  async function check() {
    const mine = quiet();
    on('onStatus', 'checking');
    try {
      const me = await call('GET', '/me');
      if (mine !== run) return;
      on('onStatus', 'logged-in');
      on('onLoggedIn', me);
    } catch (e) {
      if (mine !== run) return;
      if (e.status === 401) newCode();
      else fail(mine, e);
    }
  }

  async function newCode() {
    const mine = quiet();
    on('onQr', '');
    on('onStatus', 'starting');
    let ticket;
    try {
      ticket = await call('POST', '/web-login');
    } catch (e) {
      return fail(mine, e);
    }
    if (mine !== run) return;
    const base = `/web-login/${encodeURIComponent(ticket.id)}`;
    on('onQr', `${base}/qr.png`);
    follow(mine, base);
  }

  /** The ticket's statuses: Server-Sent Events, or polling when they are missing or fail. */
  function follow(mine, base) {
    let last = null;
    const seen = (status) => {
      if (mine !== run || status === last) return;
      last = status;
      if (FINAL.includes(status)) quiet();
      if (status !== 'confirmed') on('onQr', FINAL.includes(status) ? '' : `${base}/qr.png`);
      on('onStatus', status);
      if (status === 'confirmed') complete(run, base);
    };
    const poll = async () => {
      try {
        seen((await call('GET', base)).status);
      } catch (e) {
        return fail(mine, e);
      }
      if (mine === run) timer = setTimeout(poll, POLL_MS);
    };
    if (typeof EventSource !== 'function') return poll();
    events = new EventSource(`${base}/events`);
    events.addEventListener('status', (event) => {
      try {
        seen(JSON.parse(event.data).status);
      } catch (e) {
        fail(mine, { code: 'bad_event', message: String(e), status: 0 });
      }
    });
    // The stream broke before a final status (a proxy that buffers or cuts it, a restart):
    // polling tells the same, and says why when the ticket is gone.
    events.onerror = () => {
      if (mine !== run || !events) return;
      events.close();
      events = null;
      poll();
    };
  }

  /** Takes the session cookie for the confirmed ticket, then asks who it is. */
  async function complete(mine, base) {
    try {
      await call('POST', `${base}/complete`);
      const me = await call('GET', '/me');
      if (mine !== run) return;
      on('onQr', '');
      on('onStatus', 'logged-in');
      on('onLoggedIn', me);
    } catch (e) {
      fail(mine, e);
    }
  }

  async function logOut() {
    const mine = quiet();
    try {
      await call('POST', '/logout');
    } catch (e) {
      // 401: the session had ended already, which is what logging out wants.
      if (e.status !== 401) return fail(mine, e);
    }
    if (mine === run) newCode();
  }

  check();
  return { newCode, logOut, stop: quiet };
}
