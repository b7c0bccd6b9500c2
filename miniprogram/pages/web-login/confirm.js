// Logging in on a website with this phone: the website shows a mini-program code whose scene
// is a login ticket; scanning it opens this page (from WeChat's scanner, or from the home
// page's scan button). The page claims the ticket for this account, which tells it which
// browser asks (device, address, time), and lets the user confirm or deny. A code that
// expired, that someone else scanned first or that was already used is said plainly, with
// what to do next: all of them need a new code from the website.
const { utc } = require('../../utils/time.js');
const { ticketFromQuery } = require('../../utils/web-login.js');

const app = getApp();

// The title of each state.
const TITLES = {
  loading: 'Log in on the web',
  scanned: 'Log in on the web?',
  confirming: 'Log in on the web?',
  denying: 'Log in on the web?',
  confirmed: 'Logged in on the web',
  denied: 'Login denied',
  error: 'Cannot log in on the web',
};

const NEW_CODE = ' Reload the page on the website to get a new code, then scan it again.';

// What each of the server's (and the client's) refusals means for the user. None of them is
// helped by trying again with this code.
const REFUSALS = {
  ticket_expired: 'This login code has expired.' + NEW_CODE,
  ticket_taken: 'Someone else already scanned this login code, so it cannot log you in. If that was not you, nobody is logged in with your account.' + NEW_CODE,
  ticket_closed: 'This login code has already been used or answered.' + NEW_CODE,
  ticket_not_found: 'This login code is unknown, or expired long ago.' + NEW_CODE,
  invalid_request: 'This is not a login code from the website. Scan the code the website shows.',
  miniprogram_session_required: 'Only a login of this mini-program can log in on the web. Open it again and scan the code.',
};

const NO_CODE = 'No login code here: open this page by scanning the code the website shows.';

/** The page's data for `state`: the flags its template tests. */
function present(state) {
  return {
    state: state,
    title: TITLES[state],
    loading: state === 'loading',
    asking: state === 'scanned' || state === 'confirming' || state === 'denying',
    busy: state === 'confirming' || state === 'denying',
    confirming: state === 'confirming',
    denying: state === 'denying',
    confirmed: state === 'confirmed',
    denied: state === 'denied',
  };
}

/**
 * What the page says about a failed call: a refusal above, or what went wrong with a "Try
 * again" (no answer, no login, the server failing), which scans the code again.
 */
function failure(error) {
  const code = (error && error.code) || 'error';
  const known = REFUSALS[code];
  if (known) return { error: known, retry: false };
  return { error: 'Something went wrong: ' + ((error && error.message) || 'no reason given') + ' (' + code + ').', retry: true };
}

Page({
  data: Object.assign(present('loading'), {
    // The browser asking to log in, as the scan's answer describes it: {ip, device, created_at}.
    browser: null,
    // Its created_at, as the page shows it.
    when: '',
    error: '',
    // Whether "Try again" is offered (see failure).
    retry: false,
  }),

  // The ticket id from the page's query; not in data, which is sent to the render layer.
  ticket: '',

  onLoad(query) {
    this.ticket = ticketFromQuery(query);
    if (this.ticket === '') {
      this.setData(Object.assign(present('error'), { error: NO_CODE }));
      return;
    }
    this.scan();
  },

  /**
   * Claims the ticket for this account. The session logs in first when it has no token (the
   * page may be the first thing a cold start shows), and scanning again with the same
   * account is fine, so this is also what "Try again" does.
   */
  scan() {
    this.setData(Object.assign(present('loading'), { error: '', retry: false }));
    app.scanWebLogin(this.ticket).then(
      (answer) => {
        const browser = answer.browser;
        this.setData(Object.assign(present('scanned'), { browser: browser, when: typeof browser.created_at === 'number' ? utc(browser.created_at) : '' }));
      },
      (error) => this.setData(Object.assign(present('error'), failure(error))),
    );
  },

  onConfirm() {
    this.decide('confirming', 'confirmed', () => app.confirmWebLogin(this.ticket));
  },

  onDeny() {
    this.decide('denying', 'denied', () => app.denyWebLogin(this.ticket));
  },

  onRetry() {
    if (this.data.retry) this.scan();
  },

  /** The user's answer: `run()` with the buttons busy, then `done`, or why it failed. */
  decide(busy, done, run) {
    if (this.data.state !== 'scanned') return; // a second tap while the first is under way
    this.setData(present(busy));
    run().then(
      () => this.setData(present(done)),
      (error) => this.setData(Object.assign(present('error'), failure(error))),
    );
  },
});
