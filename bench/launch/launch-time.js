// Times the mini-program's start in the strict runtime of the tests (tests/miniprogram/
// runtime.js: the real app.js and page, the real WASM module read from the package through
// WXWebAssembly, wx.request and wx.login over real loopback HTTP), against the release server
// started as the tests start it (tests/js/dev-server.js, SERVER_BIN, memory store, dev-mode
// simulator). Run by `cargo xtask bench` (bench/src/launch.rs); prints one line,
// `BENCH {"cold_ms": [...], "warm_ready_ms": [...], "warm_verified_ms": [...]}`.
//
// Each launch is a fresh runtime, as a cold start of the app is: app.js and the glue run
// again and the module is decompressed and compiled again. The clock starts before
// `launch()` (which runs App.onLaunch) and stops when `ensureLogin()` resolves:
// - cold: no stored token, so wx.login and POST /login;
// - warm: the token a previous launch stored, usable at once; `verified` also waits for the
//   background GET /checklogin that confirms it.
// The first launch of each kind is not counted: it is where Node compiles the runtime's and the
// glue's own code, which a phone's mini-program host has done long before.
'use strict';

const { performance } = require('node:perf_hooks');
const { Runtime, Device } = require('../../tests/miniprogram/runtime.js');
const { startServer } = require('../../tests/js/dev-server.js');
const shipped = require('../../miniprogram/config.js');

const LAUNCHES = Number(process.argv[2] || 25);

/** Launches the app on `device`; resolves with { ms, verifiedMs, token } and closes it. */
async function timedLaunch(server, device) {
  const modules = { '/config.js': { ...shipped, baseUrl: server.base } };
  const start = performance.now();
  const rt = new Runtime({ device, simBase: server.base, modules }).launch();
  const app = rt.app;
  let verifiedAt;
  const verified = new Promise((resolve) => {
    const check = () => {
      if (app.globalData.login.verified && verifiedAt === undefined) {
        verifiedAt = performance.now();
        resolve();
      }
    };
    app.onLoginChange(check);
    check();
  });
  const token = await app.ensureLogin();
  const ms = performance.now() - start;
  await verified;
  const verifiedMs = verifiedAt - start;
  rt.close();
  rt.assertHealthy();
  if (typeof token !== 'string' || token.length === 0) throw new Error('no token');
  return { ms, verifiedMs, token };
}

async function main() {
  // One client logging in again and again: the per-IP login limit is not what is measured.
  const server = await startServer({ env: { LOGIN_RATE_PER_MINUTE: '0', UPSTREAM_RATE_PER_SECOND: '0' } });
  try {
    const cold = [];
    const warmReady = [];
    const warmVerified = [];
    const stored = new Device();
    const first = await timedLaunch(server, stored); // not counted; leaves a token stored
    for (let i = 0; i < LAUNCHES; i++) cold.push((await timedLaunch(server, new Device())).ms);
    await timedLaunch(server, stored); // not counted
    for (let i = 0; i < LAUNCHES; i++) {
      const warm = await timedLaunch(server, stored);
      if (warm.token !== first.token) throw new Error('a warm launch logged in again instead of using its stored token');
      warmReady.push(warm.ms);
      warmVerified.push(warm.verifiedMs);
    }
    process.stdout.write(`BENCH ${JSON.stringify({ cold_ms: cold, warm_ready_ms: warmReady, warm_verified_ms: warmVerified })}\n`);
  } finally {
    await server.stop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
