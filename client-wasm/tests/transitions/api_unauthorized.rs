//! A business API's 401 (`api_unauthorized`): one new login per dead token, and the guard
//! against a login loop when fresh tokens are refused too.

use client_wasm::Effect;

use crate::common::{TOKEN_KEY, actions, error_body, states, text, tokens};
use crate::{WEEK_S, checking_seed, fail_post, host, logged_in, ok, remove};

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
