// The phone's half of a web login, shared by the browser tests: read the mini-program code a
// page shows with a real QR decoder (zbarimg), open the demo mini-program where the code
// points in the strict mini-program runtime, and stop at its confirm page.
'use strict';

const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { ARTIFACTS } = require('./support.js');
const { launcher, configFor } = require('../miniprogram/support.js');
const { Device, waitFor } = require('../miniprogram/runtime.js');

/** The demo mini-program's page a web-login code opens. */
const CONFIRM_PAGE = 'pages/web-login/confirm';
/** The scene WeChat opens a mini-program with when its own scanner read a mini-program code. */
const SCANNED = 1047;

/** The zbarimg binary, or a clear failure: the tests never skip without it. */
function zbarimg() {
  const probe = spawnSync('zbarimg', ['--version'], { encoding: 'utf8' });
  if (probe.error) {
    throw new Error(`zbarimg is missing (${probe.error.code}): install Debian's zbar-tools (\`apt-get install -y zbar-tools\`; \`cargo xtask test browser\` does)`);
  }
  return 'zbarimg';
}

/**
 * The text of the code in the `<img>` at `selector`, read by a real QR decoder: the picture
 * as the page decoded it (drawn onto a canvas with a white margin, no second request), as a
 * PNG file in tests/artifacts/`name`.png for zbarimg.
 */
async function decodeShownCode(page, selector, name) {
  const decoder = zbarimg();
  await page.waitForFunction((selector) => {
    const img = document.querySelector(selector);
    return img && img.complete && img.naturalWidth > 0;
  }, selector);
  const dataUrl = await page.evaluate((selector) => {
    const img = document.querySelector(selector);
    const margin = 32;
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth + 2 * margin;
    canvas.height = img.naturalHeight + 2 * margin;
    const g = canvas.getContext('2d');
    g.fillStyle = '#fff';
    g.fillRect(0, 0, canvas.width, canvas.height);
    g.drawImage(img, margin, margin);
    return canvas.toDataURL('image/png');
  }, selector);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  fs.writeFileSync(file, Buffer.from(dataUrl.split(',')[1], 'base64'));
  const read = spawnSync(decoder, ['--raw', '-q', file], { encoding: 'utf8' });
  assert.equal(read.status, 0, `zbarimg found no code in ${file}: ${read.stderr}`);
  return read.stdout.trim();
}

/** The ticket id in a web-login code's text (`<page>?scene=<id>`), checked to open the confirm page. */
function ticketOf(codeText) {
  const match = /^([^?]+)\?scene=(.+)$/.exec(codeText);
  assert.ok(match, `a mini-program code's text: ${codeText}`);
  assert.equal(match[1], CONFIRM_PAGE, 'the code opens the confirm page');
  return decodeURIComponent(match[2]);
}

/** The mini-program on a phone of its own, against `server`: `open(options)` launches it. */
function phone(t, server) {
  const launch = launcher(t);
  const device = new Device();
  return (options = {}) => launch({ device, simBase: server.base, modules: configFor(server.base), ...options });
}

/**
 * The code scanned with the mini-program: the app opened at the confirm page with the
 * code's scene, as WeChat opens it, past its scan. Resolves with the runtime.
 */
async function scanned(open, id) {
  const rt = open({ entry: { path: CONFIRM_PAGE, query: { scene: encodeURIComponent(id) }, scene: SCANNED } });
  await waitFor('the confirm page past loading', () => rt.page.route === CONFIRM_PAGE && rt.page.data.state !== 'loading');
  assert.equal(rt.page.data.state, 'scanned', rt.page.data.error);
  return rt;
}

/** The mini-program's own account: GET /me on `server` with its token. */
async function phoneAccount(server, rt) {
  const me = await server.api('GET', '/me', undefined, rt.app.globalData.token);
  assert.equal(me.status, 200, me.text);
  assert.equal(me.body.kind, 'miniprogram');
  return me.body.user_id;
}

module.exports = { CONFIRM_PAGE, SCANNED, decodeShownCode, ticketOf, phone, scanned, phoneAccount };
