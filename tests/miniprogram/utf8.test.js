// The UTF-8 codec the wasm glue uses instead of TextEncoder/TextDecoder (wx-login-client's lib/utf8.js)
// must agree with them byte for byte and string for string, malformed input included.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { Utf8Encoder, Utf8Decoder } = require('../../packages/wx-login-client/miniprogram_dist/lib/utf8.js');

const SAMPLES = [
  '',
  'plain ascii {"token":"abc"}',
  'é ñ ü — “quotes”',
  '登录状态 令牌',
  'emoji 🔑👍🏽 and a flag 🇨🇳',
  'lone high \ud800 and lone low \udc00 surrogates',
  'ends with a high surrogate \ud83d',
  '\u0000 nul and \u007f del and \u0080 and \u07ff and \u0800 and \uffff',
];

test('encode matches TextEncoder', () => {
  const native = new TextEncoder();
  for (const s of SAMPLES) assert.deepEqual(new Utf8Encoder().encode(s), native.encode(s), JSON.stringify(s));
});

test('encodeInto matches TextEncoder when the view is too small', () => {
  const native = new TextEncoder();
  for (const s of SAMPLES) {
    for (let size = 0; size <= 12; size++) {
      const mine = new Uint8Array(size);
      const theirs = new Uint8Array(size);
      assert.deepEqual(new Utf8Encoder().encodeInto(s, mine), native.encodeInto(s, theirs), `${JSON.stringify(s)} into ${size}`);
      assert.deepEqual(mine, theirs);
    }
  }
});

test('decode matches TextDecoder on valid and random bytes', () => {
  const native = new TextDecoder('utf-8', { ignoreBOM: true });
  const mine = new Utf8Decoder('utf-8', { ignoreBOM: true });
  assert.equal(mine.decode(), '');
  for (const s of SAMPLES) {
    const bytes = new TextEncoder().encode(s);
    assert.equal(mine.decode(bytes), native.decode(bytes));
  }
  assert.equal(mine.decode(new Uint8Array([0xef, 0xbb, 0xbf, 0x41])), '\ufeffA', 'BOM kept');
  // Malformed input: truncated, overlong, surrogates, beyond U+10FFFF, stray continuations.
  let seed = 42;
  const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 256;
  for (let round = 0; round < 2000; round++) {
    const bytes = Uint8Array.from({ length: 1 + (round % 17) }, random);
    assert.equal(mine.decode(bytes), native.decode(bytes), Array.from(bytes).join(','));
  }
});

test('long strings round-trip', () => {
  const long = '登录🔑x'.repeat(5000);
  assert.equal(new Utf8Decoder().decode(new Utf8Encoder().encode(long)), long);
});
