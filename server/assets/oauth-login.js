// The OpenID Connect login page's script: the web login (web-login.js, served beside it),
// then back to the authorization request, which now finds the browser's session and sends it
// on to the client. Served with a Content-Security-Policy that allows scripts from this
// server only, so it is a file and the page holds no inline script.
import { startWebLogin } from './web-login.js';

const page = document.body.dataset;
const code = document.getElementById('code');
const status = document.getElementById('status');
const again = document.getElementById('again');
const WORDS = {
  checking: 'One moment…',
  starting: 'Asking for a code…',
  pending: 'Scan the code with WeChat.',
  scanned: 'Scanned: confirm in the mini-program.',
  confirmed: 'Confirmed: logging you in…',
  denied: 'You refused in the mini-program.',
  expired: 'The code has expired.',
  'logged-in': 'Logged in: returning to the application…',
  error: 'Something went wrong.',
};

let confirmed = false;
const login = startWebLogin({
  onStatus(name) {
    if (name === 'confirmed') confirmed = true;
    status.textContent = WORDS[name] || name;
    status.dataset.status = name;
    again.hidden = !['denied', 'expired', 'error'].includes(name);
  },
  onQr(url) {
    code.hidden = !url;
    if (url) code.src = url;
  },
  onLoggedIn() {
    // A session from before this page does not do when the client asked for a fresh login:
    // end it and scan again.
    if (page.fresh === 'true' && !confirmed) return login.logOut();
    window.location.reload();
  },
  onError(error) {
    status.textContent = `${WORDS.error} (${error.code})`;
  },
});
again.addEventListener('click', () => login.newCode());
