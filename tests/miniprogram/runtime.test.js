// The strict runtime itself (runtime.js) must be as strict as the real one, or the other tests
// prove nothing: these pin its globals, require, WXWebAssembly, wx.request, wx.login and
// wx.checkSession, wx.scanCode, wx.navigateTo and the entry page, storage, and the events a
// page's template can send.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const zlib = require('node:zlib');
const { Runtime, Device, render, waitFor, PACKAGE_ROOT } = require('./runtime.js');
const { freePort } = require('../js/dev-server.js');
const { namesOf } = require('./forbidden.js');

/** A runtime with its sandbox built but no app launched. */
function sandbox(t, options) {
  const rt = new Runtime(options);
  rt.context = rt.createContext();
  rt.open = true;
  t.after(() => rt.close());
  return rt;
}

/** Runs `fn(wx, done)` in the sandbox's terms and resolves with what `done` got. */
function callWx(rt, call) {
  return new Promise((resolve) => {
    rt.context.__done = resolve;
    rt.evaluate(`(${call})(wx, __done)`);
  });
}

test('the sandbox has the mini-program globals and lacks the others', (t) => {
  const rt = sandbox(t);
  for (const name of ['App', 'Page', 'getApp', 'getCurrentPages', 'wx', 'WXWebAssembly', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'console', 'Promise']) {
    assert.notEqual(rt.evaluate(`typeof ${name}`), 'undefined', name);
  }
  // Every global forbidden_globals.txt calls absent, and Node's per-module CommonJS names.
  const absent = namesOf('absent');
  assert.ok(absent.includes('WebAssembly') && absent.includes('TextDecoder'), 'the list is read');
  for (const name of [...absent, 'require', 'module']) {
    assert.equal(rt.evaluate(`typeof ${name}`), 'undefined', name);
  }
  const noCodegen = namesOf('no-codegen');
  assert.deepEqual(noCodegen, ['eval', 'Function']);
  for (const name of noCodegen) {
    assert.throws(() => rt.evaluate(`${name}("1")`), /disallowed|Code generation/, name);
  }
  assert.equal(typeof rt.evaluate('setTimeout(() => {}, 1)'), 'number', 'timer ids are numbers');
  assert.throws(() => rt.evaluate('setTimeout("1 + 1", 1)'), /function/);
});

test('require: package files only, CommonJS only', (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mp-'));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  fs.writeFileSync(path.join(root, 'project.config.json'), '{"libVersion":"2.14.0"}');
  fs.mkdirSync(path.join(root, 'lib'));
  fs.writeFileSync(path.join(root, 'lib/a.js'), "module.exports = { b: require('./b'), root: require('/c.js') };");
  fs.writeFileSync(path.join(root, 'lib/b.js'), 'module.exports = 2;');
  fs.writeFileSync(path.join(root, 'c.js'), 'exports.c = 3;');
  fs.writeFileSync(path.join(root, 'esm.js'), 'export const x = 1;');
  const rt = sandbox(t, { root });
  assert.deepEqual(JSON.parse(JSON.stringify(rt.requireFrom(root, './lib/a.js'))), { b: 2, root: { c: 3 } });
  assert.throws(() => rt.requireFrom(root, 'fs'), /not defined/);
  assert.throws(() => rt.requireFrom(root, 'node:fs'), /not defined/);
  assert.throws(() => rt.requireFrom(root, '../outside.js'), /outside the package/);
  assert.throws(() => rt.requireFrom(root, './missing.js'), /no such file/);
  assert.throws(() => rt.requireFrom(root, './esm.js'), { name: 'SyntaxError' });
});

