//! Launch and storage: the three reads, and what a stored token, in each of its forms, leads
//! to.

use client_wasm::{Config, Effect, Event, Method, StorageValue};

use crate::common::{EXPIRY_KEY, Host, TOKEN_KEY, actions, first_form, states, text, tokens};
use crate::{T0, check_request, checking_seed, host, logged_in, ok, read, remove, write};

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
