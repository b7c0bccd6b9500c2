// Apache's mod_auth_openidc, an OpenID Connect relying party we did not write, logs a person in
// through our server by the mini-program code. Apache knows nothing of the server but its
// discovery URL and the client's id and secret; it protects /protected/, which it proxies to a
// small backend of this test. Headless Chromium opens the protected page, Apache sends it to our
// login page, the demo mini-program in the strict mini-program runtime scans the code the page
// shows (read by a real QR decoder, zbarimg) and confirms, and Chromium ends on the protected
// page. The backend receives the person's account from Apache: OIDC_CLAIM_sub is the user_id
// the mini-program itself is logged in as (its own GET /me).
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { startServer, openBrowser, freePort, ARTIFACTS } = require('./support.js');
const { decodeShownCode, ticketOf, phone, scanned, phoneAccount } = require('./scan.js');
const { PACKAGE_ROOT } = require('../miniprogram/runtime.js');

const APACHE = '/usr/sbin/apache2';
const MODULES = '/usr/lib/apache2/modules';
const CLIENT_ID = 'apache';
const CLIENT_NAME = 'The Apache-protected app';
const SECRET = 'apache-client-secret-0123456789';
// The modules of the config below: the event MPM, authentication and authorization, the
// relying party, and the proxy to the backend.
const APACHE_MODULES = {
  mpm_event_module: 'mod_mpm_event.so',
  authn_core_module: 'mod_authn_core.so',
  authz_core_module: 'mod_authz_core.so',
  authz_user_module: 'mod_authz_user.so',
  auth_openidc_module: 'mod_auth_openidc.so',
  proxy_module: 'mod_proxy.so',
  proxy_http_module: 'mod_proxy_http.so',
};

let dir;
let server;
let backend;
let apache;

/** Apache and the relying party module, or a clear failure naming the Debian packages. */
function apacheInstalled() {
  const missing = [APACHE, ...Object.values(APACHE_MODULES).map((m) => path.join(MODULES, m))].filter(
    (f) => !fs.existsSync(f),
  );
  if (missing.length) {
    throw new Error(
      `missing ${missing.join(', ')}: install Debian's apache2 and libapache2-mod-auth-openidc ` +
        '(`apt-get install -y apache2 libapache2-mod-auth-openidc`; `cargo xtask test browser` does)',
    );
  }
}

/**
 * The application behind Apache: records the path and headers of every request it receives
 * and answers a page naming the account in OIDC_CLAIM_sub.
 */
async function startBackend() {
  const requests = [];
  const app = http.createServer((req, res) => {
    requests.push({ url: req.url, headers: req.headers });
    const sub = String(req.headers.oidc_claim_sub || '');
    const safe = sub.replace(/[^A-Za-z0-9_-]/g, '?');
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(`<!doctype html><title>Protected</title><p id=protected>The protected page of <span id=sub>${safe}</span></p>`);
  });
  await new Promise((resolve, reject) => {
    app.once('error', reject);
    app.listen(0, '127.0.0.1', resolve);
  });
  return {
    port: app.address().port,
    requests,
    stop: () => new Promise((resolve) => app.close(resolve)),
  };
}

/** Apache's config: mod_auth_openidc from discovery alone, in front of the backend. */
function apacheConfig({ port, issuer, backendPort }) {
  const load = Object.entries(APACHE_MODULES)
    .map(([name, file]) => `LoadModule ${name} ${path.join(MODULES, file)}`)
    .join('\n');
  return `ServerRoot "${dir}"
ServerName 127.0.0.1
Listen 127.0.0.1:${port}
PidFile "${dir}/apache2.pid"
DefaultRuntimeDir "${dir}/run"
Mutex file:${dir}/run default
ErrorLog "${dir}/error.log"
LogLevel warn auth_openidc:info
User www-data
Group www-data
${load}

OIDCProviderMetadataURL ${issuer}/.well-known/openid-configuration
OIDCClientID ${CLIENT_ID}
OIDCClientSecret ${SECRET}
OIDCRedirectURI http://127.0.0.1:${port}/protected/redirect_uri
OIDCCryptoPassphrase crypto-passphrase-of-this-test-0123456789
OIDCScope "openid profile"
OIDCPKCEMethod S256

<Location /protected/>
    AuthType openid-connect
    Require valid-user
    ProxyPass http://127.0.0.1:${backendPort}/protected/
</Location>
`;
}

/** The error log Apache wrote so far, for failure messages. */
function errorLog() {
  try {
    return fs.readFileSync(path.join(dir, 'error.log'), 'utf8');
  } catch (e) {
    return `(no error log: ${e.code})`;
  }
}

/**
 * Apache in the foreground on `port`, answering HTTP. Fails with its output and error log
 * when it exits or does not answer within 10 s.
 */