test('WXWebAssembly.instantiate: a package path ending .wasm or .wasm.br, nothing else', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mp-'));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  fs.writeFileSync(path.join(root, 'project.config.json'), '{"libVersion":"2.14.0"}');
  // The smallest module: exports `answer() -> 42`.
  const bytes = Buffer.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // magic, version
    ...[0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f], // type: () -> i32
    ...[0x03, 0x02, 0x01, 0x00], // function 0 has type 0
    ...[0x07, 0x0a, 0x01, 0x06, ...Buffer.from('answer'), 0x00, 0x00], // export "answer"
    ...[0x0a, 0x06, 0x01, 0x04, 0x00, 0x41, 0x2a, 0x0b], // body: i32.const 42
  ]);
  fs.writeFileSync(path.join(root, 'm.wasm'), bytes);
  fs.writeFileSync(path.join(root, 'm.wasm.br'), zlib.brotliCompressSync(bytes));
  fs.writeFileSync(path.join(root, 'm.wasm.gz'), zlib.gzipSync(bytes));
  const rt = sandbox(t, { root });
  rt.context.__answer = (r) => r.instance.exports.answer();
  assert.equal(await rt.evaluate("WXWebAssembly.instantiate('/m.wasm', {}).then(__answer)"), 42);
  assert.equal(await rt.evaluate("WXWebAssembly.instantiate('/m.wasm.br', {}).then(__answer)"), 42);
  for (const [argument, why] of [
    ["'m.wasm'", /absolute/],
    ["'/m.wasm.gz'", /\.wasm or \.wasm\.br/],
    ["'/missing.wasm'", /no file/],
    ["'/../m.wasm'", /no file/],
    ['new Uint8Array(8)', /no bytes/],
    ["'http://127.0.0.1/m.wasm'", /absolute/],
  ]) {
    await assert.rejects(rt.evaluate(`WXWebAssembly.instantiate(${argument}, {})`), why, argument);
  }
  const old = sandbox(t, { root, libVersion: '2.13.0' });
  await assert.rejects(old.evaluate("WXWebAssembly.instantiate('/m.wasm.br', {})"), /2\.14\.0/);
  assert.equal(old.evaluate('typeof WXWebAssembly.compile + typeof WXWebAssembly.instantiateStreaming'), 'undefinedundefined');
});

test('wx.request: success for every HTTP status, fail only without an answer', async (t) => {
  const seen = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, type: req.headers['content-type'], body });
      if (req.url.startsWith('/json')) res.writeHead(500, { 'content-type': 'application/json', 'retry-after': '3' }).end('{"error":"boom"}');
      else res.writeHead(404).end('not json');
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const base = `http://127.0.0.1:${server.address().port}`;
  const rt = sandbox(t);

  const json = await callWx(rt, `(wx, done) => wx.request({ url: '${base}/json', data: { a: 1, b: 'x y' }, success: (r) => done(['success', r]), fail: (e) => done(['fail', e]) })`);
  assert.equal(json[0], 'success');
  assert.equal(json[1].statusCode, 500);
  assert.deepEqual(JSON.parse(JSON.stringify(json[1].data)), { error: 'boom' });
  assert.equal(json[1].header['retry-after'], '3');
  assert.equal(seen[0].url, '/json?a=1&b=x+y', 'GET data becomes the query');

  const text = await callWx(rt, `(wx, done) => wx.request({ url: '${base}/text', method: 'POST', data: { code: 'c' }, success: (r) => done(r) })`);
  assert.equal(text.statusCode, 404);
  assert.equal(text.data, 'not json');
  assert.deepEqual(seen[1], { method: 'POST', url: '/text', type: 'application/json', body: '{"code":"c"}' });

  const raw = await callWx(rt, `(wx, done) => wx.request({ url: '${base}/json', dataType: 'text', success: (r) => done(r) })`);
  assert.equal(raw.data, '{"error":"boom"}', "dataType other than 'json' keeps the text");

  const dead = await freePort();
  const failed = await callWx(rt, `(wx, done) => wx.request({ url: 'http://127.0.0.1:${dead}/x', success: (r) => done(['success', r]), fail: (e) => done(['fail', e]) })`);
  assert.equal(failed[0], 'fail');
  assert.match(failed[1].errMsg, /^request:fail /);
  assert.equal(rt.count('request', 'GET', '/json'), 2);
});

