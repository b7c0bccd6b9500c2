// The home page: shows where the login stands (from the app's login session) and offers one
// button, "Log in" or "Log out".
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

Page({
  data: present(app.globalData.login, app.globalData.token),

  onLoad() {
    this.stopWatching = app.onLoginChange((view, token) => this.setData(present(view, token)));
    this.setData(present(app.globalData.login, app.globalData.token));
  },

  onUnload() {
    this.stopWatching();
  },

  onLogin() {
    // The outcome shows up through onLoginChange; a failure needs no handling here.
    app.login().catch(() => {});
  },

  onLogout() {
    app.logout().catch(() => {});
  },
});
