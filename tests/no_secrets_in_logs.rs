//! `session_key`, tokens, web-login ticket secrets and the AppSecret never reach a response
//! body or a log line. This test
//! owns its process's global log subscriber, at the most verbose level, so every line any
//! crate writes is captured.

use std::time::Duration;

use reqwest::Method;
use workspace_tests::{TestServer, Upstream, web_browser::WebBrowser};

const SECRET: &str = "8f3b1c0d9e7a4b2c8f3b1c0d9e7a4b2c";
const CLIENT_SECRET: &str = "rp-client-secret-5b2c8f3b1c0d9e7a";
const CALLBACK: &str = "https://rp.example/cb";

#[tokio::test]
async fn session_key_tokens_and_secret_stay_out_of_logs_and_responses() {
    let logs = server::captured_log::CapturedLog::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    // Production mode against a WeChat simulator whose secret this test knows, with the
    // OpenID Connect provider on: one client, a signing key of the test's.
    let upstream = Upstream::start("wxlogtest0000001", SECRET).await;
    let dir = workspace_tests::temp_dir("no-secrets-oidc");
    let (clients, key) = (dir.join("clients.toml"), dir.join("oidc.pem"));
    std::fs::write(
        &clients,
        format!(
            "[[oidc.clients]]\nclient_id = \"rp\"\nname = \"RP\"\nclient_secret = \"{CLIENT_SECRET}\"\n\
             redirect_uris = [\"{CALLBACK}\"]\n"
        ),
    )
    .unwrap();
    std::fs::write(&key, server::signing_keys::generate_rsa_pem().unwrap()).unwrap();
    let server = TestServer::start_with(
        upstream.config(&[
            "--config",
            clients.to_str().unwrap(),
            "--oidc-issuer",
            "http://login.test.example",
            "--oidc-signing-keys",
            key.to_str().unwrap(),
        ]),
        None,
    )
    .await;
    let mut responses = String::new();

    let code = upstream.sim.issue_code("lee");
    let response = server.post_login(&code).await;
    let body = response.text().await.unwrap();
    responses.push_str(&body);
    let token: shared::LoginResponse = serde_json::from_str(&body).unwrap();
    // The session_key WeChat gave for this login, opened from its sealed form in the store.
    let session_key = server
        .state
        .login
        .session_key(Some(&token.token))
        .await
        .expect("session stored, its key opens");
    for form in ["bearer", "query"] {
        let request = server.http.get(server.url("/checklogin"));
        let request = match form {
            "bearer" => request.bearer_auth(&token.token),
            _ => request.query(&[("token", &token.token)]),
        };
        responses.push_str(&request.send().await.unwrap().text().await.unwrap());
    }
    // The open-data routes, which use the session_key and the access token, on their happy
    // and their error paths.
    let data = upstream.sim.open_data_for("lee").expect("lee logged in");
    for (path, body) in [
        (
            "/wx/decrypt",
            serde_json::json!({ "encryptedData": data.encrypted_data, "iv": data.iv }),
        ),
        (
            "/wx/decrypt",
            serde_json::json!({ "encryptedData": "AAAAAAAAAAAAAAAAAAAAAA==", "iv": data.iv }),
        ),
        (
            "/wx/verify-signature",
            serde_json::json!({ "rawData": data.raw_data, "signature": data.signature }),
        ),
        (
            "/wx/phone",
            serde_json::json!({ "code": upstream.sim.issue_phone_code("lee", None) }),
        ),
    ] {
        let response = server
            .http
            .post(server.url(path))
            .bearer_auth(&token.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        responses.push_str(&response.text().await.unwrap());
    }
    // A token invalidated behind our back: the 40001 path logs its warning.
    upstream.sim.invalidate_access_token();
    let phone = server
        .http
        .post(server.url("/wx/phone"))
        .bearer_auth(&token.token)
        .json(&serde_json::json!({ "code": upstream.sim.issue_phone_code("lee", None) }))
        .send()
        .await
        .unwrap();
    assert_eq!(phone.status(), 200);
    responses.push_str(&phone.text().await.unwrap());
    let access_token = upstream.sim.current_access_token().expect("fetched");

    // The web login: a ticket's secret and the browser's session token live in cookies only.
    let browser = WebBrowser::new(&server.url(""));
    let created = browser.fetch(Method::POST, "/web-login").await;
    responses.push_str(&created.text().await.unwrap());
    let id = browser
        .set_cookies
        .lock()
        .unwrap()
        .iter()
        .find_map(|line| line.strip_prefix("__Host-wxlogin-ticket-"))
        .and_then(|rest| rest.split('=').next())
        .unwrap()
        .to_owned();
    let ticket_secret = browser
        .cookie(&format!("__Host-wxlogin-ticket-{id}"))
        .unwrap();
    let mut events = browser.events(&id).await;
    events.next_status(Duration::from_secs(5)).await;
    for action in ["scan", "confirm"] {
        let response = server
            .http
            .post(server.url(&format!("/web-login/{id}/{action}")))
            .bearer_auth(&token.token)
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        responses.push_str(&response.text().await.unwrap());
    }
    while events.next(Duration::from_secs(5)).await.is_some() {}
    // A wrong secret and a cross-site change log their refusals.
    let stranger = WebBrowser::new(&server.url(""));
    stranger.put_cookie(&format!("__Host-wxlogin-ticket-{id}"), "not-the-secret");
    responses.push_str(&stranger.complete(&id).await.text().await.unwrap());
    responses.push_str(&browser.complete(&id).await.text().await.unwrap());
    let first_web_session = browser
        .cookie("__Host-wxlogin")
        .expect("logged in on the web");
    for path in ["/me", "/auth", "/me/sessions"] {
        responses.push_str(&browser.fetch(Method::GET, path).await.text().await.unwrap());
    }
    let cross = browser
        .send(
            Method::POST,
            "/logout",
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(cross.status(), 403);
    responses.push_str(&cross.text().await.unwrap());
    responses.push_str(
        &browser
            .fetch(Method::POST, "/logout")
            .await
            .text()
            .await
            .unwrap(),
    );

    // OpenID Connect: a code for the web session, its tokens, userinfo, and a replay.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (browser, web_session) = {
        let browser = WebBrowser::new(&server.url(""));
        let id = browser.new_ticket().await.id;
        for action in ["scan", "confirm"] {
            server
                .http
                .post(server.url(&format!("/web-login/{id}/{action}")))
                .bearer_auth(&token.token)
                .json(&serde_json::json!({}))
                .send()
                .await
                .unwrap();
        }
        browser.complete(&id).await;
        let session = browser.cookie("__Host-wxlogin").unwrap();
        (browser, session)
    };
    let authorize = no_redirects
        .get(server.url(&format!(
            "/oauth/authorize?response_type=code&client_id=rp&redirect_uri={}&scope=openid%20profile&state=s&nonce=n",
            url_escape(CALLBACK)
        )))
        .header("cookie", format!("__Host-wxlogin={web_session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(authorize.status(), 303);
    let location = authorize.headers()["location"].to_str().unwrap().to_owned();
    let oidc_code = location
        .split(['?', '&'])
        .find_map(|pair| pair.strip_prefix("code="))
        .unwrap()
        .to_owned();
    let exchange = || {
        no_redirects
            .post(server.url("/oauth/token"))
            .basic_auth("rp", Some(CLIENT_SECRET))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=authorization_code&code={oidc_code}&redirect_uri={}",
                url_escape(CALLBACK)
            ))
            .send()
    };
    let tokens: serde_json::Value = exchange().await.unwrap().json().await.unwrap();
    let oidc_access_token = tokens["access_token"].as_str().unwrap().to_owned();
    let userinfo = no_redirects
        .get(server.url("/oauth/userinfo"))
        .bearer_auth(&oidc_access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(userinfo.status(), 200);
    responses.push_str(&userinfo.text().await.unwrap());
    responses.push_str(&exchange().await.unwrap().text().await.unwrap());
    responses.push_str(
        &browser
            .fetch(Method::POST, "/logout")
            .await
            .text()
            .await
            .unwrap(),
    );

    // Error paths log too: a replayed code and a logout.
    responses.push_str(&server.post_login(&code).await.text().await.unwrap());
    let logout = server.logout(&token.token).await;
    responses.push_str(&logout.text().await.unwrap());

    server.stop().await;

    let logs = logs.text();
    assert!(logs.contains("login"), "the capture works: {logs}");
    assert!(
        logs.contains("something else fetched a new token"),
        "the 40001 warning is logged: {logs}"
    );
    for (what, secret) in [
        ("session_key", session_key.expose()),
        ("token", token.token.as_str()),
        ("login code", code.as_str()),
        ("WECHAT_SECRET", SECRET),
        ("DATA_KEY", workspace_tests::DATA_KEY),
        ("access_token", access_token.as_str()),
        ("web-login ticket secret", ticket_secret.as_str()),
        ("web session token", web_session.as_str()),
        ("second web session token", first_web_session.as_str()),
        ("authorization code", oidc_code.as_str()),
        ("OIDC access token", oidc_access_token.as_str()),
        ("OIDC client secret", CLIENT_SECRET),
    ] {
        assert!(!logs.contains(secret), "{what} leaked into the log");
        if what != "token" && what != "login code" {
            assert!(!responses.contains(secret), "{what} leaked into a response");
        }
    }
    // No field of that name either (the error code `stale_session_key` names it, harmlessly).
    assert!(!responses.contains("\"session_key\""), "{responses}");
}

fn url_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