test('wx.request: answers can be held back and released; each call records its answer', async (t) => {
  const server = http.createServer((req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const base = `http://127.0.0.1:${server.address().port}`;
  const rt = sandbox(t, { holdAnswers: (call) => call.path === '/held' });

  const order = [];
  rt.context.__seen = (what) => order.push(what);
  const held = callWx(rt, `(wx, done) => wx.request({ url: '${base}/held', success: (r) => { __seen('held'); done(r); } })`);
  const free = await callWx(rt, `(wx, done) => wx.request({ url: '${base}/free', success: (r) => { __seen('free'); done(r); } })`);
  assert.equal(free.statusCode, 200);
  const [heldCall, freeCall] = rt.calls;
  assert.equal(freeCall.status, 200);
  await waitFor('the held answer to arrive', () => rt.held.length === 1);
  assert.equal(heldCall.status, undefined, 'not handed to the app yet');
  assert.deepEqual(order, ['free']);
  assert.equal(rt.releaseHeld(), 1);
  assert.equal((await held).statusCode, 200);
  assert.equal(heldCall.status, 200);
  assert.deepEqual(order, ['free', 'held']);
});

test('wx.request: failRequests makes matching calls fail without reaching the server, until lifted', async (t) => {
  const seen = [];
  const server = http.createServer((req, res) => {
    seen.push(req.url);
    res.writeHead(204).end();
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const base = `http://127.0.0.1:${server.address().port}`;
  const rt = sandbox(t, { failRequests: (call) => call.path === '/down' });
  // (A plain copy: arrays of the sandbox's realm compare badly.)
  const request = async (path) => JSON.parse(JSON.stringify(await callWx(rt, `(wx, done) => wx.request({ url: '${base}${path}', method: 'POST', success: (r) => done(['success', r.statusCode]), fail: (e) => done(['fail', e.errMsg]) })`)));

  const [outcome, errMsg] = await request('/down');
  assert.equal(outcome, 'fail');
  assert.match(errMsg, /^request:fail /);
  assert.equal(rt.calls[0].failed, errMsg, 'recorded as failed when the app got it');
  assert.deepEqual(await request('/up'), ['success', 204]);
  assert.deepEqual(seen, ['/up'], 'the failed call never reached the server');

  rt.failRequests = undefined;
  assert.deepEqual(await request('/down'), ['success', 204]);
  assert.deepEqual(seen, ['/up', '/down']);
  assert.equal(rt.count('request', 'POST', '/down'), 2);
});

test('wx.checkSession: fails until a wx.login, then until the session lapses; the state is the device\'s', async (t) => {
  const asked = [];
  let status = 200;
  const sim = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      asked.push(body);
      res.writeHead(status, { 'content-type': 'application/json' }).end(status === 200 ? '{"code":"c1"}' : '{}');
    });
  });
  await new Promise((r) => sim.listen(0, '127.0.0.1', r));
  t.after(() => sim.close());
  const simBase = `http://127.0.0.1:${sim.address().port}`;
  // The callbacks called, in order, with their errMsg (a plain copy of the sandbox's array).
  const check = async (rt) =>
    JSON.parse(JSON.stringify(await callWx(rt, `(wx, done) => { const seen = []; wx.checkSession({ success: (r) => seen.push('success', r.errMsg), fail: (r) => seen.push('fail', r.errMsg), complete: (r) => done(seen.concat('complete', r.errMsg)) }); }`)));
  const login = (rt) => callWx(rt, "(wx, done) => wx.login({ success: (r) => done(r.code), fail: (e) => done(e.errMsg) })");
  const LAPSED = 'checkSession:fail session time out, need relogin';

  const device = new Device({ user: 'alice' });
  const rt = sandbox(t, { device, simBase });
  assert.deepEqual(await check(rt), ['fail', LAPSED, 'complete', LAPSED], 'never logged in');
  assert.equal(await login(rt), 'c1');
  assert.deepEqual(asked, ['{"user":"alice"}'], "wx.login asks for the device's user");
  assert.deepEqual(await check(rt), ['success', 'checkSession:ok', 'complete', 'checkSession:ok']);

  const relaunched = sandbox(t, { device, simBase });
  assert.equal((await check(relaunched))[0], 'success', 'the session outlives a launch');
  device.expireSession();
  assert.equal((await check(relaunched))[0], 'fail');
  status = 500;
  assert.match(await login(relaunched), /^login:fail /);
  assert.equal((await check(relaunched))[0], 'fail', 'a failed wx.login renews nothing');
  status = 200;
  assert.equal(await login(relaunched), 'c1');
  assert.equal((await check(relaunched))[0], 'success');
  assert.equal(rt.count('checkSession') + relaunched.count('checkSession'), 6);

  await login(sandbox(t, { simBase }));
  assert.equal(asked[asked.length - 1], '{}', "without a user, the simulator's default user");
});

