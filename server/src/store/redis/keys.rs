//! The names of the Redis store's keys: every key it reads or writes is named here. An app's
//! keys sit under `{REDIS_KEY_PREFIX}wxlogin:<appid>:`, which keeps apps and environments
//! sharing one Redis out of each other's data; accounts, which gather one person across the
//! team's apps, sit under `{REDIS_KEY_PREFIX}wxlogin:{accounts}:`, one set per prefix:
//!
//! | key | holds | written by |
//! |---|---|---|
//! | `…s:<hex sha256(token)>` | a session, JSON, its session_key sealed; Redis TTL = its life | login |
//! | `…c:<hex>` | a login-code claim (see [`ClaimStore`]), `SET NX` with a lease | login |
//! | `…u:{<openid>}:keys` | the user's last session_keys, sealed, newest first (a list) | login |
//! | `…u:{<openid>}:phone` | the user's phone number, JSON | `/wx/phone` |
//! | `…t`, `…t:lock` | the app's sealed access token, and the lock of its refresh | `/wx/*` |
//! | `…a:<user_id>:sessions` | the account's sessions stored by this app's store: token hashes (hex) scored by `expires_at`; TTL past the last | login |
//! | `…{accounts}:id` | identity → user_id (a hash; fields `m:<appid>:<openid>`, `u:<unionid>`) | login |
//! | `…{accounts}:a:<user_id>` | the account: `created_at`, `disabled`, `phone` (JSON), `phone_number`, `v` (a hash) | login, `/wx/phone`, operators |
//! | `…{accounts}:a:<user_id>:ids` | the account's identities, as the `id` hash names them (a set) | login |
//! | `…{accounts}:phone` | phone number → user_id (a hash): a number belongs to one account | `/wx/phone` |
//! | `…{accounts}:outbox` | outbox entry id → the entry, JSON, user_ids only (a hash) | every account change |
//! | `…{accounts}:outbox:due` | outbox entry ids by when they are due, unix ms (a sorted set) | the same, webhooks |
//! | `…{accounts}:outbox:order` | outbox entry ids, all scored 0, so in id (= creation) order (a sorted set) | the same |
//! | `…{accounts}:outbox:attempts` | outbox entry id → delivery attempts so far (a hash) | webhooks |
//!
//! Web-login tickets belong to no app; they sit under `{REDIS_KEY_PREFIX}wxlogin:w:`:
//!
//! | key | holds | written by |
//! |---|---|---|
//! | `…w:<ticket id>` | a ticket: `v` its version, `r` its record, JSON, the secret as a hash (a hash); Redis TTL = its life | `/web-login` |
//! | `…w:<ticket id>:img` | the ticket's mini-program code, PNG; the same TTL | `/web-login/{id}/qr.png` |
//! | channel `…w` | the id of each ticket that changed (pub/sub) | every ticket change |
//!
//! A cluster places a key by the hash of its name, or of the part in braces when it has one:
//! a user's two keys carry `{<openid>}` because [`UserStore::user`] reads both in one
//! pipeline, which a cluster runs only within one slot; one user's list is changed in one
//! MULTI, also single-slot. Sessions and claims have no braces, so they spread over every
//! node (hence a prefix with braces is refused with a cluster); so do an account's session
//! lists, each one key on its own.
//!
//! Every account key, of every account, carries the one tag `{accounts}`, so the whole of it
//! lives in one slot: a resolution reads and writes two identities, up to two accounts and
//! the outbox in one Lua script, and a script touches one slot only. One slot for every
//! account is one node's work, which is fine: accounts change at a first login, a link or
//! merge, a phone binding or an operator's command, rare next to the session reads and writes
//! that spread over the cluster. The account's own session list is outside the slot (it is
//! written at every login): what an account script cannot reach, the Rust around it deletes
//! in commands of their own (see `accounts.rs`).
//!
//! [`ClaimStore`]: crate::store::ClaimStore
//! [`UserStore::user`]: crate::store::UserStore::user

use crate::{
    store::{ClaimKey, UserId},
    token::TokenHash,
};

/// The key names of one store: its prefix and app, and the parts built from them once.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    /// `REDIS_KEY_PREFIX`, for the keys that name their app themselves.
    prefix: String,
    /// `{prefix}wxlogin:{appid}:s:`
    sessions: String,
    /// `{prefix}wxlogin:{appid}:c:`
    claims: String,
    /// `{prefix}wxlogin:{appid}:a:`
    account_sessions: String,
    /// `{prefix}wxlogin:{accounts}:`
    accounts: String,
}

