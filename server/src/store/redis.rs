//! The Redis store, for several server instances behind a load balancer sharing one login
//! state: a logout on one instance is seen by all of them at once.
//!
//! Keys are `{REDIS_KEY_PREFIX}wxlogin:{appid}:s:<hex sha256(token)>` holding the session as
//! JSON (its session_key sealed), expired by Redis's own TTL (so there is nothing to purge),
//! and `…wxlogin:{appid}:c:<hex>` for code claims (see [`ClaimStore`]). The AppID and prefix
//! keep apps and environments that share one Redis out of each other's sessions and claims. One multiplexed connection, reconnected by the connection manager in the
//! background; every command has a deadline, so a dead Redis yields an error quickly, never a
//! hang.

use std::time::Duration;

use async_trait::async_trait;
use redis::{AsyncCommands, aio::ConnectionManager, aio::ConnectionManagerConfig};

use super::{ClaimState, ClaimStore, Outcome, Scope, Session, SessionStore, StoreError};
use crate::token::{TokenHash, hex};

#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    timeout: Duration,
    /// `{prefix}wxlogin:{appid}:s:`
    session_prefix: String,
    /// `{prefix}wxlogin:{appid}:c:`
    claim_prefix: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://host:port/db`) for the app of `scope`, failing at start-up
    /// rather than at the first login when Redis is not there.
    pub async fn connect(url: &str, timeout: Duration, scope: &Scope) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Unavailable(format!("bad Redis URL: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let conn = tokio::time::timeout(
            timeout * 4,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| StoreError::Unavailable("Redis did not answer in time".into()))?
        .map_err(unavailable)?;
        let base = format!("{}wxlogin:{}:", scope.redis_key_prefix, scope.appid);
        Ok(Self {
            conn,
            timeout,
            session_prefix: format!("{base}s:"),
            claim_prefix: format!("{base}c:"),
        })
    }

    fn session_key(&self, key: &TokenHash) -> String {
        format!("{}{}", self.session_prefix, key.to_hex())
    }

    fn claim_key(&self, key: &[u8; 32]) -> String {
        format!("{}{}", self.claim_prefix, hex(key))
    }

    /// Runs one command with the store's deadline.
    async fn run<T>(
        &self,
        command: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.timeout, command)
            .await
            .map_err(|_| StoreError::Unavailable("Redis did not answer in time".into()))?
            .map_err(unavailable)
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("Redis: {e}"))
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn insert(&self, key: TokenHash, s: Session) -> Result<(), StoreError> {
        let ttl_s = (s.expires_at - super::unix_now()).max(1) as u64;
        let json = serde_json::to_string(&s).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut c = self.conn.clone();
        self.run(async move { c.set_ex(self.session_key(&key), json, ttl_s).await })
            .await
    }

    async fn get(&self, key: TokenHash, now: i64) -> Result<Option<Session>, StoreError> {
        let mut c = self.conn.clone();
        let raw: Option<String> = self
            .run(async move { c.get(self.session_key(&key)).await })
            .await?;
        let Some(raw) = raw else { return Ok(None) };
        let s: Session =
            serde_json::from_str(&raw).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // Redis TTLs have second granularity; the stamp is the authority.
        Ok((s.expires_at > now).then_some(s))
    }

    async fn remove(&self, key: TokenHash) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        let n: u64 = self
            .run(async move { c.del(self.session_key(&key)).await })
            .await?;
        Ok(n > 0)
    }

    async fn purge_expired(&self, _now: i64) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// Every session key carries a TTL, and Redis expires it.
    fn needs_purge(&self) -> bool {
        false
    }
}

#[async_trait]
impl ClaimStore for RedisStore {
    async fn claim(
        &self,
        key: [u8; 32],
        lease: Duration,
    ) -> Result<Option<ClaimState>, StoreError> {
        let mut c = self.conn.clone();
        let won: Option<String> = self
            .run(async move {
                redis::cmd("SET")
                    .arg(self.claim_key(&key))
                    .arg(ClaimState::Pending.encode())
                    .arg("NX")
                    .arg("PX")
                    .arg(lease.as_millis().max(1) as u64)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        if won.is_some() {
            return Ok(None);
        }
        // Someone holds it. If the hold ended between the two commands, report it as pending:
        // the caller's next round wins it.
        let mut c = self.conn.clone();
        let raw: Option<Vec<u8>> = self
            .run(async move { c.get(self.claim_key(&key)).await })
            .await?;
        raw.map_or(Ok(Some(ClaimState::Pending)), |v| {
            ClaimState::decode(&v).map(Some)
        })
    }

    async fn settle(
        &self,
        key: [u8; 32],
        outcome: Outcome,
        keep: Duration,
    ) -> Result<(), StoreError> {
        let value = ClaimState::Done(outcome).encode();
        let ms = keep.as_millis().max(1) as u64;
        let mut c = self.conn.clone();
        self.run(async move { c.pset_ex(self.claim_key(&key), value, ms).await })
            .await
    }

    async fn release(&self, key: [u8; 32]) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        self.run(async move { c.del(self.claim_key(&key)).await })
            .await
    }
}