test('fire: the bound handler gets {type, detail}; getphonenumber comes only from a getPhoneNumber button', (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mp-'));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  fs.writeFileSync(path.join(root, 'project.config.json'), '{"libVersion":"2.14.0"}');
  fs.writeFileSync(path.join(root, 'app.json'), '{"pages":["p/i"]}');
  fs.writeFileSync(path.join(root, 'app.js'), '// app\nApp({});');
  fs.mkdirSync(path.join(root, 'p'));
  fs.writeFileSync(path.join(root, 'p/i.json'), '{}');
  fs.writeFileSync(
    path.join(root, 'p/i.js'),
    "// page\nPage({ data: { got: '' }, on(e) { this.setData({ got: e.type + ' ' + JSON.stringify(e.detail) }); }, row(e) { this.setData({ got: e.currentTarget.dataset.id }); } });",
  );
  fs.writeFileSync(
    path.join(root, 'p/i.wxml'),
    '<button open-type="getPhoneNumber"\n  bindgetphonenumber="on">A</button><button bindgetphonenumber="plain">B</button><view bindtap="on">C</view><view wx:for="{{rows}}" data-id="{{item}}" bindtap="row">D</view>',
  );
  const rt = new Runtime({ root });
  t.after(() => rt.close());
  rt.launch();

  rt.fire('getphonenumber', 'on', { errMsg: 'getPhoneNumber:ok', code: 'x' });
  assert.equal(rt.page.data.got, 'getphonenumber {"errMsg":"getPhoneNumber:ok","code":"x"}');
  rt.tap('on');
  assert.equal(rt.page.data.got, 'tap {}');
  // A row of a list: its data-* attributes come as the target's dataset.
  rt.tapItem('row', { id: 'r2' });
  assert.equal(rt.page.data.got, 'r2');
  assert.throws(() => rt.tapItem('row', { other: 'x' }), /has no data-other/);
  assert.throws(() => rt.fire('getphonenumber', 'plain'), /only from a <button open-type="getPhoneNumber">/);
  assert.throws(() => rt.fire('tap', 'plain'), /no element of p\/i binds tap to plain/);
  assert.throws(() => rt.tap('missing'), /no element/);
});

test('storage: absent is empty string, values are cloned, and they outlive a launch', (t) => {
  const device = new Device();
  const rt = sandbox(t, { device });
  assert.equal(rt.evaluate("wx.getStorageSync('k')"), '');
  rt.evaluate("const v = { n: 1 }; wx.setStorageSync('k', v); v.n = 2;");
  assert.equal(rt.evaluate("wx.getStorageSync('k').n"), 1, 'stored by value');
  assert.equal(rt.evaluate("wx.getStorageSync('k') === wx.getStorageSync('k')"), false, 'read by value');
  const next = sandbox(t, { device });
  assert.equal(next.evaluate("wx.getStorageSync('k').n"), 1);
  next.evaluate("wx.removeStorageSync('k')");
  assert.equal(next.evaluate("wx.getStorageSync('k')"), '');
  assert.throws(() => next.evaluate("wx.setStorageSync('k', undefined)"), /JSON/);
});

// (Unhandled rejections need no test here: node:test fails the test they happen in, and each
// runtime also records them for assertHealthy.)
test('an error thrown from a sandbox callback is recorded and fails assertHealthy', async (t) => {
  const rt = sandbox(t);
  rt.evaluate("setTimeout(() => { throw new Error('boom'); }, 1)");
  await waitFor('the timer to throw', () => rt.errors.length > 0);
  assert.equal(rt.errors.length, 1);
  assert.throws(() => rt.assertHealthy(), /uncaught error in the mini-program: boom/);
});

