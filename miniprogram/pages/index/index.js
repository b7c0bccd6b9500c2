// The home page: shows where the login stands (from the app's login session), who is logged in
// (the openid from GET /me, fetched through getApp().request), and offers one button, "Log in"
// or "Log out".
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

/** What the template shows for GET /me's outcome: the openid, or why there is none. */
function presentProfile(outcome) {
  if (outcome.error) {
    return { openid: '', profileError: 'Cannot load your profile: ' + outcome.error.message + ' (' + outcome.error.code + ')' };
  }
  const res = outcome.response;
  if (res.statusCode === 200 && res.data && typeof res.data.openid === 'string') {
    return { openid: res.data.openid, profileError: '' };
  }
  const code = res.data && res.data.error && res.data.error.code;
  return { openid: '', profileError: 'Cannot load your profile: HTTP ' + res.statusCode + (code ? ' (' + code + ')' : '') };
}

Page({
  data: Object.assign(present(app.globalData.login, app.globalData.token), { openid: '', profileError: '' }),

  onLoad() {
    // The token the profile on show (or being fetched) belongs to.
    this.profileToken = '';
    this.stopWatching = app.onLoginChange((view, token) => this.update(view, token));
    this.update(app.globalData.login, app.globalData.token);
  },

  onUnload() {
    this.unloaded = true;
    this.stopWatching();
  },

  update(view, token) {
    this.setData(present(view, token));
    if (!token) {
      // Logged out, or a new login under way: the old profile is no longer this session's.
      this.profileToken = '';
      this.setData({ openid: '', profileError: '' });
    } else if (token !== this.profileToken) {
      this.profileToken = token;
      this.loadProfile(token);
    }
  },

  /** GET /me for the session of `token`; a failure is shown, never thrown. */
  loadProfile(token) {
    const show = (outcome) => {
      // A later session's profile is on its way already (or the page is gone).
      if (this.unloaded || this.profileToken !== token) return;
      this.setData(presentProfile(outcome));
    };
    app.request({ url: '/me' }).then(
      (response) => show({ response: response }),
      (error) => show({ error: { code: error.code || 'error', message: error.message } }),
    );
  },

  onLogin() {
    // The outcome shows up through onLoginChange; a failure needs no handling here.
    app.login().catch(() => {});
  },

  onLogout() {
    app.logout().catch(() => {});
  },
});
