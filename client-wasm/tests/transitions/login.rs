//! Logging in: one code per `POST /login`, one login for every waiter; retries with new codes,
//! backoff, and giving up.

use client_wasm::{Config, Effect, Event, Method, StateName, StorageValue, WaiterResult};

use crate::common::{
    EXPIRY_KEY, Host, TOKEN_KEY, actions, error_body, login_ok, states, text, tokens,
};
use crate::{T0, WEEK_S, err_code, fail_post, host, logged_in, ok, write};

#[test]
fn a_login_exchanges_one_code_and_stores_the_token_with_its_expiry() {
    let mut h = host();
    h.launch();
    h.ensure(1);
    h.answer_reads();
    let fx = h.wx_ok();
    assert_eq!(states(&fx), ["exchanging-code"]);
    let req = h.take("/login");
    assert_eq!(req.method, Method::Post);
    assert_eq!(req.bearer, None);
    assert_eq!(req.body.as_deref(), Some(r#"{"code":"code1"}"#));
    h.now_ms += 250;
    let fx = h.respond(&req, 200, &login_ok("t1", 7200), None);
    let expires_at = T0 + 250 + 7_200_000;
    let [w1, w2] = write("t1", expires_at);
    assert_eq!(
        actions(&fx),
        [
            w1,
            w2,
            Effect::ResolveWaiters {
                waiters: vec![1],
                result: ok("t1"),
            },
        ]
    );
    assert_eq!(tokens(&fx), [Some("t1")]);
    assert_eq!(h.token_expires_at_ms, Some(expires_at));
    // The bare token under `token`, the expiry as a number: what other code reads.
    assert_eq!(h.storage[TOKEN_KEY], text("t1"));
    assert_eq!(h.storage[EXPIRY_KEY], StorageValue::Number(expires_at));
    let snapshot = h.machine.snapshot();
    assert_eq!(snapshot.state, StateName::LoggedIn);
    assert_eq!(snapshot.token_expires_at_ms, Some(expires_at));
    assert!(snapshot.verified);
}

#[test]
fn concurrent_callers_share_one_login() {
    let mut h = host();
    h.launch();
    h.ensure(1);
    h.answer_reads();
    for w in 2..=4 {
        let fx = h.ensure(w);
        assert!(fx.is_empty(), "waiter {w} joins silently");
    }
    h.wx_ok();
    h.ensure(5);
    let req = h.take("/login");
    let fx = h.respond(&req, 200, &login_ok("t1", WEEK_S), None);
    let resolved: Vec<_> = fx
        .iter()
        .filter(|e| matches!(e, Effect::ResolveWaiters { .. }))
        .collect();
    assert_eq!(
        resolved,
        [&Effect::ResolveWaiters {
            waiters: vec![1, 2, 3, 4, 5],
            result: ok("t1"),
        }]
    );
    assert_eq!(
        h.log.iter().filter(|e| **e == Effect::WxLogin).count(),
        1,
        "one wx.login for five callers"
    );
}

#[test]
fn a_logged_in_machine_answers_at_once() {
    let mut h = logged_in();
    let fx = h.ensure(9);
    assert_eq!(
        fx,
        [Effect::ResolveWaiters {
            waiters: vec![9],
            result: ok("t1"),
        }]
    );
}

#[test]
fn an_expired_held_token_is_replaced_before_anyone_gets_it() {
    let mut h = logged_in();
    h.now_ms += WEEK_S * 1000;
    let fx = h.ensure(1);
    assert_eq!(actions(&fx), [Effect::WxLogin]);
    assert!(!h.resolved.contains_key(&1));
    h.complete_login("t2", WEEK_S);
    assert_eq!(h.resolved[&1], ok("t2"));
}

#[test]
fn a_spent_code_gets_a_new_code_at_once() {
    for code in ["invalid_code", "code_used"] {
        let mut h = host();
        h.launch();
        h.ensure(1);
        h.answer_reads();
        h.wx_ok();
        let req = h.take("/login");
        let fx = h.respond(&req, 400, &error_body(code), None);
        assert_eq!(actions(&fx), [Effect::WxLogin], "{code}");
        let snapshot = h.machine.snapshot();
        assert_eq!(snapshot.attempt, 2);
        assert_eq!(snapshot.last_error.unwrap().code, code);
        h.wx_ok();
        let req = h.take("/login");
        assert_eq!(req.code().as_deref(), Some("code2"));
        h.respond(&req, 200, &login_ok("t1", WEEK_S), None);
        assert_eq!(h.resolved[&1], ok("t1"));
    }
}

/// A way for the first round to fail, played against the host.
type Fail = Box<dyn Fn(&mut Host) -> Vec<Effect>>;

#[test]
fn transient_failures_back_off_then_retry_with_a_new_code() {
    let network: fn(&mut Host) -> Vec<Effect> = |h| {
        h.wx_ok();
        let req = h.take("/login");
        h.network_fail(&req)
    };
    let wx: fn(&mut Host) -> Vec<Effect> = |h| h.wx_fail();
    let empty_code: fn(&mut Host) -> Vec<Effect> = |h| {
        h.wx_pending = 0;
        h.send(Event::WxLoginSucceeded {
            code: String::new(),
            now_ms: h.now_ms,
        })
    };
    let table: Vec<(&str, Fail, u64, &str)> = vec![
        ("network", Box::new(network), 500, "network_error"),
        ("wx.login", Box::new(wx), 500, "wx_login_failed"),
        ("empty code", Box::new(empty_code), 500, "wx_login_failed"),
        (
            "503",
            Box::new(fail_post(503, error_body("upstream_unavailable"), None)),
            500,
            "upstream_unavailable",
        ),
        (
            "504",
            Box::new(fail_post(504, error_body("upstream_timeout"), None)),
            500,
            "upstream_timeout",
        ),
        (
            "500",
            Box::new(fail_post(500, error_body("internal"), None)),
            500,
            "internal",
        ),
        (
            "502 html",
            Box::new(fail_post(502, "<html/>", None)),
            500,
            "bad_response",
        ),
        (
            "429 + Retry-After",
            Box::new(fail_post(429, error_body("rate_limited"), Some(5))),
            5_000,
            "rate_limited",
        ),
        (
            "short Retry-After",
            Box::new(fail_post(503, error_body("store_unavailable"), Some(0))),
            500,
            "store_unavailable",
        ),
    ];
    for (name, fail, delay, code) in table {
        let mut h = host();
        h.launch();
        h.ensure(1);
        h.answer_reads();
        let fx = fail(&mut h);
        let [Effect::StartTimer { timer, delay_ms }] = actions(&fx)[..] else {
            panic!("{name}: expected one timer, got {fx:?}")
        };
        assert_eq!(delay_ms, delay, "{name}");
        let snapshot = h.machine.snapshot();
        assert_eq!(snapshot.state, StateName::RetryWaiting, "{name}");
        assert_eq!(snapshot.attempt, 1);
        assert_eq!(snapshot.last_error.unwrap().code, code, "{name}");
        assert!(!h.resolved.contains_key(&1), "{name}: still waiting");
        // A wrong timer does nothing; the right one starts round 2 with a new code.
        assert!(
            h.send(Event::TimerFired {
                timer: timer + 100,
                now_ms: h.now_ms,
            })
            .is_empty()
        );
        let fx = h.fire_next_timer();
        assert_eq!(actions(&fx), [Effect::WxLogin], "{name}");
        assert_eq!(h.machine.snapshot().attempt, 2);
        h.complete_login("t1", WEEK_S);
        assert_eq!(h.resolved[&1], ok("t1"), "{name}");
    }
}

#[test]
fn delays_double_and_the_last_attempt_fails_every_waiter() {
    let mut h = host();
    h.launch();
    h.ensure(1);
    h.answer_reads();
    h.ensure(2);
    let mut delays = Vec::new();
    for attempt in 1..=5 {
        assert_eq!(h.machine.snapshot().attempt, attempt);
        h.wx_ok();
        let req = h.take("/login");
        let fx = h.network_fail(&req);
        if let Some(Effect::StartTimer { delay_ms, .. }) = fx.first() {
            delays.push(*delay_ms);
            h.fire_next_timer();
        }
    }
    assert_eq!(delays, [500, 1_000, 2_000, 4_000]);
    assert_eq!(h.state(), "failed");
    for w in [1, 2] {
        assert_eq!(err_code(&h.resolved[&w]), "network_error");
    }
    let WaiterResult::Err(f) = &h.resolved[&1] else {
        unreachable!()
    };
    assert!(
        f.message.starts_with("gave up after the last attempt"),
        "{}",
        f.message
    );
    assert!(h.timers.is_empty() && h.wx_pending == 0 && h.requests.is_empty());
}

#[test]
fn repeated_spent_codes_also_run_out_of_attempts() {
    let mut h = Host::new(Config {
        max_attempts: 2,
        ..Config::default()
    });
    h.launch();
    h.ensure(1);
    h.answer_reads();
    for _ in 0..2 {
        h.wx_ok();
        let req = h.take("/login");
        h.respond(&req, 409, &error_body("code_used"), None);
    }
    assert_eq!(h.state(), "failed");
    assert_eq!(err_code(&h.resolved[&1]), "code_used");
}

#[test]
fn a_retry_after_beyond_the_cap_fails_at_once() {
    let mut h = host();
    h.launch();
    h.ensure(1);
    h.answer_reads();
    fail_post(429, error_body("rate_limited"), Some(3600))(&mut h);
    assert_eq!(h.state(), "failed");
    assert_eq!(err_code(&h.resolved[&1]), "rate_limited");
    assert!(h.timers.is_empty());
}

#[test]
fn permanent_errors_fail_at_once() {
    let table = [
        (403, error_body("high_risk_user"), "high_risk_user"),
        (502, error_body("upstream_error"), "upstream_error"),
        (400, error_body("invalid_request"), "invalid_request"),
        (404, "not found".to_owned(), "bad_response"),
        (200, "{}".to_owned(), "bad_response"),
        (200, login_ok("", 60), "bad_response"),
        (200, login_ok("a b", 60), "bad_response"),
    ];
    for (status, body, code) in table {
        let mut h = host();
        h.launch();
        h.ensure(1);
        h.answer_reads();
        h.ensure(2);
        let fx = fail_post(status, &body, None)(&mut h);
        assert_eq!(states(&fx), ["failed"], "{status} {body}");
        assert_eq!(err_code(&h.resolved[&1]), code);
        assert_eq!(h.resolved[&1], h.resolved[&2]);
        assert!(h.timers.is_empty() && h.storage.is_empty());
        assert_eq!(h.machine.snapshot().last_error.unwrap().code, code);
    }
}

#[test]
fn after_failing_a_new_caller_starts_afresh() {
    let mut h = host();
    h.launch();
    h.answer_reads();
    fail_post(403, error_body("high_risk_user"), None)(&mut h);
    assert_eq!(h.state(), "failed");
    let fx = h.ensure(1);
    assert_eq!(actions(&fx), [Effect::WxLogin]);
    let snapshot = h.machine.snapshot();
    assert_eq!((snapshot.attempt, snapshot.last_error), (1, None));
    h.complete_login("t1", WEEK_S);
    assert_eq!(h.resolved[&1], ok("t1"));
}
