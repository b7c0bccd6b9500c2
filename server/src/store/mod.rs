//! Session stores: where a login lives between requests, keyed by the token's hash.
//!
//! Handlers talk to `dyn SessionStore` and never know which backend runs. Every backend obeys
//! the same contract, checked by one shared test suite (`store::contract_tests`):
//! - keys are [`TokenHash`]es, never raw tokens;
//! - `get` treats an expired session as absent, so expiry holds even before the purge runs;
//! - `remove` is idempotent and takes effect for every reader at once.

mod memory;
mod sqlite;

pub use memory::MemoryStore;
pub use sqlite::SqliteStore;

use std::{fmt, sync::Arc};

use async_trait::async_trait;

use crate::{config::StoreUrl, token::TokenHash};

/// What the server remembers about one login.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    pub openid: String,
    pub unionid: Option<String>,
    /// WeChat's key for this user's encrypted open data. Server-side only: WeChat forbids
    /// sending it to the client, and `Debug` hides it so it cannot reach a log.
    pub session_key: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; the session is gone from this instant on.
    pub expires_at: i64,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("openid", &self.openid)
            .field("unionid", &self.unionid)
            .field("session_key", &"[redacted]")
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why a store operation failed. Callers answer 503 for all of them: the store, not the
/// request, is at fault, and the client should retry rather than log in again.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    #[error("session store data is corrupt: {0}")]
    Corrupt(String),
}

#[async_trait]
pub trait SessionStore: Send + Sync + fmt::Debug {
    /// Saves a new session under `key`, replacing any session stored there.
    async fn insert(&self, key: TokenHash, session: Session) -> Result<(), StoreError>;

    /// The session under `key`, or `None` when there is none or it expired before `now`.
    async fn get(&self, key: TokenHash, now: i64) -> Result<Option<Session>, StoreError>;

    /// Deletes the session under `key`; `true` when one was there. Deleting twice is fine.
    async fn remove(&self, key: TokenHash) -> Result<bool, StoreError>;

    /// Deletes every session that expired before `now` and says how many went.
    async fn purge_expired(&self, now: i64) -> Result<u64, StoreError>;
}

/// Opens the store the configuration names.
pub fn open(url: &StoreUrl) -> Result<Arc<dyn SessionStore>, StoreError> {
    Ok(match url {
        StoreUrl::Memory => Arc::new(MemoryStore::default()),
        StoreUrl::Sqlite(path) => Arc::new(SqliteStore::open(path)?),
    })
}

/// Current time in unix seconds, the unit sessions are stamped in.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The contract every backend must meet. Each backend's tests call [`contract_tests::run_all`].
#[cfg(test)]
pub(crate) mod contract_tests {
    use super::*;
    use crate::token::Token;

    fn session(openid: &str, expires_at: i64) -> Session {
        Session {
            openid: openid.into(),
            unionid: None,
            session_key: "c2Vzc2lvbi1rZXktMTIzNA==".into(),
            created_at: 1_000,
            expires_at,
        }
    }

    pub async fn run_all(store: &dyn SessionStore) {
        insert_then_get_round_trips(store).await;
        expired_sessions_are_invisible_and_purged(store).await;
        remove_is_idempotent(store).await;
        insert_replaces(store).await;
    }

    async fn insert_then_get_round_trips(store: &dyn SessionStore) {
        let key = Token::generate().hash();
        let mut s = session("o-round-trip", 5_000);
        s.unionid = Some("u-1".into());
        store.insert(key, s.clone()).await.unwrap();
        assert_eq!(store.get(key, 2_000).await.unwrap(), Some(s));
        assert_eq!(
            store.get(Token::generate().hash(), 2_000).await.unwrap(),
            None
        );
    }

    async fn expired_sessions_are_invisible_and_purged(store: &dyn SessionStore) {
        let old = Token::generate().hash();
        let live = Token::generate().hash();
        store.insert(old, session("o-old", 3_000)).await.unwrap();
        store.insert(live, session("o-live", 9_000)).await.unwrap();
        assert!(store.get(old, 2_999).await.unwrap().is_some());
        assert_eq!(
            store.get(old, 3_000).await.unwrap(),
            None,
            "expiry is exclusive"
        );
        assert!(store.purge_expired(3_000).await.unwrap() >= 1);
        assert_eq!(store.get(old, 0).await.unwrap(), None, "purged for good");
        assert!(store.get(live, 3_000).await.unwrap().is_some());
    }

    async fn remove_is_idempotent(store: &dyn SessionStore) {
        let key = Token::generate().hash();
        store.insert(key, session("o-rm", 9_000)).await.unwrap();
        assert!(store.remove(key).await.unwrap());
        assert!(!store.remove(key).await.unwrap());
        assert_eq!(store.get(key, 0).await.unwrap(), None);
    }

    async fn insert_replaces(store: &dyn SessionStore) {
        let key = Token::generate().hash();
        store.insert(key, session("o-first", 9_000)).await.unwrap();
        store.insert(key, session("o-second", 9_000)).await.unwrap();
        assert_eq!(store.get(key, 0).await.unwrap().unwrap().openid, "o-second");
    }
}
