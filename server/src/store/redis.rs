//! The Redis store, for several server instances behind a load balancer sharing one login
//! state: a logout on one instance is seen by all of them at once.
//!
//! One store, two topologies: a single Redis (`redis://`, reconnected in the background by
//! redis-rs' connection manager) or a Redis Cluster (`redis+cluster://`, redis-rs' cluster
//! connection, which sends each command to the node owning its key's slot and follows slots
//! as they move). Both sit behind [`Connection`], which speaks redis-rs' `ConnectionLike`, so
//! every command below is written once. Every call has a deadline (`STORE_TIMEOUT`), so a dead
//! Redis yields an error quickly — a 503, never a hang and never a logout.
//!
//! # Keys
//! All under `{REDIS_KEY_PREFIX}wxlogin:<appid>:`, which keeps apps and environments sharing
//! one Redis out of each other's data:
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
//! A single Redis may also keep a cache of sessions in each process, see
//! [`redis_cache`](super::redis_cache): a logout then answers only once no instance's cache
//! can still hold the session. A cluster runs without it.

use std::{num::NonZeroUsize, sync::Arc, time::Duration};

use async_trait::async_trait;
use redis::{
    AsyncCommands, Cmd, Pipeline, RedisFuture, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClientBuilder,
    cluster_async::ClusterConnection,
};

use super::{
    ClaimState, ClaimStore, KEY_HISTORY, Outcome, Phone, Scope, Session, SessionStore, StoreError,
    UserRecord, UserStore,
    redis_cache::{CacheStats, INVALIDATION_LEASE, Tracking},
};
use crate::{
    data_keys::{DataKeys, SealedSessionKey, SessionKey},
    secret::Secret,
    token::{TokenHash, hex},
    wechat::access_token::{AccessToken, SharedTokens},
};

/// What an access token is sealed to, in place of an openid: its purpose.
const ACCESS_TOKEN_LABEL: &str = "access_token";

