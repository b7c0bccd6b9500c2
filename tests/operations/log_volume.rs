//! A flood of refusals from many addresses: the log, at the default level, stays a handful of
//! lines, while the metrics count every refusal; and an attacker cycling through more
//! addresses than the login limiter tracks still meets the limit.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use workspace_tests::{ServerProcess, Upstream, free_port, prometheus::Exposition};

const BINARY: &str = env!("CARGO_BIN_EXE_login-server");

/// Requests in flight at once: enough to make a flood, few enough for any file limit.
const IN_FLIGHT: usize = 32;

/// The `n`th loopback address a client comes from, none of them 127.0.0.1.
fn attacker(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x7f01_0000 | n))
}

/// `per_address` junk logins from each of `addresses` loopback addresses, `IN_FLIGHT`
/// addresses at a time; how many answers had each status.
async fn flood(
    server: &Arc<ServerProcess>,
    addresses: std::ops::Range<u32>,
    per_address: u32,
) -> BTreeMap<u16, u32> {
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    for n in addresses {
        let slot = slots.clone().acquire_owned().await.unwrap();
        let server = server.clone();
        tasks.spawn(async move {
            let _slot = slot;
            let http = reqwest::Client::builder()
                .local_address(attacker(n))
                .build()
                .unwrap();
            let mut statuses = Vec::new();
            for k in 0..per_address {
                let code = format!("junk-code-{n}-{k}");
                statuses.push(server.login(&http, &code).await.status().as_u16());
            }
            statuses
        });
    }
    let mut counts = BTreeMap::new();
    while let Some(statuses) = tasks.join_next().await {
        for status in statuses.unwrap() {
            *counts.entry(status).or_default() += 1;
        }
    }
    counts
}

#[tokio::test]
async fn a_flood_of_refusals_writes_a_few_lines_and_the_metrics_count_every_one() {
    const ADDRESSES: u32 = 300;
    const PER_ADDRESS: u32 = 10;
    let upstream = Upstream::start("wxlogvolume00001", "log-volume-secret-0001").await;
    let metrics_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let metrics = metrics_addr.to_string();
    let server = Arc::new(
        ServerProcess::for_app(
            BINARY,
            &upstream,
            "memory",
            &[
                // The default level, which the production unit uses.
                ("RUST_LOG", "info"),
                ("METRICS_ADDR", &metrics),
                // One login per address, then 429s; one WeChat call a second, then 503s.
                ("LOGIN_RATE_PER_MINUTE", "1"),
                ("LOGIN_RATE_BURST", "1"),
                ("UPSTREAM_RATE_PER_SECOND", "1"),
            ],
        )
        .await,
    );
    let log = server.log();
    let lines_before = log.lines().len();

    let started = Instant::now();
    let mut counts = flood(&server, 0..ADDRESSES, PER_ADDRESS).await;
    let took = started.elapsed();

    // A real login, once the budget has a call again: its line comes after every line the
    // flood caused, so once it is read they all are. Each try from an address of its own,
    // under the per-address limit.
    let deadline = Instant::now() + Duration::from_secs(10);
    for attempt in ADDRESSES.. {
        let http = reqwest::Client::builder()
            .local_address(attacker(attempt))
            .build()
            .unwrap();
        let status = server
            .login(&http, &upstream.sim.issue_code("real-rachel"))
            .await
            .status()
            .as_u16();
        *counts.entry(status).or_default() += 1;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "only the budget may refuse it");
        assert!(Instant::now() < deadline, "the budget never had a call");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    log.wait_for(Duration::from_secs(10), |line| {
        line.contains("login user_id=")
    })
    .expect("the real login's line");

    let rate_limited = counts.get(&429).copied().unwrap_or(0);
    let over_budget = counts.get(&503).copied().unwrap_or(0);
    eprintln!("{counts:?} in {took:?}");
    assert_eq!(
        rate_limited,
        ADDRESSES * (PER_ADDRESS - 1),
        "all but each address's first: {counts:?}"
    );
    assert!(
        over_budget >= 200,
        "most first logins found the budget spent: {counts:?}"
    );

    let written = log.lines()[lines_before..].to_vec();
    assert!(
        written.len() < 100,
        "{} lines for {} refusals:\n{}",
        written.len(),
        rate_limited + over_budget,
        written.join("\n")
    );
    assert!(
        written
            .iter()
            .any(|l| l.contains("WARN") && l.contains("upstream_unavailable")),
        "the operator still sees that the budget refuses logins:\n{}",
        written.join("\n")
    );

    let exposition = Exposition::scrape(metrics_addr).await;
    let logins = |outcome| exposition.count("wxlogin_logins_total", &[("outcome", outcome)]);
    let errors = |error| exposition.count("wxlogin_errors_total", &[("error", error)]);
    assert_eq!(logins("rate_limited"), f64::from(rate_limited));
    assert_eq!(errors("rate_limited"), f64::from(rate_limited));
    assert_eq!(logins("upstream_unavailable"), f64::from(over_budget));
    assert_eq!(errors("upstream_unavailable"), f64::from(over_budget));
    assert_eq!(
        exposition.count("wxlogin_rate_limited_total", &[("limit", "login")]),
        f64::from(rate_limited)
    );
    assert_eq!(
        exposition.count("wxlogin_rate_limited_total", &[("limit", "upstream")]),
        f64::from(over_budget)
    );
}

#[tokio::test]
async fn cycling_through_twice_the_tracked_clients_still_meets_the_login_limit() {
    const CAP: u32 = 50;
    const ROUNDS: u32 = 4;
    let upstream = Upstream::start("wxlimitercap0001", "limiter-cap-secret-0001").await;
    let cap = CAP.to_string();
    let server = Arc::new(
        ServerProcess::for_app(
            BINARY,
            &upstream,
            "memory",
            &[
                ("LOGIN_RATE_PER_MINUTE", "1"),
                ("LOGIN_RATE_BURST", "2"),
                ("LOGIN_RATE_MAX_CLIENTS", &cap),
            ],
        )
        .await,
    );
    // Each round goes through all 100 addresses; the rate refills one login a minute, so the
    // run sees (nearly) no refill.
    let mut served = 0;
    let mut refused = 0;
    for _ in 0..ROUNDS {
        let counts = flood(&server, 0..2 * CAP, 1).await;
        refused += counts.get(&429).copied().unwrap_or(0);
        served += counts
            .iter()
            .filter(|(status, _)| **status != 429)
            .map(|(_, n)| n)
            .sum::<u32>();
    }
    // The tracked addresses' bursts and the overflow's, as the run is well under a minute;
    // forgetting spent addresses would have served all 400.
    assert!(
        served <= (CAP + 1) * 2,
        "{served} served, {refused} refused"
    );
    assert_eq!(served + refused, 2 * CAP * ROUNDS);
}
