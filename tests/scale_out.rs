//! Several server processes sharing one Redis: one login state, one code exchange, and calm
//! behaviour when Redis goes away and comes back.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use server::store::{
    RedisStore, claim_contract_tests,
    contract_tests::{self, scope},
};
use shared::{CheckLoginResponse, ErrorCode, LoginResponse};
use workspace_tests::{DATA_KEY, RedisServer, ServerProcess, Upstream, error_body};

const BINARY: &str = env!("CARGO_BIN_EXE_login-server");
const APPID: &str = "wxscaleouttest01";
const SECRET: &str = "scale-out-secret";

async fn instance(redis: &RedisServer, upstream: &Upstream) -> ServerProcess {
    ServerProcess::start(
        BINARY,
        &[
            ("WECHAT_APPID", APPID),
            ("WECHAT_SECRET", SECRET),
            ("WECHAT_API_BASE", &upstream.base),
            ("DATA_KEY", DATA_KEY),
            ("SESSION_STORE", &redis.url()),
            ("LOGIN_RATE_PER_MINUTE", "0"),
        ],
    )
    .await
}

async fn login(http: &reqwest::Client, server: &ServerProcess, code: &str) -> reqwest::Response {
    http.post(server.url("/login"))
        .json(&serde_json::json!({ "code": code }))
        .send()
        .await
        .unwrap()
}

async fn check(http: &reqwest::Client, server: &ServerProcess, token: &str) -> reqwest::Response {
    http.get(server.url("/checklogin"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn is_login(http: &reqwest::Client, server: &ServerProcess, token: &str) -> bool {
    let response = check(http, server, token).await;
    assert_eq!(response.status(), 200);
    response
        .json::<CheckLoginResponse>()
        .await
        .unwrap()
        .is_login
}

#[tokio::test]
async fn the_redis_store_meets_the_store_contracts() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(&redis.url(), Duration::from_secs(1), &scope())
        .await
        .unwrap();
    contract_tests::run_all(&store).await;
    claim_contract_tests::run_all(&store).await;
}

#[tokio::test]
async fn a_token_from_one_instance_works_on_the_other_and_logout_is_seen_at_once() {
    let redis = RedisServer::start();
    let upstream = Upstream::start(APPID, SECRET).await;
    let (a, b) = (
        instance(&redis, &upstream).await,
        instance(&redis, &upstream).await,
    );
    let http = reqwest::Client::new();

    let code = upstream.sim.issue_code("ann");
    let response = login(&http, &a, &code).await;
    assert_eq!(response.status(), 200);
    let token = response.json::<LoginResponse>().await.unwrap().token;
    assert!(
        is_login(&http, &b, &token).await,
        "issued by A, accepted by B"
    );

    let response = http
        .post(b.url("/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert!(
        !is_login(&http, &a, &token).await,
        "logged out on B, refused by A"
    );
}

#[tokio::test]
async fn sixteen_concurrent_logins_with_one_code_share_one_exchange() {
    let redis = RedisServer::start();
    let upstream = Upstream::start(APPID, SECRET).await;
    let servers = Arc::new([
        instance(&redis, &upstream).await,
        instance(&redis, &upstream).await,
    ]);
    let http = reqwest::Client::new();
    let code = upstream.sim.issue_code("bea");

    let mut tasks = Vec::new();
    for i in 0..16 {
        let (servers, http, code) = (servers.clone(), http.clone(), code.clone());
        tasks.push(tokio::spawn(async move {
            let response = login(&http, &servers[i % 2], &code).await;
            assert_eq!(response.status(), 200, "request {i}");
            response.json::<LoginResponse>().await.unwrap()
        }));
    }
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.push(task.await.unwrap());
    }
    assert!(
        tokens.iter().all(|t| t.token == tokens[0].token),
        "one token for all 16"
    );
    assert!(tokens.iter().all(|t| t.expires_in > 0));
    assert_eq!(
        upstream.sim.stats().code2session_calls,
        1,
        "exactly one code2Session call"
    );
    assert!(is_login(&http, &servers[1], &tokens[0].token).await);
}

#[tokio::test]
async fn redis_down_is_a_503_not_a_logout_and_recovery_needs_no_restart() {
    let mut redis = RedisServer::start();
    let upstream = Upstream::start(APPID, SECRET).await;
    let a = instance(&redis, &upstream).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let code = upstream.sim.issue_code("cat");
    let token = login(&http, &a, &code)
        .await
        .json::<LoginResponse>()
        .await
        .unwrap()
        .token;

    redis.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let response = check(&http, &a, &token).await;
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_secs(2), "answered in {elapsed:?}");
        assert_eq!(response.status(), 503);
        assert!(response.headers().contains_key("retry-after"));
        assert_eq!(
            error_body(response).await.error.code,
            ErrorCode::StoreUnavailable
        );
    }
    assert_eq!(
        http.get(a.url("/healthz")).send().await.unwrap().status(),
        200,
        "the process is still up"
    );

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let response = check(&http, &a, &token).await;
        if response.status() == 200 {
            let body = response.json::<CheckLoginResponse>().await.unwrap();
            assert!(body.is_login, "the AOF brought the session back");
            break;
        }
        assert_eq!(response.status(), 503);
        assert!(
            Instant::now() < deadline,
            "the server did not recover on its own"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
