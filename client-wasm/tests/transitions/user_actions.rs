//! What the user or the app asks for: `ensure_login` and forced logins, before launch and
//! during a check or a login, and forgetting the token.

use client_wasm::{Config, Effect, WaiterResult};

use crate::common::{EXPIRY_KEY, Host, LOGOUT_KEY, TOKEN_KEY, actions, login_ok, states, tokens};
use crate::{T0, WEEK_S, checking, host, logged_in, ok, read, remove};

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
fn a_configured_device_goes_with_every_login_cut_to_the_servers_limit() {
    let model = "iPhone 15 Pro Max<iPhone16,2>".repeat(5);
    let mut h = Host::new(Config {
        device: [model.as_str(), " / iOS 18.1"].concat(),
        ..Config::default()
    });
    h.launch();
    h.ensure(1);
    h.answer_reads();
    h.complete_login("t1", 3600);
    // A forced login (the fresh one an account deletion asks for) names it too.
    h.login_requested();
    h.wx_ok();
    let posted = h.log.iter().filter_map(|e| match e {
        Effect::HttpRequest { path, body, .. } if path == "/login" => body.clone(),
        _ => None,
    });
    let mut logins = 0;
    for body in posted {
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        let device = body["device"].as_str().unwrap();
        assert_eq!(device.chars().count(), shared::MAX_DEVICE_CHARS);
        assert!(model.starts_with(device));
        logins += 1;
    }
    assert_eq!(logins, 2);
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
