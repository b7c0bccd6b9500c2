// The mini-program project opens in WeChat DevTools as is: the files DevTools and the runtime
// read exist and say what the issue asks, and the hand-written code keeps the runtime's rules.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { PACKAGE_ROOT } = require('./runtime.js');
const { forbiddenIn } = require('./forbidden.js');

const json = (name) => JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, name), 'utf8'));

// The client package's mini-program files, as its package.json names them.
const CLIENT = path.resolve(PACKAGE_ROOT, '../packages/wx-login-client');
const CLIENT_FILES = path.join(CLIENT, 'miniprogram_dist');

/**
 * Hand-written JS of the demo and of the client package: not wasm/ (generated and checked by
 * glue.test.js), nor the npm folders (copies of the package, or what npm installed).
 */
function sources(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return ['wasm', 'node_modules', 'miniprogram_npm'].includes(entry.name) ? [] : sources(full);
    return entry.name.endsWith('.js') ? [full] : [];
  });
}

test('project.config.json: a mini-program anyone can open, against a local server', () => {
  const project = json('project.config.json');
  assert.equal(project.compileType, 'miniprogram');
  assert.equal(project.appid, 'touristappid');
  assert.equal(project.setting.urlCheck, false);
  const [major, minor] = project.libVersion.split('.').map(Number);
  assert.ok(major > 2 || (major === 2 && minor >= 14), `libVersion ${project.libVersion} loads .wasm.br`);
});

test('app.json lists pages that have all four files, and the sitemap exists', () => {
  const app = json('app.json');
  assert.ok(app.pages.length > 0);
  for (const page of app.pages) {
    for (const ext of ['js', 'wxml', 'wxss', 'json']) assert.ok(fs.existsSync(path.join(PACKAGE_ROOT, `${page}.${ext}`)), `${page}.${ext}`);
  }
  assert.ok(Array.isArray(json(app.sitemapLocation).rules));
  for (const name of ['app.js', 'app.wxss', 'config.js', 'sitemap.json']) assert.ok(fs.existsSync(path.join(PACKAGE_ROOT, name)), name);
});

test('config.js points at the local server by default and keeps the token under "token"', () => {
  const config = require('../../miniprogram/config.js');
  assert.equal(config.baseUrl, 'http://127.0.0.1:3000');
  assert.equal(config.machine.storage_key, 'token');
  assert.equal(config.machine.expiry_storage_key, 'token_expires_at_ms');
  assert.equal(config.machine.logout_storage_key, 'logout_pending');
});

test('each page template binds only data and handlers its page has', () => {
  for (const page of json('app.json').pages) {
    const wxml = fs.readFileSync(path.join(PACKAGE_ROOT, `${page}.wxml`), 'utf8');
    const source = fs.readFileSync(path.join(PACKAGE_ROOT, `${page}.js`), 'utf8');
    for (const [, name] of wxml.matchAll(/\{\{!?\s*(\w+)[\s.}]/g)) {
      // A list's element and position, in scope inside its wx:for.
      if (name === 'item' || name === 'index') continue;
      assert.match(source, new RegExp(`\\b${name}:`), `${page}: data ${name}`);
    }
    const handlers = [...wxml.matchAll(/\sbind(\w+)="(\w+)"/g)];
    for (const [, event, handler] of handlers) assert.match(source, new RegExp(`\\b${handler}\\(\\w*\\) \\{`), `${page}: handler ${handler} of ${event}`);
  }
});

test("app.json lists each page once, the web login's confirm page among them", () => {
  const pages = json('app.json').pages;
  assert.deepEqual([...new Set(pages)], pages);
  // The path the website's mini-program code names: it must not move.
  assert.ok(pages.includes('pages/web-login/confirm'));
});

test('the client is an npm package for mini-programs, and the demo depends on it', () => {
  const client = JSON.parse(fs.readFileSync(path.join(CLIENT, 'package.json'), 'utf8'));
  assert.equal(client.name, 'wx-login-client');
  assert.match(client.version, /^\d+\.\d+\.\d+$/);
  assert.ok(client.license);
  assert.equal(path.resolve(CLIENT, client.miniprogram), CLIENT_FILES);
  assert.equal(path.resolve(CLIENT, client.main), path.join(CLIENT_FILES, 'index.js'), 'main is the index.js DevTools makes the entry');
  assert.ok(fs.existsSync(path.resolve(CLIENT, client.types)), client.types);
  assert.deepEqual(client.files, [client.miniprogram]);
  assert.deepEqual(json('package.json').dependencies, { 'wx-login-client': 'file:../packages/wx-login-client' });
  assert.ok(fs.existsSync(path.join(PACKAGE_ROOT, 'package-lock.json')), 'a lock file for npm ci');
});

test('hand-written JS: a comment first, CommonJS requiring files or the dependencies, nothing the runtime lacks', () => {
  const dependencies = Object.keys(json('package.json').dependencies);
  const files = [...sources(PACKAGE_ROOT), ...sources(CLIENT_FILES)];
  assert.ok(files.length >= 6);
  for (const file of files) {
    const code = fs.readFileSync(file, 'utf8');
    const name = path.relative(PACKAGE_ROOT, file);
    assert.match(code, /^\/\/ \S/, `${name} starts with a comment`);
    assert.doesNotMatch(code, /^\s*(import|export)\s/m, `${name} uses ES modules`);
    for (const [, request] of code.matchAll(/require\('([^']+)'\)/g)) {
      const ok = /^\.{1,2}\//.test(request) || (file.startsWith(PACKAGE_ROOT + path.sep) && dependencies.includes(request));
      assert.ok(ok, `${name} requires ${request}`);
    }
    const bare = code.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/\/\/.*$/gm, '').replace(/'[^'\n]*'/g, "''");
    assert.deepEqual(forbiddenIn(bare), [], `${name} names what the runtime lacks (forbidden_globals.txt)`);
  }
});