test('render: the WXML subset the page uses', () => {
  const template = '<!-- c --><view><text>{{title}}</text><view wx:if="{{error}}">E {{error}}</view><button wx:if="{{on}}">Off</button><button wx:else>On</button></view>';
  assert.equal(render(template, { title: 'T', error: '', on: false }), 'T On');
  assert.equal(render(template, { title: 'T', error: 'x', on: true }), 'T E x Off');
  assert.throws(() => render('<view>{{a + b}}</view>', {}), /unsupported/);

  // Lists: the element repeated with `item` (and `index`), fields by path, conditions inside.
  const list = '<view wx:if="{{rows.length}}">Rows</view><view wx:for="{{rows}}" wx:key="id"><text>{{index}} {{item.name}}</text><text wx:if="{{item.mine}}">mine</text><button wx:else data-id="{{item.id}}">End</button></view><view>{{rows.missing.deeper}}.</view>';
  const rows = [{ id: 'a', name: 'A', mine: true }, { id: 'b', name: 'B', mine: false }];
  assert.equal(render(list, { rows }), 'Rows 0 A mine 1 B End .');
  assert.equal(render(list, { rows: [] }), '.');
  assert.throws(() => render('<view wx:for="{{n}}">x</view>', { n: 3 }), /non-list/);
  assert.throws(() => render('<view wx:for="{{rows}}" wx:if="{{on}}">x</view>', { rows }), /not supported/);
});

test('wx.getDeviceInfo from base library 2.20.1, wx.getSystemInfoSync always, neither on a device without them', (t) => {
  const info = { model: 'M', system: 'S 1', platform: 'android', brand: 'B' };
  const rt = sandbox(t, { device: new Device({ info }) });
  assert.equal(rt.evaluate('wx.getDeviceInfo().model'), 'M');
  assert.equal(rt.evaluate('wx.getSystemInfoSync().system'), 'S 1');
  assert.equal(rt.evaluate('wx.getSystemInfoSync().SDKVersion'), rt.libVersion);
  assert.equal(rt.evaluate('wx.getDeviceInfo() === wx.getDeviceInfo()'), false, 'a copy each time');
  const old = sandbox(t, { device: new Device({ info }), libVersion: '2.19.4' });
  assert.equal(old.evaluate('typeof wx.getDeviceInfo'), 'undefined');
  assert.equal(old.evaluate('wx.getSystemInfoSync().model'), 'M');
  const bare = sandbox(t, { device: new Device({ info: null }) });
  assert.equal(bare.evaluate('typeof wx.getDeviceInfo + typeof wx.getSystemInfoSync'), 'undefinedundefined');
  // The default phone.
  assert.match(sandbox(t).evaluate('wx.getDeviceInfo().model'), /^iPhone/);
});

test('wx.showModal: confirmed unless the runtime says the user cancels', async (t) => {
  const ask = (rt) => callWx(rt, "(wx, done) => wx.showModal({ title: 'T', content: 'C', success: (res) => done(res.confirm + ' ' + res.cancel) })");
  const yes = sandbox(t);
  assert.equal(await ask(yes), 'true false');
  assert.deepEqual(yes.calls.filter((c) => c.api === 'showModal'), [{ api: 'showModal', title: 'T', content: 'C' }]);
  assert.equal(await ask(sandbox(t, { confirmModals: false })), 'false true');
});

test('the real package launches in the strict runtime', async (t) => {
  const rt = new Runtime({ simBase: 'http://127.0.0.1:9', modules: { '/config.js': { baseUrl: 'http://127.0.0.1:9', requestTimeoutMs: 500, machine: { max_attempts: 1 } } } });
  t.after(() => rt.close());
  rt.launch();
  assert.equal(rt.pages.length, 1);
  assert.equal(rt.page.route, 'pages/index/index');
  assert.equal(rt.evaluate('getCurrentPages().length'), 1);
  assert.equal(rt.evaluate('typeof getApp().ensureLogin'), 'function');
  assert.equal(PACKAGE_ROOT, path.resolve(__dirname, '../../miniprogram'));
  await assert.rejects(rt.app.ensureLogin(), (e) => e.code === 'wx_login_failed' || e.code === 'network_error');
  rt.assertHealthy();
});

