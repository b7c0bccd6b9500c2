//! The Redis store, for several server instances behind a load balancer sharing one login
//! state: a logout on one instance is seen by all of them at once.
//!
//! One store, two topologies: a single Redis (`redis://`, reconnected in the background by
//! redis-rs' connection manager) or a Redis Cluster (`redis+cluster://`, redis-rs' cluster
//! connection, which sends each command to the node owning its key's slot and follows slots
//! as they move). Both sit behind [`Connection`], which speaks redis-rs' `ConnectionLike`, so
//! every command is written once. Every call has a deadline (`STORE_TIMEOUT`), so a dead
//! Redis yields an error quickly — a 503, never a hang and never a logout.
//!
//! This file connects; what the keys are called is `keys.rs`'s, and each store trait has a
//! file of its own: `sessions.rs`, `claims.rs`, `users.rs`, `access_tokens.rs`, `accounts.rs`
//! (whose Lua scripts are in `lua/`, run by `scripts.rs`), and `logins.rs`, a login's writes
//! in one step.
//!
//! A single Redis may also keep a cache of sessions in each process, see
//! [`tracking_cache`]: a logout then answers only once no instance's cache can still hold the
//! session. A cluster runs without it.

mod access_tokens;
mod accounts;
mod adoption;
mod claims;
mod keys;
mod logins;
mod scripts;
mod sessions;
mod tickets;
mod tracking_cache;
mod users;

pub use tracking_cache::{CacheStats, INVALIDATION_LEASE};

use std::{num::NonZeroUsize, sync::Arc, time::Duration};

use redis::{
    Cmd, Pipeline, RedisFuture, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClientBuilder,
    cluster_async::ClusterConnection,
};

use self::{keys::Keys, tracking_cache::Tracking};
use super::{RedisOptions, StoreError};
use crate::data_keys::DataKeys;

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
    keys: Keys,
    /// Seals the shared access token: a Redis dump must not hand out API access.
    data_keys: DataKeys,
    /// The single Redis's address, from which the session cache opens its own connection;
    /// `None` for a cluster.
    node: Option<redis::ConnectionInfo>,
    /// The session cache and the connection that keeps it fresh, when turned on.
    cache: Option<Arc<Tracking>>,
    /// Where this process's scan for sessions from before accounts stands (`adoption.rs`).
    adoption: Arc<std::sync::Mutex<adoption::Scan>>,
    /// This process's web-login listeners, fed from Redis pub/sub (`tickets.rs`).
    tickets: Arc<tickets::Subscription>,
    /// Set by [`Outbox::discard_new_events`](crate::store::Outbox::discard_new_events): logins
    /// then write no event (see `accounts.rs`).
    discard_events: Arc<std::sync::atomic::AtomicBool>,
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
    /// Connects to `url` (`redis://host:port/db`), failing at start-up rather than at the
    /// first login when Redis is not there. No session cache: see
    /// [`RedisStore::with_session_cache`].
    pub async fn connect(url: &str, options: &RedisOptions) -> Result<Self, StoreError> {
        let timeout = options.timeout;
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
        let channel = Keys::new(&options.key_prefix, &options.appid).ticket_channel();
        let tickets =
            tickets::Subscription::start(vec![node.clone()], channel, connect_deadline(timeout))
                .await?;
        let mut store = Self::new(Connection::Node(conn), options, tickets);
        store.node = Some(node);
        Ok(store)
    }

    /// Connects to the Redis Cluster that `seeds` (`redis://[:password@]host:port` each, the
    /// same credentials on all) belong to. Any one seed that answers is enough: it tells where
    /// every slot lives.
    pub async fn connect_cluster(
        seeds: &[String],
        options: &RedisOptions,
    ) -> Result<Self, StoreError> {
        let timeout = options.timeout;
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
        let nodes = seeds
            .iter()
            .map(|seed| redis::Client::open(seed.as_str()).map(|c| c.get_connection_info().clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Unavailable(format!("bad Redis Cluster seeds: {e}")))?;
        let channel = Keys::new(&options.key_prefix, &options.appid).ticket_channel();
        let tickets =
            tickets::Subscription::start(nodes, channel, connect_deadline(timeout)).await?;
        Ok(Self::new(Connection::Cluster(conn), options, tickets))
    }

    fn new(conn: Connection, options: &RedisOptions, tickets: Arc<tickets::Subscription>) -> Self {
        Self {
            conn,
            timeout: options.timeout,
            keys: Keys::new(&options.key_prefix, &options.appid),
            data_keys: options.data_keys.clone(),
            node: None,
            cache: None,
            adoption: Arc::default(),
            tickets,
            discard_events: Arc::default(),
        }
    }

    /// Keeps up to `entries` sessions in this process (see `tracking_cache.rs`); `0`, or a
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
