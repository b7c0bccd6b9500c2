//! The processes a bench run owns: login servers, the two baselines and Redis, each on a
//! loopback port, each stopped when its handle drops; started by `dev-support`, which the
//! tests and xtask share. Nothing here touches a process the bench did not start.
//!
//! HTTP services bind `127.0.0.1:0` themselves and log `listening addr=…` (the login server,
//! the axum baseline and the express baseline all do), so no port is guessed and none can be taken
//! in between. Redis cannot report a port it chose, so it gets one that was free a moment ago.

use std::{ffi::OsStr, path::Path, process::Command, time::Duration};

pub use dev_support::{Redis, Service, TempDir};

use crate::{Result, cpus::CpuPlan};

/// How a measured service's log is handled: not shown, as the servers run at `warn` and a
/// warning under load would only interleave with the table, but its last lines kept for the
/// message when it fails.
fn quiet() -> dev_support::Options {
    dev_support::Options {
        echo: false,
        keep: Some(20),
        limit: Duration::from_secs(20),
    }
}

/// Starts `cmd`, waits for its `listening addr=` line, then for `GET ready_path` to answer
/// 200.
pub fn start_service(name: &str, cmd: Command, ready_path: &str) -> Result<Service> {
    Ok(Service::start(name, cmd, ready_path, &quiet())?)
}

/// A `redis-server` of the bench's own, loopback only, its data in `dir`, on Redis's CPU (see
/// [`CpuPlan`]).
///
/// `durable`: an append-only file synced at every write (`appendfsync always`), the durability
/// the SQLite store has with `synchronous=FULL`, so their login figures compare like with
/// like. Without it, nothing is written to disk (for the memory measurement).
pub fn start_redis(dir: &Path, durable: bool, cpus: &CpuPlan) -> Result<Redis> {
    std::fs::create_dir_all(dir)?;
    let mut args = vec![OsStr::new("--dir"), dir.as_os_str()];
    args.extend(["--save", ""].map(OsStr::new));
    if durable {
        args.extend(["--appendonly", "yes", "--appendfsync", "always"].map(OsStr::new));
    } else {
        args.extend(["--appendonly", "no"].map(OsStr::new));
    }
    Ok(Redis::start_with(&cpus.redis(), &args)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_starts_durable_or_not_as_asked() {
        let cpus = CpuPlan::detect().unwrap();
        let dir = TempDir::new("bench-redis-test").unwrap();
        for durable in [true, false] {
            let redis = start_redis(&dir.join(durable.to_string()), durable, &cpus).unwrap();
            let persistence = redis.query("INFO persistence").unwrap();
            let aof = if durable {
                "aof_enabled:1"
            } else {
                "aof_enabled:0"
            };
            assert!(persistence.contains(aof), "{persistence}");
        }
    }
}
