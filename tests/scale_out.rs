//! Several server processes sharing one Redis: one login state per app (and key prefix), one
//! code exchange, and calm behaviour when Redis goes away and comes back.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use server::store::{
    RedisStore, claim_contract_tests,
    contract_tests::{self, scope},
};
use shared::{CheckLoginResponse, ErrorCode, LoginResponse};
use workspace_tests::{
    DATA_KEY, RedisServer, ServerProcess, Upstream, apps_file, error_body, holds,
};

const BINARY: &str = env!("CARGO_BIN_EXE_login-server");
const APPID: &str = "wxscaleouttest01";
const SECRET: &str = "scale-out-secret";

async fn instance(redis: &RedisServer, upstream: &Upstream) -> ServerProcess {
    instance_with_prefix(redis, upstream, "").await
}

/// An instance for `upstream`'s app, its Redis keys under `prefix`.
async fn instance_with_prefix(
    redis: &RedisServer,
    upstream: &Upstream,
    prefix: &str,
) -> ServerProcess {
    ServerProcess::start(
        BINARY,
        &[
            ("WECHAT_APPID", upstream.sim.appid()),
            ("WECHAT_SECRET", upstream.sim.secret()),
            ("WECHAT_API_BASE", &upstream.base),
            ("DATA_KEY", DATA_KEY),
            ("SESSION_STORE", &redis.url()),
            ("REDIS_KEY_PREFIX", prefix),
            ("LOGIN_RATE_PER_MINUTE", "0"),
            ("UPSTREAM_RATE_PER_SECOND", "0"),
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

async fn logout(http: &reqwest::Client, server: &ServerProcess, token: &str) -> reqwest::Response {
    http.post(server.url("/logout"))
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
    server::store::user_contract_tests::run_all(&store).await;
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

    assert_eq!(logout(&http, &b, &token).await.status(), 204);
    assert!(
        !is_login(&http, &a, &token).await,
        "logged out on B, refused by A"
    );
}

/// A token of `server`'s app, from a fresh login of `user`.
async fn token_of(
    http: &reqwest::Client,
    server: &ServerProcess,
    upstream: &Upstream,
    user: &str,
) -> String {
    let response = login(http, server, &upstream.sim.issue_code(user)).await;
    assert_eq!(response.status(), 200);
    response.json::<LoginResponse>().await.unwrap().token
}

#[tokio::test]
async fn apps_and_prefixes_sharing_one_redis_never_accept_each_others_tokens() {
    let redis = RedisServer::start();
    let app_a = Upstream::start(APPID, SECRET).await;
    let app_b = Upstream::start("wxscaleouttest02", SECRET).await;
    let a = instance(&redis, &app_a).await;
    let a_again = instance(&redis, &app_a).await;
    let b = instance(&redis, &app_b).await;
    let a_staging = instance_with_prefix(&redis, &app_a, "staging:").await;
    let http = reqwest::Client::new();

    let token_a = token_of(&http, &a, &app_a, "gus").await;
    assert!(
        is_login(&http, &a_again, &token_a).await,
        "same app, same prefix: one login state"
    );
    assert!(
        !is_login(&http, &b, &token_a).await,
        "app A's token on app B"
    );
    assert!(
        !is_login(&http, &a_staging, &token_a).await,
        "app A's token under another prefix"
    );
    let me = http
        .get(b.url("/me"))
        .bearer_auth(&token_a)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);
    let token_b = token_of(&http, &b, &app_b, "gus").await;
    assert!(
        !is_login(&http, &a, &token_b).await,
        "app B's token on app A"
    );
    let token_staging = token_of(&http, &a_staging, &app_a, "hal").await;
    assert!(!is_login(&http, &a, &token_staging).await);
    assert!(is_login(&http, &a_staging, &token_staging).await);

    // App B logging out A's token ends nothing of A's.
    assert_eq!(logout(&http, &b, &token_a).await.status(), 204);
    assert!(is_login(&http, &a, &token_a).await);

    // Every key names its app, under its prefix.
    let keys: Vec<String> = redis.dump().await.into_iter().map(|(k, _)| k).collect();
    let spaces = [
        format!("wxlogin:{APPID}:"),
        "wxlogin:wxscaleouttest02:".to_owned(),
        format!("staging:wxlogin:{APPID}:"),
    ];
    for key in &keys {
        assert!(spaces.iter().any(|s| key.starts_with(s)), "{key}");
    }
    for space in &spaces {
        let sessions = format!("{space}s:");
        assert!(keys.iter().any(|k| k.starts_with(&sessions)), "{keys:?}");
    }
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

#[tokio::test]
async fn two_instances_on_one_redis_fetch_one_access_token_per_app_for_32_concurrent_requests() {
    let redis = RedisServer::start();
    let apps = [
        Upstream::start(APPID, SECRET).await,
        Upstream::start("wxscaleouttest02", "second-secret").await,
    ];
    let file = apps_file(&[&apps[0], &apps[1]]);
    let env = [
        ("CONFIG_FILE", file.to_str().unwrap()),
        ("DATA_KEY", DATA_KEY),
        ("SESSION_STORE", &redis.url()),
        ("LOGIN_RATE_PER_MINUTE", "0"),
    ];
    let instances = [
        Arc::new(ServerProcess::start(BINARY, &env).await),
        Arc::new(ServerProcess::start(BINARY, &env).await),
    ];
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for upstream in &apps {
        let response = http
            .post(instances[0].url("/login"))
            .json(&serde_json::json!({
                "code": upstream.sim.issue_code("kim"),
                "appid": upstream.sim.appid(),
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let token = response.json::<LoginResponse>().await.unwrap().token;
        // 32 per app, at once, spread over both instances.
        for n in 0..32 {
            let server = instances[n % 2].clone();
            let code = upstream.sim.issue_phone_code("kim", None);
            let (http, token) = (http.clone(), token.clone());
            tasks.push(tokio::spawn(async move {
                http.post(server.url("/wx/phone"))
                    .bearer_auth(token)
                    .json(&serde_json::json!({ "code": code }))
                    .send()
                    .await
                    .unwrap()
                    .status()
            }));
        }
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    for upstream in &apps {
        assert_eq!(
            upstream.sim.access_token_calls(),
            1,
            "one token for {}, shared through Redis",
            upstream.sim.appid()
        );
    }
    // Each app's token is kept, sealed: the dump holds no access token in the clear.
    let dump = redis.dump().await;
    let token_keys: Vec<_> = dump.iter().filter(|(k, _)| k.ends_with(":t")).collect();
    assert_eq!(
        token_keys.len(),
        2,
        "{:?}",
        dump.iter().map(|(k, _)| k).collect::<Vec<_>>()
    );
    for upstream in &apps {
        let token = upstream.sim.current_access_token().unwrap();
        assert!(!dump.iter().any(|(_, v)| holds(v, token.as_bytes())));
    }
}