/// How long a user's key history outlives their last login: past any token's life, so data
/// a live session's user fetched still opens.
const USER_KEYS_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Where the store's commands go: one Redis or a cluster of them.
#[derive(Clone)]
enum Connection {
    Node(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Node(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Node(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

#[derive(Clone)]
pub struct RedisStore {
    conn: Connection,
    timeout: Duration,
    /// `{prefix}wxlogin:{appid}:s:`
    session_prefix: String,
    /// `{prefix}wxlogin:{appid}:c:`
    claim_prefix: String,
    /// `REDIS_KEY_PREFIX`, for the per-user keys, which name their app themselves.
    key_prefix: String,
    /// Seals the shared access token: a Redis dump must not hand out API access.
    data_keys: DataKeys,
    /// The single Redis's address, from which the session cache opens its own connection;
    /// `None` for a cluster.
    node: Option<redis::ConnectionInfo>,
    /// The session cache and the connection that keeps it fresh, when turned on.
    cache: Option<Arc<Tracking>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

/// How long connecting may take: a few call deadlines, for the handshake and a retry.
fn connect_deadline(timeout: Duration) -> Duration {
    timeout * 4
}

impl RedisStore {
    /// Connects to `url` (`redis://host:port/db`) for the app of `scope`, failing at start-up
    /// rather than at the first login when Redis is not there. No session cache: see
    /// [`RedisStore::with_session_cache`].
    pub async fn connect(url: &str, timeout: Duration, scope: &Scope) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Unavailable(format!("bad Redis URL: {e}")))?;
        let node = client.get_connection_info().clone();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let conn = tokio::time::timeout(
            connect_deadline(timeout),
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| StoreError::Unavailable("Redis did not answer in time".into()))?
        .map_err(unavailable)?;
        let mut store = Self::new(Connection::Node(conn), timeout, scope);
        store.node = Some(node);
        Ok(store)
    }

    /// Connects to the Redis Cluster that `seeds` (`redis://[:password@]host:port` each, the
    /// same credentials on all) belong to. Any one seed that answers is enough: it tells where
    /// every slot lives.
    pub async fn connect_cluster(
        seeds: &[String],
        timeout: Duration,
        scope: &Scope,
    ) -> Result<Self, StoreError> {
        let client = ClusterClientBuilder::new(seeds.iter().map(String::as_str))
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(2)
            .build()
            .map_err(|e| StoreError::Unavailable(format!("bad Redis Cluster seeds: {e}")))?;
        let conn = tokio::time::timeout(connect_deadline(timeout), client.get_async_connection())
            .await
            .map_err(|_| StoreError::Unavailable("Redis Cluster did not answer in time".into()))?
            .map_err(unavailable)?;
        Ok(Self::new(Connection::Cluster(conn), timeout, scope))
    }

    fn new(conn: Connection, timeout: Duration, scope: &Scope) -> Self {
        let base = format!("{}wxlogin:{}:", scope.redis_key_prefix, scope.appid);
        Self {
            conn,
            timeout,
            session_prefix: format!("{base}s:"),
            claim_prefix: format!("{base}c:"),
            key_prefix: scope.redis_key_prefix.clone(),
            data_keys: scope.data_keys.clone(),
            node: None,
            cache: None,
        }
    }

    /// Keeps up to `entries` sessions in this process (see `redis_cache.rs`); `0`, or a
    /// cluster, keeps none. Opens the cache's own tracking connection now, so a Redis that
    /// refuses it (no RESP3: older than 6) stops the start.
    pub async fn with_session_cache(mut self, entries: usize) -> Result<Self, StoreError> {
        let (Some(node), Some(capacity)) = (&self.node, NonZeroUsize::new(entries)) else {
            return Ok(self);
        };
        let tracking = Tracking::start(node.clone(), capacity, self.timeout);
        let tracking = tokio::time::timeout(connect_deadline(self.timeout), tracking)
            .await
            .map_err(|_| StoreError::Unavailable("Redis did not answer in time".into()))?
            .map_err(|e| StoreError::Unavailable(format!("Redis session cache: {e}")))?;
        self.cache = Some(tracking);
        Ok(self)
    }

    /// The session cache's size and record, if it has one.
    pub fn session_cache_stats(&self) -> Option<CacheStats> {
        self.cache.as_ref().map(|t| t.cache.stats())
    }

    fn session_key(&self, key: &TokenHash) -> String {
        format!("{}{}", self.session_prefix, key.to_hex())
    }

    fn claim_key(&self, key: &[u8; 32]) -> String {
        format!("{}{}", self.claim_prefix, hex(key))
    }

    /// `{prefix}wxlogin:<appid>:u:{<openid>}:<what>`: a user's key history (a list of base64
    /// sealed keys, newest first) and phone (JSON). The braces put both in the slot of the
    /// openid, on a cluster: they are read together. Whatever the openid holds, the two names
    /// agree up to their last colon, so their slots agree too.
    fn user_key(&self, appid: &str, openid: &str, what: &str) -> String {
        format!("{}wxlogin:{appid}:u:{{{openid}}}:{what}", self.key_prefix)
    }

    /// `SET key value NX PX lease`: whether this call took the key.
    async fn set_if_absent(
        &self,
        key: String,
        value: Vec<u8>,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        let won: Option<String> = self
            .run(async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(lease.as_millis().max(1) as u64)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(won.is_some())
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
        let ttl_s = (s.expires_at - super::unix_now()).max(1) as u64;
        let json = serde_json::to_string(&s).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let redis_key = self.session_key(&key);
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
        let redis_key = self.session_key(&key);
        if let Some(tracking) = &self.cache
            && let Some(session) = tracking.cache.hit(&redis_key, std::time::Instant::now())
        {
            return Ok(alive(session, now));
        }
        self.read_session(redis_key, now).await
    }

    /// On a single Redis, answers [`INVALIDATION_LEASE`] after the delete, whether or not this
    /// process caches: another instance's cache may hold the session (`redis_cache.rs` says
    /// why that wait makes the logout seen everywhere at once). Even when there was nothing to
    /// delete: a concurrent logout of the same token may have deleted it a moment ago and be
    /// waiting still. A cluster has no caches.
    async fn remove(&self, key: TokenHash) -> Result<bool, StoreError> {
        let redis_key = self.session_key(&key);
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
        let won = self
            .set_if_absent(self.claim_key(&key), ClaimState::Pending.encode(), lease)
            .await?;
        if won {
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

#[async_trait]
impl UserStore for RedisStore {
    async fn user(&self, appid: &str, openid: &str) -> Result<Option<UserRecord>, StoreError> {
        let (keys_key, phone_key) = (
            self.user_key(appid, openid, "keys"),
            self.user_key(appid, openid, "phone"),
        );
        let mut c = self.conn.clone();
        let (keys, phone): (Vec<String>, Option<String>) = self
            .run(async move {
                redis::pipe()
                    .lrange(keys_key, 0, -1)
                    .get(phone_key)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        if keys.is_empty() && phone.is_none() {
            return Ok(None);
        }
        let corrupt = |e: String| StoreError::Corrupt(format!("user record: {e}"));
        let session_keys = keys
            .iter()
            .map(|k| serde_json::from_value(serde_json::Value::String(k.clone())))
            .collect::<Result<Vec<SealedSessionKey>, _>>()
            .map_err(|e| corrupt(e.to_string()))?;
        let phone = phone
            .map(|p| serde_json::from_str::<Phone>(&p))
            .transpose()
            .map_err(|e| corrupt(e.to_string()))?;
        Ok(Some(UserRecord {
            session_keys,
            phone,
        }))
    }

    async fn add_session_key(
        &self,
        appid: &str,
        openid: &str,
        key: SealedSessionKey,
    ) -> Result<(), StoreError> {
        let list = self.user_key(appid, openid, "keys");
        let value = serde_json::to_value(&key)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .ok_or_else(|| StoreError::Corrupt("a sealed key that is not text".into()))?;
        let mut c = self.conn.clone();
        // One transaction: two instances logging one user in at once keep both keys.
        self.run(async move {
            redis::pipe()
                .atomic()
                .lrem(&list, 0, &value)
                .ignore()
                .lpush(&list, &value)
                .ignore()
                .ltrim(&list, 0, KEY_HISTORY as isize - 1)
                .ignore()
                .expire(&list, USER_KEYS_TTL.as_secs() as i64)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    async fn set_phone(&self, appid: &str, openid: &str, phone: Phone) -> Result<(), StoreError> {
        let json = serde_json::to_string(&phone).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let key = self.user_key(appid, openid, "phone");
        let mut c = self.conn.clone();
        self.run(async move { c.set(key, json).await }).await
    }
}

/// The app's access token as Redis keeps it, sealed.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredToken {
    sealed: SealedSessionKey,
    expires_at: i64,
}

#[async_trait]
impl SharedTokens for RedisStore {
    async fn get(&self, appid: &str) -> Result<Option<AccessToken>, StoreError> {
        let key = format!("{}wxlogin:{appid}:t", self.key_prefix);
        let mut c = self.conn.clone();
        let raw: Option<String> = self.run(async move { c.get(key).await }).await?;
        let Some(raw) = raw else { return Ok(None) };
        let stored: StoredToken =
            serde_json::from_str(&raw).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // Sealed under a key this instance lacks: as good as absent; a fresh one is fetched.
        Ok(self
            .data_keys
            .open(&stored.sealed, appid, ACCESS_TOKEN_LABEL)
            .ok()
            .map(|token| AccessToken {
                value: Secret::new(token.expose()),
                expires_at: stored.expires_at,
            }))
    }

    async fn put(&self, appid: &str, token: &AccessToken) -> Result<(), StoreError> {
        let key = format!("{}wxlogin:{appid}:t", self.key_prefix);
        let stored = StoredToken {
            sealed: self.data_keys.seal(
                &SessionKey::new(token.value.expose()),
                appid,
                ACCESS_TOKEN_LABEL,
            ),
            expires_at: token.expires_at,
        };
        let json =
            serde_json::to_string(&stored).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let ttl = (token.expires_at - super::unix_now()).max(1) as u64;
        let mut c = self.conn.clone();
        self.run(async move { c.set_ex(key, json, ttl).await })
            .await
    }

    async fn try_lock(&self, appid: &str, lease: Duration) -> Result<bool, StoreError> {
        let key = format!("{}wxlogin:{appid}:t:lock", self.key_prefix);
        self.set_if_absent(key, vec![1], lease).await
    }

    async fn unlock(&self, appid: &str) -> Result<(), StoreError> {
        let key = format!("{}wxlogin:{appid}:t:lock", self.key_prefix);
        let mut c = self.conn.clone();
        self.run(async move { c.del(key).await }).await
    }
}
