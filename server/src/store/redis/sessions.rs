//! Sessions in Redis: one JSON document per token hash, whose TTL is the session's life, so
//! Redis deletes it when it expires and nothing needs purging. A single Redis may keep a copy
//! of each session read in this process (`tracking_cache.rs`).
//!
//! Each account has a list of its sessions (`…a:<user_id>:sessions`, see `keys.rs`): token
//! hashes scored by their expiry, written with the session, so that an account's sessions
//! are found without a scan. The list is an index, not the truth: a session logged out,
//! expired or replaced stays in it until the list is next read or written, which drops
//! whatever no longer names a live session of the account.

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use redis::AsyncCommands;

use super::{INVALIDATION_LEASE, RedisStore, scripts::Script};
use crate::{
    store::{Session, SessionStore, StoreError, UserId},
    time::unix_now,
    token::TokenHash,
};

/// Adds a session to its account's list; see the script.
pub(super) static SESSION_LIST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/list_session.lua"),
        include_str!("lua/session_list.lua")
    ))
});

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

    /// Deletes the sessions under `keys` for every reader of Redis and this process's cache;
    /// how many were there. Other instances' caches are the caller's to wait for.
    pub(super) async fn delete_sessions(&self, keys: &[TokenHash]) -> Result<usize, StoreError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let redis_keys: Vec<String> = keys.iter().map(|k| self.keys.session(k)).collect();
        if let Some(tracking) = &self.cache {
            for key in &redis_keys {
                tracking.cache.forget(key);
            }
        }
        let mut c = self.conn.clone();
        // One DEL: a cluster connection splits it by slot and adds up the answers.
        let n: usize = self
            .run(async move { redis::cmd("DEL").arg(&redis_keys).query_async(&mut c).await })
            .await?;
        Ok(n)
    }
}

/// A token hash as the account lists hold it.
pub(super) fn parse_hash(hex: &str) -> Option<TokenHash> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(TokenHash::from_bytes(bytes))
}

pub(super) fn parse_session(raw: &str) -> Result<Session, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Redis TTLs have second granularity, and a cached copy has none: the stamp is the authority.
fn alive(session: Arc<Session>, now: i64) -> Option<Arc<Session>> {
    (session.expires_at > now).then_some(session)
}

#[async_trait]
impl SessionStore for RedisStore {
    /// Lists the session under its account, then stores it: a session is never stored
    /// unlisted, where ending its account's sessions would miss it (a failure between leaves
    /// a list entry without a session, which the next read of the list drops). Two round
    /// trips, not one pipeline: on a cluster the two keys are in different slots, and
    /// redis-rs sends a pipeline to one slot only.
    async fn insert(&self, key: TokenHash, s: Session) -> Result<(), StoreError> {
        let now = unix_now();
        let ttl_s = (s.expires_at - now).max(1) as u64;
        let json = serde_json::to_string(&s).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let redis_key = self.keys.session(&key);
        if !s.user_id.is_unknown() {
            let list = [self.keys.account_sessions(&s.user_id)];
            let args = [s.expires_at.to_string(), key.to_hex(), now.to_string()];
            self.eval::<i64, String>(&SESSION_LIST, &list, &args)
                .await?;
        }
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

    /// Reads the account's list, then its sessions in one MGET (split by slot on a
    /// cluster), and drops from the list what names no session of the account any more.
    async fn of_account(
        &self,
        user_id: UserId,
        now: i64,
    ) -> Result<Vec<(TokenHash, Arc<Session>)>, StoreError> {
        let list = self.keys.account_sessions(&user_id);
        // Scores are expiries: only those past `now` can be alive.
        let min = if now == i64::MIN {
            "-inf".to_owned()
        } else {
            format!("({now}")
        };
        let mut c = self.conn.clone();
        let l = list.clone();
        let members: Vec<String> = self
            .run(async move { c.zrangebyscore(l, min, "+inf").await })
            .await?;
        let (mut listed, mut stale) = (Vec::new(), Vec::new());
        for member in members {
            match parse_hash(&member) {
                Some(hash) => listed.push((hash, member)),
                None => stale.push(member),
            }
        }
        let mut sessions = Vec::new();
        if !listed.is_empty() {
            let redis_keys: Vec<String> =
                listed.iter().map(|(k, _)| self.keys.session(k)).collect();
            let mut c = self.conn.clone();
            let raw: Vec<Option<String>> = self
                .run(async move {
                    redis::cmd("MGET")
                        .arg(&redis_keys)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            for ((hash, member), raw) in listed.into_iter().zip(raw) {
                match raw.map(|r| parse_session(&r)).transpose()? {
                    Some(s) if s.user_id == user_id => {
                        if s.expires_at > now {
                            sessions.push((hash, Arc::new(s)));
                        }
                    }
                    // Gone, or replaced by another account's session.
                    _ => stale.push(member),
                }
            }
        }
        if !stale.is_empty() {
            let mut c = self.conn.clone();
            self.run(async move { c.zrem::<_, _, ()>(list, stale).await })
                .await?;
        }
        Ok(sessions)
    }

    /// One DEL for the batch, and one wait of [`INVALIDATION_LEASE`] for every instance's
    /// cache, as [`SessionStore::remove`] gives one session.
    async fn remove_many(&self, keys: &[TokenHash]) -> Result<usize, StoreError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let removed = self.delete_sessions(keys).await?;
        if self.node.is_some() {
            tokio::time::sleep(INVALIDATION_LEASE).await;
        }
        Ok(removed)
    }
}
