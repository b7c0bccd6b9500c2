//! Scripted tests: one per transition or rule, driven through the fake host (which also checks
//! the global invariants at every step).

mod common;

use client_wasm::{Config, Effect, Event, Method, StateName, StorageValue, WaiterResult};
use common::{
    EXPIRY_KEY, Host, LOGOUT_KEY, TOKEN_KEY, actions, error_body, first_form, login_ok, states,
    text, tokens,
};

const T0: u64 = 1_000_000;
const WEEK_S: u64 = 7 * 24 * 3600;

fn host() -> Host {
    Host::new(Config::default())
}

/// Removing the token: both keys.
fn remove() -> [Effect; 2] {
    [TOKEN_KEY, EXPIRY_KEY].map(|key| Effect::RemoveStorage { key: key.into() })
}

/// Writing a token in the current form.
fn write(token: &str, expires_at_ms: u64) -> [Effect; 2] {
    [
        Effect::WriteStorage {
            key: TOKEN_KEY.into(),
            value: text(token),
        },
        Effect::WriteStorage {
            key: EXPIRY_KEY.into(),
            value: StorageValue::Number(expires_at_ms),
        },
    ]
}

fn read(key: &str) -> Effect {
    Effect::ReadStorage { key: key.into() }
}

/// Storing the pending logouts.
fn pending(tokens: &[&str]) -> Effect {
    Effect::WriteStorage {
        key: LOGOUT_KEY.into(),
        value: StorageValue::Tokens(tokens.iter().map(|t| (*t).to_owned()).collect()),
    }
}

/// No logout pending any more.
fn no_pending() -> Effect {
    Effect::RemoveStorage {
        key: LOGOUT_KEY.into(),
    }
}

fn check_request(h: &Host) -> &common::Request {
    let [req] = &h.requests[..] else {
        panic!("expected one request: {:?}", h.requests)
    };
    assert_eq!(req.path, "/checklogin");
    req
}

fn ok(token: &str) -> WaiterResult {
    WaiterResult::Ok {
        token: token.into(),
    }
}

fn err_code(result: &WaiterResult) -> &str {
    match result {
        WaiterResult::Err(f) => &f.code,
        WaiterResult::Ok { .. } => panic!("expected an error, got {result:?}"),
    }
}

/// A host launched and logged in with token `t1` (fresh login, no stored token).
fn logged_in() -> Host {
    let mut h = host();
    h.launch();
    h.answer_reads();
    h.complete_login("t1", WEEK_S);
    assert_eq!(h.state(), "logged-in");
    h
}

/// A host launched with `t0` stored (current form, an hour left), its check outstanding.
fn checking() -> Host {
    let mut h = host();
    h.put_token("t0", Some(T0 + 3_600_000));
    h.launch();
    h.answer_reads();
    assert_eq!(h.state(), "checking");
    h
}

/// A host launched with the old app's bare `seed` token stored, its check outstanding.
fn checking_seed() -> Host {
    let mut h = host();
    h.put(TOKEN_KEY, text("seed"));
    h.launch();
    h.answer_reads();
    assert_eq!(h.state(), "checking");
    h
}

// ---- launch and storage ------------------------------------------------------------------------

#[test]
fn launch_reads_the_three_configured_keys() {
    let mut h = Host::new(Config {
        storage_key: "sess".into(),
        expiry_storage_key: "sess_exp".into(),
        logout_storage_key: "sess_out".into(),
        ..Config::default()
    });
    let fx = h.launch();
    assert_eq!(
        actions(&fx),
        [read("sess"), read("sess_exp"), read("sess_out")]
    );
    assert_eq!(states(&fx), ["reading-storage"]);
    // A second launch does nothing.
    assert!(h.launch().is_empty());
}

#[test]
fn the_reads_are_awaited_in_any_order() {
    for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1]] {
        let mut h = host();
        h.put_token("t0", Some(T0 + 3_600_000));
        h.ensure(1);
        h.reads = order.iter().map(|&i| h.reads[i].clone()).collect();
        for _ in 0..2 {
            let fx = h.answer_read();
            assert!(fx.is_empty(), "{order:?}: waits for the other keys: {fx:?}");
            assert!(!h.resolved.contains_key(&1));
        }
        let fx = h.answer_read();
        assert_eq!(tokens(&fx), [Some("t0")]);
        assert_eq!(h.resolved[&1], ok("t0"));
        assert_eq!(h.token_expires_at_ms, Some(T0 + 3_600_000));
    }
}

