// The mini-program's entry: starts the login session of the npm package wx-login-client (its
// WASM state machine and host adapter; built into miniprogram_npm/ by `cargo xtask build` or
// DevTools' Build npm) at launch and shares it with every page. Pages call
// `getApp().request({url: '/me'})` for the app's own APIs (the token is attached, a 401 logs in
// again and retries once), or `getApp().ensureLogin()` when they need the token itself;
// concurrent calls share one login. Before asking WeChat for open data, a page calls
// `getApp().ensureFreshSession()`. The account's own calls (its sessions, logging out of all
// of them, deleting it) and the web login's (a website's login code scanned, then confirmed
// or denied) go through the session too.
const config = require('./config.js');
const { createSession } = require('wx-login-client');

App({
  globalData: {
    // The current token ('' when none), also kept in storage under config.machine.storage_key
    // (the bare string) with its expiry under config.machine.expiry_storage_key (a number).
    token: '',
    // What the pages show: state, verified, attempt, expiresAt, error ({code, message} or null).
    login: { state: 'unknown', verified: false, attempt: 0, expiresAt: null, error: null },
  },

  // Set by onLaunch; declared here, where WeChat's typings look for the app's own members.
  /** @type {import('wx-login-client').Session} */
  session: null,
  /** @type {Array<(view: import('wx-login-client').LoginView, token: string) => void>} */
  listeners: [],

  onLaunch() {
    this.listeners = [];
    this.session = createSession({
      baseUrl: config.baseUrl,
      machine: config.machine,
      requestTimeoutMs: config.requestTimeoutMs,
      onChange: (view, token) => {
        this.globalData.login = view;
        this.globalData.token = token;
        this.listeners.slice().forEach((listener) => listener(view, token));
      },
    });
    // Log in right away so the first page finds a token (a saved one is used at once and
    // verified in the background). A failure is not lost: it is in globalData.login.error and
    // on the page, and the next ensureLogin() tries again.
    this.ensureLogin().catch(() => {});
  },

  /** Resolves with a usable token, logging in if needed; rejects with an Error that has `code`. */
  ensureLogin() {
    return this.session.ensureLogin();
  },

  /**
   * wx.request with the token, as a promise (see wx-login-client): `url` is a path on
   * config.baseUrl ('/me') or an absolute URL of the app's own servers. Resolves with
   * {statusCode, data, header} for any answer but a 401 the retry got too; rejects with an
   * Error whose `code` is `invalid_request`, `network`, `unauthorized` or the login's code.
   */
  request(options) {
    return this.session.request(options);
  },

  /**
   * Call before asking WeChat for open data (encryptedData + iv) that the server will decrypt.
   * Resolves with a usable token once the server holds the session_key WeChat encrypts with
   * now: when wx.checkSession says that key lapsed, it logs in afresh first (a new wx.login and
   * POST /login, replacing the token). Concurrent calls share one check and one login. Rejects
   * like ensureLogin. The server keeps a user's last three session_keys; data older than that
   * gets 400 `stale_session_key` from POST /wx/decrypt: call this again and fetch it again.
   */
  ensureFreshSession() {
    return this.session.ensureFreshSession();
  },

  /** A fresh login (the page's button). */
  login() {
    return this.session.login();
  },

  /**
   * Logs out here at once and on the server as soon as it can be reached (retried, across
   * launches too, until it confirms); a later ensureLogin() logs in again.
   */
  logout() {
    return this.session.logout();
  },

  /**
   * Ends every session of the account (other phones and mini-programs too), then logs out
   * here; waits for the server, and rejects, changing nothing here, when it cannot confirm.
   */
  logoutEverywhere() {
    return this.session.logout({ everywhere: true });
  },

  /**
   * Deletes the account: a fresh login (the server asks for one made within minutes), DELETE
   * /me, then logged out here. Rejects with an Error that has `code`, changing nothing, when
   * the server does not confirm.
   */
  deleteAccount() {
    return this.session.deleteAccount();
  },

  /** The account's live sessions, newest first: [{id, kind, appid, created_at, expires_at, ip, device, current}]. */
  sessions() {
    return this.session.sessions();
  },

  /** Ends another session of the account by its id (not this phone's: use logout()). */
  endSession(id) {
    return this.session.endSession(id);
  },

  /**
   * Claims a website's login code for this account (its ticket id: the code's scene,
   * decoded), logging in first when needed. Resolves with {browser: {ip, device,
   * created_at}}, the browser asking to log in; rejects with an Error whose `code` says why
   * (`ticket_expired`, `ticket_taken`, `ticket_closed`, `ticket_not_found`, `network`, ...).
   */
  scanWebLogin(ticketId) {
    return this.session.scan(ticketId);
  },

  /** Logs the browser of a scanned login code in with this account; rejects like scanWebLogin. */
  confirmWebLogin(ticketId) {
    return this.session.confirm(ticketId);
  },

  /** Turns the browser of a scanned login code away; rejects like scanWebLogin. */
  denyWebLogin(ticketId) {
    return this.session.deny(ticketId);
  },

  /** Tell the session that a business API answered 401 for `token`. */
  reportUnauthorized(token) {
    return this.session.unauthorized(token);
  },

  /** Calls `listener(view, token)` after every change; returns a function that stops it. */
  onLoginChange(listener) {
    this.listeners.push(listener);
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    };
  },
});
