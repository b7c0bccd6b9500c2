//! `METRICS_ADDR`: the server binary, as a process of its own (the recorder is global to a
//! process), serves Prometheus text there, counts what it did exactly, and exposes no secret.

use std::net::SocketAddr;

use workspace_tests::{DATA_KEY, ServerProcess, Upstream, free_port, prometheus::Exposition};

const BINARY: &str = env!("CARGO_BIN_EXE_login-server");

async fn scrape(http: &reqwest::Client, addr: SocketAddr) -> (String, Exposition) {
    let response = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain"),
        "Prometheus text format, got {content_type}"
    );
    let text = response.text().await.unwrap();
    let exposition = Exposition::parse(&text);
    (text, exposition)
}

const LOGINS: &str = "wxlogin_logins_total";
const CALLS: &str = "wxlogin_code2session_calls_total";
const CHECKS: &str = "wxlogin_checks_total";

#[tokio::test]
async fn metrics_count_one_login_as_one_and_expose_no_secret() {
    let upstream = Upstream::start("wxmetrics0000001", "metrics-app-secret-0001").await;
    let metrics_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let metrics = metrics_addr.to_string();
    let server =
        ServerProcess::for_app(BINARY, &upstream, "memory", &[("METRICS_ADDR", &metrics)]).await;
    let http = reqwest::Client::new();

    let (_, before) = scrape(&http, metrics_addr).await;
    assert_eq!(
        before.value(
            "wxlogin_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    assert_eq!(before.type_of("wxlogin_build_info"), Some("gauge"));
    assert_eq!(
        before.value("wxlogin_breaker_state", &[("appid", upstream.sim.appid())]),
        Some(0.0),
        "the breaker starts closed"
    );
    let ok = [("outcome", "ok")];
    let logged_in = [("via", "checklogin"), ("answer", "logged_in")];

    let token = server.token(&http, &upstream, "alice").await;
    assert!(server.is_login(&http, &token).await);

    let (text, after) = scrape(&http, metrics_addr).await;
    assert_eq!(after.type_of(LOGINS), Some("counter"));
    assert_eq!(after.count(LOGINS, &ok) - before.count(LOGINS, &ok), 1.0);
    assert_eq!(
        after.count(CALLS, &[("errcode", "0")]) - before.count(CALLS, &[("errcode", "0")]),
        1.0
    );
    assert_eq!(
        after.type_of("wxlogin_code2session_duration_seconds"),
        Some("histogram")
    );
    assert_eq!(
        after.value(
            "wxlogin_code2session_duration_seconds_count",
            &[("errcode", "0")]
        ),
        Some(1.0)
    );
    assert_eq!(
        after.count(CHECKS, &logged_in) - before.count(CHECKS, &logged_in),
        1.0
    );

    // A refused login is counted under its own outcome, and the login counter of successes
    // stays put.
    let refused = server.login(&http, "an-unknown-code-0001").await;
    assert_eq!(refused.status(), 400);
    let (_, refused_after) = scrape(&http, metrics_addr).await;
    assert_eq!(
        refused_after.count(LOGINS, &[("outcome", "invalid_code")]),
        1.0
    );
    assert_eq!(refused_after.count(LOGINS, &ok), after.count(LOGINS, &ok));
    assert_eq!(refused_after.count(CALLS, &[("errcode", "40029")]), 1.0);

    let session_key = upstream
        .sim
        .session_key_of("alice")
        .expect("alice logged in");
    for secret in [
        token.as_str(),
        upstream.sim.secret(),
        session_key.as_str(),
        DATA_KEY,
    ] {
        assert!(!text.contains(secret), "the exposition holds a secret");
    }
    // Only the metrics listener serves them, not the API's.
    let on_api = http.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(on_api.status(), 404);
    // And the metrics listener serves nothing else.
    for path in ["/anything", "/login", "/metrics/extra", "/"] {
        let elsewhere = http
            .get(format!("http://{metrics_addr}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            elsewhere.status(),
            404,
            "GET {path} on the metrics listener"
        );
        assert!(!elsewhere.text().await.unwrap().contains(LOGINS), "{path}");
    }
}

const SIGNUPS: &str = "wxlogin_signups_total";
const ACCOUNTS_CREATED: &str = "wxlogin_accounts_created_total";

#[tokio::test]
async fn sign_up_decisions_are_counted_and_a_failing_risk_check_lets_sign_up_go_on() {
    let upstream = Upstream::start("wxmetricssignup1", "metrics-signup-secret1").await;
    let metrics_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let metrics = metrics_addr.to_string();
    let server = ServerProcess::for_app(
        BINARY,
        &upstream,
        "memory",
        &[("METRICS_ADDR", &metrics), ("SIGNUP_MAX_RISK_RANK", "2")],
    )
    .await;
    let http = reqwest::Client::new();

    upstream.sim.set_risk_rank("ivan", 4);
    let refused = server.login(&http, &upstream.sim.issue_code("ivan")).await;
    assert_eq!(refused.status(), 403);
    let (_, after_refusal) = scrape(&http, metrics_addr).await;
    assert_eq!(
        after_refusal.count(SIGNUPS, &[("outcome", "risk_rejected")]),
        1.0
    );
    assert_eq!(
        after_refusal.count(ACCOUNTS_CREATED, &[("how", "signup")]),
        0.0
    );

    // WeChat's risk API down: the sign-up goes on, and the metric says it went unchecked.
    upstream.sim.set_risk_check_failing(true);
    let token = server.token(&http, &upstream, "judy").await;
    assert!(server.is_login(&http, &token).await);
    let (_, after_failure) = scrape(&http, metrics_addr).await;
    assert_eq!(
        after_failure.count(SIGNUPS, &[("outcome", "risk_check_failed")]),
        1.0
    );
    assert_eq!(
        after_failure.count(ACCOUNTS_CREATED, &[("how", "signup")]),
        1.0
    );
}
