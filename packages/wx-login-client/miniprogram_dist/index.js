// wx-login-client: what a mini-program gets when it requires this package by name. Ties the
// generated WebAssembly module (wasm/, written by `cargo xtask build`) to the host adapter
// (lib/host.js), so an app only passes its settings to createSession.
'use strict';

const host = require('./lib/host.js');

// A copy of the package without the generated module (a checkout that was never built) still
// lets the app start; the session then fails with `wasm_unavailable` and says why.
let wasm = null;
let loadError = null;
try {
  wasm = require('./wasm/client.js');
} catch (error) {
  loadError = error;
}

/**
 * Starts a login session with this package's module; `options` as lib/host.js describes.
 * @param {import('./index').SessionOptions} options
 * @returns {import('./index').Session}
 */
function createSession(options) {
  return host.createSession(Object.assign({ wasm: wasm, loadError: loadError }, options));
}

module.exports = { createSession: createSession };
