//! The names of the Redis store's keys: every key it reads or writes is named here, all under
//! `{REDIS_KEY_PREFIX}wxlogin:<appid>:`, which keeps apps and environments sharing one Redis
//! out of each other's data:
//!
//! | key | holds | written by |
//! |---|---|---|
//! | `…s:<hex sha256(token)>` | a session, JSON, its session_key sealed; Redis TTL = its life | login |
//! | `…c:<hex>` | a login-code claim (see [`ClaimStore`]), `SET NX` with a lease | login |
//! | `…u:{<openid>}:keys` | the user's last session_keys, sealed, newest first (a list) | login |
//! | `…u:{<openid>}:phone` | the user's phone number, JSON | `/wx/phone` |
//! | `…t`, `…t:lock` | the app's sealed access token, and the lock of its refresh | `/wx/*` |
//!
//! A cluster places a key by the hash of its name, or of the part in braces when it has one:
//! a user's two keys carry `{<openid>}` because [`UserStore::user`] reads both in one
//! pipeline, which a cluster runs only within one slot; one user's list is changed in one
//! MULTI, also single-slot. Sessions and claims have no braces, so they spread over every
//! node (hence a prefix with braces is refused with a cluster).
//!
//! [`ClaimStore`]: crate::store::ClaimStore
//! [`UserStore::user`]: crate::store::UserStore::user

use crate::{store::ClaimKey, token::TokenHash};

/// The key names of one store: its prefix and app, and the parts built from them once.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    /// `REDIS_KEY_PREFIX`, for the keys that name their app themselves.
    prefix: String,
    /// `{prefix}wxlogin:{appid}:s:`
    sessions: String,
    /// `{prefix}wxlogin:{appid}:c:`
    claims: String,
}

impl Keys {
    pub(super) fn new(prefix: &str, appid: &str) -> Self {
        let base = format!("{prefix}wxlogin:{appid}:");
        Self {
            prefix: prefix.to_owned(),
            sessions: format!("{base}s:"),
            claims: format!("{base}c:"),
        }
    }

    pub(super) fn session(&self, key: &TokenHash) -> String {
        format!("{}{}", self.sessions, key.to_hex())
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
    }
}
