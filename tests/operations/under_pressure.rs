//! One instance under pressure: login floods, double taps, a WeChat outage.

use std::time::Duration;

use shared::{ErrorCode, LoginResponse};
use workspace_tests::{TestServer, assert_error, retry_after_secs, wechat_config};

#[tokio::test]
async fn a_login_burst_beyond_the_limit_gets_429_while_checklogin_is_unaffected() {
    let server =
        TestServer::start(&["--login-rate-per-minute", "6", "--login-rate-burst", "3"]).await;
    let token = server.login().await.token; // one of the three

    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..5 {
        let response = server.post_login("0a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P").await;
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            assert_error(response, 429, ErrorCode::RateLimited).await;
        }
    }
    assert_eq!(
        statuses[..2],
        [400, 400],
        "the rest of the burst: a bad code, but served"
    );
    assert!(statuses[2..].iter().all(|s| *s == 429), "{statuses:?}");
    let retry_after: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=10).contains(&retry_after), "{retry_after}");

    for _ in 0..50 {
        assert!(
            server.check_bearer(&token).await,
            "checklogin is not limited"
        );
    }
}

#[tokio::test]
async fn concurrent_logins_with_one_code_get_one_token_from_one_exchange() {
    let server = TestServer::start(&[]).await;
    let code = server.wx_login().await;
    let attempts = (0..16).map(|_| server.post_login(&code));
    let responses = futures_join_all(attempts).await;
    let mut tokens = Vec::new();
    for response in responses {
        assert_eq!(response.status(), 200);
        tokens.push(response.json::<LoginResponse>().await.unwrap().token);
    }
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    assert_eq!(server.upstream_calls(), 1);

    // A retry after the fact (the answer was lost on a flaky network) gets the same token.
    let late = server.post_login(&code).await;
    assert_eq!(late.json::<LoginResponse>().await.unwrap().token, tokens[0]);
    assert_eq!(server.upstream_calls(), 1);
}

#[tokio::test]
async fn a_refused_code_is_refused_for_every_concurrent_caller_with_one_call() {
    let server = TestServer::start(&[]).await;
    let code = server.wx_login_as("risky-rita").await;
    let responses = futures_join_all((0..8).map(|_| server.post_login(&code))).await;
    for response in responses {
        assert_eq!(response.status(), 403);
    }
    assert_eq!(server.upstream_calls(), 1);
}

#[tokio::test]
async fn a_wechat_outage_opens_the_breaker_and_logins_fail_fast_with_503() {
    let base = workspace_tests::closed_port_base();
    let cfg = wechat_config(
        "wxreal",
        "s",
        &base,
        &["--breaker-threshold", "2", "--breaker-cooldown", "30s"],
    );
    let server = TestServer::start_with(cfg, None).await;
    for i in 0..2 {
        let response = server.post_login(&format!("code{i}")).await;
        assert_eq!(response.status(), 502, "attempt {i} reaches for WeChat");
    }
    let response = server.post_login("code2").await;
    let after = retry_after_secs(&response);
    assert_error(response, 503, ErrorCode::UpstreamUnavailable).await;
    assert!((1..=30).contains(&after), "{after}");
}

#[tokio::test]
async fn the_breaker_closes_again_once_wechat_answers() {
    // The dev simulator is WeChat here; busy answers count as upstream failures.
    let server = TestServer::start(&[
        "--wechat-busy-retries",
        "0",
        "--breaker-threshold",
        "1",
        "--breaker-cooldown",
        "300ms",
    ])
    .await;
    server.state.simulator.as_ref().unwrap().push_faults([-1]);
    let first = server.post_login(&server.wx_login().await).await;
    assert_eq!(first.status(), 503, "busy");
    let code = server.wx_login().await;
    let fast = server.post_login(&code).await;
    assert_eq!(fast.status(), 503, "breaker open");
    assert_eq!(server.upstream_calls(), 1, "the open breaker spared WeChat");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let trial = server.post_login(&code).await;
    assert_eq!(
        trial.status(),
        200,
        "the trial call goes through and closes it"
    );
}

#[tokio::test]
async fn a_flood_of_well_formed_junk_codes_spends_no_more_than_the_upstream_budget() {
    // The per-client limit is off: the junk comes from everywhere at once.
    let server = TestServer::start(&[
        "--login-rate-per-minute",
        "0",
        "--upstream-rate-per-second",
        "3",
    ])
    .await;
    let mut statuses = Vec::new();
    for n in 0..20 {
        let response = server.post_login(&format!("junk{n:028}")).await;
        let status = response.status().as_u16();
        if status == 503 {
            let retry_after = retry_after_secs(&response);
            assert!((1..=2).contains(&retry_after), "{retry_after}");
            assert_error(response, 503, ErrorCode::UpstreamUnavailable).await;
        }
        statuses.push(status);
    }
    let asked = server.upstream_calls();
    // One client: its first code in good standing, the rest suspect once WeChat refused it, so
    // the reserved third of the second's worth stays unspent. Plus what refilled meanwhile.
    assert!((2..=6).contains(&asked), "{asked} calls for {statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 400).count() as u64,
        asked,
        "each call WeChat answered refused the junk: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 400 || *s == 503),
        "{statuses:?}"
    );
    // The budget spared WeChat, not the breaker's count of failures: a real code still logs in
    // once the budget has refilled.
    let code = server.wx_login().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let response = server.post_login(&code).await;
        if response.status() == 200 {
            break;
        }
        assert_eq!(response.status(), 503);
        assert!(std::time::Instant::now() < deadline, "the budget refills");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `join_all` without pulling in the futures crate: spawn-free, polled together.
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, fut) in out.iter_mut().zip(set.iter_mut()) {
            if slot.is_none() {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|v| v.expect("all ready")).collect()
}
