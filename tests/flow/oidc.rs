//! The OpenID Connect provider over real HTTP: discovery and keys, the authorization endpoint
//! with and without a web session, the code exchange for each kind of client, the ID token as
//! a relying party checks it, userinfo, and every refusal the spec asks for.

use std::collections::HashMap;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use reqwest::{Method, redirect::Policy};
use serde_json::Value;
use shared::{MeResponse, SessionsResponse};
use workspace_tests::{ScratchDir, TestServer, temp_dir, web_browser::WebBrowser};

const ISSUER: &str = "http://login.test.example";
const SECRET: &str = "grafana-client-secret-0123456789";
const RP_CALLBACK: &str = "https://rp.example/callback";
const SPA_CALLBACK: &str = "http://127.0.0.1:9/spa/callback";
/// RFC 7636, appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

struct Provider {
    server: TestServer,
    /// A client that follows no redirect: the test reads each `Location` itself.
    http: reqwest::Client,
    _dir: ScratchDir,
}

fn clients_file(dir: &ScratchDir) -> std::path::PathBuf {
    let path = dir.join("clients.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[[oidc.clients]]
client_id = "grafana"
name = "Grafana"
client_secret = "{SECRET}"
redirect_uris = ["{RP_CALLBACK}"]
post_logout_redirect_uris = ["https://rp.example/bye"]

[[oidc.clients]]
client_id = "spa"
name = "The single-page app"
redirect_uris = ["{SPA_CALLBACK}"]
"#
        ),
    )
    .unwrap();
    path
}

impl Provider {
    async fn start(extra: &[&str]) -> Self {
        let dir = temp_dir("oidc");
        let file = clients_file(&dir);
        let mut args = vec![
            "--login-rate-per-minute",
            "0",
            "--config",
            file.to_str().unwrap(),
            "--oidc-issuer",
            ISSUER,
        ];
        args.extend_from_slice(extra);
        let server = TestServer::start(&args).await;
        let http = reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .unwrap();
        Self {
            server,
            http,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// A browser logged in by web login as the simulator's `user`; with the mini-program's
    /// token.
    async fn browser(&self, user: &str) -> (WebBrowser, String) {
        let browser = WebBrowser::new(&self.url(""));
        let id = browser.new_ticket().await.id;
        let token = self.server.login_as(user).await.token;
        for action in ["scan", "confirm"] {
            let response = self
                .server
                .http
                .post(self.url(&format!("/web-login/{id}/{action}")))
                .bearer_auth(&token)
                .json(&serde_json::json!({}))
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success());
        }
        assert_eq!(browser.complete(&id).await.status(), 204);
        (browser, token)
    }

    /// The browser's authorization request with `params`; the raw answer.
    async fn authorize(&self, browser: &WebBrowser, params: &[(&str, &str)]) -> reqwest::Response {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let mut request = self
            .http
            .get(self.url(&format!("/oauth/authorize?{query}")));
        if let Some(session) = browser.cookie("__Host-wxlogin") {
            request = request.header("cookie", format!("__Host-wxlogin={session}"));
        }
        request.send().await.unwrap()
    }

    /// `POST /oauth/token` with `form`, the client by Basic when `basic` is given.
    async fn token(&self, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> reqwest::Response {
        let mut request = self.http.post(self.url("/oauth/token")).form(form);
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        request.send().await.unwrap()
    }
}

fn grafana_request<'a>(state: &'a str, nonce: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", "grafana"),
        ("redirect_uri", RP_CALLBACK),
        ("scope", "openid profile phone"),
        ("state", state),
        ("nonce", nonce),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]
}

/// The query of a redirect's `Location`, asserting it goes to `base`.
fn redirected(response: &reqwest::Response, base: &str) -> HashMap<String, String> {
    assert_eq!(response.status(), 303, "a redirect");
    let location = response.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(base), "{location}");
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

async fn oauth_error(response: reqwest::Response, status: u16, error: &str) {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
}

