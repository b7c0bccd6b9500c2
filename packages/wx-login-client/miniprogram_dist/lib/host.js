// The host side of the login state machine (client-wasm): feeds it events and carries out the
// effects it returns with the mini-program's own APIs — storage, wx.login, wx.request,
// setTimeout. The machine decides everything (when to log in, retry, give up); this file only
// translates. Event and effect formats are documented in client-wasm/src/lib.rs. It also offers
// `request()`, wx.request for the app's own APIs with the token attached and one retry after a
// 401, `ensureFreshSession()`, which keeps the server's session_key the one WeChat
// encrypts open data with, the account's own calls: its sessions, logging out of all of
// them, deleting it, and the web login's: scanning a website's login code, confirming or
// denying it.
'use strict';

/**
 * Starts a login session.
 *
 * options.wasm            the generated module (`../wasm/client.js`), or null when it failed to load
 * options.loadError       why it failed to load, shown to the user
 * options.wasmPath        where the module is in the code package, when not at its default
 *                         place (see "The WebAssembly file" in docs/miniprogram-client.md)
 * options.baseUrl         the server, e.g. 'http://127.0.0.1:3000'; `request()` paths are relative to it
 * options.machine         client-wasm's config object (backoff, attempts, storage keys); its
 *                         `device`, when not set, is this phone's "<model> / <system>" (see
 *                         deviceName)
 * options.requestTimeoutMs
 * options.onChange(view, token)  called after every change of the state or of the token
 */
