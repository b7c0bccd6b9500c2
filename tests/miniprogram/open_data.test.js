// Open data from the mini-program: getApp().ensureFreshSession() keeps the server's session_key
// the one WeChat encrypts with (wx.checkSession, and a fresh login when it fails), and the
// page's getPhoneNumber button. The real app and page in the strict runtime, against the real
// server in dev mode, whose simulator hands out open data (/sim/open-data) and phone codes
// (/sim/phone-code) for the device's user.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { withServer, earlierLogin, loggedIn, waitFor } = require('./support.js');

// The simulator's user whose phone runs the app; open data and phone codes are asked for them.
const USER = 'mp-alice';

/** What a wx.getUserInfo-style API would hand the app now: the user's data under their key. */
async function openData(server) {
  const res = await server.api('POST', '/sim/open-data', { user: USER });
  assert.equal(res.status, 200, res.text);
  return res.body;
}

/** POST /wx/decrypt through the app, as a page would send the data it got. */
function decrypt(rt, data) {
  return rt.app.request({ url: '/wx/decrypt', method: 'POST', data: { encryptedData: data.encryptedData, iv: data.iv } });
}

/** WeChat lets the session_key lapse; the page then asks for a fresh session. */
function reloginForOpenData(rt, device) {
  device.expireSession();
  return rt.app.ensureFreshSession();
}

/** The bearer token of the app's last request to `pathname`. */
function lastBearer(rt, pathname) {
  const calls = rt.calls.filter((c) => c.api === 'request' && c.path === pathname);
  return calls[calls.length - 1].headers.authorization;
}

test('a valid session: ensureFreshSession checks once and resolves with the stored token, no login', async (t) => {
  const { server, launch } = await withServer(t, { user: USER });
  const token = await earlierLogin(launch);

  const rt = launch();
  assert.equal(await rt.app.ensureFreshSession(), token);
  assert.equal(rt.count('checkSession'), 1);
  assert.equal(rt.count('login'), 0);
  assert.equal(rt.count('request', 'POST', '/login'), 0);

  // The key the server holds is the one WeChat encrypts with: data fetched now opens.
  const opened = await decrypt(rt, await openData(server));
  assert.equal(opened.statusCode, 200, JSON.stringify(opened.data));
  assert.equal(opened.data.nickName, USER);
});

test('checkSession fails: exactly one fresh login, a new token, and data fetched then decrypts with it', async (t) => {
  const { server, device, launch } = await withServer(t, { user: USER });
  const rt = launch();
  const old = await rt.app.ensureLogin();
  assert.equal(rt.count('login'), 1);

  device.expireSession();
  const fresh = await rt.app.ensureFreshSession();
  assert.notEqual(fresh, old);
  assert.equal(rt.count('checkSession'), 1);
  assert.equal(rt.count('login'), 2);
  assert.equal(rt.count('request', 'POST', '/login'), 2);
  assert.equal(rt.app.globalData.token, fresh);
  assert.equal(device.get('token'), fresh, 'the new token replaced the old in storage');

  const data = await openData(server);
  const opened = await decrypt(rt, data);
  assert.equal(opened.statusCode, 200, JSON.stringify(opened.data));
  assert.equal(lastBearer(rt, '/wx/decrypt'), `Bearer ${fresh}`);
  const me = await server.api('GET', '/me', undefined, fresh);
  assert.equal(opened.data.openId, me.body.openid);
  assert.equal(opened.data.nickName, USER);
  assert.equal(opened.data.watermark.appid, me.body.appid);

  // The session is valid again: the next call checks and logs in no more.
  assert.equal(await rt.app.ensureFreshSession(), fresh);
  assert.equal(rt.count('checkSession'), 2);
  assert.equal(rt.count('login'), 2);
});

test('data fetched, then more re-logins than the server keeps keys (3): stale_session_key until fetched again', async (t) => {
  const { server, device, launch } = await withServer(t, { user: USER });
  const rt = launch();
  await rt.app.ensureLogin();
  const data = await openData(server);

  await reloginForOpenData(rt, device);
  await reloginForOpenData(rt, device);
  const kept = await decrypt(rt, data);
  assert.equal(kept.statusCode, 200, `two logins later the key is among the three kept: ${JSON.stringify(kept.data)}`);

  await reloginForOpenData(rt, device);
  assert.equal(rt.count('login'), 4);
  const stale = await decrypt(rt, data);
  assert.equal(stale.statusCode, 400);
  assert.equal(stale.data.error.code, 'stale_session_key');

  // What the page does then: a fresh session (valid now: no login) and the data fetched again.
  assert.equal(await rt.app.ensureFreshSession(), rt.app.globalData.token);
  assert.equal(rt.count('login'), 4);
  const again = await decrypt(rt, await openData(server));
  assert.equal(again.statusCode, 200, JSON.stringify(again.data));
});

