//! Processes that the tests, the bench and xtask start for themselves: a server found by the
//! `listening addr=` line it logs, Redis (one server or a cluster) and nginx, each on a
//! loopback port, each killed when its handle drops. Nothing here touches a process its
//! caller did not start.
//!
//! Only std, and blocking: xtask builds this crate before it can run anything, so it must
//! compile in seconds, and async callers wait on it only while a child starts up.

mod nginx;
mod redis;
mod service;
mod temp_dir;

pub use nginx::Nginx;
pub use redis::{Redis, RedisCluster, query as redis_query};
pub use service::{LogLines, Options, Service, http_status, listening_address};
pub use temp_dir::TempDir;

/// Errors are messages for a person reading a test failure or a terminal.
pub type Result<T = ()> = std::result::Result<T, String>;

/// A port that was free a moment ago on 127.0.0.1. Only for programs that cannot bind port 0
/// and say which port they got (Redis, nginx): another process may take it in between, so
/// their start retries on another port.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
