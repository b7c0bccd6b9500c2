// The home page: shows where the login stands (from the app's login session), who is logged in
// (the openid from GET /me, fetched through getApp().request), and offers one button, "Log in"
// or "Log out"; once logged in, a getPhoneNumber button too, whose code the server turns into
// the user's number (POST /wx/phone). Written with Component(), which the base library accepts
// for pages, so that miniprogram-simulate can render it in tests (tests/miniprogram/page.test.js).
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

/** What the template shows for GET /me's outcome: the openid, or why there is none. */
function presentProfile(outcome) {
  const got = pick(outcome, 'openid');
  return { openid: got.value, profileError: got.problem && 'Cannot load your profile: ' + got.problem };
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
    profileError: '',
    phone: '',
    phoneError: '',
    phoneBusy: false,
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
        this.setData({ openid: '', profileError: '', phone: '', phoneError: '' });
      } else if (token !== own.profileToken) {
        own.profileToken = token;
        this.loadProfile(token);
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

    onLogin() {
      // The outcome shows up through onLoginChange; a failure needs no handling here.
      app.login().catch(() => {});
    },

    onLogout() {
      app.logout().catch(() => {});
    },
  },
});
