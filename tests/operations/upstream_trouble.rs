//! WeChat misbehaving: busy answers, no answer, no listener. The server must retry only what
//! WeChat allows, fail within bounded time with a JSON error, and keep serving `/checklogin`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use server::{
    data_keys::{DataKeys, SessionKey},
    store::{MemoryStore, Session, Stores, unix_now},
    token::Token,
};
use shared::ErrorCode;
use workspace_tests::{DATA_KEY, TestServer, assert_error, wechat_config};

#[tokio::test]
async fn a_busy_answer_is_retried_and_then_succeeds() {
    let server = TestServer::start(&[]).await;
    server.state.simulator.as_ref().unwrap().push_faults([-1]);
    let code = server.wx_login().await;
    let response = server.post_login(&code).await;
    assert_eq!(response.status(), 200);
    assert_eq!(server.upstream_calls(), 2, "one busy answer, one success");
}

#[tokio::test]
async fn wechat_busy_beyond_the_retry_budget_is_a_503_with_retry_after() {
    let server = TestServer::start(&["--wechat-busy-retries", "2"]).await;
    server
        .state
        .simulator
        .as_ref()
        .unwrap()
        .push_faults([-1, -1, -1, -1]);
    let code = server.wx_login().await;
    let response = server.post_login(&code).await;
    let retry_after = response.headers().contains_key("retry-after");
    assert_error(response, 503, ErrorCode::UpstreamUnavailable).await;
    assert!(retry_after);
    assert_eq!(
        server.upstream_calls(),
        3,
        "the first try and two retries, no more"
    );
}

/// The app of the servers that serve [`seeded_store`].
const SEEDED_APPID: &str = "wxreal";

/// A session put straight into the store, so `/checklogin` has something to find while the
/// server cannot reach WeChat at all.
async fn seeded_store() -> (Stores, Token) {
    let store = Stores::local(Arc::new(MemoryStore::default()));
    let token = Token::generate();
    store
        .sessions
        .insert(
            token.hash(),
            Session {
                appid: SEEDED_APPID.into(),
                openid: "o-seeded".into(),
                unionid: None,
                session_key: DataKeys::parse(DATA_KEY).unwrap().seal(
                    &SessionKey::new("c2VlZGVkLWtleQ=="),
                    SEEDED_APPID,
                    "o-seeded",
                ),
                created_at: unix_now(),
                expires_at: unix_now() + 3600,
                user_id: server::UserId::generate(),
                kind: server::store::SessionKind::Miniprogram,
                ip: None,
                device: None,
            },
        )
        .await
        .unwrap();
    (store, token)
}

#[tokio::test]
async fn wechat_unreachable_fails_fast_while_checklogin_keeps_answering() {
    let (store, token) = seeded_store().await;
    let base = workspace_tests::closed_port_base();
    let cfg = wechat_config(SEEDED_APPID, "s", &base, &[]);
    let server = TestServer::start_with(cfg, Some(store)).await;

    let started = Instant::now();
    let response = server.post_login("0a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let retry_after = response.headers().contains_key("retry-after");
    assert_error(response, 502, ErrorCode::UpstreamUnavailable).await;
    assert!(retry_after);

    assert!(server.check_bearer(token.as_str()).await);
}

#[tokio::test]
async fn wechat_that_never_answers_times_out_with_504() {
    // Accepts connections and then says nothing: the worst kind of outage.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let (reached, mut login_hangs) = tokio::sync::mpsc::unbounded_channel();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
            reached.send(()).ok();
        }
    });
    let (store, token) = seeded_store().await;
    let base = format!("http://{addr}");
    let cfg = wechat_config(SEEDED_APPID, "s", &base, &["--wechat-timeout", "1s"]);
    let server = std::sync::Arc::new(TestServer::start_with(cfg, Some(store)).await);

    let started = Instant::now();
    let login = tokio::spawn({
        let server = server.clone();
        async move { server.post_login("0a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P").await }
    });
    // The login has reached WeChat and hangs there: now ask the other endpoint.
    login_hangs.recv().await.expect("the login reached WeChat");
    assert!(server.check_bearer(token.as_str()).await);
    assert!(
        !login.is_finished(),
        "checklogin must answer while the login still hangs"
    );
    let response = login.await.unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(3),
        "bounded by WECHAT_TIMEOUT: {elapsed:?}"
    );
    assert_error(response, 504, ErrorCode::UpstreamTimeout).await;
    hold.abort();
}

#[tokio::test]
async fn wrong_credentials_are_a_502_not_a_client_error() {
    // The dev simulator checks the secret: a server configured with the wrong one is refused.
    let dev = TestServer::start(&[]).await;
    let base = dev.url("/sim");
    let cfg = wechat_config(server::DEV_APPID, "wrong", &base, &[]);
    let misconfigured = TestServer::start_with(cfg, None).await;
    let code = dev.wx_login().await;
    let response = misconfigured.post_login(&code).await;
    let body = assert_error(response, 502, ErrorCode::UpstreamError).await;
    assert!(!body.error.message.contains("wrong"));
}
