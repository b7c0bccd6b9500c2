//! Who the login rate limit counts: the peer, unless the peer is one of `TRUSTED_PROXIES`;
//! then the client that proxy reports at the right end of `X-Forwarded-For`. And what a spray of
//! addresses costs: bounded memory and no slowdown.

use std::{
    net::{Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};

use axum::{body::Body, extract::ConnectInfo, http::Request};
use tower::ServiceExt;
use workspace_tests::{TestServer, config};

const LIMIT: [&str; 4] = ["--login-rate-per-minute", "1", "--login-rate-burst", "2"];

/// A login with a malformed code: the limiter is passed (400) or not (429), and WeChat is
/// never asked.
async fn login_status(server: &TestServer, forwarded_lines: &[String]) -> u16 {
    let mut request = server
        .http
        .post(server.url("/login"))
        .json(&serde_json::json!({ "code": "!" }));
    for line in forwarded_lines {
        request = request.header("x-forwarded-for", line);
    }
    request.send().await.unwrap().status().as_u16()
}

/// Five logins, each claiming another client in its only `X-Forwarded-For` line.
async fn statuses_while_rotating(server: &TestServer) -> Vec<u16> {
    let mut statuses = Vec::new();
    for n in 0..5 {
        statuses.push(login_status(server, &[format!("198.51.100.{n}")]).await);
    }
    statuses
}

#[tokio::test]
async fn an_untrusted_peer_rotating_x_forwarded_for_meets_429() {
    // Loopback is not among the proxies: its X-Forwarded-For is the client's own claim.
    let server =
        TestServer::start(&[&LIMIT[..], &["--trusted-proxies", "10.0.0.0/8"]].concat()).await;
    assert_eq!(
        statuses_while_rotating(&server).await,
        [400, 400, 429, 429, 429]
    );
    // With no proxy configured at all, the same.
    let server = TestServer::start(&LIMIT).await;
    assert_eq!(
        statuses_while_rotating(&server).await,
        [400, 400, 429, 429, 429]
    );
}

/// IPv6 clients are keyed by a prefix: /64 by default, wider with `CLIENT_IPV6_PREFIX`, for
/// an attacker who holds a whole block. Behind a trusted proxy, so that the test can speak for
/// addresses loopback does not have.
#[tokio::test]
async fn ipv6_clients_share_an_allowance_within_their_prefix() {
    const ONE: [&str; 4] = ["--login-rate-per-minute", "1", "--login-rate-burst", "1"];
    let proxy = ["--trusted-proxies", "127.0.0.1"];
    let from = |address: &str| vec![address.to_owned()];

    let by_64 = TestServer::start(&[&ONE[..], &proxy].concat()).await;
    assert_eq!(login_status(&by_64, &from("2001:db8:1:2::1")).await, 400);
    assert_eq!(login_status(&by_64, &from("2001:db8:1:2::ffff")).await, 429);
    assert_eq!(login_status(&by_64, &from("2001:db8:1:3::1")).await, 400);

    let by_48 =
        TestServer::start(&[&ONE[..], &proxy, &["--client-ipv6-prefix", "48"]].concat()).await;
    assert_eq!(login_status(&by_48, &from("2001:db8:1:2::1")).await, 400);
    assert_eq!(login_status(&by_48, &from("2001:db8:1:3::1")).await, 429);
    assert_eq!(login_status(&by_48, &from("2001:db8:1:ffff::9")).await, 429);
    assert_eq!(login_status(&by_48, &from("2001:db8:2::1")).await, 400);
    // IPv4 clients are their address whatever the prefix.
    assert_eq!(login_status(&by_48, &from("198.51.100.1")).await, 400);
    assert_eq!(login_status(&by_48, &from("198.51.100.2")).await, 400);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_client_it_saw_is_limited_whatever_it_forged() {
    let server =
        TestServer::start(&[&LIMIT[..], &["--trusted-proxies", "127.0.0.1"]].concat()).await;
    // The client rotates the first line; our proxy adds the address it saw, last, sometimes
    // on a line of its own.
    let mut statuses = Vec::new();
    for n in 0..5 {
        let forged = format!("192.0.2.{n}");
        let lines = if n % 2 == 0 {
            vec![format!("{forged}, 203.0.113.7")]
        } else {
            vec![forged, "203.0.113.7".to_owned()]
        };
        statuses.push(login_status(&server, &lines).await);
    }
    assert_eq!(statuses, [400, 400, 429, 429, 429]);
    // Another client behind the same proxy has its own allowance.
    assert_eq!(
        login_status(&server, &["192.0.2.99, 203.0.113.8".to_owned()]).await,
        400
    );
    assert_eq!(
        login_status(&server, &["[2001:db8::5]:51000".to_owned()]).await,
        400,
        "an IPv6 client with a port is a client of its own"
    );
}

#[tokio::test]
async fn a_hundred_thousand_addresses_keep_the_limiter_under_its_cap_and_login_fast() {
    const CAP: usize = 5_000;
    const CLIENTS: u32 = 100_000;
    const BATCH: u32 = 10_000;
    let state = server::LoginState::new(
        config(&[
            "--trusted-proxies",
            "127.0.0.1",
            "--login-rate-max-clients",
            &CAP.to_string(),
        ]),
        server::store::Stores::local(std::sync::Arc::new(server::store::MemoryStore::default())),
    )
    .unwrap();
    let app = server::http::router(state.clone());
    let proxy = ConnectInfo(SocketAddr::from((Ipv4Addr::LOCALHOST, 40_000)));

    let started = Instant::now();
    let mut batch_means = Vec::new();
    let mut refused = 0;
    for batch in 0..CLIENTS / BATCH {
        let batch_started = Instant::now();
        for n in batch * BATCH..(batch + 1) * BATCH {
            // Distinct IPv4 clients out of 10.0.0.0/8, each seen once.
            let client = Ipv4Addr::from(0x0a00_0000 | n);
            let request = Request::post("/login")
                .header("content-type", "application/json")
                .header("x-forwarded-for", format!("{client}"))
                .extension(proxy)
                .body(Body::from(r#"{"code":"!"}"#))
                .unwrap();
            let status = app.clone().oneshot(request).await.unwrap().status();
            match status.as_u16() {
                400 => {}
                429 => refused += 1,
                other => panic!("unexpected status {other}"),
            }
        }
        batch_means.push(batch_started.elapsed() / BATCH);
        let tracked = state.login_limiter.tracked_clients();
        // The overflow allowance, plus nothing in flight: requests here are sequential.
        assert!(
            tracked <= CAP + 1,
            "batch {batch}: {tracked} clients tracked"
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the run is bounded in time"
        );
    }
    assert!(refused > 0, "past the cap, newcomers share one allowance");
    // Flat: no batch takes much longer per request than the quickest one. A scan of the tracked
    // set per request would make the late batches tens of times slower.
    let fastest = *batch_means.iter().min().unwrap();
    let slowest = *batch_means.iter().max().unwrap();
    assert!(
        slowest <= fastest * 4 + Duration::from_micros(50),
        "per-request time per batch: {batch_means:?}"
    );
}
