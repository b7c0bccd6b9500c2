//! The 4-step flow end to end over real HTTP on loopback, with the dev simulator as WeChat.

use shared::ErrorCode;
use workspace_tests::{TestServer, assert_error};

#[tokio::test]
async fn login_check_logout_through_both_check_forms() {
    let server = TestServer::start(&[]).await;
    let login = server.login().await;
    assert_eq!(login.expires_in, 7 * 24 * 3600);
    assert!(server.check_bearer(&login.token).await);
    assert!(server.check_query(&login.token).await);

    let response = server.logout(&login.token).await;
    assert_eq!(response.status(), 204);
    assert!(!server.check_bearer(&login.token).await);
    assert!(!server.check_query(&login.token).await);

    // Logging out twice is harmless.
    let again = server.logout(&login.token).await;
    assert_eq!(again.status(), 204);
    server.stop().await;
}

#[tokio::test]
async fn unknown_forged_and_empty_tokens_are_not_logged_in() {
    let server = TestServer::start(&[]).await;
    let real = server.login().await.token;
    let mut forged = real.clone().into_bytes();
    forged[0] = if forged[0] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    for token in [
        forged.as_str(),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "not-a-token",
        "",
        &real[..real.len() - 1],
        &format!("{real}x"),
    ] {
        assert!(!server.check_query(token).await, "{token:?} via query");
        if !token.is_empty() {
            assert!(!server.check_bearer(token).await, "{token:?} via bearer");
        }
    }
    // No token at all is "not logged in", as old clients expect.
    let bare = server
        .http
        .get(server.url("/checklogin"))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), 200);
    assert_eq!(bare.text().await.unwrap(), r#"{"is_login":false}"#);
    assert!(server.check_bearer(&real).await, "the real one still works");
}

#[tokio::test]
async fn logout_needs_a_bearer_token() {
    let server = TestServer::start(&[]).await;
    let response = server
        .http
        .post(server.url("/logout"))
        .send()
        .await
        .unwrap();
    let headers = response.headers().clone();
    assert_error(response, 401, ErrorCode::Unauthorized).await;
    assert_eq!(headers["www-authenticate"], "Bearer");
}

/// A replay (double tap, client retry after a lost answer) is answered with the very same
/// token from the one session, and WeChat is asked once.
#[tokio::test]
async fn a_replayed_code_never_yields_a_second_session() {
    let server = TestServer::start(&[]).await;
    let code = server.wx_login().await;
    let first = server.post_login(&code).await;
    assert_eq!(first.status(), 200);
    let token = first.json::<shared::LoginResponse>().await.unwrap().token;
    for _ in 0..3 {
        let replay = server.post_login(&code).await;
        assert_eq!(replay.status(), 200);
        assert_eq!(
            replay.json::<shared::LoginResponse>().await.unwrap().token,
            token
        );
    }
    assert_eq!(server.upstream_calls(), 1);
}

/// When WeChat itself says the code was used (here: spent by another deployment that shares
/// the AppID but not our store), the client is told to get a new code.
#[tokio::test]
async fn a_code_spent_elsewhere_is_refused_as_code_used() {
    let upstream = workspace_tests::Upstream::start("wxsharedapp00001", "shared-secret").await;
    let (a, b) = (
        TestServer::start_with(upstream.config(&[]), None).await,
        TestServer::start_with(upstream.config(&[]), None).await,
    );
    let code = upstream.sim.issue_code("zoe");
    assert_eq!(a.post_login(&code).await.status(), 200);
    let replay = b.post_login(&code).await;
    assert_error(replay, 400, ErrorCode::CodeUsed).await;
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let server = TestServer::start(&["--sim-code-ttl", "200ms"]).await;
    let code = server.wx_login().await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let response = server.post_login(&code).await;
    assert_error(response, 400, ErrorCode::InvalidCode).await;
}

