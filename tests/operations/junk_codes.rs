//! An attacker's well-formed junk codes, from many loopback addresses: the WeChat budget stays
//! open to real users, and a full claims table says so with its own code.

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use shared::ErrorCode;
use workspace_tests::{SlowLink, TestServer, Upstream, assert_error};

/// A client whose connections come from `ip` (any 127.x address works on loopback).
fn client_from(ip: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(ip))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A code of the right shape that WeChat never issued.
fn junk_code() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

async fn post_login(client: &reqwest::Client, server: &TestServer, code: &str) -> u16 {
    client
        .post(server.url("/login"))
        .json(&serde_json::json!({ "code": code }))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_from_two_hundred_addresses_at_twice_the_budget_leaves_real_logins_through() {
    const BUDGET: u32 = 50;
    const ATTACK: Duration = Duration::from_secs(10);
    // Each address sends one code every two seconds: well within its own login limit.
    let server = TestServer::start(&["--upstream-rate-per-second", "50"]).await;
    let attackers: Arc<Vec<reqwest::Client>> = Arc::new(
        (0..200u8)
            .map(|n| client_from(Ipv4Addr::new(127, 0, 1, n + 1)))
            .collect(),
    );
    let junk_statuses = Arc::new(Mutex::new(Vec::new()));
    let server = Arc::new(server);

    // Twice the budget, round-robin over the addresses, each request on its own task so the
    // pace holds whatever the answers take.
    let attack = {
        let (server, attackers, statuses) =
            (server.clone(), attackers.clone(), junk_statuses.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1) / (2 * BUDGET));
            let mut sent = tokio::task::JoinSet::new();
            let started = Instant::now();
            let mut n = 0usize;
            while started.elapsed() < ATTACK {
                tick.tick().await;
                let (server, client, statuses) = (
                    server.clone(),
                    attackers[n % attackers.len()].clone(),
                    statuses.clone(),
                );
                sent.spawn(async move {
                    let status = post_login(&client, &server, &junk_code()).await;
                    statuses.lock().unwrap().push(status);
                });
                n += 1;
            }
            sent.join_all().await;
        })
    };

    // Twenty real users, one every half second through the attack, each from an address of
    // its own that has never logged in: one `wx.login()` code, one `POST /login`.
    let started = Instant::now();
    let mut real = tokio::task::JoinSet::new();
    for n in 0..20u8 {
        let due = Duration::from_millis(250 + 500 * u64::from(n));
        tokio::time::sleep(due.saturating_sub(started.elapsed())).await;
        let code = server.wx_login_as(&format!("real-{n}")).await;
        let (server, client) = (server.clone(), client_from(Ipv4Addr::new(127, 0, 9, n + 1)));
        real.spawn(async move { post_login(&client, &server, &code).await });
    }
    let real = real.join_all().await;
    attack.await.unwrap();

    let ok = real.iter().filter(|s| **s == 200).count();
    let junk = junk_statuses.lock().unwrap().clone();
    let refused_junk = junk.iter().filter(|s| **s == 503).count();
    eprintln!(
        "real logins: {ok} of {} succeeded ({real:?}); junk: {} sent, {} refused by WeChat, \
         {refused_junk} refused by the budget; {} code2Session calls",
        real.len(),
        junk.len(),
        junk.iter().filter(|s| **s == 400).count(),
        server.upstream_calls()
    );
    assert!(
        ok * 100 >= real.len() * 95,
        "{ok} of {} real logins succeeded: {real:?}",
        real.len()
    );
    // The attack was real: the junk outran the budget, and the budget held.
    assert!(junk.len() >= 900, "{} junk codes sent", junk.len());
    assert!(refused_junk >= 200, "{refused_junk} junk codes over budget");
    assert!(junk.iter().all(|s| *s == 400 || *s == 503), "{junk:?}");
    let calls = server.upstream_calls();
    let most = u64::from(BUDGET) * (ATTACK.as_secs() + 3);
    assert!(calls <= most, "{calls} code2Session calls, budget {most}");
}

#[tokio::test]
async fn a_claims_table_full_of_junk_makes_room_for_real_logins_and_says_so_while_it_cannot() {
    // WeChat answers a second late, so the junk's claims stay pending for that long.
    let upstream = Upstream::start("wxclaimsfull0001", "claims-full-secret").await;
    let port = upstream.base.rsplit(':').next().unwrap().parse().unwrap();
    let link = SlowLink::start(port, Duration::from_secs(1)).await;
    let base = format!("http://127.0.0.1:{}", link.port);
    let config = workspace_tests::wechat_config(
        upstream.sim.appid(),
        upstream.sim.secret(),
        &base,
        &[
            "--max-claims",
            "20",
            "--upstream-rate-per-second",
            "0",
            "--login-rate-per-minute",
            "0",
        ],
    );
    let server = Arc::new(TestServer::start_with(config, None).await);

    // Twenty junk codes at once fill the table with pending claims.
    let mut junk = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let server = server.clone();
        junk.spawn(async move { server.post_login(&junk_code()).await.status().as_u16() });
    }
    // WeChat has heard all twenty (its answers are on the slow way back): every claim is
    // pending.
    let deadline = Instant::now() + Duration::from_millis(800);
    while upstream.sim.stats().code2session_calls < 20 {
        assert!(Instant::now() < deadline, "the junk never reached WeChat");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // One more is told the table is full, not that the store is down.
    let full = server.post_login(&junk_code()).await;
    let retry_after: u64 = full.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&retry_after), "{retry_after}");
    assert_error(full, 503, ErrorCode::LoginsInFlight).await;
    // A real user meets the same answer meanwhile: nothing pending may be evicted.
    let code = upstream.sim.issue_code("early-bird");
    assert_error(
        server.post_login(&code).await,
        503,
        ErrorCode::LoginsInFlight,
    )
    .await;
    let junk = junk.join_all().await;
    assert!(junk.iter().all(|s| *s == 400), "{junk:?}");

    // Twenty refused codes now fill the table; real logins take their places.
    for n in 0..5 {
        let code = upstream.sim.issue_code(&format!("real-{n}"));
        let response = server.post_login(&code).await;
        assert_eq!(response.status(), 200, "real login {n}");
    }
    // The early bird's code was never exchanged, so it still logs in.
    assert_eq!(server.post_login(&code).await.status(), 200);
}
