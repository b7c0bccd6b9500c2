//! A bounded cache of live sessions in front of a store that one process owns (SQLite), so
//! that `/checklogin` and [`AuthUser`](crate::AuthUser) — every request of every user — do not
//! cost a trip to the blocking pool and a B-tree lookup.
//!
//! Correctness comes first:
//! - Only sessions that exist are cached. An unknown token (a flood of random ones) always
//!   goes to the store and never takes a slot; the least recently used session leaves when
//!   the cache is full, so memory stays within `capacity` whatever callers send.
//! - A cached session is checked against its own `expires_at` on every hit: expiry is seen
//!   at the same instant as without the cache.
//! - A logout is seen by the very next check: `remove` deletes from the store, then from the
//!   cache. A lookup that read the store before that deletion and comes back after it must
//!   not re-insert what it read, so each shard counts its removals and a lookup inserts only if
//!   none happened while it was reading.
//!
//! It sees only this process's writes, so it is right for stores no other process writes to.
//! A store shared by instances (Redis) needs invalidation from the server instead.

use std::{
    num::NonZeroUsize,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use hashlink::LruCache;

use super::{ExpiredDeletion, Session, SessionStore, StoreError, UserId};
use crate::token::TokenHash;

/// Shards spread the lock: concurrent checks of different tokens rarely meet.
const SHARDS: usize = 16;

/// Generic over the store behind it so that it deletes expired sessions exactly when that
/// store does (see [`ExpiredDeletion`]); a `dyn SessionStore` by default.
#[derive(Debug)]
pub struct SessionCache<S: ?Sized = dyn SessionStore> {
    store: Arc<S>,
    shards: Box<[Mutex<Shard>]>,
}

#[derive(Debug)]
struct Shard {
    sessions: LruCache<TokenHash, Arc<Session>>,
    /// Removals and replacements in this shard so far; a lookup that saw another value
    /// before its store read does not insert what it read.
    changes: u64,
}

impl<S: SessionStore + ?Sized> SessionCache<S> {
    /// A cache of at most `capacity` sessions (rounded up to a multiple of the shard count)
    /// in front of `store`.
    pub fn new(store: Arc<S>, capacity: NonZeroUsize) -> Self {
        let per_shard = capacity.get().div_ceil(SHARDS);
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    sessions: LruCache::new(per_shard),
                    changes: 0,
                })
            })
            .collect();
        Self { store, shards }
    }

    /// Sessions held now; never above the capacity.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).sessions.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Most sessions it holds at once.
    pub fn capacity(&self) -> usize {
        self.shards
            .iter()
            .map(|s| lock(s).sessions.capacity())
            .sum()
    }

    /// Forgets every cached session: for when another process changed the store behind this
    /// cache's back. Lookups already reading the store do not bring their copy back.
    pub fn clear(&self) {
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            shard.changes += 1;
            shard.sessions.clear();
        }
    }

    fn shard(&self, key: &TokenHash) -> &Mutex<Shard> {
        &self.shards[key.spread() % SHARDS]
    }
}

/// A panic elsewhere cannot leave the LRU half-updated, so a poisoned lock is safe.
fn lock(shard: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(|e| e.into_inner())
}

#[async_trait]
impl<S: SessionStore + ?Sized> SessionStore for SessionCache<S> {
    async fn insert(&self, key: TokenHash, session: Session) -> Result<(), StoreError> {
        self.store.insert(key, session.clone()).await?;
        let mut shard = lock(self.shard(&key));
        shard.changes += 1;
        shard.sessions.insert(key, Arc::new(session));
        Ok(())
    }

    async fn get(&self, key: TokenHash, now: i64) -> Result<Option<Arc<Session>>, StoreError> {
        let seen = {
            let mut shard = lock(self.shard(&key));
            match shard.sessions.get(&key) {
                Some(session) if session.expires_at > now => return Ok(Some(session.clone())),
                Some(_) => {
                    shard.sessions.remove(&key);
                    return Ok(None);
                }
                None => shard.changes,
            }
        };
        let found = self.store.get(key, now).await?;
        if let Some(session) = &found {
            let mut shard = lock(self.shard(&key));
            if shard.changes == seen {
                shard.sessions.insert(key, session.clone());
            }
        }
        Ok(found)
    }

