//! Where sessions live: the SQLite store across restarts, what the stores hold at rest, the
//! session caches, and Redis shared by several instances, on one server or a cluster.

mod durable_store;
mod erasure;
mod first_logins;
mod redis_cluster;
mod redis_session_cache;
mod scale_out;
mod sealed_at_rest;
mod session_cache;