test('require by package name: miniprogram_npm/ of the folder or above, never node_modules/', (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mp-'));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  fs.writeFileSync(path.join(root, 'project.config.json'), '{"libVersion":"2.14.0"}');
  const write = (file, text) => {
    fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    fs.writeFileSync(path.join(root, file), text);
  };
  write('miniprogram_npm/pkg/index.js', "module.exports = { entry: true, sub: require('pkg/sub') };");
  write('miniprogram_npm/pkg/sub/index.js', "module.exports = 'sub';");
  write('miniprogram_npm/@scope/other/index.js', "module.exports = 'scoped';");
  write('pages/a/miniprogram_npm/near/index.js', "module.exports = 'near';");
  write('node_modules/installed/index.js', "module.exports = 'from node_modules';");
  const rt = sandbox(t, { root });
  const pageDir = path.join(root, 'pages/a');
  assert.deepEqual(JSON.parse(JSON.stringify(rt.requireFrom(pageDir, 'pkg'))), { entry: true, sub: 'sub' });
  assert.equal(rt.requireFrom(root, '@scope/other'), 'scoped');
  assert.equal(rt.requireFrom(pageDir, 'near'), 'near');
  assert.throws(() => rt.requireFrom(root, 'near'), /no such package in miniprogram_npm/);
  assert.throws(() => rt.requireFrom(root, 'installed'), /no such package in miniprogram_npm/);
});

test('wx.scanCode: the code the user holds up, with path for a code of this mini-program; fail cancel without one', async (t) => {
  const scan = (rt, options = '{}') =>
    callWx(rt, `(wx, done) => wx.scanCode(Object.assign(${options}, { success: (res) => done(JSON.stringify(res)), fail: (res) => done('fail ' + res.errMsg) }))`);
  const asked = [];
  const code = { scanType: 'WX_CODE', result: '', path: 'pages/web-login/confirm?scene=abc' };
  const rt = sandbox(t, {
    scanner: (call) => {
      asked.push(call);
      return code;
    },
  });
  assert.deepEqual(JSON.parse(await scan(rt)), { errMsg: 'scanCode:ok', result: '', scanType: 'WX_CODE', charSet: 'UTF-8', rawData: '', path: code.path });
  assert.deepEqual(asked, [{ onlyFromCamera: false, scanType: undefined }]);
  assert.deepEqual(rt.calls.filter((c) => c.api === 'scanCode'), [{ api: 'scanCode', onlyFromCamera: undefined, scanType: undefined }]);

  // A QR code of something else: its text, base64 as rawData, and no path.
  rt.scanner = () => ({ scanType: 'QR_CODE', result: 'https://example.com/?a=1' });
  const qr = JSON.parse(await scan(rt, "{ onlyFromCamera: true, scanType: ['qrCode'] }"));
  assert.equal(qr.result, 'https://example.com/?a=1');
  assert.equal(Buffer.from(qr.rawData, 'base64').toString(), qr.result);
  assert.equal('path' in qr, false);

  // The scanner does not recognise a kind of code the call leaves out: the user gives up.
  rt.scanner = () => code;
  assert.equal(await scan(rt, "{ scanType: ['qrCode', 'barCode'] }"), 'fail scanCode:fail cancel');
  assert.match(JSON.parse(await scan(rt, "{ scanType: ['wxCode'] }")).path, /scene=abc/);
  // The user closes the scanner; no scanner at all is the same.
  rt.scanner = () => null;
  assert.equal(await scan(rt), 'fail scanCode:fail cancel');
  assert.equal(await scan(sandbox(t)), 'fail scanCode:fail cancel');
  // Options of the wrong type.
  assert.match(await scan(rt, "{ onlyFromCamera: 'yes' }"), /^fail scanCode:fail parameter error: parameter.onlyFromCamera should be Boolean instead of String/);
  assert.match(await scan(rt, "{ scanType: 'qrCode' }"), /^fail scanCode:fail parameter error: parameter.scanType should be Array instead of String/);
  assert.match(await scan(rt, "{ scanType: ['QR_CODE'] }"), /^fail scanCode:fail parameter error/);
});

