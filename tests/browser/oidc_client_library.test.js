// The OpenID Connect provider as a certified client library sees it: Node's openid-client runs
// discovery, the authorization code flow with PKCE, the token exchange and its own ID-token
// validation (signature by the published keys, iss, aud, nonce, exp), then userinfo, against
// the real server in dev mode. The person's part is real too: the demo mini-program in the
// strict mini-program runtime scans and confirms the web-login ticket whose session the
// authorization request carries.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startServer, freePort } = require('./support.js');
const { phone, scanned, phoneAccount } = require('./scan.js');
const { waitFor } = require('../miniprogram/runtime.js');

const SECRET = 'node-app-client-secret-0123456789';
// Never contacted: the test reads the code from the redirect's Location.
const CALLBACK = 'http://127.0.0.1:9/node-app/callback';
const SPA_CALLBACK = 'http://127.0.0.1:9/spa/callback';
const SPA_BYE = 'http://127.0.0.1:9/spa/bye';
const SESSION_COOKIE = '__Host-wxlogin';

let server;
let dir;
let client;
test.before(async () => {
  client = await import('openid-client');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oidc-client-library-'));
  const clients = path.join(dir, 'clients.toml');
  fs.writeFileSync(
    clients,
    `[[oidc.clients]]
client_id = "node-app"
name = "The Node app"
client_secret = "${SECRET}"
redirect_uris = ["${CALLBACK}"]

[[oidc.clients]]
client_id = "node-spa"
name = "The single-page app"
redirect_uris = ["${SPA_CALLBACK}"]
post_logout_redirect_uris = ["${SPA_BYE}"]
`,
  );
  // The issuer is the server's own address, so its port is chosen before it starts.
  const port = await freePort();
  server = await startServer({
    port,
    env: {
      OIDC_ISSUER: `http://127.0.0.1:${port}`,
      CONFIG_FILE: clients,
      WEB_LOGIN_RATE_PER_MINUTE: '600',
      WEB_LOGIN_RATE_BURST: '100',
    },
  });
});
test.after(async () => {
  if (server) await server.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** The provider as openid-client learns it from discovery alone, for `clientId` authenticating by `auth`. */
async function discovered(clientId, secret, auth) {
  const config = await client.discovery(new URL(server.base), clientId, secret, auth, {
    // Loopback over http: the library refuses it without this.
    execute: [client.allowInsecureRequests],
  });
  // Verify the ID token's signature with the published keys, not only its claims.
  client.enableNonRepudiationChecks(config);
  return config;
}

/** The value of cookie `name` in a response's Set-Cookie headers, or undefined. */
function setCookie(response, name) {
  for (const line of response.headers.getSetCookie()) {
    const [pair] = line.split(';');
    const at = pair.indexOf('=');
    if (pair.slice(0, at) === name) return pair.slice(at + 1);
  }
  return undefined;
}

/**
 * A browser's web session, made as the web login makes it: a ticket, scanned and confirmed
 * in the mini-program, then completed with the ticket's cookie. Resolves with the session
 * cookie's header value and the account the mini-program is logged in as.
 */
async function webSession(t) {
  const created = await fetch(`${server.base}/web-login`, {
    method: 'POST',
    headers: { 'sec-fetch-site': 'same-origin' },
  });
  assert.equal(created.status, 201, await created.clone().text());
  const { id } = await created.json();
  const ticketCookie = `__Host-wxlogin-ticket-${id}`;
  const ticket = `${ticketCookie}=${setCookie(created, ticketCookie)}`;

  const rt = await scanned(phone(t, server), id);
  rt.tap('onConfirm');
  await waitFor('the ticket confirmed', async () => {
    const status = await fetch(`${server.base}/web-login/${id}`, { headers: { cookie: ticket } });
    return (await status.json()).status === 'confirmed';
  });
  const completed = await fetch(`${server.base}/web-login/${id}/complete`, {
    method: 'POST',
    headers: { cookie: ticket, 'sec-fetch-site': 'same-origin' },
  });
  assert.equal(completed.status, 204, await completed.text());
  const session = setCookie(completed, SESSION_COOKIE);
  assert.ok(session, 'complete sets the session cookie');
  return { cookie: `${SESSION_COOKIE}=${session}`, userId: await phoneAccount(server, rt) };
}

/** The browser following the authorization URL: the redirect back to the client, as a URL. */
async function authorize(url, session) {
  const answer = await fetch(url, { headers: { cookie: session.cookie }, redirect: 'manual' });
  assert.equal(answer.status, 303, await answer.text());
  return new URL(answer.headers.get('location'));
}

/** A fresh PKCE pair, state and nonce, as the library makes them. */
async function secrets() {
  const verifier = client.randomPKCECodeVerifier();
  return {
    verifier,
    challenge: await client.calculatePKCECodeChallenge(verifier),
    state: client.randomState(),
    nonce: client.randomNonce(),
  };
}

test('openid-client: discovery, code with PKCE, a validated ID token and userinfo for the mini-program account', async (t) => {
  const config = await discovered('node-app', SECRET, client.ClientSecretBasic(SECRET));
  const meta = config.serverMetadata();
  assert.equal(meta.issuer, server.base);
  assert.deepEqual(meta.code_challenge_methods_supported, ['S256']);

  const session = await webSession(t);
  const s = await secrets();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: CALLBACK,
    scope: 'openid profile',
    code_challenge: s.challenge,
    code_challenge_method: 'S256',
    state: s.state,
    nonce: s.nonce,
  });
  const back = await authorize(url, session);
  assert.equal(`${back.origin}${back.pathname}`, CALLBACK);

  const tokens = await client.authorizationCodeGrant(config, back, {
    pkceCodeVerifier: s.verifier,
    expectedState: s.state,
    expectedNonce: s.nonce,
    idTokenExpected: true,
  });
  assert.equal(tokens.token_type.toLowerCase(), 'bearer');
  const claims = tokens.claims();
  assert.equal(claims.sub, session.userId, "sub is the mini-program account's user_id");
  assert.equal(claims.iss, server.base);
  assert.equal(claims.aud, 'node-app');
  assert.equal(claims.nonce, s.nonce);
  assert.ok(claims.exp > Date.now() / 1000, 'not expired');
  assert.match(claims.preferred_username, /^wx-[0-9a-f]+$/);

  // The ID token is signed by a published key, named by its kid.
  const [header] = tokens.id_token.split('.');
  const { alg, kid } = JSON.parse(Buffer.from(header, 'base64url'));
  assert.equal(alg, 'RS256');
  const jwks = await (await fetch(meta.jwks_uri)).json();
  assert.ok(jwks.keys.some((k) => k.kid === kid), `kid ${kid} is in the JWKS`);

  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  assert.equal(userinfo.sub, session.userId);
  assert.equal(userinfo.preferred_username, claims.preferred_username);
});