    async fn remove(&self, key: TokenHash) -> Result<bool, StoreError> {
        let removed = self.store.remove(key).await;
        // Whatever the store said: dropping a cached copy is always safe.
        let mut shard = lock(self.shard(&key));
        shard.changes += 1;
        shard.sessions.remove(&key);
        removed
    }

    /// Straight from the store: listing is rare (a person looking at their sessions), and the
    /// cache holds only some of them.
    async fn of_account(
        &self,
        user_id: UserId,
        now: i64,
    ) -> Result<Vec<(TokenHash, Arc<Session>)>, StoreError> {
        self.store.of_account(user_id, now).await
    }

    async fn remove_many(&self, keys: &[TokenHash]) -> Result<usize, StoreError> {
        let removed = self.store.remove_many(keys).await;
        for key in keys {
            let mut shard = lock(self.shard(key));
            shard.changes += 1;
            shard.sessions.remove(key);
        }
        removed
    }
}

#[async_trait]
impl<S: SessionStore + ExpiredDeletion + ?Sized> ExpiredDeletion for SessionCache<S> {
    /// Deletes from the store, then from the cache: an expired entry is never served (every
    /// hit checks its expiry), but it holds a slot a live session could use until the LRU
    /// reaches it. A lookup that read the store before the deletion does not bring its copy
    /// back, as after a logout.
    async fn delete_expired(&self, now: i64) -> Result<u64, StoreError> {
        let deleted = self.store.delete_expired(now).await?;
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            let expired: Vec<TokenHash> = shard
                .sessions
                .iter()
                .filter(|(_, s)| s.expires_at <= now)
                .map(|(key, _)| *key)
                .collect();
            if !expired.is_empty() {
                shard.changes += 1;
                for key in &expired {
                    shard.sessions.remove(key);
                }
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::{
        store::{MemoryStore, contract_tests},
        token::Token,
    };

    /// Counts the reads that reach the store behind the cache.
    #[derive(Debug, Default)]
    struct Counted {
        store: MemoryStore,
        reads: AtomicUsize,
    }

    #[async_trait]
    impl SessionStore for Counted {
        async fn insert(&self, key: TokenHash, s: Session) -> Result<(), StoreError> {
            self.store.insert(key, s).await
        }
        async fn get(&self, key: TokenHash, now: i64) -> Result<Option<Arc<Session>>, StoreError> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            self.store.get(key, now).await
        }
        async fn remove(&self, key: TokenHash) -> Result<bool, StoreError> {
            self.store.remove(key).await
        }
        async fn of_account(
            &self,
            user_id: crate::store::UserId,
            now: i64,
        ) -> Result<Vec<(TokenHash, Arc<Session>)>, StoreError> {
            self.store.of_account(user_id, now).await
        }
    }

    #[async_trait]
    impl ExpiredDeletion for Counted {
        async fn delete_expired(&self, now: i64) -> Result<u64, StoreError> {
            self.store.delete_expired(now).await
        }
    }

    fn cache(capacity: usize) -> (SessionCache<Counted>, Arc<Counted>) {
        let counted = Arc::new(Counted::default());
        let cache = SessionCache::new(counted.clone(), NonZeroUsize::new(capacity).unwrap());
        (cache, counted)
    }

    #[tokio::test]
    async fn the_cache_meets_the_store_contract() {
        contract_tests::run_all(&cache(64).0).await;
    }

    #[tokio::test]
    async fn the_cache_deletes_expired_sessions_through_its_store() {
        contract_tests::deletes_expired_sessions(&cache(64).0).await;
    }

    #[tokio::test]
    async fn hits_skip_the_store_and_a_removal_is_seen_by_the_next_get() {
        let (cache, counted) = cache(64);
        let key = Token::generate().hash();
        let now = crate::time::unix_now();
        cache
            .insert(key, contract_tests::session("o-hit", 3600))
            .await
            .unwrap();
        for _ in 0..5 {
            assert!(cache.get(key, now).await.unwrap().is_some());
        }
        assert_eq!(counted.reads.load(Ordering::Relaxed), 0, "all hits");
        assert!(cache.remove(key).await.unwrap());
        assert!(cache.get(key, now).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_expired_cached_session_is_gone_at_its_expiry() {
        let (cache, _) = cache(64);
        let key = Token::generate().hash();
        let session = contract_tests::session("o-expiring", 60);
        let expires_at = session.expires_at;
        cache.insert(key, session).await.unwrap();
        assert!(cache.get(key, expires_at - 1).await.unwrap().is_some());
        assert!(cache.get(key, expires_at).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn unknown_tokens_never_take_a_slot_and_live_ones_stay_within_capacity() {
        let (cache, counted) = cache(64);
        let now = crate::time::unix_now();
        for _ in 0..5_000 {
            assert!(
                cache
                    .get(Token::generate().hash(), now)
                    .await
                    .unwrap()
                    .is_none()
            );
        }
        assert_eq!(cache.len(), 0);
        assert_eq!(
            counted.reads.load(Ordering::Relaxed),
            5_000,
            "misses ask the store"
        );
        for n in 0..1_000 {
            let session = contract_tests::session(&format!("o-{n}"), 3600);
            cache
                .insert(Token::generate().hash(), session)
                .await
                .unwrap();
        }
        assert_eq!(cache.capacity(), 64);
        // Full, not just within bounds: new tokens' keys lead with their time, and the shards
        // must still share them out (each holds a sixteenth of the capacity).
        assert_eq!(cache.len(), cache.capacity(), "every shard holds its share");
    }

    /// A store whose reads wait until the test lets them finish: a lookup is held between its
    /// store read and its cache insert while a logout runs.
    #[derive(Debug, Default)]
    struct Held {
        store: MemoryStore,
        read_started: tokio::sync::Notify,
        release: tokio::sync::Notify,
    }

    #[async_trait]
    impl SessionStore for Held {
        async fn insert(&self, key: TokenHash, s: Session) -> Result<(), StoreError> {
            self.store.insert(key, s).await
        }
        async fn get(&self, key: TokenHash, now: i64) -> Result<Option<Arc<Session>>, StoreError> {
            let read = self.store.get(key, now).await;
            self.read_started.notify_one();
            self.release.notified().await;
            read
        }
        async fn remove(&self, key: TokenHash) -> Result<bool, StoreError> {
            self.store.remove(key).await
        }
        async fn of_account(
            &self,
            user_id: crate::store::UserId,
            now: i64,
        ) -> Result<Vec<(TokenHash, Arc<Session>)>, StoreError> {
            self.store.of_account(user_id, now).await
        }
    }

    #[tokio::test]
    async fn a_lookup_that_read_before_a_logout_does_not_bring_the_session_back() {
        let held = Arc::new(Held::default());
        let cache = Arc::new(SessionCache::new(
            held.clone(),
            NonZeroUsize::new(64).unwrap(),
        ));
        let key = Token::generate().hash();
        let now = crate::time::unix_now();
        // In the store only, as after a restart: the first lookup misses the cache.
        held.store
            .insert(key, contract_tests::session("o-race", 3600))
            .await
            .unwrap();
        let lookup = tokio::spawn({
            let cache = cache.clone();
            async move { cache.get(key, now).await.unwrap() }
        });
        held.read_started.notified().await;
        // The logout lands while the lookup holds what it read.
        assert!(cache.remove(key).await.unwrap());
        held.release.notify_one();
        assert!(lookup.await.unwrap().is_some(), "it read before the logout");
        assert_eq!(cache.len(), 0, "what it read must not be cached");
        // The next lookup goes to the store, which no longer has it.
        let next = tokio::spawn({
            let cache = cache.clone();
            async move { cache.get(key, now).await.unwrap() }
        });
        held.read_started.notified().await;
        held.release.notify_one();
        assert!(next.await.unwrap().is_none());
    }
}