/// The ID token's claims, checked as a relying party checks them: signature by the published
/// key of its `kid`, `iss`, `aud`, `exp`.
fn verified(provider: &Provider, id_token: &str, audience: &str) -> Value {
    let keys = provider.server.state.oidc.as_ref().unwrap().keys();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[ISSUER]);
    keys.verify::<Value>(id_token, &validation)
        .expect("a valid ID token")
}

#[tokio::test]
async fn discovery_names_every_endpoint_and_the_keys_verify_what_they_sign() {
    let provider = Provider::start(&[]).await;
    let doc: Value = provider
        .http
        .get(provider.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], ISSUER);
    for (field, path) in [
        ("authorization_endpoint", "/oauth/authorize"),
        ("token_endpoint", "/oauth/token"),
        ("userinfo_endpoint", "/oauth/userinfo"),
        ("jwks_uri", "/oauth/jwks"),
        ("end_session_endpoint", "/oauth/logout"),
    ] {
        assert_eq!(doc[field], format!("{ISSUER}{path}"), "{field}");
    }
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(
        doc["subject_types_supported"],
        serde_json::json!(["public"])
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post", "none"])
    );
    assert_eq!(
        doc["scopes_supported"],
        serde_json::json!(["openid", "profile", "phone"])
    );
    let jwks: Value = provider
        .http
        .get(provider.url("/oauth/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(
        (
            key["kty"].as_str(),
            key["use"].as_str(),
            key["alg"].as_str()
        ),
        (Some("RSA"), Some("sig"), Some("RS256"))
    );
    assert!(key["kid"].is_string() && key.get("d").is_none(), "{key}");
}