#[test]
fn no_usable_stored_token_goes_straight_to_login_without_a_check() {
    // (stored token value, stored expiry, whether the junk is cleaned up)
    let table: [(Option<&str>, Option<StorageValue>, bool); 9] = [
        (None, None, false),
        (Some(""), None, false),
        (Some("   "), None, false),
        (Some("{not json"), None, true),
        (Some(r#"{"token":""}"#), None, true),
        (Some(r#"{"token":"has space"}"#), None, true),
        (Some("two words"), None, true),
        (Some("two words"), Some(StorageValue::Number(T0 * 2)), true),
        // An expiry whose token is gone (other code removed `token` itself).
        (None, Some(StorageValue::Number(T0 * 2)), true),
    ];
    for (value, expiry, cleaned) in table {
        let mut h = host();
        if let Some(v) = value {
            h.put(TOKEN_KEY, text(v));
        }
        if let Some(e) = expiry.clone() {
            h.put(EXPIRY_KEY, e);
        }
        h.launch();
        let fx = h.answer_reads();
        let mut expected = vec![Effect::WxLogin];
        if cleaned {
            expected.splice(0..0, remove());
        }
        assert_eq!(actions(&fx), expected, "{value:?} {expiry:?}");
        assert_eq!(states(&fx), ["getting-code"]);
        assert!(tokens(&fx).is_empty(), "no token was ever held");
        assert!(h.requests.is_empty(), "{value:?}: no request before a code");
    }
}

#[test]
fn a_stored_token_is_held_at_once_and_checked_in_the_background() {
    let mut h = host();
    h.put_token("t0", Some(T0 + 3_600_000));
    h.launch();
    h.ensure(1);
    let fx = h.answer_reads();
    assert_eq!(states(&fx), ["checking"]);
    assert_eq!(tokens(&fx), [Some("t0")]);
    // The caller that asked before storage was read gets the token with it, not after the
    // check: a launch never waits for a round trip.
    assert_eq!(h.resolved[&1], ok("t0"));
    let req = check_request(&h).clone();
    assert_eq!(req.method, Method::Get);
    assert_eq!(req.bearer.as_deref(), Some("t0"));
    assert_eq!(req.body, None);
    assert_eq!(h.wx_pending, 0);
    // Callers during the check are answered at once too.
    let fx = h.ensure(2);
    assert_eq!(
        fx,
        [Effect::ResolveWaiters {
            waiters: vec![2],
            result: ok("t0"),
        }]
    );
    let snapshot = h.machine.snapshot();
    assert_eq!(snapshot.token_expires_at_ms, Some(T0 + 3_600_000));
    assert!(!snapshot.verified);
    // Current form already: nothing is rewritten.
    assert!(
        !fx.iter()
            .chain(&h.log)
            .any(|e| matches!(e, Effect::WriteStorage { .. }))
    );
}

#[test]
fn the_old_apps_bare_token_is_held_checked_and_kept() {
    let mut h = checking_seed();
    assert_eq!(h.token.as_deref(), Some("seed"));
    assert_eq!(h.token_expires_at_ms, None);
    let req = h.take("/checklogin");
    assert_eq!(req.bearer.as_deref(), Some("seed"));
    h.ensure(1);
    assert_eq!(h.resolved[&1], ok("seed"));
    let fx = h.respond(&req, 200, r#"{"is_login":true}"#, None);
    assert_eq!(states(&fx), ["logged-in"]);
    assert!(tokens(&fx).is_empty(), "the same token");
    let snapshot = h.machine.snapshot();
    assert!(snapshot.verified);
    assert_eq!(snapshot.token_expires_at_ms, None);
    // Storage is left as it was: rewriting it would invent an expiry.
    assert_eq!(h.storage[TOKEN_KEY], text("seed"));
    assert!(!h.storage.contains_key(EXPIRY_KEY));
}

#[test]
fn older_stored_forms_are_read_and_rewritten_in_the_current_form() {
    let expiry = T0 + 3_600_000;
    // (what `token` held, what the expiry key held, the expiry read)
    let table: [(String, Option<StorageValue>, Option<u64>); 5] = [
        (first_form("t0", expiry), None, Some(expiry)),
        (r#"{"token":"t0"}"#.into(), None, None),
        (r#""t0""#.into(), None, None),
        (
            r#""t0""#.into(),
            Some(StorageValue::Number(expiry)),
            Some(expiry),
        ),
        // A junk expiry is dropped; the token's expiry is then unknown.
        ("t0".into(), Some(text("soon")), None),
    ];
    for (stored, stored_expiry, expires_at_ms) in table {
        let mut h = host();
        h.put(TOKEN_KEY, text(&stored));
        if let Some(e) = stored_expiry {
            h.put(EXPIRY_KEY, e);
        }
        h.launch();
        let fx = h.answer_reads();
        let rewrite = match expires_at_ms {
            Some(ms) => write("t0", ms).to_vec(),
            None => vec![
                Effect::WriteStorage {
                    key: TOKEN_KEY.into(),
                    value: text("t0"),
                },
                Effect::RemoveStorage {
                    key: EXPIRY_KEY.into(),
                },
            ],
        };
        assert_eq!(actions(&fx)[..2], rewrite[..], "{stored}");
        assert_eq!(tokens(&fx), [Some("t0")], "{stored}");
        assert_eq!(h.token_expires_at_ms, expires_at_ms, "{stored}");
        assert_eq!(check_request(&h).bearer.as_deref(), Some("t0"));
        assert_eq!(h.wx_pending, 0, "{stored}: no login");
    }
}

#[test]
fn an_expiry_stored_as_text_is_read_like_a_number() {
    let mut h = host();
    h.put(TOKEN_KEY, text("t0"));
    h.put(EXPIRY_KEY, text(&(T0 + 3_600_000).to_string()));
    h.launch();
    let fx = h.answer_reads();
    assert_eq!(tokens(&fx), [Some("t0")]);
    assert_eq!(h.token_expires_at_ms, Some(T0 + 3_600_000));
    assert!(
        !fx.iter().any(|e| matches!(
            e,
            Effect::WriteStorage { .. } | Effect::RemoveStorage { .. }
        )),
        "a string-only storage's form is current"
    );
}

#[test]
fn an_expired_or_nearly_expired_stored_token_is_not_trusted() {
    for expires_at in [T0 - 1, T0, T0 + 59_999] {
        for first in [false, true] {
            let mut h = host();
            if first {
                h.put(TOKEN_KEY, text(&first_form("old", expires_at)));
            } else {
                h.put_token("old", Some(expires_at));
            }
            h.launch();
            let fx = h.answer_reads();
            let [r1, r2] = remove();
            assert_eq!(actions(&fx), [r1, r2, Effect::WxLogin], "{expires_at}");
            assert!(tokens(&fx).is_empty(), "never held");
            assert!(h.requests.is_empty());
        }
    }
}

#[test]
fn storage_answers_for_other_keys_or_states_are_ignored() {
    let mut h = host();
    h.launch();
    let fx = h.send(Event::StorageRead {
        key: "other".into(),
        value: Some("x".into()),
        now_ms: T0,
    });
    assert!(fx.is_empty());
    assert_eq!(h.state(), "reading-storage");
    let mut h = logged_in();
    for key in [TOKEN_KEY, EXPIRY_KEY] {
        let fx = h.send(Event::StorageRead {
            key: key.into(),
            value: Some("x".into()),
            now_ms: T0,
        });
        assert!(fx.is_empty());
    }
}

// ---- checklogin --------------------------------------------------------------------------------

#[test]
fn a_confirmed_token_becomes_verified_without_other_effects() {
    let mut h = checking();
    h.ensure(1);
    let req = h.take("/checklogin");
    let fx = h.respond(&req, 200, r#"{"is_login":true}"#, None);
    assert!(actions(&fx).is_empty(), "{fx:?}");
    assert!(tokens(&fx).is_empty());
    let snapshot = h.machine.snapshot();
    assert_eq!(snapshot.state, StateName::LoggedIn);
    assert!(snapshot.verified);
    assert_eq!(snapshot.token_expires_at_ms, Some(T0 + 3_600_000));
    assert_eq!(h.resolved[&1], ok("t0"));
}

#[test]
fn a_rejected_token_is_dropped_and_replaced_once_in_the_background() {
    for (status, body) in [
        (200, r#"{"is_login":false}"#.to_owned()),
        (401, error_body("unauthorized")),
    ] {
        let mut h = checking();
        h.ensure(1);
        assert_eq!(h.resolved[&1], ok("t0"), "handed out before the check");
        let req = h.take("/checklogin");
        let fx = h.respond(&req, status, &body, None);
        let [r1, r2] = remove();
        assert_eq!(actions(&fx), [r1, r2, Effect::WxLogin], "{status}");
        assert_eq!(tokens(&fx), [None]);
        assert_eq!(states(&fx), ["getting-code"]);
        // Nobody waits; the host hears of the new token through token_changed.
        let fx = h.complete_login("t1", WEEK_S);
        assert_eq!(tokens(&fx), [Some("t1")]);
        assert!(
            !fx.iter()
                .any(|e| matches!(e, Effect::ResolveWaiters { .. }))
        );
        // The fresh token is trusted as issued: no second check.
        assert!(h.requests.is_empty());
        assert_eq!(h.state(), "logged-in");
        h.ensure(2);
        assert_eq!(h.resolved[&2], ok("t1"));
    }
}

#[test]
fn a_check_that_cannot_be_done_keeps_the_token_unverified() {
    let outcomes: [(&str, Option<(u16, String)>); 5] = [
        ("network", None),
        ("503", Some((503, error_body("store_unavailable")))),
        ("500", Some((500, error_body("internal")))),
        ("502 html", Some((502, "<html>bad gateway</html>".into()))),
        ("200 junk", Some((200, "{}".into()))),
    ];
    for (name, outcome) in outcomes {
        let mut h = checking();
        let req = h.take("/checklogin");
        let fx = match outcome {
            None => h.network_fail(&req),
            Some((status, body)) => h.respond(&req, status, &body, Some(1)),
        };
        assert_eq!(states(&fx), ["logged-in"], "{name}");
        assert!(tokens(&fx).is_empty(), "{name}: token kept");
        h.ensure(1);
        assert_eq!(h.resolved[&1], ok("t0"), "{name}");
        assert!(!h.machine.snapshot().verified, "{name}");
        assert_eq!(h.storage[TOKEN_KEY], text("t0"), "{name}: token kept");
        assert_eq!(h.wx_pending, 0, "{name}: no login");
        assert!(h.timers.is_empty(), "{name}: no retry");
    }
}

#[test]
fn a_token_expiring_during_the_check_is_replaced_before_anyone_gets_it() {
    let mut h = checking();
    let check = h.take("/checklogin");
    h.now_ms = T0 + 3_600_000;
    let fx = h.ensure(1);
    assert_eq!(actions(&fx), [Effect::WxLogin]);
    assert_eq!(tokens(&fx), [None]);
    assert!(!h.resolved.contains_key(&1));
    assert!(
        h.respond(&check, 200, r#"{"is_login":true}"#, None)
            .is_empty(),
        "the abandoned check's answer is stale"
    );
    h.complete_login("t1", WEEK_S);
    assert_eq!(h.resolved[&1], ok("t1"));
}

// ---- login -------------------------------------------------------------------------------------

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

fn fail_post(
    status: u16,
    body: impl Into<String>,
    retry_after: Option<u32>,
) -> impl Fn(&mut Host) -> Vec<Effect> {
    let body: String = body.into();
    move |h: &mut Host| {
        h.wx_ok();
        let req = h.take("/login");
        h.respond(&req, status, &body, retry_after)
    }
}

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

// ---- user actions ------------------------------------------------------------------------------

#[test]
fn asking_before_launch_launches() {
    let mut h = host();
    let fx = h.ensure(1);
    assert_eq!(
        actions(&fx),
        [read(TOKEN_KEY), read(EXPIRY_KEY), read(LOGOUT_KEY)]
    );
    assert!(
        h.launch().is_empty(),
        "the real launch comes late and changes nothing"
    );
    h.answer_reads();
    h.complete_login("t1", WEEK_S);
    assert_eq!(h.resolved[&1], ok("t1"));
}

#[test]
fn a_configured_appid_goes_with_every_login_for_a_server_of_several_apps() {
    let mut h = Host::new(Config {
        appid: "wx1234567890abcdef".into(),
        ..Config::default()
    });
    h.launch();
    h.ensure(1);
    h.answer_reads();
    h.wx_ok();
    let req = h.take("/login");
    assert_eq!(
        req.body.as_deref(),
        Some(r#"{"code":"code1","appid":"wx1234567890abcdef"}"#)
    );
}

#[test]
fn login_requested_forces_a_fresh_login_but_joins_one_in_flight() {
    let mut h = logged_in();
    let fx = h.login_requested();
    assert_eq!(actions(&fx), [Effect::WxLogin]);
    assert_eq!(tokens(&fx), [None], "the old token is no longer handed out");
    assert!(h.login_requested().is_empty(), "joins the wx.login");
    h.wx_ok();
    assert!(h.login_requested().is_empty(), "joins the POST /login");
    let req = h.take("/login");
    let fx = h.respond(&req, 200, &login_ok("t2", WEEK_S), None);
    assert_eq!(tokens(&fx), [Some("t2")]);
    h.ensure(1);
    assert_eq!(h.resolved[&1], ok("t2"));

    // From a backoff it skips the wait with a full budget; the old timer is stale.
    let mut h = host();
    h.launch();
    h.answer_reads();
    h.wx_fail();
    assert_eq!(h.state(), "retry-waiting");
    let fx = h.login_requested();
    assert_eq!(actions(&fx), [Effect::WxLogin]);
    assert_eq!(h.machine.snapshot().attempt, 1);
    let fx = h.fire_next_timer();
    assert!(fx.is_empty(), "stale timer");
}

#[test]
fn a_forced_login_abandons_a_check_in_flight() {
    let mut h = checking();
    let check = h.take("/checklogin");
    let fx = h.login_requested();
    assert_eq!(tokens(&fx), [None]);
    assert_eq!(h.state(), "getting-code");
    assert!(
        h.respond(&check, 200, r#"{"is_login":true}"#, None)
            .is_empty()
    );
    h.complete_login("t1", WEEK_S);
    h.ensure(1);
    assert_eq!(h.resolved[&1], ok("t1"));
}

#[test]
fn logout_is_local_at_once_and_keeps_the_token_until_the_server_confirms() {
    for (status, body) in [
        (204, String::new()),
        (200, String::new()),
        // The server does not know the token: ended all the same.
        (401, error_body("unauthorized")),
    ] {
        let mut h = logged_in();
        let fx = h.logout();
        let [r1, r2] = remove();
        // Stored for its revoke before the token leaves storage, and before it is sent.
        assert_eq!(actions(&fx)[..3], [pending(&["t1"]), r1, r2], "{status}");
        assert_eq!(actions(&fx).len(), 4);
        assert_eq!(tokens(&fx), [None]);
        assert_eq!(states(&fx), ["logged-out"]);
        let req = h.take("/logout");
        assert_eq!(req.bearer.as_deref(), Some("t1"));
        assert_eq!(h.stored_pending(), ["t1"]);
        assert!(!h.storage.contains_key(TOKEN_KEY) && !h.storage.contains_key(EXPIRY_KEY));
        assert_eq!(h.machine.pending_logouts(), ["t1"]);

        let fx = h.respond(&req, status, &body, None);
        assert_eq!(fx, [no_pending()], "{status}");
        assert!(h.storage.is_empty());
        assert!(h.requests.is_empty() && h.timers.is_empty());
        assert!(h.machine.pending_logouts().is_empty());
        assert_eq!(h.state(), "logged-out");
        // Not sticky: a caller logs in again.
        let fx = h.ensure(1);
        assert_eq!(actions(&fx), [Effect::WxLogin]);
    }
}

#[test]
fn an_unconfirmed_revoke_is_kept_and_sent_again_after_a_backoff() {
    // (name, the answer or none, its Retry-After, the delay before the next attempt)
    type Outcome = (&'static str, Option<(u16, String)>, Option<u32>, u64);
    let outcomes: [Outcome; 8] = [
        ("network", None, None, 500),
        (
            "503",
            Some((503, error_body("store_unavailable"))),
            None,
            500,
        ),
        (
            "503 + Retry-After",
            Some((503, error_body("store_unavailable"))),
            Some(2),
            2_000,
        ),
        (
            "Retry-After past the cap",
            Some((503, error_body("store_unavailable"))),
            Some(3_600),
            30_000,
        ),
        ("500", Some((500, error_body("internal"))), None, 500),
        ("502 html", Some((502, "<html/>".into())), None, 500),
        ("429", Some((429, error_body("rate_limited"))), None, 500),
        ("404", Some((404, "not found".into())), None, 500),
    ];
    for (name, outcome, retry_after, delay) in outcomes {
        let mut h = logged_in();
        h.logout();
        let req = h.take("/logout");
        let fx = match &outcome {
            None => h.network_fail(&req),
            Some((status, body)) => h.respond(&req, *status, body, retry_after),
        };
        let [Effect::StartTimer { delay_ms, .. }] = fx[..] else {
            panic!("{name}: expected only a timer, got {fx:?}")
        };
        assert_eq!(delay_ms, delay, "{name}");
        assert_eq!(h.stored_pending(), ["t1"], "{name}: kept");
        assert_eq!(h.state(), "logged-out", "{name}");
        assert_eq!(h.wx_pending, 0, "{name}: no login");
        let fx = h.fire_next_timer();
        assert!(states(&fx).is_empty(), "{name}: the login is not involved");
        let again = h.take("/logout");
        assert_eq!(again.bearer.as_deref(), Some("t1"), "{name}");
        h.respond(&again, 204, "", None);
        assert!(h.storage.is_empty(), "{name}");
    }
}

#[test]
fn revoke_retries_double_up_to_the_cap_and_never_give_up() {
    let mut h = logged_in();
    h.logout();
    let mut delays = Vec::new();
    for _ in 0..10 {
        let req = h.take("/logout");
        let fx = h.network_fail(&req);
        let [Effect::StartTimer { delay_ms, .. }] = fx[..] else {
            panic!("expected a timer, got {fx:?}")
        };
        delays.push(delay_ms);
        h.fire_next_timer();
    }
    assert_eq!(
        delays,
        [
            500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000, 30_000
        ]
    );
    let req = h.take("/logout");
    h.respond(&req, 204, "", None);
    assert!(h.storage.is_empty());
    // A later failure starts the backoff afresh.
    h.ensure(1);
    h.complete_login("t2", WEEK_S);
    h.logout();
    let req = h.take("/logout");
    let fx = h.network_fail(&req);
    assert!(matches!(fx[..], [Effect::StartTimer { delay_ms: 500, .. }]));
}

#[test]
fn a_revoke_interrupted_by_the_network_is_sent_at_the_next_launch() {
    let mut h = logged_in();
    h.logout();
    let req = h.take("/logout");
    h.network_fail(&req);
    assert_eq!(h.timers.len(), 1);
    // The app is closed before the backoff ends.
    h.relaunch();
    h.launch();
    let fx = h.answer_reads();
    let revoke = Effect::HttpRequest {
        request: 1,
        method: Method::Post,
        path: "/logout".into(),
        bearer: Some("t1".into()),
        body: None,
    };
    // No token stored: a login starts, and the revoke goes out beside it.
    assert_eq!(actions(&fx), [Effect::WxLogin, revoke]);
    assert_eq!(h.stored_pending(), ["t1"], "nothing rewritten");
    let req = h.take("/logout");
    assert_eq!(h.respond(&req, 204, "", None), [no_pending()]);
    assert!(h.machine.pending_logouts().is_empty());
    h.ensure(1);
    h.complete_login("t2", WEEK_S);
    assert_eq!(h.resolved[&1], ok("t2"));
}

#[test]
fn a_new_login_goes_ahead_while_a_revoke_is_pending_and_its_token_is_not_revoked() {
    let mut h = logged_in();
    h.logout();
    let req = h.take("/logout");
    h.network_fail(&req);
    // The user logs in again while t1's revoke waits out its backoff: nothing waits for it.
    let fx = h.ensure(1);
    assert_eq!(actions(&fx), [Effect::WxLogin]);
    h.wx_ok();
    let login = h.take("/login");
    let fx = h.respond(&login, 200, &login_ok("t2", WEEK_S), None);
    assert_eq!(h.resolved[&1], ok("t2"));
    assert_eq!(tokens(&fx), [Some("t2")]);
    // The server answered the login: t1's revoke goes out at once, not after its backoff.
    let req = h.take("/logout");
    assert_eq!(req.bearer.as_deref(), Some("t1"));
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::HttpRequest { path, .. } if path == "/logout"))
    );
    assert_eq!(h.stored_pending(), ["t1"]);
    assert_eq!(h.storage[TOKEN_KEY], text("t2"));
    // Its confirmation touches nothing of the new session.
    let fx = h.respond(&req, 204, "", None);
    assert_eq!(fx, [no_pending()]);
    assert_eq!(h.state(), "logged-in");
    assert_eq!(h.storage[TOKEN_KEY], text("t2"));
    h.ensure(2);
    assert_eq!(h.resolved[&2], ok("t2"));
}

#[test]
fn logouts_pile_up_in_order_one_request_at_a_time() {
    let mut h = logged_in();
    h.logout();
    let first = h.take("/logout");
    h.ensure(1);
    h.complete_login("t2", WEEK_S);
    let fx = h.logout();
    assert_eq!(actions(&fx)[0], pending(&["t1", "t2"]));
    assert!(h.requests.is_empty(), "t1's revoke is still in flight");
    let fx = h.respond(&first, 204, "", None);
    // t1 confirmed: t2's goes out right after.
    assert_eq!(actions(&fx)[0], pending(&["t2"]));
    let second = h.take("/logout");
    assert_eq!(second.bearer.as_deref(), Some("t2"));
    h.respond(&second, 204, "", None);
    assert!(h.storage.is_empty());
}

#[test]
fn past_the_cap_the_oldest_pending_logout_is_dropped() {
    let old: Vec<String> = (1..=8).map(|n| format!("p{n}")).collect();
    let mut h = host();
    let all: Vec<&str> = old.iter().map(String::as_str).collect();
    h.put_pending(StorageValue::Tokens(old.clone()), &all);
    h.launch();
    h.answer_reads();
    let in_flight = h.take("/logout");
    assert_eq!(in_flight.bearer.as_deref(), Some("p1"));
    h.complete_login("t1", WEEK_S);
    let fx = h.logout();
    let mut kept: Vec<&str> = all[1..].to_vec();
    kept.push("t1");
    assert_eq!(actions(&fx)[0], pending(&kept), "p1 dropped, t1 kept");
    // p1's request was already out; its answer finds nothing to remove and moves on.
    let fx = h.respond(&in_flight, 204, "", None);
    let next = h.take("/logout");
    assert_eq!(next.bearer.as_deref(), Some("p2"));
    assert!(!fx.iter().any(|e| matches!(
        e,
        Effect::WriteStorage { .. } | Effect::RemoveStorage { .. }
    )));
}

#[test]
fn stored_pending_logouts_are_read_tidied_and_sent() {
    // (what the key held, what the machine keeps, whether it rewrites the key)
    let table: [(StorageValue, &[&str], bool); 5] = [
        (
            StorageValue::Tokens(vec!["p1".into(), "p2".into()]),
            &["p1", "p2"],
            false,
        ),
        // A string-only storage keeps the array's JSON text.
        (text(r#"["p1","p2"]"#), &["p1", "p2"], false),
        (text(r#"["p1","","p1","a b",7,"p2"]"#), &["p1", "p2"], true),
        (text("junk"), &[], true),
        (StorageValue::Number(5), &[], true),
    ];
    for (stored, kept, rewritten) in table {
        let mut h = host();
        h.put_pending(stored.clone(), kept);
        h.launch();
        let fx = h.answer_reads();
        let writes: Vec<Effect> = actions(&fx)
            .into_iter()
            .filter(|e| {
                matches!(
                    e,
                    Effect::WriteStorage { .. } | Effect::RemoveStorage { .. }
                )
            })
            .collect();
        let expected = match (rewritten, kept.is_empty()) {
            (false, _) => vec![],
            (true, true) => vec![no_pending()],
            (true, false) => vec![pending(kept)],
        };
        assert_eq!(writes, expected, "{stored:?}");
        let sent: Vec<Option<String>> = h
            .requests
            .iter()
            .filter(|r| r.path == "/logout")
            .map(|r| r.bearer.clone())
            .collect();
        let first = kept.first().map(|t| (*t).to_owned());
        assert_eq!(sent, first.into_iter().map(Some).collect::<Vec<_>>());
    }
}

#[test]
fn a_stored_token_pending_its_logout_is_not_held_again() {
    // The app died between storing the logout and removing the token: the user logged out.
    let mut h = host();
    h.put_token("t0", Some(T0 + 3_600_000));
    h.put_pending(StorageValue::Tokens(vec!["t0".into()]), &["t0"]);
    h.ensure(1);
    let fx = h.answer_reads();
    let [r1, r2] = remove();
    assert_eq!(actions(&fx)[..3], [r1, r2, Effect::WxLogin]);
    assert_eq!(h.take("/logout").bearer.as_deref(), Some("t0"));
    assert!(tokens(&fx).is_empty(), "t0 is never held");
    assert!(!h.resolved.contains_key(&1), "nor handed out");
    h.complete_login("t1", WEEK_S);
    assert_eq!(h.resolved[&1], ok("t1"));
}

#[test]
fn revokes_wait_until_the_stored_token_is_read() {
    // A revoke confirmed while the stored token it names is still unread would make that token
    // look live to the next launch, should the app die before reading it.
    let mut h = host();
    h.put_token("t0", Some(T0 + 3_600_000));
    h.put_pending(StorageValue::Tokens(vec!["t0".into()]), &["t0"]);
    h.launch();
    h.reads.rotate_right(1);
    assert_eq!(h.reads[0], LOGOUT_KEY);
    let fx = h.answer_read();
    assert!(fx.is_empty(), "{fx:?}");
    let fx = h.answer_reads();
    let [r1, r2] = remove();
    assert_eq!(actions(&fx)[..3], [r1, r2, Effect::WxLogin]);
    assert_eq!(h.take("/logout").bearer.as_deref(), Some("t0"));
    assert!(tokens(&fx).is_empty(), "t0 is never held");
}

#[test]
fn a_login_or_logout_before_launch_launches() {
    let three_reads = [read(TOKEN_KEY), read(EXPIRY_KEY), read(LOGOUT_KEY)];
    let mut h = host();
    h.put_token("t0", Some(T0 + 3_600_000));
    h.put_pending(
        StorageValue::Tokens(vec!["t0".into(), "p1".into()]),
        &["t0", "p1"],
    );
    let fx = h.login_requested();
    let mut expected = three_reads.to_vec();
    expected.push(Effect::WxLogin);
    assert_eq!(actions(&fx), expected);
    assert!(h.launch().is_empty(), "launched once");
    let fx = h.answer_reads();
    // The login made the stored token moot; being logged out of, it is removed all the same.
    let [r1, r2] = remove();
    assert_eq!(actions(&fx)[..2], [r1, r2]);
    assert!(tokens(&fx).is_empty());
    assert_eq!(h.take("/logout").bearer.as_deref(), Some("t0"));
    assert_eq!(h.state(), "getting-code");

    let mut h = host();
    let fx = h.logout();
    let mut expected = three_reads.to_vec();
    expected.extend(remove());
    assert_eq!(actions(&fx), expected);
    assert!(h.launch().is_empty());
    assert_eq!(h.state(), "logged-out");
}

#[test]
fn a_logout_before_the_pending_logouts_are_read_waits_for_them() {
    let mut h = host();
    h.put_pending(StorageValue::Tokens(vec!["p1".into()]), &["p1"]);
    h.launch();
    // The token's keys are answered; the pending logouts' read is not (yet).
    h.answer_read();
    h.answer_read();
    assert_eq!(h.reads, [LOGOUT_KEY]);
    h.login_requested();
    h.complete_login("t1", WEEK_S);
    let fx = h.logout();
    // Writing now would overwrite p1; sending would send before storing.
    assert_eq!(actions(&fx), remove());
    assert!(h.requests.is_empty());
    let fx = h.answer_read();
    assert_eq!(actions(&fx)[0], pending(&["p1", "t1"]));
    assert_eq!(h.take("/logout").bearer.as_deref(), Some("p1"));
}

#[test]
fn logout_during_a_login_fails_waiters_and_drops_the_late_token() {
    let mut h = host();
    h.launch();
    h.ensure(1);
    h.answer_reads();
    h.wx_ok();
    let login = h.take("/login");
    let fx = h.logout();
    let [r1, r2] = remove();
    assert_eq!(
        actions(&fx),
        [
            r1,
            r2,
            Effect::ResolveWaiters {
                waiters: vec![1],
                result: WaiterResult::Err(client_wasm::Failure::new("logged_out", "logged out")),
            }
        ],
        "no token held, so no /logout"
    );
    assert!(tokens(&fx).is_empty(), "none was held");
    assert!(
        h.respond(&login, 200, &login_ok("late", WEEK_S), None)
            .is_empty()
    );
    assert_eq!(h.state(), "logged-out");
    assert!(h.storage.is_empty());
}

#[test]
fn a_new_login_adopts_the_unanswered_wx_login_of_an_abandoned_one() {
    let mut h = host();
    h.launch();
    h.answer_reads();
    assert_eq!(h.wx_pending, 1);
    h.logout();
    let fx = h.ensure(1);
    assert_eq!(states(&fx), ["getting-code"]);
    assert!(
        actions(&fx).is_empty(),
        "no second wx.login while one is unanswered"
    );
    h.wx_ok();
    let req = h.take("/login");
    h.respond(&req, 200, &login_ok("t1", WEEK_S), None);
    assert_eq!(h.resolved[&1], ok("t1"));
}

#[test]
fn forget_token_drops_it_locally_only() {
    let mut h = logged_in();
    let fx = h.forget();
    assert_eq!(actions(&fx), remove());
    assert_eq!(tokens(&fx), [None]);
    assert_eq!(states(&fx), ["logged-out"]);
    assert!(h.requests.is_empty(), "the server is not told");
    h.ensure(1);
    h.complete_login("t2", WEEK_S);
    assert_eq!(h.resolved[&1], ok("t2"));

    // During a check: no token, nobody waits (the token was handed out already).
    let mut h = checking();
    h.ensure(1);
    let check = h.take("/checklogin");
    let fx = h.forget();
    assert_eq!(actions(&fx), remove());
    assert_eq!(tokens(&fx), [None]);
    assert_eq!(states(&fx), ["logged-out"]);
    assert!(
        h.respond(&check, 200, r#"{"is_login":true}"#, None)
            .is_empty()
    );
    h.ensure(2);
    h.complete_login("t1", WEEK_S);
    assert_eq!(h.resolved[&2], ok("t1"));

    // While storage is read, a caller that asked gets a fresh login instead.
    let mut h = host();
    h.put_token("t0", Some(T0 + 3_600_000));
    h.ensure(1);
    let fx = h.forget();
    let [r1, r2] = remove();
    assert_eq!(actions(&fx), [r1, r2, Effect::WxLogin]);
    assert!(h.answer_reads().is_empty(), "the reads' answers are stale");
    h.complete_login("t1", WEEK_S);
    assert_eq!(h.resolved[&1], ok("t1"));
}

// ---- business-API 401s -------------------------------------------------------------------------

#[test]
fn an_api_401_replaces_the_token_once() {
    let mut h = logged_in();
    let fx = h.unauthorized(Some("t1"));
    let [r1, r2] = remove();
    assert_eq!(actions(&fx), [r1, r2, Effect::WxLogin]);
    assert_eq!(tokens(&fx), [None]);
    // More 401s of calls made with t1 while the login runs, or after it, are ignored: any
    // number of concurrent calls failing alike cause one login.
    for _ in 0..4 {
        assert!(h.unauthorized(Some("t1")).is_empty());
    }
    h.ensure(1);
    let fx = h.complete_login("t2", WEEK_S);
    assert_eq!(tokens(&fx), [Some("t2")]);
    assert_eq!(h.resolved[&1], ok("t2"));
    assert!(h.unauthorized(Some("t1")).is_empty());
    assert_eq!(h.log.iter().filter(|e| **e == Effect::WxLogin).count(), 2);
}

#[test]
fn a_fresh_token_refused_at_once_is_kept_instead_of_looping() {
    let mut h = logged_in();
    h.unauthorized(Some("t1"));
    h.complete_login("t2", WEEK_S);
    // The token issued for that 401 is refused too, moments later: the server (or that API)
    // rejects whatever it issues. No new login; the token stays, marked refused.
    h.now_ms += 1_000;
    let fx = h.unauthorized(Some("t2"));
    assert!(actions(&fx).is_empty(), "{fx:?}");
    assert!(tokens(&fx).is_empty(), "kept");
    assert_eq!(states(&fx), ["logged-in"]);
    let snapshot = h.machine.snapshot();
    assert_eq!(snapshot.last_error.unwrap().code, "unauthorized");
    assert_eq!(h.wx_pending, 0);
    // Callers keep getting it (their requests then fail with their own 401), and more 401s
    // change nothing: no login per call.
    for w in 1..=3 {
        h.ensure(w);
        assert_eq!(h.resolved[&w], ok("t2"));
        assert!(h.unauthorized(None).is_empty());
    }
    assert_eq!(h.storage[TOKEN_KEY], text("t2"));
    // Once the guard time has passed, a 401 is a plain expiry again: one more login.
    h.now_ms += 60_000;
    let fx = h.unauthorized(Some("t2"));
    let [r1, r2] = remove();
    assert_eq!(actions(&fx), [r1, r2, Effect::WxLogin]);
    let fx = h.complete_login("t3", WEEK_S);
    assert_eq!(states(&fx), ["logged-in"]);
    assert_eq!(
        h.machine.snapshot().last_error,
        None,
        "a fresh token is not refused"
    );
}

#[test]
fn an_api_401_long_after_the_relogin_is_a_plain_expiry() {
    let mut h = logged_in();
    h.unauthorized(None);
    h.complete_login("t2", WEEK_S);
    h.now_ms += 60_000;
    let fx = h.unauthorized(Some("t2"));
    let [r1, r2] = remove();
    assert_eq!(actions(&fx), [r1, r2, Effect::WxLogin]);
}

#[test]
fn an_api_401_during_a_check_abandons_it() {
    let mut h = checking_seed();
    let check = h.take("/checklogin");
    let fx = h.unauthorized(Some("seed"));
    let [r1, r2] = remove();
    assert_eq!(actions(&fx), [r1, r2, Effect::WxLogin]);
    assert_eq!(tokens(&fx), [None]);
    assert!(
        h.respond(&check, 401, &error_body("unauthorized"), None)
            .is_empty(),
        "the check's own verdict comes too late to start a second login"
    );
    h.complete_login("t1", WEEK_S);
    assert_eq!(h.log.iter().filter(|e| **e == Effect::WxLogin).count(), 1);
}

#[test]
fn an_api_401_without_a_held_token_is_ignored() {
    for state in ["unknown", "logged-out", "failed", "getting-code"] {
        let mut h = host();
        match state {
            "logged-out" => {
                h.logout();
            }
            "failed" => {
                h.launch();
                h.answer_reads();
                fail_post(403, error_body("high_risk_user"), None)(&mut h);
            }
            "getting-code" => {
                h.launch();
                h.answer_reads();
            }
            _ => {}
        }
        assert_eq!(h.state(), state);
        let fx = h.unauthorized(None);
        assert!(fx.is_empty(), "{state}");
    }
}

// ---- time --------------------------------------------------------------------------------------

#[test]
fn every_event_is_accepted_with_its_time() {
    // The events that carried no time before: each still does its job with `now_ms`.
    let mut h = logged_in();
    let fx = h.login_requested();
    assert_eq!(actions(&fx), [Effect::WxLogin]);
    h.wx_ok();
    let req = h.take("/login");
    let fx = h.network_fail(&req);
    assert!(matches!(actions(&fx)[..], [Effect::StartTimer { .. }]));
    h.fire_next_timer();
    h.complete_login("t2", WEEK_S);
    let fx = h.forget();
    assert_eq!(actions(&fx), remove());
    let fx = h.logout();
    assert_eq!(actions(&fx), remove());
}

// ---- documentation -----------------------------------------------------------------------------

/// Every JSON example in the crate docs parses as what it claims to be, and re-serialises to
/// the same JSON, so the docs the JS host is written against cannot drift from the code.
#[test]
fn documented_json_examples_are_exact() {
    let docs = include_str!("../src/lib.rs");
    let examples: Vec<&str> = docs
        .lines()
        .filter_map(|l| l.strip_prefix("//! "))
        .filter(|l| l.starts_with("{\"type\""))
        .collect();
    let (mut events, mut effects) = (0, 0);
    for line in examples {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        if let Ok(event) = Event::from_json(line) {
            assert_eq!(serde_json::to_value(&event).unwrap(), value, "{line}");
            events += 1;
        } else {
            let effect: Effect =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(serde_json::to_value(&effect).unwrap(), value, "{line}");
            assert_eq!(
                client_wasm::effects_to_json(std::slice::from_ref(&effect)),
                ["[", line, "]"].concat()
            );
            effects += 1;
        }
    }
    assert_eq!((events, effects), (16, 19));
    // The config example: the lines of the first ```json block after "Config".
    let json = docs
        .lines()
        .skip_while(|l| !l.starts_with("//! Config"))
        .skip_while(|l| *l != "//! ```json")
        .skip(1)
        .take_while(|l| *l != "//! ```")
        .map(|l| l.trim_start_matches("//!"))
        .collect::<String>();
    let config: Config = serde_json::from_str(&json).unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(Config::from_json(&json).unwrap(), Config::default());
}