#[tokio::test]
async fn token_ttl_is_configurable_and_enforced() {
    // Expiry is stamped in whole seconds, so a 3 s token has at least 2 s left when checked
    // at once: "logged in" right after login cannot flake on a second boundary.
    let server = TestServer::start(&["--token-ttl", "3s"]).await;
    let logged_in_at = std::time::Instant::now();
    let login = server.login().await;
    assert!((2..=3).contains(&login.expires_in), "{}", login.expires_in);
    assert!(server.check_bearer(&login.token).await);
    // Then wait for the expiry itself, polling with a deadline.
    loop {
        if !server.check_bearer(&login.token).await {
            break;
        }
        assert!(
            logged_in_at.elapsed() < std::time::Duration::from_secs(6),
            "still logged in 6 s after a 3 s token was issued"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        logged_in_at.elapsed() >= std::time::Duration::from_secs(1),
        "expired too early: {:?}",
        logged_in_at.elapsed()
    );
}

#[tokio::test]
async fn high_risk_users_are_refused_with_403() {
    let server = TestServer::start(&[]).await;
    let code = server.wx_login_as("risky-mallory").await;
    let response = server.post_login(&code).await;
    assert_error(response, 403, ErrorCode::HighRiskUser).await;
}

/// What the first mini-program of this flow did, byte for byte: POST `{code}` and read `res.data.token`,
/// then GET `/checklogin?token=` and read `res.data.is_login`.
#[tokio::test]
async fn the_seed_client_works_unchanged() {
    let server = TestServer::start(&[]).await;
    let code = server.wx_login().await;
    let body = server
        .http
        .post(server.url("/login"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"code":"{code}"}}"#))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let token = body["token"].as_str().expect("res.data.token is a string");
    let check = server
        .http
        .get(format!("{}?token={token}", server.url("/checklogin")))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(check["is_login"], serde_json::Value::Bool(true));
}

#[tokio::test]
async fn health_and_request_ids() {
    let server = TestServer::start(&[]).await;
    let response = server
        .http
        .get(server.url("/healthz"))
        .header("x-request-id", "trace-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "trace-123");
    let mut fresh = Vec::new();
    for _ in 0..2 {
        let response = server
            .http
            .get(server.url("/healthz"))
            .header("x-request-id", "not sane!")
            .send()
            .await
            .unwrap();
        let id = response.headers()["x-request-id"].to_str().unwrap();
        assert_eq!(id.len(), 33, "a fresh id: {id}");
        assert!(
            id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'),
            "{id}"
        );
        fresh.push(id.to_owned());
    }
    assert_ne!(fresh[0], fresh[1]);
}

#[tokio::test]
async fn an_unbuilt_harness_explains_how_to_build_it() {
    let dir = workspace_tests::temp_dir("no-harness");
    let server = TestServer::start(&["--harness-dir", dir.to_str().unwrap()]).await;
    let response = server
        .http
        .get(server.url("/harness/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.text().await.unwrap().contains("cargo xtask build"));
    let web_login = server
        .http
        .get(server.url("/harness/web-login"))
        .send()
        .await
        .unwrap();
    assert_eq!(web_login.status(), 503);
}

#[tokio::test]
async fn a_built_harness_is_served_in_dev_mode_only() {
    let dir = workspace_tests::temp_dir("harness");
    std::fs::write(dir.join("index.html"), "<p id=probe>harness</p>").unwrap();
    let path = dir.to_str().unwrap();
    let dev = TestServer::start(&["--harness-dir", path]).await;
    let page = dev.http.get(dev.url("/harness/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("id=probe"));
    // The web login page is the same document; its module picks the page by the address.
    let web_login = dev
        .http
        .get(dev.url("/harness/web-login"))
        .send()
        .await
        .unwrap();
    assert_eq!(web_login.status(), 200);
    assert!(
        web_login.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(web_login.text().await.unwrap().contains("id=probe"));

    let cfg = workspace_tests::config(&[
        "--harness-dir",
        path,
        "--wechat-appid",
        "wxprod",
        "--wechat-secret",
        "s",
        "--data-key",
        workspace_tests::DATA_KEY,
    ]);
    let prod = TestServer::start_with(cfg, None).await;
    for path in ["/harness/", "/harness/web-login"] {
        let page = prod.http.get(prod.url(path)).send().await.unwrap();
        assert_eq!(
            page.status(),
            404,
            "no harness and no simulator in production: {path}"
        );
    }
}

#[tokio::test]
async fn a_code_replayed_after_logout_is_code_used_never_the_dead_token() {
    let server = TestServer::start(&[]).await;
    let code = server.wx_login().await;
    let first = server.post_login(&code).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["cache-control"], "no-store");
    let token = first.json::<shared::LoginResponse>().await.unwrap().token;
    // Within the replay window, while the session lives: the same token (a lost answer).
    let again = server.post_login(&code).await;
    assert_eq!(
        again.json::<shared::LoginResponse>().await.unwrap().token,
        token
    );

    assert_eq!(server.logout(&token).await.status(), 204);
    let replay = server.post_login(&code).await;
    assert_error(replay, 400, ErrorCode::CodeUsed).await;
    assert_eq!(
        server.upstream_calls(),
        1,
        "the replay never reached WeChat"
    );
    server.stop().await;
}

#[tokio::test]
async fn past_the_replay_window_a_code_is_used_even_while_its_session_lives() {
    let server = TestServer::start(&["--code-replay-window", "200ms"]).await;
    let code = server.wx_login().await;
    let token = server
        .post_login(&code)
        .await
        .json::<shared::LoginResponse>()
        .await
        .unwrap()
        .token;
    // Replays answer the same token until the window closes, then `code_used`: wait for that.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let replay = server.post_login(&code).await;
        if replay.status() == 400 {
            assert_error(replay, 400, ErrorCode::CodeUsed).await;
            break;
        }
        let replayed = replay.json::<shared::LoginResponse>().await.unwrap().token;
        assert_eq!(replayed, token, "only ever the first login's token");
        assert!(
            std::time::Instant::now() < deadline,
            "the window never closed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        server.check_bearer(&token).await,
        "the session itself lives on"
    );
    server.stop().await;
}

#[tokio::test]
async fn answers_with_tokens_or_user_data_are_not_cached() {
    let server = TestServer::start(&[]).await;
    let token = server.login().await.token;
    for path in ["/checklogin", "/me"] {
        let response = server
            .http
            .get(server.url(path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["cache-control"], "no-store", "{path}");
    }
    server.stop().await;
}
