// Checks of what `cargo xtask build` ships in the wx-login-client package's wasm/, as
// miniprogram-ci copied it into the demo's miniprogram_npm/: the glue names nothing the
// mini-program runtime lacks, loads through WXWebAssembly from a package path, and the module
// fits the size budget and works (in the strict runtime, brotli and UTF-8 included).
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const zlib = require('node:zlib');
const { Runtime, PACKAGE_ROOT } = require('./runtime.js');
const { forbiddenIn } = require('./forbidden.js');

const WASM_DIR = path.join(PACKAGE_ROOT, 'miniprogram_npm/wx-login-client/wasm');
// Where the app's code package has the module once npm is built (absolute from its root).
const WASM_PATH = '/miniprogram_npm/wx-login-client/wasm/client_bg.wasm.br';
const read = (name) => fs.readFileSync(path.join(WASM_DIR, name), 'utf8');
const BUDGET = 64 * 1024;

/** `code` without comments, so that the checks look at code only. */
function codeOnly(code) {
  return code.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/(^|[^:'"])\/\/.*$/gm, '$1');
}

test('the build produced the CommonJS glue, its declarations and the brotli module only', () => {
  assert.deepEqual(fs.readdirSync(WASM_DIR).sort(), ['client.d.ts', 'client.js', 'client_bg.wasm.br']);
});

test('the glue names nothing the mini-program runtime lacks', () => {
  const code = codeOnly(read('client.js'));
  // The list the build checks the glue against too (forbidden_globals.txt).
  assert.deepEqual(forbiddenIn(code), [], 'the glue names what the runtime lacks');
  assert.doesNotMatch(code, /^\s*(import|export)\s/m, 'ES module syntax');
});

test('the glue is CommonJS and loads the module with WXWebAssembly from the package', () => {
  const code = read('client.js');
  assert.match(code, /^\/\/ /, 'starts with a comment saying what it is');
  assert.match(code, /WXWebAssembly\.instantiate\(path \|\| WASM_PATH, __wbg_get_imports\(\)\)/);
  assert.match(code, new RegExp(`const WASM_PATH = '${WASM_PATH}';`));
  assert.ok(fs.existsSync(path.join(PACKAGE_ROOT, WASM_PATH)), 'the path is a file of the code package');
  assert.match(code, /module\.exports = \{ Client, init, WASM_PATH \};/);
  assert.match(code, /require\('\.\.\/lib\/utf8\.js'\)/);
  for (const [, request] of code.matchAll(/require\('([^']+)'\)/g)) {
    assert.ok(fs.existsSync(path.resolve(WASM_DIR, request)), `${request} exists in the package`);
  }
});

test('the declarations describe the CommonJS API', () => {
  const dts = read('client.d.ts');
  assert.match(dts, /export class Client/);
  assert.match(dts, /handle\(event_json: string\): string;/);
  assert.match(dts, /export function init\(path\?: string\): Promise<InitOutput>;/);
  assert.doesNotMatch(dts, /initSync|InitInput|__wbg_init/);
  assert.doesNotMatch(dts, /(^|[^\w$])WebAssembly\./m, 'the runtime has no WebAssembly namespace');
  // A plain ES2017 `lib` has no Symbol.dispose (TS2550); `free()` is the way to release.
  assert.doesNotMatch(dts, /Symbol\.dispose/);
  assert.match(dts, /free\(\): void;/);
});

test('the shipped module fits the budget, compressed and raw', () => {
  const shipped = fs.readFileSync(path.join(WASM_DIR, 'client_bg.wasm.br'));
  const raw = zlib.brotliDecompressSync(shipped);
  assert.ok(shipped.length <= BUDGET, `shipped ${shipped.length} bytes`);
  assert.ok(raw.length <= BUDGET, `raw ${raw.length} bytes`);
  assert.ok(WebAssembly.validate(raw), 'a valid module');
  // Metadata is stripped from what ships (wasm-opt --strip-target-features and friends).
  const module = new WebAssembly.Module(raw);
  assert.deepEqual(WebAssembly.Module.customSections(module, 'target_features'), []);
});

test('the module runs in the strict runtime: .wasm.br decompressed, strings through the own UTF-8 codec', async (t) => {
  const rt = new Runtime({ simBase: 'http://127.0.0.1:9' });
  rt.context = rt.createContext();
  rt.open = true;
  t.after(() => rt.close());
  assert.equal(rt.evaluate('typeof TextEncoder + typeof TextDecoder + typeof WebAssembly'), 'undefinedundefinedundefined');

  const wasm = rt.requireFrom(PACKAGE_ROOT, 'wx-login-client/wasm/client.js');
  const [a, b] = [wasm.init(), wasm.init()];
  await Promise.all([a, b]);
  assert.equal(rt.count('WXWebAssembly.instantiate'), 1, 'init loads once');

  // A storage key outside ASCII crosses JS → wasm (encoder) and back (decoder).
  const key = '令牌-🔑-é';
  const client = new wasm.Client(JSON.stringify({ storage_key: key }));
  const effects = JSON.parse(client.handle(JSON.stringify({ type: 'launched', now_ms: Date.now() })));
  assert.deepEqual(JSON.parse(JSON.stringify(effects[0])), { type: 'read_storage', key });
  assert.equal(client.state(), 'reading-storage');
  assert.throws(() => client.handle('{"type":"no such event"}'), (e) => typeof e === 'string' && e.length > 0);
  assert.throws(() => new wasm.Client('{"max_attemps":1}'), (e) => typeof e === 'string' && /max_attemps/.test(e));
});
