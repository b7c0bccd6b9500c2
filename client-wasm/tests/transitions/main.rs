//! Scripted tests: one per transition or rule, driven through the fake host (which also checks
//! the global invariants at every step). One module per group of rules; the hosts and effects
//! that several groups start from or expect are here.

#[path = "../common/mod.rs"]
mod common;

mod api_unauthorized;
mod checklogin;
mod documentation;
mod launch;
mod login;
mod logout;
mod time;
mod user_actions;

use client_wasm::{Config, Effect, StorageValue, WaiterResult};
use common::{EXPIRY_KEY, Host, LOGOUT_KEY, TOKEN_KEY, text};

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

/// A first round that fails with this answer to its `POST /login`.
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
