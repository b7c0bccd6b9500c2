// The home page: shows where the login stands (from the app's login session), who is logged in
// (the account's user_id and the openid from GET /me, fetched through getApp().request), the
// account's sessions (GET /me/sessions, each other one with an "End" button), and offers
// "Log in" or "Log out"; once logged in, a getPhoneNumber button too, whose code the server
// turns into the user's number (POST /wx/phone), and the account's own two: "Log out
// everywhere" and "Delete account". Below, "Scan to log in on the web" reads a website's login
// code with the camera and opens pages/web-login/confirm for it. Written with Component(),
// which the base library accepts for pages, so that miniprogram-simulate can render it in
// tests (tests/miniprogram/page.test.js).
const { utc } = require('../../utils/time.js');
const { ticketFromScan, confirmUrl } = require('../../utils/web-login.js');

const app = getApp();

const TITLES = {
  unknown: 'Starting…',
  'reading-storage': 'Starting…',
  checking: 'Checking the saved login…',
  'getting-code': 'Logging in…',
  'exchanging-code': 'Logging in…',
  'logged-in': 'Logged in',
  'retry-waiting': 'Cannot reach the server, retrying…',
  failed: 'Login failed',
  'logged-out': 'Logged out',
};

/** What the template shows for a session view (see app.js globalData.login). */
function present(view, token) {
  const loggedIn = view.state === 'logged-in';
  const settled = loggedIn || view.state === 'failed' || view.state === 'logged-out';
  return {
    state: view.state,
    title: TITLES[view.state] || view.state,
    error: view.error ? view.error.message + ' (' + view.error.code + ')' : '',
    // Enough of the token to tell sessions apart, not enough to use it.
    tokenHint: loggedIn && token ? '…' + token.slice(-6) : '',
    unverified: loggedIn && !view.verified,
    loggedIn: loggedIn,
    busy: !settled,
  };
}

/**
 * A request's outcome ({response} or {error}, see `ask`) as the string field `field` of a 200
 * answer's JSON, or '' and why there is none: the request's error, or the server's
 * `{error: {code, message}}`.
 */
function pick(outcome, field) {
  if (outcome.error) return { value: '', problem: outcome.error.message + ' (' + outcome.error.code + ')' };
  const res = outcome.response;
  if (res.statusCode === 200 && res.data && typeof res.data[field] === 'string') return { value: res.data[field], problem: '' };
  const error = res.data && res.data.error;
  const said = error && error.code ? ' (' + error.code + ')' + (error.message ? ': ' + error.message : '') : '';
  return { value: '', problem: 'HTTP ' + res.statusCode + said };
}

/** What the template shows for GET /me's outcome: the account and openid, or why there are none. */
function presentProfile(outcome) {
  const got = pick(outcome, 'openid');
  const userId = got.value && typeof outcome.response.data.user_id === 'string' ? outcome.response.data.user_id : '';
  return { openid: got.value, userId: userId, profileError: got.problem && 'Cannot load your profile: ' + got.problem };
}

/**
 * What the template shows for the account's sessions (getApp().sessions(), newest first): a
 * name (the device it logged in on), since when, the mini-program and the address.
 */
function presentSessions(sessions) {
  return {
    sessions: sessions.map(function (s) {
      const detail = ['since ' + utc(s.created_at)];
      if (s.appid) detail.push(s.appid);
      if (s.ip) detail.push(s.ip);
      return { id: s.id, name: s.device || s.kind, detail: detail.join(' · '), current: s.current === true };
    }),
    sessionsError: '',
  };
}

/** An error of the session's calls as the page says it. */
function describeError(error) {
  return error.message + ' (' + (error.code || 'error') + ')';
}

/** What the template shows for POST /wx/phone's outcome: the number, or why there is none. */
function presentPhone(outcome) {
  const got = pick(outcome, 'phoneNumber');
  return { phone: got.value, phoneError: got.problem && 'Cannot get your phone number: ' + got.problem, phoneBusy: false };
}

/** getApp().request(options), settled as {response} or {error: {code, message}}; never rejects. */
function ask(options) {
  return app.request(options).then(
    (response) => ({ response: response }),
    (error) => ({ error: { code: error.code || 'error', message: error.message } }),
  );
}

/**
 * Each page instance's own state, none of it shown: kept beside the instance rather than on it,
 * because Component()'s typings give `this` only data and methods, and not in data, because
 * setData would send it to the render layer.
 * @type {WeakMap<object, {profileToken: string, unloaded: boolean, stopWatching: () => void}>}
 */
const instances = new WeakMap();