test('openid-client refuses a code whose ID token carries another nonce, and a state that differs', async (t) => {
  const config = await discovered('node-app', SECRET, client.ClientSecretPost(SECRET));
  const session = await webSession(t);
  const s = await secrets();
  const request = {
    redirect_uri: CALLBACK,
    scope: 'openid',
    code_challenge: s.challenge,
    code_challenge_method: 'S256',
    state: s.state,
    nonce: s.nonce,
  };
  const back = await authorize(client.buildAuthorizationUrl(config, request), session);
  await assert.rejects(
    client.authorizationCodeGrant(config, back, {
      pkceCodeVerifier: s.verifier,
      expectedState: s.state,
      expectedNonce: client.randomNonce(),
    }),
    (e) => /nonce/i.test(e.cause?.message ?? e.message),
    'the nonce the provider bound to the code reaches the ID token',
  );
  const again = await authorize(client.buildAuthorizationUrl(config, request), session);
  await assert.rejects(
    client.authorizationCodeGrant(config, again, {
      pkceCodeVerifier: s.verifier,
      expectedState: client.randomState(),
      expectedNonce: s.nonce,
    }),
    (e) => /state/i.test(e.cause?.message ?? e.message),
    'the provider gives state back unchanged',
  );
});

test('openid-client as a public client: PKCE and no secret, then the end-session URL it builds ends the web session and goes back', async (t) => {
  const config = await discovered('node-spa', undefined, client.None());
  const session = await webSession(t);
  const s = await secrets();
  const back = await authorize(
    client.buildAuthorizationUrl(config, {
      redirect_uri: SPA_CALLBACK,
      scope: 'openid',
      code_challenge: s.challenge,
      code_challenge_method: 'S256',
      state: s.state,
      nonce: s.nonce,
    }),
    session,
  );
  const tokens = await client.authorizationCodeGrant(config, back, {
    pkceCodeVerifier: s.verifier,
    expectedState: s.state,
    expectedNonce: s.nonce,
    idTokenExpected: true,
  });
  assert.equal(tokens.claims().sub, session.userId);

  const me = async () => (await fetch(`${server.base}/me`, { headers: { cookie: session.cookie } })).status;
  assert.equal(await me(), 200, 'the web session is live');
  const logout = client.buildEndSessionUrl(config, {
    id_token_hint: tokens.id_token,
    post_logout_redirect_uri: SPA_BYE,
    state: 'bye-state',
  });
  const ended = await fetch(logout, { headers: { cookie: session.cookie }, redirect: 'manual' });
  assert.equal(ended.status, 303, await ended.text());
  const bye = new URL(ended.headers.get('location'));
  assert.equal(`${bye.origin}${bye.pathname}`, SPA_BYE);
  assert.equal(bye.searchParams.get('state'), 'bye-state');
  assert.equal(await me(), 401, 'end_session ended the web session');
});