async function startApache(config, port) {
  const conf = path.join(dir, 'apache2.conf');
  fs.writeFileSync(conf, config);
  fs.mkdirSync(path.join(dir, 'run'));
  // Apache started as root serves as www-data: let it reach its files.
  fs.chmodSync(dir, 0o755);
  fs.chownSync(path.join(dir, 'run'), 33, 33);

  const child = spawn(APACHE, ['-f', conf, '-DFOREGROUND'], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(signal || code)));
  process.on('exit', () => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'));
  const failed = (why) => new Error(`Apache ${why}:\n${output}\n--- error log ---\n${errorLog()}`);

  const deadline = Date.now() + 10000;
  let gone = null;
  exited.then((how) => (gone = how));
  for (;;) {
    if (gone !== null) throw failed(`exited (${gone})`);
    try {
      const answer = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(1000) });
      await answer.arrayBuffer();
      break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw failed('did not answer within 10 s');
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    base: `http://127.0.0.1:${port}`,
    output: () => output,
    /** SIGTERM and wait for the exit; its whole process group is killed if it takes over 10 s. */
    async stop() {
      if (gone !== null) return;
      child.kill('SIGTERM');
      let timer;
      const done = await Promise.race([
        exited.then(() => true),
        new Promise((resolve) => (timer = setTimeout(resolve, 10000, false))),
      ]).finally(() => clearTimeout(timer));
      if (!done) {
        process.kill(-child.pid, 'SIGKILL');
        await exited;
      }
    },
  };
}

test.before(async () => {
  apacheInstalled();
  const npm = path.join(PACKAGE_ROOT, 'miniprogram_npm/wx-login-client');
  if (!fs.existsSync(npm)) {
    throw new Error(`the mini-program's npm package is missing at ${npm}: build it with \`cargo xtask test wasm\``);
  }
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oidc-apache-'));
  const apachePort = await freePort();
  const clients = path.join(dir, 'clients.toml');
  fs.writeFileSync(
    clients,
    `[[oidc.clients]]
client_id = "${CLIENT_ID}"
name = "${CLIENT_NAME}"
client_secret = "${SECRET}"
redirect_uris = ["http://127.0.0.1:${apachePort}/protected/redirect_uri"]
`,
  );
  // The issuer is the server's own address, so its port is chosen before it starts.
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  server = await startServer({ port, env: { OIDC_ISSUER: issuer, CONFIG_FILE: clients } });
  backend = await startBackend();
  apache = await startApache(apacheConfig({ port: apachePort, issuer, backendPort: backend.port }), apachePort);
});
test.after(async () => {
  if (apache) await apache.stop();
  if (backend) await backend.stop();
  if (server) await server.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('Apache mod_auth_openidc, configured by discovery alone, logs Chromium in by the mini-program code and passes the account to its backend', async (t) => {
  const b = await openBrowser();
  t.after(async () => {
    await b.close();
    // The login page's first GET /me answers 401 before a login, which Chromium logs as
    // "Failed to load resource"; anything else is a bug in a page.
    const unexpected = b.errors.filter((e) => !e.includes('Failed to load resource'));
    assert.deepEqual(unexpected, [], 'the pages reported errors');
  });
  const { page } = b;
  const protectedUrl = `${apache.base}/protected/hello?from=test`;

  // Apache sends the browser to our login page, which names the client of the config file.
  await page.goto(protectedUrl);
  const onLogin = new URL(page.url());
  assert.equal(`${onLogin.origin}${onLogin.pathname}`, `${server.base}/oauth/authorize`, 'Apache sent the browser to our authorization endpoint');
  assert.equal(onLogin.searchParams.get('client_id'), CLIENT_ID);
  assert.equal(onLogin.searchParams.get('redirect_uri'), `${apache.base}/protected/redirect_uri`);
  assert.equal(onLogin.searchParams.get('code_challenge_method'), 'S256');
  assert.equal((await page.textContent('#client')).trim(), CLIENT_NAME);
  await page.waitForSelector('#status[data-status="pending"]', { timeout: 10000 });
  assert.equal(backend.requests.length, 0, 'the backend saw nothing before the login');

  // The phone scans the code the page shows and confirms.
  const id = ticketOf(await decodeShownCode(page, '#code', 'oidc-apache-code'));
  const rt = await scanned(phone(t, server), id);
  const userId = await phoneAccount(server, rt);
  rt.tap('onConfirm');

  // The login page goes back to the authorization request, which sends the browser to
  // Apache's redirect URI; Apache redeems the code and sends it on to the protected page.
  await page.waitForSelector('#protected', { timeout: 15000 }).catch((e) => {
    throw new Error(`${e.message}\nthe browser is at ${page.url()}\n--- Apache's error log ---\n${errorLog()}`);
  });
  assert.equal(page.url(), protectedUrl, 'the browser ends on the protected page on Apache');
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'oidc-apache-protected.png'), fullPage: true });

  assert.ok(backend.requests.length >= 1, 'the backend answered the protected page');
  for (const { url, headers } of backend.requests) {
    assert.equal(headers.oidc_claim_sub, userId, `${url}: OIDC_CLAIM_sub is the mini-program account's user_id`);
  }
  const last = backend.requests.at(-1);
  assert.equal(last.url, '/protected/hello?from=test');
  assert.match(last.headers.oidc_claim_preferred_username || '', /\S/, 'OIDC_CLAIM_preferred_username is passed');
  assert.equal((await page.textContent('#sub')).trim(), userId);
});
