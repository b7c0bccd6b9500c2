//! Once WeChat is asked, the code is spent: the exchange must reach its end and be told to the
//! client's retry, whatever the client or the store does meanwhile.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use axum::{extract::Request, response::Response};
use server::{
    store::{MemoryStore, Session, SessionStore, StoreError, Stores},
    token::TokenHash,
    wechat::simulator::Simulator,
};
use tokio::net::TcpListener;
use tower::ServiceExt;
use workspace_tests::{TestServer, wechat_config};

/// WeChat that takes `delay` to answer each code2Session call, and counts the calls.
struct SlowWechat {
    sim: Simulator,
    base: String,
    calls: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl SlowWechat {
    async fn start(delay: Duration) -> Self {
        let sim = Simulator::new("wxslow", "slow-secret");
        let calls = Arc::new(AtomicU64::new(0));
        let inner: axum::Router = sim.router();
        let counted = calls.clone();
        let app = axum::Router::new().fallback(move |request: Request| {
            let inner = inner.clone();
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                // The scenario itself, not a wait for an event: WeChat is slow.
                tokio::time::sleep(delay).await;
                inner.oneshot(request).await.unwrap_or_else(|e| match e {}) as Response
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        Self {
            sim,
            base,
            calls,
            task,
        }
    }
}

impl Drop for SlowWechat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn a_client_that_hangs_up_mid_exchange_gets_the_token_on_retry_from_one_call() {
    let wechat = SlowWechat::start(Duration::from_millis(1500)).await;
    let config = wechat_config(
        wechat.sim.appid(),
        wechat.sim.secret(),
        &wechat.base,
        &["--wechat-timeout", "5s"],
    );
    let server = TestServer::start_with(config, None).await;
    let code = wechat.sim.issue_code("hang-up-user");

    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let hung_up = impatient
        .post(server.url("/login"))
        .json(&serde_json::json!({ "code": code }))
        .send()
        .await;
    assert!(
        hung_up.as_ref().is_err_and(reqwest::Error::is_timeout),
        "the client gave up before WeChat answered: {hung_up:?}"
    );

    let retry = server.post_login(&code).await;
    assert_eq!(retry.status(), 200, "the retry gets the exchange's outcome");
    let login: shared::LoginResponse = retry.json().await.unwrap();
    assert!(server.check_bearer(&login.token).await, "the token works");
    assert_eq!(
        wechat.calls.load(Ordering::SeqCst),
        1,
        "one code2Session call"
    );
}

/// A session store whose first `failures` writes fail, as a store does while it restarts.
#[derive(Debug)]
struct FlakyStore {
    inner: MemoryStore,
    failures: AtomicU32,
}

#[async_trait]
impl SessionStore for FlakyStore {
    async fn insert(&self, key: TokenHash, session: Session) -> Result<(), StoreError> {
        let failing = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(StoreError::Unavailable("restarting".into()));
        }
        self.inner.insert(key, session).await
    }

    async fn get(
        &self,
        key: TokenHash,
        now: i64,
    ) -> Result<Option<std::sync::Arc<Session>>, StoreError> {
        self.inner.get(key, now).await
    }

    async fn remove(&self, key: TokenHash) -> Result<bool, StoreError> {
        self.inner.remove(key).await
    }

    async fn of_account(
        &self,
        user_id: server::UserId,
        now: i64,
    ) -> Result<Vec<(TokenHash, std::sync::Arc<Session>)>, StoreError> {
        self.inner.of_account(user_id, now).await
    }
}

#[tokio::test]
async fn a_store_failure_after_wechat_answered_is_retried_not_turned_into_code_used() {
    let store = Arc::new(FlakyStore {
        inner: MemoryStore::default(),
        failures: AtomicU32::new(3),
    });
    let server = TestServer::start_with(
        workspace_tests::config(&[]),
        Some(Stores::local(store.clone())),
    )
    .await;
    let code = server.wx_login().await;
    let response = server.post_login(&code).await;
    assert_eq!(response.status(), 200, "the write was retried");
    let login: shared::LoginResponse = response.json().await.unwrap();
    assert_eq!(store.failures.load(Ordering::SeqCst), 0, "all three failed");
    assert!(server.check_bearer(&login.token).await);
    assert_eq!(server.upstream_calls(), 1, "WeChat was asked once");
}
