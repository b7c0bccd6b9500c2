//! What each backend is opened with. Every backend takes its own options, so none is handed a
//! setting it has no use for; [`StoreOptions`] gathers them for [`Stores::open`], which passes
//! each backend its part once the URL has chosen the backend.
//!
//! [`Stores::open`]: super::Stores::open

use std::time::Duration;

use crate::data_keys::DataKeys;

/// Everything [`Stores::open`](super::Stores::open) may need, whichever backend the URL names.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Sessions kept at most in this process in front of SQLite or a single Redis; `0`: none.
    /// A Redis Cluster keeps none whatever this says.
    pub session_cache: usize,
    /// Claims on login codes held at most by the stores of this process (memory, SQLite);
    /// Redis keeps its claims itself.
    pub max_claims: usize,
    pub sqlite: SqliteOptions,
    pub redis: RedisOptions,
}

/// What the SQLite store needs beyond its path.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// How a file written before session_keys were sealed is adopted.
    pub legacy: LegacyImport,
}

/// A file of the versions before sealing holds one app's sessions with their session_keys in
/// the clear and no appid: at open, each is sealed under `data_keys` and stamped with `appid`.
#[derive(Debug, Clone)]
pub struct LegacyImport {
    pub appid: String,
    pub data_keys: DataKeys,
}

/// What the Redis store needs beyond its address.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// The app whose sessions and claims the store keeps: their keys are named after it.
    pub appid: String,
    /// Put before every key, so environments sharing one Redis stay out of each other's data.
    pub key_prefix: String,
    /// Seals the access token instances share: a Redis dump must not hand out API access.
    pub data_keys: DataKeys,
    /// Bounds every call, so a dead Redis yields an error quickly, never a hang.
    pub timeout: Duration,
}
