//! Sessions in Redis: one JSON document per token hash, whose TTL is the session's life, so
//! Redis deletes it when it expires and nothing needs purging. A single Redis may keep a copy
//! of each session read in this process (`tracking_cache.rs`).

use std::sync::Arc;

use async_trait::async_trait;
use redis::AsyncCommands;

use super::{INVALIDATION_LEASE, RedisStore};
use crate::{
    store::{Session, SessionStore, StoreError},
    time::unix_now,
    token::TokenHash,
};

impl RedisStore {
    /// The session under `key` from Redis, `now` deciding whether it is still alive. With a
    /// cache, a session that exists is read again on the tracking connection, so that Redis
    /// reports its changes, and kept; an unknown token is never tracked nor kept.
    async fn read_session(
        &self,
        key: String,
        now: i64,
    ) -> Result<Option<Arc<Session>>, StoreError> {
        let mut c = self.conn.clone();
        let k = key.clone();
        let raw: Option<String> = self.run(async move { c.get(k).await }).await?;
        let Some(raw) = raw else { return Ok(None) };
        let reader = self.cache.as_ref().and_then(|t| Some((t, t.reader()?)));
        if let Some((tracking, (generation, mut t))) = reader {
            let k = key.clone();
            let tracked: Result<(Option<String>,), _> = self
                .run(async move {
                    redis::pipe()
                        .cmd("CLIENT")
                        .arg("CACHING")
                        .arg("YES")
                        .ignore()
                        .get(k)
                        .query_async(&mut t)
                        .await
                })
                .await;
            match tracked {
                Ok((Some(tracked),)) => {
                    let session = Arc::new(parse_session(&tracked)?);
                    tracking.cache.store(key, session.clone(), generation);
                    return Ok(alive(session, now));
                }
                // Logged out between the two reads.
                Ok((None,)) => return Ok(None),
                // The tracking connection is in trouble, and the heartbeat will replace it;
                // the first read was made for this request, and stands.
                Err(_) => {}
            }
        }
        parse_session(&raw).map(|s| alive(Arc::new(s), now))
    }
}

fn parse_session(raw: &str) -> Result<Session, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Redis TTLs have second granularity, and a cached copy has none: the stamp is the authority.
fn alive(session: Arc<Session>, now: i64) -> Option<Arc<Session>> {
    (session.expires_at > now).then_some(session)
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn insert(&self, key: TokenHash, s: Session) -> Result<(), StoreError> {
        let ttl_s = (s.expires_at - unix_now()).max(1) as u64;
        let json = serde_json::to_string(&s).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let redis_key = self.keys.session(&key);
        if let Some(tracking) = &self.cache {
            // Tokens are fresh, so this replaces nothing in practice; if it did, this
            // process's own next read sees the new session, other instances' after the push.
            tracking.cache.forget(&redis_key);
        }
        let mut c = self.conn.clone();
        self.run(async move { c.set_ex(redis_key, json, ttl_s).await })
            .await
    }

    async fn get(&self, key: TokenHash, now: i64) -> Result<Option<Arc<Session>>, StoreError> {
        let redis_key = self.keys.session(&key);
        if let Some(tracking) = &self.cache
            && let Some(session) = tracking.cache.hit(&redis_key, std::time::Instant::now())
        {
            return Ok(alive(session, now));
        }
        self.read_session(redis_key, now).await
    }

    /// On a single Redis, answers [`INVALIDATION_LEASE`] after the delete, whether or not this
    /// process caches: another instance's cache may hold the session (`tracking_cache.rs` says
    /// why that wait makes the logout seen everywhere at once). Even when there was nothing to
    /// delete: a concurrent logout of the same token may have deleted it a moment ago and be
    /// waiting still. A cluster has no caches.
    async fn remove(&self, key: TokenHash) -> Result<bool, StoreError> {
        let redis_key = self.keys.session(&key);
        if let Some(tracking) = &self.cache {
            tracking.cache.forget(&redis_key);
        }
        let mut c = self.conn.clone();
        let n: u64 = self.run(async move { c.del(redis_key).await }).await?;
        if self.node.is_some() {
            tokio::time::sleep(INVALIDATION_LEASE).await;
        }
        Ok(n > 0)
    }

    async fn of_account(
        &self,
        _user_id: crate::store::UserId,
        _now: i64,
    ) -> Result<Vec<(TokenHash, Arc<Session>)>, StoreError> {
        Err(StoreError::Unavailable(
            "session lists are not implemented on Redis yet".into(),
        ))
    }
}