#[tokio::test]
async fn a_browser_with_a_web_session_gets_a_code_that_makes_tokens_for_its_account() {
    let provider = Provider::start(&[]).await;
    let (browser, mini_token) = provider.browser("oidc-alice").await;
    let me: MeResponse = provider
        .server
        .http
        .get(provider.url("/me"))
        .bearer_auth(&mini_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    // The person shares a number in the mini-program: scope phone brings it.
    let sim = provider.server.state.simulator.as_ref().unwrap();
    let shared: Value = provider
        .server
        .http
        .post(provider.url("/wx/phone"))
        .bearer_auth(&mini_token)
        .json(
            &serde_json::json!({ "code": sim.issue_phone_code("oidc-alice", Some("13800138000")) }),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let number = shared["phoneNumber"]
        .as_str()
        .expect("the number is bound")
        .to_owned();

    let answer = provider
        .authorize(&browser, &grafana_request("xyz-state", "n-0S6_WzA2Mj"))
        .await;
    let back = redirected(&answer, RP_CALLBACK);
    assert_eq!(back["state"], "xyz-state");
    assert_eq!(back["iss"], ISSUER);
    let code = back["code"].clone();

    let tokens = provider
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", RP_CALLBACK),
                ("code_verifier", VERIFIER),
            ],
            Some(("grafana", SECRET)),
        )
        .await;
    assert_eq!(tokens.status(), 200);
    assert_eq!(tokens.headers()["cache-control"], "no-store");
    let tokens: Value = tokens.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    let claims = verified(&provider, tokens["id_token"].as_str().unwrap(), "grafana");
    assert_eq!(claims["sub"], me.user_id.as_str(), "sub is the account");
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    assert!(claims["auth_time"].as_i64().unwrap() <= claims["iat"].as_i64().unwrap());
    let handle = claims["preferred_username"].as_str().unwrap();
    assert!(handle.starts_with("wx-"), "{handle}");
    let openids = &claims[format!("{ISSUER}/openids")];
    assert_eq!(
        openids[me.appid.as_deref().unwrap()],
        me.openid.as_deref().unwrap()
    );
    assert!(claims.get("openid").is_none(), "no bare openid claim");
    assert_eq!(claims["phone_number"], number.as_str());
    assert_eq!(claims["phone_number_verified"], true);

    let access = tokens["access_token"].as_str().unwrap();
    let info: Value = provider
        .http
        .get(provider.url("/oauth/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["sub"], me.user_id.as_str());
    assert_eq!(info["preferred_username"], handle);

    // The access token is for userinfo only.
    for path in ["/me", "/auth", "/me/sessions"] {
        let response = provider
            .http
            .get(provider.url(path))
            .bearer_auth(access)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{path}");
    }
    // The person sees it, named by the client, and can end it.
    let sessions: SessionsResponse = provider
        .server
        .http
        .get(provider.url("/me/sessions"))
        .bearer_auth(&mini_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let oidc = sessions
        .sessions
        .iter()
        .find(|s| s.kind == "oidc")
        .expect("listed");
    assert_eq!(oidc.device.as_deref(), Some("Grafana"));
    let ended = provider
        .server
        .http
        .delete(provider.url(&format!("/me/sessions/{}", oidc.id)))
        .bearer_auth(&mini_token)
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 204);
    let after = provider
        .http
        .get(provider.url("/oauth/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(
        after.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    oauth_error(after, 401, "invalid_token").await;
}

#[tokio::test]
async fn without_a_web_session_the_login_page_names_the_client_and_cannot_be_framed() {
    let provider = Provider::start(&[]).await;
    let stranger = WebBrowser::new(&provider.url(""));
    let page = provider
        .authorize(&stranger, &grafana_request("s", "n"))
        .await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Log in to <span id=client>Grafana</span>"),
        "{html}"
    );
    assert!(html.contains("/oauth/login.js"));
    assert!(!html.contains("<script>"), "no inline script");
    for script in ["/oauth/login.js", "/oauth/web-login.js"] {
        let js = provider
            .http
            .get(provider.url(script))
            .send()
            .await
            .unwrap();
        assert_eq!(js.status(), 200);
        assert!(
            js.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/javascript")
        );
    }
    // prompt=none without a session goes back at once.
    let mut params = grafana_request("s2", "n");
    params.push(("prompt", "none"));
    let back = provider.authorize(&stranger, &params).await;
    let back = redirected(&back, RP_CALLBACK);
    assert_eq!(back["error"], "login_required");
    assert_eq!(back["state"], "s2");
}

#[tokio::test]
async fn prompt_login_and_max_age_ask_for_a_fresh_scan() {
    let provider = Provider::start(&[]).await;
    let (browser, _) = provider.browser("oidc-fresh").await;
    for extra in [("prompt", "login"), ("max_age", "0")] {
        let mut params = grafana_request("s", "n");
        params.push(extra);
        if extra.0 == "max_age" {
            // max_age counts whole seconds: the session must be at least one old.
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        }
        let page = provider.authorize(&browser, &params).await;
        assert_eq!(page.status(), 200, "{extra:?}: the login page, not a code");
        let html = page.text().await.unwrap();
        assert!(html.contains("data-fresh=\"true\""), "{extra:?}");
    }
    let answer = provider
        .authorize(&browser, &grafana_request("s", "n"))
        .await;
    assert!(
        redirected(&answer, RP_CALLBACK).contains_key("code"),
        "without them: a code"
    );
}

#[tokio::test]
async fn refusals_follow_rfc_6749() {
    let provider = Provider::start(&[]).await;
    let (browser, _) = provider.browser("oidc-bob").await;

    // An unknown client or an unregistered redirect URI: a page, never a redirect.
    for (client, uri) in [
        ("nobody", RP_CALLBACK),
        ("grafana", "https://evil.example/cb"),
    ] {
        let mut params = grafana_request("s", "n");
        params.retain(|(k, _)| *k != "client_id" && *k != "redirect_uri");
        params.push(("client_id", client));
        params.push(("redirect_uri", uri));
        let page = provider.authorize(&browser, &params).await;
        assert_eq!(page.status(), 400, "{client} {uri}");
        assert!(page.headers().get("location").is_none());
    }
    // A public client without PKCE: back to it with an error.
    let spa = [
        ("response_type", "code"),
        ("client_id", "spa"),
        ("redirect_uri", SPA_CALLBACK),
        ("scope", "openid"),
        ("state", "spa-state"),
    ];
    let back = redirected(&provider.authorize(&browser, &spa).await, SPA_CALLBACK);
    assert_eq!(back["error"], "invalid_request");
    assert_eq!(back["state"], "spa-state");
    // No openid scope.
    let mut params = grafana_request("s", "n");
    params.retain(|(k, _)| *k != "scope");
    params.push(("scope", "profile"));
    assert_eq!(
        redirected(&provider.authorize(&browser, &params).await, RP_CALLBACK)["error"],
        "invalid_scope"
    );

    let code = |state: &'static str| {
        let provider = &provider;
        let browser = &browser;
        async move {
            let answer = provider
                .authorize(browser, &grafana_request(state, "n"))
                .await;
            redirected(&answer, RP_CALLBACK)["code"].clone()
        }
    };
    let form = |code: &str, verifier: &str| -> Vec<(String, String)> {
        vec![
            ("grant_type".into(), "authorization_code".into()),
            ("code".into(), code.into()),
            ("redirect_uri".into(), RP_CALLBACK.into()),
            ("code_verifier".into(), verifier.into()),
        ]
    };
    let send = |form: Vec<(String, String)>, secret: &'static str| {
        let provider = &provider;
        async move {
            let pairs: Vec<(&str, &str)> =
                form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            provider.token(&pairs, Some(("grafana", secret))).await
        }
    };

    // A wrong client secret.
    let first = code("a").await;
    let wrong = send(form(&first, VERIFIER), "not-the-secret-of-grafana").await;
    assert!(
        wrong.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    oauth_error(wrong, 401, "invalid_client").await;
    // A wrong verifier.
    let other_verifier = URL_SAFE_NO_PAD.encode([7u8; 32]);
    oauth_error(
        send(form(&first, &other_verifier), SECRET).await,
        400,
        "invalid_grant",
    )
    .await;
    // A code used twice: refused, and what the first use issued is revoked.
    let issued: Value = send(form(&first, VERIFIER), SECRET)
        .await
        .json()
        .await
        .unwrap();
    let access = issued["access_token"]
        .as_str()
        .expect("the first use works")
        .to_owned();
    let userinfo = |token: String| {
        let provider = &provider;
        async move {
            provider
                .http
                .get(provider.url("/oauth/userinfo"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(userinfo(access.clone()).await, 200);
    oauth_error(
        send(form(&first, VERIFIER), SECRET).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        userinfo(access).await,
        401,
        "the replay revoked the first token"
    );
    // A code nobody issued, and a grant type not offered.
    oauth_error(
        send(form("never-issued", VERIFIER), SECRET).await,
        400,
        "invalid_grant",
    )
    .await;
    let mut password = form(&code("b").await, VERIFIER);
    password[0].1 = "password".into();
    oauth_error(send(password, SECRET).await, 400, "unsupported_grant_type").await;
    // A confidential client may not authenticate with none.
    let none = provider
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code("c").await),
                ("redirect_uri", RP_CALLBACK),
                ("code_verifier", VERIFIER),
                ("client_id", "grafana"),
            ],
            None,
        )
        .await;
    oauth_error(none, 401, "invalid_client").await;
}

#[tokio::test]
async fn a_code_redeemed_after_oidc_code_ttl_is_invalid_grant() {
    let provider = Provider::start(&["--oidc-code-ttl", "1s"]).await;
    let (browser, _) = provider.browser("oidc-late").await;
    let redeem = |code: String| {
        let provider = &provider;
        async move {
            let form = [
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", RP_CALLBACK),
                ("code_verifier", VERIFIER),
            ];
            provider.token(&form, Some(("grafana", SECRET))).await
        }
    };
    let issue = || async {
        let answer = provider
            .authorize(&browser, &grafana_request("late", "n"))
            .await;
        redirected(&answer, RP_CALLBACK)["code"].clone()
    };

    // Within its life a code works…
    assert_eq!(redeem(issue().await).await.status(), 200);
    // …and once its life has passed, counted from the answer that carried it, it does not.
    // The passing of that second is the event waited for.
    let late = issue().await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    oauth_error(redeem(late).await, 400, "invalid_grant").await;
}

#[tokio::test]
async fn a_public_client_with_pkce_needs_no_secret_and_end_session_goes_back() {
    let provider = Provider::start(&[]).await;
    let (browser, _) = provider.browser("oidc-spa").await;
    let spa = [
        ("response_type", "code"),
        ("client_id", "spa"),
        ("redirect_uri", SPA_CALLBACK),
        ("scope", "openid"),
        ("state", "s"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    let code = redirected(&provider.authorize(&browser, &spa).await, SPA_CALLBACK)["code"].clone();
    let tokens = provider
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", SPA_CALLBACK),
                ("code_verifier", VERIFIER),
                ("client_id", "spa"),
            ],
            None,
        )
        .await;
    assert_eq!(tokens.status(), 200);
    let tokens: Value = tokens.json().await.unwrap();
    verified(&provider, tokens["id_token"].as_str().unwrap(), "spa");

    // Logout ends the web session and returns to a registered URI only.
    let session = browser.cookie("__Host-wxlogin").unwrap();
    let unregistered = provider
        .http
        .get(provider.url("/oauth/logout?post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F"))
        .send()
        .await
        .unwrap();
    assert_eq!(unregistered.status(), 400);
    let out = provider
        .http
        .get(provider.url(
            "/oauth/logout?client_id=grafana&post_logout_redirect_uri=https%3A%2F%2Frp.example%2Fbye&state=st",
        ))
        .header("cookie", format!("__Host-wxlogin={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(out.headers()["location"], "https://rp.example/bye?state=st");
    assert_eq!(browser.fetch(Method::GET, "/me").await.status(), 401);
}

#[tokio::test]
async fn after_a_rotation_old_tokens_verify_and_new_ones_carry_the_new_kid() {
    let dir = temp_dir("oidc-keys");
    let (old, new) = (dir.join("old.pem"), dir.join("new.pem"));
    std::fs::write(&old, server::signing_keys::generate_rsa_pem().unwrap()).unwrap();
    std::fs::write(&new, server::signing_keys::generate_rsa_pem().unwrap()).unwrap();
    let before = Provider::start(&["--oidc-signing-keys", old.to_str().unwrap()]).await;
    let old_kid = before
        .server
        .state
        .oidc
        .as_ref()
        .unwrap()
        .keys()
        .current_kid()
        .to_owned();
    let rotated_keys = format!("{},{}", new.display(), old.display());
    let after = Provider::start(&["--oidc-signing-keys", &rotated_keys]).await;
    let keys = after.server.state.oidc.as_ref().unwrap().keys();
    assert_ne!(keys.current_kid(), old_kid);
    let jwks: Value = after
        .http
        .get(after.url("/oauth/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, [keys.current_kid(), old_kid.as_str()]);
    // A token the old key signed still verifies by the rotated set.
    let (browser, _) = before.browser("oidc-rotation").await;
    let code = redirected(
        &before.authorize(&browser, &grafana_request("s", "n")).await,
        RP_CALLBACK,
    )["code"]
        .clone();
    let tokens: Value = before
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", RP_CALLBACK),
                ("code_verifier", VERIFIER),
            ],
            Some(("grafana", SECRET)),
        )
        .await
        .json()
        .await
        .unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(id_token)
            .unwrap()
            .kid
            .as_deref(),
        Some(old_kid.as_str())
    );
    verified(&after, id_token, "grafana");
}
