//! Memory per stored session: what a million SQLite sessions take on disk (and what the server
//! holds in memory with that file open), and what a Redis session takes in Redis's memory.
//!
//! Each session has the shape a login gives: a fresh token's hash as the key, the dev app's
//! AppID, an openid as the simulator makes them, no unionid (apps not bound to an Open Platform
//! account get none), a 16-byte session_key sealed under the data key, a week to live. Only
//! the sessions are counted: the per-user record a login also writes (the user's last few
//! sealed session_keys) is per user, not per session.
//!
//! - [`sqlite`]: bytes on disk per session, and the server's RSS with that file open.
//! - [`redis`]: Redis's `used_memory` per session, written through the store's own code.
//! - [`accounts`]: per account and per session at a million accounts, on both.

pub mod accounts;
pub mod redis;
pub mod sqlite;

use server::{
    DEV_APPID,
    data_keys::{DataKeys, SessionKey},
    store::{Session, unix_now},
    token::Token,
    wechat::simulator::Simulator,
};

/// Sessions live this long (the server's default `TOKEN_TTL`).
const TTL: i64 = 7 * 24 * 3600;

/// The `i`-th of `n` sessions, and the token it is stored under. Creation times are spread
/// over the last three days in the order of `i`, as logins arrive, so the `expires_at` index
/// grows at its end as it does in service.
pub(crate) fn session(i: u64, n: u64, keys: &DataKeys, sim: &Simulator) -> (Token, Session) {
    let token = Token::generate();
    let openid = sim.openid_for(&format!("user-{i}"));
    // The shape of WeChat's session_key: 16 random bytes in base64 (24 characters). A
    // token's text supplies the randomness; only the length reaches the sealed form.
    let raw = format!("{}==", &Token::generate().as_str()[..22]);
    let session_key = keys.seal(&SessionKey::new(raw), DEV_APPID, &openid);
    let created_at = unix_now() - ((n - i) as i64 * 3 * 24 * 3600) / n as i64;
    let session = Session {
        appid: DEV_APPID.to_owned(),
        openid,
        unionid: None,
        session_key,
        created_at,
        expires_at: created_at + TTL,
        user_id: server::UserId::generate(),
        kind: server::store::SessionKind::Miniprogram,
        // What a phone's login records: its address and what it runs on.
        ip: Some("203.0.113.7".to_owned()),
        device: Some("iPhone 15 Pro / iOS 18.1".to_owned()),
    };
    (token, session)
}

/// The simulator the openids are made by (its secret plays no part in them).
pub(crate) fn simulator() -> Simulator {
    Simulator::new(DEV_APPID, "bench")
}
