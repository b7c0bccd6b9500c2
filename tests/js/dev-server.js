// Starts the real login server (target/debug/server, built by `cargo xtask test`) for the
// JavaScript test suites (the mini-program runtime and the browser tests): dev mode, so its
// WeChat simulator answers code2Session; memory store; on a free loopback port or one the
// test chooses, so a test can stop it and start it again on the same address.
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '../..');
const SERVER_BIN = process.env.SERVER_BIN || path.join(ROOT, 'target/debug/server');
const HARNESS_DIR = process.env.HARNESS_DIR || path.join(ROOT, 'client-wasm/harness/dist');

// Every server still running when the test process exits is killed, even after a failed test
// whose clean-up did not run; the handles are unref'd so they cannot keep the process alive.
const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** A port nothing listens on right now (bound, read, released). */
function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/**
 * The port in the server's "listening" log line, in either log format (`addr=127.0.0.1:PORT`
 * in text, `"addr":"127.0.0.1:PORT"` in JSON), or null while `output` has no such line. Only
 * whole lines count, so a port cut in two by a read is never taken for a shorter one. Every
 * JavaScript suite learns the server's address here, as the Rust ones do in dev-support.
 */
function listeningPort(output) {
  const whole = output.slice(0, output.lastIndexOf('\n') + 1);
  for (const line of whole.split('\n')) {
    if (!line.includes('listening')) continue;
    const said = /\baddr=127\.0\.0\.1:(\d+)\b|"addr":\s*"127\.0\.0\.1:(\d+)"/.exec(line);
    if (said) return Number(said[1] || said[2]);
  }
  return null;
}

/**
 * Starts a server and waits until /healthz answers. `env` adds variables (e.g.
 * WECHAT_BUSY_RETRIES); `harness` makes it serve the built browser harness. Resolves with
 * { port, base, api(method, path, body?, token?), stats(), output(), stop() }.
 */
async function startServer({ port, env = {}, harness = false } = {}) {
  const needed = [['server binary', SERVER_BIN, 'cargo build -p server']];
  if (harness) needed.push(['harness', path.join(HARNESS_DIR, 'index.html'), 'cargo xtask build']);
  for (const [what, file, hint] of needed) {
    if (!fs.existsSync(file)) throw new Error(`${what} missing at ${file}: build it with \`${hint}\``);
  }
  // Without a port asked for, the server binds port 0 itself and its log says which: no port
  // is guessed, so none can be taken in between.
  const childEnv = {
    ...process.env,
    LISTEN_ADDR: `127.0.0.1:${port || 0}`,
    SESSION_STORE: 'memory',
    HARNESS_DIR,
    RUST_LOG: process.env.RUST_LOG || 'warn,server::cli=info',
    NO_COLOR: '1',
    ...env,
  };
  delete childEnv.WECHAT_APPID; // dev mode: logins go to the built-in simulator
  delete childEnv.WECHAT_SECRET;
  const child = spawn(SERVER_BIN, [], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.unref();
  let output = '';
  let announce;
  const announced = new Promise((resolve) => (announce = resolve));
  for (const stream of [child.stdout, child.stderr]) {
    stream.on('data', (d) => {
      output += d;
      const said = listeningPort(output);
      if (said !== null) announce(said);
    });
    stream.unref();
  }
  const exited = new Promise((resolve) => child.once('exit', resolve));
  exited.then(() => running.delete(child));
  let giveUp;
  const bound = await Promise.race([
    announced,
    exited.then((code) => {
      throw new Error(`server exited with ${code}:\n${output}`);
    }),
    new Promise((resolve) => {
      giveUp = setTimeout(resolve, 15000, null);
    }),
  ]).finally(() => clearTimeout(giveUp));
  if (bound === null) {
    child.kill('SIGKILL');
    throw new Error(`server did not say where it listens within 15 s:\n${output}`);
  }
  port = bound;
  const base = `http://127.0.0.1:${port}`;

  const api = async (method, pathname, body, token) => {
    const headers = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await fetch(base + pathname, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, body: json, text };
  };

  const deadline = Date.now() + 15000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}:\n${output}`);
    try {
      if ((await api('GET', '/healthz')).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`server did not become healthy on ${base}:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  return {
    port,
    base,
    api,
    output: () => output,
    /** The simulator's counters: { code2session_calls, codes_issued }. */
    async stats() {
      return (await api('GET', '/sim/stats')).body;
    },
    /** Stops the server and waits until the port is free again. */
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}

module.exports = { startServer, freePort, listeningPort };