impl Keys {
    pub(super) fn new(prefix: &str, appid: &str) -> Self {
        let base = format!("{prefix}wxlogin:{appid}:");
        Self {
            prefix: prefix.to_owned(),
            sessions: format!("{base}s:"),
            claims: format!("{base}c:"),
            account_sessions: format!("{base}a:"),
            accounts: format!("{prefix}wxlogin:{{accounts}}:"),
        }
    }

    pub(super) fn session(&self, key: &TokenHash) -> String {
        format!("{}{}", self.sessions, key.to_hex())
    }

    /// What every session key of this store starts with, for a scan of them.
    pub(super) fn session_prefix(&self) -> &str {
        &self.sessions
    }

    pub(super) fn claim(&self, key: &ClaimKey) -> String {
        format!("{}{}", self.claims, key.to_hex())
    }

    /// `{prefix}wxlogin:<appid>:u:{<openid>}:<what>`: a user's key history (a list of base64
    /// sealed keys, newest first) and phone (JSON). The braces put both in the slot of the
    /// openid, on a cluster: they are read together. Whatever the openid holds, the two names
    /// agree up to their last colon, so their slots agree too.
    pub(super) fn user(&self, appid: &str, openid: &str, what: &str) -> String {
        format!("{}wxlogin:{appid}:u:{{{openid}}}:{what}", self.prefix)
    }

    /// The sessions of `user_id` this store holds: token hashes scored by their expiry.
    pub(super) fn account_sessions(&self, user_id: &UserId) -> String {
        format!("{}{user_id}:sessions", self.account_sessions)
    }

    /// `{prefix}wxlogin:{accounts}:`, which every account key starts with: the account
    /// scripts build the names of the accounts they touch from it, all in its slot.
    pub(super) fn accounts(&self) -> &str {
        &self.accounts
    }

    /// One of the fixed account keys (`id`, `phone`, `outbox`, `outbox:due`, ...), in the
    /// slot of `{accounts}`.
    pub(super) fn accounts_key(&self, what: &str) -> String {
        format!("{}{what}", self.accounts)
    }

    /// A web-login ticket.
    pub(super) fn ticket(&self, id: &str) -> String {
        format!("{}wxlogin:w:{id}", self.prefix)
    }

    /// The mini-program code of a web-login ticket.
    pub(super) fn ticket_image(&self, id: &str) -> String {
        format!("{}wxlogin:w:{id}:img", self.prefix)
    }

    /// Where every web-login ticket change is announced.
    pub(super) fn ticket_channel(&self) -> String {
        format!("{}wxlogin:w", self.prefix)
    }

    /// The app's sealed access token.
    pub(super) fn access_token(&self, appid: &str) -> String {
        format!("{}wxlogin:{appid}:t", self.prefix)
    }

    /// The lock of the access token's refresh.
    pub(super) fn access_token_lock(&self, appid: &str) -> String {
        format!("{}wxlogin:{appid}:t:lock", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::Token;

    #[test]
    fn every_key_is_named_as_the_table_says() {
        let keys = Keys::new("staging:", "wxA");
        let token = Token::generate().hash();
        assert_eq!(
            keys.session(&token),
            format!("staging:wxlogin:wxA:s:{}", token.to_hex())
        );
        let claim = ClaimKey::new([0xab; 32]);
        assert_eq!(
            keys.claim(&claim),
            format!("staging:wxlogin:wxA:c:{}", "ab".repeat(32))
        );
        assert_eq!(
            keys.user("wxB", "o-1", "keys"),
            "staging:wxlogin:wxB:u:{o-1}:keys"
        );
        assert_eq!(keys.access_token("wxB"), "staging:wxlogin:wxB:t");
        assert_eq!(keys.access_token_lock("wxB"), "staging:wxlogin:wxB:t:lock");
        assert_eq!(
            Keys::new("", "wxA").user("wxA", "o-1", "phone"),
            "wxlogin:wxA:u:{o-1}:phone"
        );
        let user = UserId::generate();
        assert_eq!(
            keys.account_sessions(&user),
            format!("staging:wxlogin:wxA:a:{user}:sessions")
        );
        assert_eq!(keys.accounts(), "staging:wxlogin:{accounts}:");
        assert_eq!(keys.ticket("T1"), "staging:wxlogin:w:T1");
        assert_eq!(keys.ticket_image("T1"), "staging:wxlogin:w:T1:img");
        assert_eq!(keys.ticket_channel(), "staging:wxlogin:w");
        assert_eq!(
            keys.accounts_key("outbox"),
            "staging:wxlogin:{accounts}:outbox"
        );
    }
}