/** A package of two pages, a/a and b/b, each keeping its onLoad query and its hooks in data. */
function twoPages(t, appJson = { pages: ['a/a', 'b/b'] }) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mp-'));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  fs.writeFileSync(path.join(root, 'project.config.json'), '{"libVersion":"2.14.0"}');
  fs.writeFileSync(path.join(root, 'app.json'), JSON.stringify(appJson));
  fs.writeFileSync(path.join(root, 'app.js'), '// app\nApp({ launched: null, onLaunch(options) { this.launched = options; } });');
  for (const name of ['a', 'b']) {
    fs.mkdirSync(path.join(root, name));
    fs.writeFileSync(path.join(root, `${name}/${name}.json`), '{}');
    fs.writeFileSync(path.join(root, `${name}/${name}.wxml`), '<view>{{hooks}}</view>');
    fs.writeFileSync(
      path.join(root, `${name}/${name}.js`),
      "// page\nPage({ data: { query: null, hooks: '' }, onLoad(query) { this.setData({ query: query, hooks: 'load' }); }, onShow() { this.setData({ hooks: this.data.hooks + ' show' }); }, onHide() { this.setData({ hooks: this.data.hooks + ' hide' }); } });",
    );
  }
  return root;
}

test('entry: the app opens at the page and query WeChat gives, with the launch scene', (t) => {
  const root = twoPages(t);
  const rt = new Runtime({ root, entry: { path: 'b/b', query: { scene: 'a%2Fb' }, scene: 1047 } });
  t.after(() => rt.close());
  rt.launch();
  assert.deepEqual(JSON.parse(JSON.stringify(rt.app.launched)), { path: 'b/b', query: { scene: 'a%2Fb' }, scene: 1047 });
  assert.deepEqual(rt.pages.map((p) => p.route), ['b/b'], 'only the entry page: nothing to go back to');
  assert.deepEqual({ ...rt.page.data.query }, { scene: 'a%2Fb' }, 'as WeChat gives it: still URL-encoded');

  const plain = new Runtime({ root });
  t.after(() => plain.close());
  plain.launch();
  assert.deepEqual(JSON.parse(JSON.stringify(plain.app.launched)), { path: 'a/a', query: {}, scene: 1001 });
  assert.throws(() => new Runtime({ root, entry: { path: 'c/c' } }).launch(), /entry c\/c is not a page of app.json/);
  assert.throws(() => new Runtime({ root, entry: { path: 'b/b', query: { n: 1 } } }).launch(), /WeChat gives strings/);
});

test('wx.navigateTo: a page of app.json on top of the stack, its query as WeChat splits it; fails for other pages and past ten', async (t) => {
  const root = twoPages(t, { pages: ['a/a', 'b/b'], tabBar: { list: [{ pagePath: 'a/a', text: 'A' }] } });
  const rt = new Runtime({ root });
  t.after(() => rt.close());
  rt.launch();
  const go = (url) => callWx(rt, `(wx, done) => wx.navigateTo({ url: ${JSON.stringify(url)}, success: (res) => done(res.errMsg), fail: (res) => done(res.errMsg) })`);

  assert.equal(await go('/b/b?scene=x%2Fy&k=a=b&flag'), 'navigateTo:ok');
  assert.deepEqual(rt.pages.map((p) => p.route), ['a/a', 'b/b']);
  assert.deepEqual({ ...rt.page.data.query }, { scene: 'x%2Fy', k: 'a', flag: 'undefined' }, 'not decoded; WeChat keeps the quirks');
  assert.equal(rt.page.data.hooks, 'load show');
  assert.equal(rt.pages[0].data.hooks, 'load show hide', 'the page below is hidden');
  assert.equal(rt.evaluate('getCurrentPages().length'), 2);
  assert.deepEqual(rt.calls.filter((c) => c.api === 'navigateTo'), [{ api: 'navigateTo', url: '/b/b?scene=x%2Fy&k=a=b&flag' }]);

  // Relative to the top page's folder.
  assert.equal(await go('../b/b'), 'navigateTo:ok');
  assert.deepEqual({ ...rt.page.data.query }, {});
  assert.equal(await go('/c/c'), 'navigateTo:fail page "c/c" is not found');
  assert.equal(await go('b/b'), 'navigateTo:fail page "b/b/b" is not found', 'a path without "/" is relative');
  assert.equal(await go('/a/a'), 'navigateTo:fail can not navigateTo a tabbar page');
  while (rt.pages.length < 10) assert.equal(await go('/b/b'), 'navigateTo:ok');
  assert.equal(await go('/b/b'), 'navigateTo:fail webview count limit exceed');
  assert.equal(rt.pages.length, 10);
  rt.assertHealthy();
});
