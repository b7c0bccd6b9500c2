//! Logging out, and revoking the token on the server until it confirms: the pending logouts
//! in storage, their retries and order, and how they meet a launch or a new login.

use client_wasm::{Effect, Method, StorageValue};

use crate::common::{
    EXPIRY_KEY, LOGOUT_KEY, TOKEN_KEY, actions, error_body, login_ok, states, text, tokens,
};
use crate::{T0, WEEK_S, err_code, host, logged_in, no_pending, ok, pending, read, remove};

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
fn a_session_the_server_ended_is_logged_out_of_without_a_revoke() {
    let mut h = logged_in();
    let fx = h.session_ended("t1");
    // The token's keys go, as with a logout; nothing is kept or sent for it.
    assert_eq!(actions(&fx), remove());
    assert_eq!(tokens(&fx), [None]);
    assert_eq!(states(&fx), ["logged-out"]);
    assert!(h.requests.is_empty() && h.timers.is_empty());
    assert!(h.storage.is_empty());
    assert!(h.machine.pending_logouts().is_empty());
    // Not sticky either.
    let fx = h.ensure(1);
    assert_eq!(actions(&fx), [Effect::WxLogin]);
    h.complete_login("t2", WEEK_S);
    assert_eq!(h.resolved[&1], ok("t2"));
}

#[test]
fn a_session_ended_while_another_token_is_held_revokes_that_one() {
    // The host ended t0's sessions, but a login replaced t0 meanwhile: the user still asked
    // to be logged out, so t1 goes the way of any logout.
    let mut h = logged_in();
    let fx = h.session_ended("t0");
    let [r1, r2] = remove();
    assert_eq!(actions(&fx)[..3], [pending(&["t1"]), r1, r2]);
    assert_eq!(states(&fx), ["logged-out"]);
    let req = h.take("/logout");
    assert_eq!(req.bearer.as_deref(), Some("t1"));
    assert_eq!(h.respond(&req, 204, "", None), [no_pending()]);
}

#[test]
fn a_session_ended_during_a_login_abandons_it_and_answers_its_callers() {
    let mut h = host();
    h.launch();
    h.answer_reads();
    h.ensure(1);
    assert_eq!(h.state(), "getting-code");
    let fx = h.session_ended("t0");
    assert_eq!(states(&fx), ["logged-out"]);
    assert_eq!(err_code(&h.resolved[&1]), "logged_out");
    // The login's late answers are stale: its token is never held.
    h.wx_ok();
    assert!(
        h.requests.is_empty(),
        "no POST /login for an abandoned login"
    );
    assert_eq!(h.state(), "logged-out");
}

#[test]
fn a_session_ended_leaves_other_pending_logouts_to_be_sent() {
    let mut h = logged_in();
    h.logout();
    let req = h.take("/logout");
    h.network_fail(&req);
    h.ensure(1);
    h.complete_login("t2", WEEK_S);
    let revoke = h.take("/logout");
    assert_eq!(revoke.bearer.as_deref(), Some("t1"));
    h.session_ended("t2");
    assert_eq!(h.stored_pending(), ["t1"], "t2 is not added, t1 stays");
    assert_eq!(h.respond(&revoke, 204, "", None), [no_pending()]);
    assert!(h.storage.is_empty());
}
