//! Time comes with the events: each does its job with its `now_ms`.

use client_wasm::Effect;

use crate::common::actions;
use crate::{WEEK_S, logged_in, remove};

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