Component({
  data: Object.assign(present(app.globalData.login, app.globalData.token), {
    openid: '',
    userId: '',
    profileError: '',
    sessions: [],
    sessionsError: '',
    phone: '',
    phoneError: '',
    phoneBusy: false,
    // "Log out everywhere" or "Delete account" is waiting for the server.
    accountBusy: false,
    leaving: false,
    deleting: false,
    accountError: '',
    // What the last of them did, once it did it.
    notice: '',
    // Why the last scan for a web login led nowhere.
    scanError: '',
  }),

  lifetimes: {
    attached() {
      // profileToken: the token the profile on show (or being fetched) belongs to.
      const own = { profileToken: '', unloaded: false, stopWatching: () => {} };
      instances.set(this, own);
      own.stopWatching = app.onLoginChange((view, token) => this.update(view, token));
      this.update(app.globalData.login, app.globalData.token);
    },

    detached() {
      const own = instances.get(this);
      own.unloaded = true;
      own.stopWatching();
    },
  },

  methods: {
    update(view, token) {
      const own = instances.get(this);
      this.setData(present(view, token));
      if (!token) {
        // Logged out, or a new login under way: the old profile is no longer this session's.
        own.profileToken = '';
        this.setData({ openid: '', userId: '', profileError: '', sessions: [], sessionsError: '', phone: '', phoneError: '' });
      } else if (token !== own.profileToken) {
        own.profileToken = token;
        this.setData({ notice: '' });
        this.loadProfile(token);
        this.loadSessions(token);
      }
    },

    /** GET /me for the session of `token`; a failure is shown, never thrown. */
    loadProfile(token) {
      const own = instances.get(this);
      const show = (outcome) => {
        // A later session's profile is on its way already (or the page is gone).
        if (own.unloaded || own.profileToken !== token) return;
        this.setData(presentProfile(outcome));
      };
      ask({ url: '/me' }).then(show);
    },

    /** The account's sessions, for the session of `token`; a failure is shown, never thrown. */
    loadSessions(token) {
      const own = instances.get(this);
      const current = () => !own.unloaded && own.profileToken === token;
      app.sessions().then(
        (sessions) => {
          if (current()) this.setData(presentSessions(sessions));
        },
        (error) => {
          if (current()) this.setData({ sessions: [], sessionsError: 'Cannot load your sessions: ' + describeError(error) });
        },
      );
    },

    /** An "End" button of the session list: ends that session, then lists them again. */
    onEndSession(event) {
      const id = event && event.currentTarget && event.currentTarget.dataset ? event.currentTarget.dataset.id : '';
      const token = instances.get(this).profileToken;
      app.endSession(id).then(
        () => this.loadSessions(token),
        (error) => {
          if (!instances.get(this).unloaded) this.setData({ sessionsError: 'Cannot end that session: ' + describeError(error) });
        },
      );
    },

    /**
     * One of the account's endings: `run()` (the app's logoutEverywhere or deleteAccount),
     * with its button busy meanwhile; `done` is said once the server confirmed it (the
     * session is logged out by then), `failed` with the error otherwise, when nothing has
     * changed.
     */
    endAccount(flag, run, done, failed) {
      if (this.data.accountBusy) return;
      this.setData({ accountBusy: true, [flag]: true, accountError: '', notice: '' });
      const finish = (changes) => {
        if (!instances.get(this).unloaded) this.setData(Object.assign({ accountBusy: false, [flag]: false }, changes));
      };
      run().then(
        () => finish({ notice: done }),
        (error) => finish({ accountError: failed + describeError(error) }),
      );
    },

    onLogoutEverywhere() {
      this.endAccount('leaving', () => app.logoutEverywhere(), 'Logged out of every session of your account.', 'Could not log out everywhere: ');
    },

    /** Asks first: deleting the account cannot be undone. */
    onDeleteAccount() {
      if (this.data.accountBusy) return;
      wx.showModal({
        title: 'Delete your account?',
        content: 'Your account and all its sessions end for good. This cannot be undone.',
        confirmText: 'Delete',
        confirmColor: '#c0392b',
        success: (res) => {
          if (!res.confirm) return;
          this.endAccount('deleting', () => app.deleteAccount(), 'Your account was deleted.', 'Could not delete your account: ');
        },
      });
    },

    /**
     * The getPhoneNumber button's event: `detail.code` when the user agreed, which only the
     * server can exchange for the number; no code (`getPhoneNumber:fail user deny`, or an app
     * not allowed to ask) means there is nothing to send.
     */
    onGetPhoneNumber(event) {
      const detail = (event && event.detail) || {};
      if (typeof detail.code !== 'string' || detail.code === '') {
        const denied = /deny/.test(detail.errMsg || '');
        this.setData({
          phone: '',
          phoneError: denied ? 'You chose not to share your phone number.' : 'WeChat gave no phone number code (' + (detail.errMsg || 'no errMsg') + ').',
        });
        return;
      }
      this.setData({ phoneBusy: true, phoneError: '' });
      ask({ url: '/wx/phone', method: 'POST', data: { code: detail.code } }).then((outcome) => {
        if (!instances.get(this).unloaded) this.setData(presentPhone(outcome));
      });
    },

    /**
     * "Scan to log in on the web": the camera reads the website's code, and the confirm page
     * opens for its ticket as it would from WeChat's own scanner. Closing the scanner is no
     * error; a code that is not the website's login code is said.
     */
    onScanWebLogin() {
      this.setData({ scanError: '' });
      wx.scanCode({
        success: (res) => {
          const ticket = ticketFromScan(res);
          if (ticket === '') {
            this.setData({ scanError: 'That is not a login code from the website. Scan the code the website shows.' });
            return;
          }
          wx.navigateTo({
            url: confirmUrl(ticket),
            fail: (err) => this.setData({ scanError: 'Cannot open the login page: ' + err.errMsg }),
          });
        },
        fail: (err) => {
          if (!/cancel/.test(err.errMsg || '')) this.setData({ scanError: 'Cannot scan: ' + err.errMsg });
        },
      });
    },

    onLogin() {
      // The outcome shows up through onLoginChange; a failure needs no handling here.
      app.login().catch(() => {});
    },

    onLogout() {
      app.logout().catch(() => {});
    },
  },
});
