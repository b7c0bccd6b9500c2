//! `GET /checklogin`: what each answer to the background check of a stored token does.

use client_wasm::{Effect, StateName};

use crate::common::{TOKEN_KEY, actions, error_body, states, text, tokens};
use crate::{T0, WEEK_S, checking, ok, remove};

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
