//! Lua scripts, how the Redis store makes a step of several commands atomic: Redis runs a
//! script whole, with no other command in between, on the node of its keys' slot.
//!
//! A script is sent by its SHA-1 (`EVALSHA`), and in full (`EVAL`, which also caches it) only
//! when the node answers it does not know it: after a restart, a failover, a `SCRIPT FLUSH`,
//! or on a cluster node seeing it for the first time.

use std::fmt::Write;

use redis::{ErrorKind, FromRedisValue, ServerErrorKind, ToRedisArgs};
use sha1::{Digest, Sha1};

use super::RedisStore;
use crate::store::StoreError;

/// A script and its SHA-1, computed once.
pub(super) struct Script {
    source: &'static str,
    sha: String,
}

impl Script {
    pub(super) fn new(source: &'static str) -> Self {
        let sha = Sha1::digest(source.as_bytes()).iter().fold(
            String::with_capacity(40),
            |mut hex, byte| {
                let _ = write!(hex, "{byte:02x}");
                hex
            },
        );
        Self { source, sha }
    }
}

impl RedisStore {
    /// Runs `script` on `keys` (which must share one slot on a cluster) and `args`, within
    /// the store's deadline.
    pub(super) async fn eval<T: FromRedisValue, A: ToRedisArgs + Sync>(
        &self,
        script: &Script,
        keys: &[String],
        args: &[A],
    ) -> Result<T, StoreError> {
        let mut c = self.conn.clone();
        self.run(async move {
            let by_sha = redis::cmd("EVALSHA")
                .arg(&script.sha)
                .arg(keys.len())
                .arg(keys)
                .arg(args)
                .query_async(&mut c)
                .await;
            match by_sha {
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    redis::cmd("EVAL")
                        .arg(script.source)
                        .arg(keys.len())
                        .arg(keys)
                        .arg(args)
                        .query_async(&mut c)
                        .await
                }
                other => other,
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sha_is_the_one_redis_computes() {
        // `SCRIPT LOAD "return 1"` answers this.
        assert_eq!(
            Script::new("return 1").sha,
            "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
        );
    }
}