function createSession(options) {
  const wasm = options.wasm;
  const baseUrl = options.baseUrl.replace(/\/+$/, '');
  const onChange = options.onChange || function () {};
  const now = function () {
    return Date.now();
  };

  let client = null;
  // The token the machine holds ('' when none), as its last `token_changed` said: the only
  // source of it, so it can never be stale after a logout, a 401 or a background re-login.
  let token = '';
  let view = { state: 'unknown', verified: false, attempt: 0, expiresAt: null, error: null };
  let nextWaiter = 1;
  const waiters = {};
  const queue = [];
  let draining = false;
  // Whether the view or the token changed while carrying out an event's effects: listeners hear
  // of it once per event, with both up to date.
  let dirty = false;

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
        if (dirty) {
          dirty = false;
          onChange(view, token);
        }
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
        // A JSON value (the token a string, its expiry a number): wx storage keeps it as is.
        wx.setStorageSync(effect.key, effect.value);
        break;
      case 'remove_storage':
        wx.removeStorageSync(effect.key);
        break;
      case 'wx_login':
        wx.login({
          success(res) {
            if (res && res.code) {
              dispatch({ type: 'wx_login_succeeded', code: res.code, now_ms: now() });
            } else {
              dispatch({ type: 'wx_login_failed', err_msg: (res && res.errMsg) || 'login:fail no code', now_ms: now() });
            }
          },
          fail(err) {
            dispatch({ type: 'wx_login_failed', err_msg: (err && err.errMsg) || 'login:fail', now_ms: now() });
          },
        });
        break;
      case 'http_request':
        machineRequest(effect);
        break;
      case 'start_timer':
        // Timers are never cancelled: the machine ignores one that fires late or is superfluous.
        setTimeout(function () {
          dispatch({ type: 'timer_fired', timer: effect.timer, now_ms: now() });
        }, effect.delay_ms);
        break;
      case 'token_changed':
        token = effect.token || '';
        view = Object.assign({}, view, { expiresAt: effect.expires_at_ms });
        dirty = true;
        break;
      case 'state_changed':
        view = {
          state: effect.state,
          verified: effect.verified,
          attempt: effect.attempt,
          expiresAt: effect.token_expires_at_ms,
          error: effect.last_error,
        };
        dirty = true;
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
  function machineRequest(effect) {
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
        dispatch({ type: 'http_failed', request: effect.request, err_msg: (err && err.errMsg) || 'request:fail', now_ms: now() });
      },
    });
  }

  function settle(ids, result) {
    ids.forEach(function (id) {
      const waiter = waiters[id];
      if (!waiter) return;
      delete waiters[id];
      if (result.ok) {
        waiter.resolve(result.ok.token);
      } else {
        waiter.reject(codedError(result.err.code, result.err.message));
      }
    });
  }

  // The module loads asynchronously; everything waits for it. A module that cannot load is a
  // permanent failure of this launch, shown like any other login error.
  const ready = (wasm ? wasm.init(options.wasmPath) : Promise.reject(options.loadError || new Error('wasm/client.js is missing')))
    .then(function () {
      const machine = Object.assign({}, options.machine || {});
      if (machine.device === undefined) machine.device = deviceName();
      client = new wasm.Client(JSON.stringify(machine));
      dispatch({ type: 'launched', now_ms: now() });
    })
    .catch(function (error) {
      const failure = codedError('wasm_unavailable', 'cannot load the login module: ' + describe(error));
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

  /** A fresh login even when logged in; resolves like ensureLogin (with the new token). */
  function login() {
    return ready.then(function () {
      dispatch({ type: 'login_requested', now_ms: now() });
      return ensureLogin();
    });
  }

  // The check (and the login it may lead to) under way, which concurrent callers share.
  let freshening = null;

  /**
   * Resolves with a token whose session on the server holds the session_key WeChat holds now.
   * WeChat encrypts open data under the session_key of the last wx.login and replaces it when
   * it lapses, and only the server can decrypt; so before asking WeChat for open data a page
   * asks wx.checkSession, and when the key has lapsed logs in afresh (a new wx.login and
   * POST /login), which hands the new key to the server. Concurrent callers share one check
   * and one login.
   */
  function ensureFreshSession() {
    if (freshening) return freshening;
    const run = checkSession().then(function (valid) {
      return valid ? ensureLogin() : login();
    });
    const done = function () {
      freshening = null;
    };
    freshening = run;
    run.then(done, done);
    return run;
  }

  /** wx.checkSession as a promise: true while the last wx.login's session_key is valid. */
  function checkSession() {
    return new Promise(function (resolve) {
      wx.checkSession({
        success() {
          resolve(true);
        },
        fail() {
          resolve(false);
        },
      });
    });
  }

  /** A business API answered 401 for `rejected`: the machine drops it and logs in (once). */
  function unauthorized(rejected) {
    return ready.then(function () {
      dispatch({ type: 'api_unauthorized', token: rejected, now_ms: now() });
    });
  }

  /**
   * wx.request for the app's own APIs, as a promise, with the session's token.
   *
   * `options` are wx.request's: `url` (absolute http(s)://, or a path starting with '/' taken
   * relative to baseUrl), `method`, `data`, `header`, `timeout` (default requestTimeoutMs),
   * `dataType`, `responseType`; callbacks are not used. The request waits for a token
   * (ensureLogin) and carries `Authorization: Bearer <token>` (the caller's own Authorization
   * header gives way). On a 401 the machine is told (api_unauthorized: one login however many
   * requests report the same token), and the request is sent once more with the new token.
   *
   * Resolves with wx.request's success result ({statusCode, data, header, ...}) for any other
   * status, `data` parsed when it is JSON. Rejects with an Error whose `code` is
   * `invalid_request` (bad url), `network` (no answer; the message has wx's errMsg),
   * `unauthorized` (the retry got a 401 too: not reported again, so an API that refuses every
   * token cannot make the app log in over and over), or the login's own code when no token
   * could be had (`network_error`, `logged_out`, ...).
   *
   * The token goes to whatever URL is given: use absolute URLs only for the app's own servers.
   */
  function request(requestOptions) {
    const opts = requestOptions || {};
    let url;
    try {
      url = resolveUrl(opts.url);
    } catch (error) {
      return Promise.reject(error);
    }
    return authorized(url, opts).then(function (sent) {
      return sent.res;
    });
  }

  /**
   * What request() does once the url is resolved: resolves with `{res, bearer}`, the answer
   * and the token that got it.
   *
   * A 401 logs in again only when the session is still meant to be logged in: not while an
   * account ending is under way (`ending` is not set for that ending's own request), which is
   * most likely why the token was refused, nor once the user is logged out. Logging in then
   * would bring back the session the user just ended, or, after a deletion, make a new
   * account; the request rejects with `logged_out` instead.
   */
  function authorized(url, opts, ending) {
    const loggedOut = function () {
      return codedError('logged_out', 'request: ' + url + ' answered 401 and the session is ending or ended; not logging in again');
    };
    return ensureLogin().then(function (first) {
      return send(url, opts, first).then(function (res) {
        if (res.statusCode !== 401) return { res: res, bearer: first };
        if (endings > 0 && !ending) throw loggedOut();
        return unauthorized(first)
          .then(function () {
            if (view.state === 'logged-out') throw loggedOut();
            return ensureLogin();
          })
          .then(function (fresh) {
            return send(url, opts, fresh).then(function (retried) {
              if (retried.statusCode !== 401) return { res: retried, bearer: fresh };
              throw codedError('unauthorized', 'request: ' + url + ' answered 401 to a new token too');
            });
          });
      });
    });
  }

  function resolveUrl(url) {
    if (typeof url === 'string' && /^https?:\/\/[^/]/i.test(url)) return url;
    if (typeof url === 'string' && url.charAt(0) === '/' && url.charAt(1) !== '/') return baseUrl + url;
    throw codedError(
      'invalid_request',
      'request: url must be absolute (http:// or https://) or a path starting with "/", not ' + describeValue(url),
    );
  }

  /** One wx.request with `token`; resolves with its success result, rejects when no answer came. */
  function send(url, opts, bearer) {
    return new Promise(function (resolve, reject) {
      const header = {};
      const given = opts.header || {};
      for (const name in given) {
        if (Object.prototype.hasOwnProperty.call(given, name) && name.toLowerCase() !== 'authorization') {
          header[name] = given[name];
        }
      }
      header.Authorization = 'Bearer ' + bearer;
      const call = {
        url: url,
        method: (opts.method || 'GET').toUpperCase(),
        header: header,
        timeout: opts.timeout || options.requestTimeoutMs,
        success(res) {
          resolve(parsed(res, opts));
        },
        fail(err) {
          const errMsg = (err && err.errMsg) || 'request:fail';
          reject(codedError('network', 'request: no answer from ' + url + ' (' + errMsg + ')'));
        },
      };
      if (opts.data !== undefined) call.data = opts.data;
      if (opts.dataType !== undefined) call.dataType = opts.dataType;
      if (opts.responseType !== undefined) call.responseType = opts.responseType;
      wx.request(call);
    });
  }

  /**
   * One request with `bearer`, resolved with the answer when its status is `expected`; any
   * other status rejects with the server's error code (see serverError), no answer with
   * `network`.
   */
  function expect(method, path, bearer, expected) {
    return send(baseUrl + path, { method: method }, bearer).then(function (res) {
      if (res.statusCode === expected) return res;
      throw serverError(method + ' ' + path, res);
    });
  }

  /**
   * `request()` of `method path`, resolved with the answer and the token it went out with
   * when its status is `expected`, rejected like `expect` otherwise. `more.ending`: this is an
   * account ending's own request (see authorized); `more.data`: the body to send.
   */
  function expectAuthorized(method, path, expected, more) {
    const extra = more || {};
    const opts = extra.data === undefined ? { method: method } : { method: method, data: extra.data };
    return authorized(baseUrl + path, opts, extra.ending).then(function (sent) {
      if (sent.res.statusCode === expected) return sent;
      throw serverError(method + ' ' + path, sent.res);
    });
  }

  // Account endings under way (logoutEverywhere, deleteAccount): see authorized.
  let endings = 0;

  /** Runs the ending `run()` with `endings` counting it. */
  function whileEnding(run) {
    endings += 1;
    const done = function () {
      endings -= 1;
    };
    const running = run();
    running.then(done, done);
    return running;
  }

  /**
   * Ends every session of the account on the server (DELETE /me/sessions: other phones, other
   * mini-programs of the team, this one), then logs out here as logout() does. Unlike
   * logout(), it waits for the server: the user asks for it because of another device, and
   * must hear whether it happened. Until the server's 204 nothing changes here (the token is
   * needed to ask again); a failure rejects with its code and leaves the session as it was.
   * Without a token it logs in first, as request() does: the server needs one to know the
   * account.
   */
  const logoutEverywhere = single(function () {
    return whileEnding(function () {
      return ready
        .then(function () {
          return expectAuthorized('DELETE', '/me/sessions', 204, { ending: true });
        })
        .then(function (sent) {
          // The token the request went out with (after a 401, the one that replaced it), which
          // the server no longer knows; were another held by now, the machine revokes that one.
          dispatch({ type: 'session_ended', token: sent.bearer, now_ms: now() });
        });
    });
  });

  /**
   * Deletes the user's account on the server (DELETE /me), then logs out here. The server
   * takes it only from a session that logged in within the last few minutes, so this logs in
   * afresh first (a new wx.login and POST /login) and sends DELETE /me with the new token.
   * After the server's 204 the token and its storage are cleared as by logout(); on any
   * failure nothing else changes (the fresh token stays the session's) and the promise
   * rejects with the code: `reauth_required` when the server still found the login too old,
   * the login's own code when no fresh login could be had, `network`, ... Requests of the
   * app that a 401 meets meanwhile reject with `logged_out` rather than log in again, which
   * would make a new account (see authorized).
   */
  const deleteAccount = single(function () {
    return whileEnding(function () {
      return login().then(function (fresh) {
        return expect('DELETE', '/me', fresh, 204).then(function () {
          dispatch({ type: 'session_ended', token: fresh, now_ms: now() });
        });
      });
    });
  });

  /** Web login calls under way, by action and ticket (see webLogin). @type {Object<string, Promise<any>>} */
  const webLogins = {};

  /**
   * `POST /web-login/{id}/{action}` with an empty JSON body, through request()'s path: without
   * a token it logs in first, and a 401 logs in again and retries once. Resolves with the
   * answer when its status is `expected`; rejects with the server's code otherwise
   * (`ticket_expired`, `ticket_taken`, ...; see serverError). An id the website's code could
   * not carry rejects with `invalid_request` and sends nothing: it did not come from a code.
   * A second call for the same ticket and action while one is under way (a double tap) joins
   * it: one request, whose second copy would only meet `ticket_closed`.
   */
  function webLogin(action, id, expected) {
    if (typeof id !== 'string' || !TICKET_ID.test(id)) {
      return Promise.reject(
        codedError('invalid_request', action + ': a web login ticket id is 1 to 32 characters of A-Z, a-z, 0-9, "_" and "-", not ' + describeValue(id)),
      );
    }
    const path = '/web-login/' + encodeURIComponent(id) + '/' + action;
    return joined(webLogins, action + ' ' + id, function () {
      return expectAuthorized('POST', path, expected, { data: {} }).then(function (sent) {
        return sent.res;
      });
    });
  }

  return {
    ensureLogin: ensureLogin,
    ensureFreshSession: ensureFreshSession,
    request: request,
    login: login,
    /**
     * Logs out here at once; the machine keeps the token in storage until the server confirms
     * its revoke (resent with backoff, and at later launches), so the promise does not wait for
     * the server.
     *
     * With `{everywhere: true}`, ends every session of the account on the server first and
     * logs out here only after its 204 (see logoutEverywhere above); it rejects, changing
     * nothing here, when the server did not confirm.
     */
    logout(logoutOptions) {
      if (logoutOptions && logoutOptions.everywhere) return logoutEverywhere();
      return ready.then(function () {
        dispatch({ type: 'logout_requested', now_ms: now() });
      });
    },
    deleteAccount: deleteAccount,
    /**
     * The account's live sessions (GET /me/sessions), newest first; `current` marks this
     * one. Rejects like expect() (and like request() when no token can be had).
     */
    sessions() {
      return expectAuthorized('GET', '/me/sessions', 200).then(function (sent) {
        const sessions = sent.res.data && sent.res.data.sessions;
        if (!Array.isArray(sessions)) throw codedError('bad_response', 'GET /me/sessions: no `sessions` list in the answer');
        return sessions;
      });
    },
    /**
     * Ends one session of the account (DELETE /me/sessions/{id}): another phone's, or another
     * mini-program's. Rejects with `not_found` for an id the account does not have. For this
     * phone's own session use logout(), which also clears the token here.
     */
    endSession(id) {
      if (typeof id !== 'string' || id === '') {
        return Promise.reject(codedError('invalid_request', 'endSession: the id must be a non-empty string, not ' + describeValue(id)));
      }
      return expectAuthorized('DELETE', '/me/sessions/' + encodeURIComponent(id), 204).then(function () {});
    },
    /**
     * Claims a web login ticket for this account (POST /web-login/{id}/scan): the website
     * shows a mini-program code whose `scene` is the ticket id, and the user scanned it.
     * Resolves with the server's answer, `{browser: {ip, device, created_at}}`, the browser
     * asking to log in, for the user to check before confirm(id) or deny(id). Scanning again
     * with the same account is fine; another account's scan first rejects with `ticket_taken`.
     * Rejects with `ticket_not_found`, `ticket_expired`, `ticket_closed` and the like (see
     * webLogin), `bad_response` for an answer without a browser.
     */
    scan(id) {
      return webLogin('scan', id, 200).then(function (res) {
        const browser = res.data && res.data.browser;
        if (!browser || typeof browser !== 'object') throw codedError('bad_response', 'POST /web-login/{id}/scan: no `browser` in the answer');
        return res.data;
      });
    },
    /** Logs the scanned browser in to this account (POST /web-login/{id}/confirm); rejects like scan. */
    confirm(id) {
      return webLogin('confirm', id, 204).then(function () {});
    },
    /** Turns the scanned browser away (POST /web-login/{id}/deny); rejects like scan. */
    deny(id) {
      return webLogin('deny', id, 204).then(function () {});
    },
    unauthorized: unauthorized,
    view() {
      return view;
    },
    token() {
      return token;
    },
  };
}

/**
 * wx.request parses a JSON body when dataType is 'json' (its default); some platforms hand over
 * the text anyway when the content type has extra parameters. Parse it then, unless the caller
 * asked for text or bytes.
 */
function parsed(res, opts) {
  const wantsJson = (opts.dataType === undefined || opts.dataType === 'json') && (opts.responseType === undefined || opts.responseType === 'text');
  if (wantsJson && typeof res.data === 'string' && /json/i.test(headerValue(res.header, 'content-type'))) {
    try {
      return Object.assign({}, res, { data: JSON.parse(res.data) });
    } catch (error) {
      // Not JSON after all: keep the text.
    }
  }
  return res;
}

/**
 * What the website's code can carry as a web login ticket id: the `scene` of a mini-program
 * code is at most 32 characters, and the server's ids are base64url.
 */
const TICKET_ID = /^[A-Za-z0-9_-]{1,32}$/;

/**
 * `run()`, unless a run under `key` in `runs` is still under way: then that run (a double tap
 * does the work once).
 * @template T
 * @param {Object<string, Promise<any>>} runs
 * @param {string} key
 * @param {() => Promise<T>} run
 * @returns {Promise<T>}
 */
function joined(runs, key, run) {
  if (runs[key]) return runs[key];
  const started = run();
  runs[key] = started;
  const done = function () {
    delete runs[key];
  };
  started.then(done, done);
  return started;
}

/**
 * `run` made into a function that runs it unless its last run is still under way, and then
 * returns that run: a second tap on a button does the work once.
 * @template T
 * @param {() => Promise<T>} run
 * @returns {() => Promise<T>}
 */
function single(run) {
  let running = null;
  return function () {
    if (running) return running;
    const started = run();
    running = started;
    const done = function () {
      running = null;
    };
    started.then(done, done);
    return started;
  };
}

/**
 * The error for an answer of the wrong status: its `code` is the server's
 * (`{"error": {"code", "message"}}`: `reauth_required`, `not_found`, `rate_limited`, ...), or
 * `http_<status>` when the body names none; `status` is the HTTP status.
 */
function serverError(what, res) {
  const error = res.data && typeof res.data === 'object' ? res.data.error : null;
  const code = error && typeof error.code === 'string' && error.code !== '' ? error.code : 'http_' + res.statusCode;
  const said = error && typeof error.message === 'string' && error.message !== '' ? ': ' + error.message : '';
  return Object.assign(codedError(code, what + ' answered ' + res.statusCode + said), { status: res.statusCode });
}

/**
 * What the account's session list calls this phone: "<model> / <system>" (e.g.
 * "iPhone 15 / iOS 18.1"), from wx.getDeviceInfo (base library 2.20.1 and later) or, on older
 * ones, wx.getSystemInfoSync, which newer ones deprecate. '' when the runtime has neither or
 * it fails: the server then names the session by the request's User-Agent. The machine cuts
 * it to the server's 128 characters.
 */
function deviceName() {
  let info = null;
  try {
    if (typeof wx.getDeviceInfo === 'function') info = wx.getDeviceInfo();
    else if (typeof wx.getSystemInfoSync === 'function') info = wx.getSystemInfoSync();
  } catch (error) {
    info = null;
  }
  if (!info || typeof info !== 'object') return '';
  return [info.model, info.system]
    .filter(function (part) {
      return typeof part === 'string' && part.trim() !== '';
    })
    .map(function (part) {
      return part.trim();
    })
    .join(' / ');
}

/**
 * An Error that says which kind of failure it is in `code`.
 * @param {string} code
 * @param {string} message
 * @returns {import('../index').CodedError}
 */
function codedError(code, message) {
  return Object.assign(new Error(message), { code: code });
}

function describe(error) {
  return (error && (error.message || error.errMsg)) || String(error);
}

function describeValue(value) {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

/** A header's value, whatever the case of its name (it varies by platform); '' when absent. */
function headerValue(header, wanted) {
  if (!header) return '';
  for (const name in header) {
    if (name.toLowerCase() === wanted) return String(header[name]);
  }
  return '';
}

/** `Retry-After` in whole seconds, or null. */
function retryAfter(header) {
  const value = headerValue(header, 'retry-after');
  if (value === '') return null;
  const seconds = parseInt(value, 10);
  return seconds >= 0 ? seconds : null;
}

module.exports = { createSession: createSession };