test('concurrent ensureFreshSession calls share one check and one login', async (t) => {
  const { device, launch } = await withServer(t, { user: USER });
  const rt = launch();
  const old = await rt.app.ensureLogin();

  device.expireSession();
  const tokens = await Promise.all([1, 2, 3, 4].map(() => rt.app.ensureFreshSession()));
  assert.equal(new Set(tokens).size, 1);
  assert.notEqual(tokens[0], old);
  assert.equal(rt.count('checkSession'), 1);
  assert.equal(rt.count('login'), 2);
  assert.equal(rt.count('request', 'POST', '/login'), 2);
});

test('ensureFreshSession during the first login at launch joins it: one wx.login in all', async (t) => {
  const { launch } = await withServer(t, { user: USER });
  // A new device never logged in, so checkSession fails while the launch's login is under way.
  const rt = launch();
  const [fresh, first] = await Promise.all([rt.app.ensureFreshSession(), rt.app.ensureLogin()]);
  assert.equal(fresh, first);
  assert.equal(rt.count('checkSession'), 1);
  assert.equal(rt.count('login'), 1);
  assert.equal(rt.count('request', 'POST', '/login'), 1);
});

/** The app launched and logged in, its page showing the phone button. */
async function loggedInPage(launch) {
  const rt = launch();
  const token = await loggedIn(rt);
  await waitFor('the page to show the phone button', () => rt.page.data.loggedIn);
  assert.match(rt.pageText(), /Share my phone number/);
  return { rt, token };
}

/** The page's answer to the phone button: the number or a message. */
async function phoneShown(rt) {
  await waitFor('the phone outcome', () => !rt.page.data.phoneBusy && (rt.page.data.phone !== '' || rt.page.data.phoneError !== ''));
  return { phone: rt.page.data.phone, error: rt.page.data.phoneError, text: rt.pageText() };
}

test('the phone button: its code goes to POST /wx/phone and the page shows the number', async (t) => {
  const { server, launch } = await withServer(t, { user: USER });
  const { rt, token } = await loggedInPage(launch);
  const { code } = (await server.api('POST', '/sim/phone-code', { user: USER, phoneNumber: '13800001111' })).body;

  rt.fire('getphonenumber', 'onGetPhoneNumber', { errMsg: 'getPhoneNumber:ok', code });
  assert.equal(rt.page.data.phoneBusy, true, 'the button shows it is working');
  const shown = await phoneShown(rt);
  assert.equal(shown.phone, '+8613800001111');
  assert.equal(shown.error, '');
  assert.match(shown.text, /Phone \+8613800001111/);

  const calls = rt.calls.filter((c) => c.api === 'request' && c.path === '/wx/phone');
  assert.equal(calls.length, 1);
  assert.equal(calls[0].method, 'POST');
  assert.deepEqual(JSON.parse(calls[0].body), { code });
  assert.equal(calls[0].headers.authorization, `Bearer ${token}`);
  assert.equal((await server.api('GET', '/me', undefined, token)).body.phone.purePhoneNumber, '13800001111');
});

test('the user refuses the phone number: a message, and nothing is sent', async (t) => {
  const { launch } = await withServer(t, { user: USER });
  const { rt } = await loggedInPage(launch);

  rt.fire('getphonenumber', 'onGetPhoneNumber', { errMsg: 'getPhoneNumber:fail user deny' });
  assert.equal(rt.page.data.phone, '');
  assert.equal(rt.page.data.phoneBusy, false);
  assert.match(rt.page.data.phoneError, /chose not to share your phone number/);
  assert.match(rt.pageText(), /chose not to share your phone number/);
  assert.equal(rt.count('request', 'POST', '/wx/phone'), 0);
});

test('a wx.login code given as the phone code: the page shows the server invalid_code answer', async (t) => {
  const { server, launch } = await withServer(t, { user: USER });
  const { rt, token } = await loggedInPage(launch);
  const loginCode = async () => (await server.api('POST', '/sim/wx.login', { user: USER })).body.code;
  // What the server says to such a code, asked directly with another one.
  const direct = await server.api('POST', '/wx/phone', { code: await loginCode() }, token);
  assert.equal(direct.status, 400);
  assert.equal(direct.body.error.code, 'invalid_code');

  rt.fire('getphonenumber', 'onGetPhoneNumber', { errMsg: 'getPhoneNumber:ok', code: await loginCode() });
  const shown = await phoneShown(rt);
  assert.equal(shown.phone, '');
  assert.equal(shown.error, `Cannot get your phone number: HTTP 400 (invalid_code): ${direct.body.error.message}`);
  assert.ok(shown.text.includes(shown.error), shown.text);
  assert.equal(rt.count('request', 'POST', '/wx/phone'), 1);
});
