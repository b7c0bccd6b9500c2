// The host side of the login state machine (client-wasm): feeds it events and carries out the
// effects it returns with the mini-program's own APIs — storage, wx.login, wx.request,
// setTimeout. The machine decides everything (when to log in, retry, give up); this file only
// translates. Event and effect formats are documented in client-wasm/src/lib.rs.
'use strict';

/**
 * Starts a login session.
 *
 * options.wasm            the generated module (`wasm/client.js`), or null when it failed to load
 * options.loadError       why it failed to load, shown to the user
 * options.baseUrl         the server, e.g. 'http://127.0.0.1:3000'
 * options.machine         client-wasm's config object (backoff, attempts, storage key)
 * options.requestTimeoutMs
 * options.onChange(view, token)  called after every state change
 */
function createSession(options) {
  const wasm = options.wasm;
  const baseUrl = options.baseUrl.replace(/\/+$/, '');
  const onChange = options.onChange || function () {};
  const now = function () {
    return Date.now();
  };

  let client = null;
  let token = '';
  let view = { state: 'unknown', verified: false, attempt: 0, expiresAt: null, error: null };
  let nextWaiter = 1;
  const waiters = {};
  const queue = [];
  let draining = false;

  function changed(next) {
    view = next;
    onChange(view, token);
  }

  // Events are handled one at a time, in order: an effect answered synchronously (storage)
  // queues its event instead of re-entering the machine while the previous batch of effects
  // is still being carried out.
  function dispatch(event) {
    queue.push(event);
    if (draining) return;
    draining = true;
    try {
      while (queue.length > 0) {
        const next = queue.shift();
        let effects;
        try {
          effects = JSON.parse(client.handle(JSON.stringify(next)));
        } catch (error) {
          // A malformed event is a bug in this file; report it and keep the session alive.
          console.error('login machine rejected an event', next.type, error);
          continue;
        }
        effects.forEach(perform);
      }
    } finally {
      draining = false;
    }
  }

  function perform(effect) {
    switch (effect.type) {
      case 'read_storage': {
        const value = wx.getStorageSync(effect.key);
        dispatch({ type: 'storage_read', key: effect.key, value: value === '' ? null : value, now_ms: now() });
        break;
      }
      case 'write_storage':
        wx.setStorageSync(effect.key, effect.value);
        break;
      case 'remove_storage':
        wx.removeStorageSync(effect.key);
        token = '';
        break;
      case 'wx_login':
        wx.login({
          success(res) {
            if (res && res.code) {
              dispatch({ type: 'wx_login_succeeded', code: res.code });
            } else {
              dispatch({ type: 'wx_login_failed', err_msg: (res && res.errMsg) || 'login:fail no code' });
            }
          },
          fail(err) {
            dispatch({ type: 'wx_login_failed', err_msg: (err && err.errMsg) || 'login:fail' });
          },
        });
        break;
      case 'http_request':
        request(effect);
        break;
      case 'start_timer':
        // Timers are never cancelled: the machine ignores one that fires late or is superfluous.
        setTimeout(function () {
          dispatch({ type: 'timer_fired', timer: effect.timer });
        }, effect.delay_ms);
        break;
      case 'state_changed':
        changed({
          state: effect.state,
          verified: effect.verified,
          attempt: effect.attempt,
          expiresAt: effect.token_expires_at_ms,
          error: effect.last_error,
        });
        // Logged in without a waiter to tell us the token (a retry timer finished the login
        // after its callers gave up): ask for it; a held token is answered at once.
        if (effect.state === 'logged-in' && !token) ensureLogin().catch(function () {});
        break;
      case 'resolve_waiters':
        settle(effect.waiters, effect.result);
        break;
      default:
        console.warn('unknown effect from the login machine', effect.type);
    }
  }

  // wx.request calls `success` for every HTTP answer, 4xx and 5xx included, and `fail` only
  // when no answer came; the machine wants exactly that split.
  function request(effect) {
    const header = {};
    if (effect.bearer !== null) header.Authorization = 'Bearer ' + effect.bearer;
    if (effect.body !== null) header['Content-Type'] = 'application/json';
    wx.request({
      url: baseUrl + effect.path,
      method: effect.method,
      header: header,
      data: effect.body === null ? undefined : effect.body,
      // The raw text goes to the machine, which parses it; 'text' stops wx.request parsing it.
      dataType: 'text',
      timeout: options.requestTimeoutMs,
      success(res) {
        dispatch({
          type: 'http_response',
          request: effect.request,
          status: res.statusCode,
          body: typeof res.data === 'string' ? res.data : JSON.stringify(res.data),
          retry_after_s: retryAfter(res.header),
          now_ms: now(),
        });
      },
      fail(err) {
        dispatch({ type: 'http_failed', request: effect.request, err_msg: (err && err.errMsg) || 'request:fail' });
      },
    });
  }

  function settle(ids, result) {
    if (result.ok) token = result.ok.token;
    ids.forEach(function (id) {
      const waiter = waiters[id];
      if (!waiter) return;
      delete waiters[id];
      if (result.ok) {
        waiter.resolve(result.ok.token);
      } else {
        waiter.reject(loginError(result.err.code, result.err.message));
      }
    });
    if (result.ok) changed(view);
  }

  // The module loads asynchronously; everything waits for it. A module that cannot load is a
  // permanent failure of this launch, shown like any other login error.
  const ready = (wasm ? wasm.init() : Promise.reject(options.loadError || new Error('wasm/client.js is missing')))
    .then(function () {
      client = new wasm.Client(JSON.stringify(options.machine || {}));
      dispatch({ type: 'launched', now_ms: now() });
    })
    .catch(function (error) {
      const failure = loginError('wasm_unavailable', 'cannot load the login module: ' + describe(error));
      changed({ state: 'failed', verified: false, attempt: 0, expiresAt: null, error: { code: failure.code, message: failure.message } });
      throw failure;
    });
  ready.catch(function () {}); // reported through onChange; callers see it through ensureLogin

  /** Resolves with a usable token; concurrent callers share one login (the machine's waiters). */
  function ensureLogin() {
    return ready.then(function () {
      return new Promise(function (resolve, reject) {
        const id = nextWaiter++;
        waiters[id] = { resolve: resolve, reject: reject };
        dispatch({ type: 'ensure_login', waiter: id, now_ms: now() });
      });
    });
  }

  return {
    ensureLogin: ensureLogin,
    /** A fresh login even when logged in (the button); resolves like ensureLogin. */
    login() {
      return ready.then(function () {
        dispatch({ type: 'login_requested' });
        return ensureLogin();
      });
    },
    /** Forgets the token here and on the server. */
    logout() {
      return ready.then(function () {
        token = '';
        dispatch({ type: 'logout_requested' });
      });
    },
    /** A business API answered 401 for `rejected`: drop it and log in again (once). */
    unauthorized(rejected) {
      return ready.then(function () {
        dispatch({ type: 'api_unauthorized', token: rejected, now_ms: now() });
      });
    },
    view() {
      return view;
    },
    token() {
      return token;
    },
  };
}

function loginError(code, message) {
  const error = new Error(message);
  error.code = code;
  return error;
}

function describe(error) {
  return (error && (error.message || error.errMsg)) || String(error);
}

/** `Retry-After` in whole seconds, from headers whose name case varies by platform. */
function retryAfter(header) {
  if (!header) return null;
  for (const name in header) {
    if (name.toLowerCase() === 'retry-after') {
      const seconds = parseInt(header[name], 10);
      return seconds >= 0 ? seconds : null;
    }
  }
  return null;
}

module.exports = { createSession: createSession };
