//! Redis's memory per session: `used_memory` (what Redis's allocator holds for data and
//! overhead) before and after writing sessions through `RedisStore::insert`, the very code a
//! login runs, into a Redis of the bench's own that holds nothing else.

use std::time::Duration;

use server::{
    DEV_APPID,
    data_keys::DataKeys,
    store::{RedisOptions, RedisStore, SessionStore},
};

use crate::{
    Result,
    cpus::CpuPlan,
    processes::{self, TempDir},
};

/// Inserts in flight: enough to keep the connection's pipeline full.
const CONCURRENCY: u64 = 64;

#[derive(Debug, Clone, Copy)]
pub struct RedisFootprint {
    pub sessions: u64,
    pub used_before: u64,
    pub used_after: u64,
}

impl RedisFootprint {
    pub fn bytes_per_session(&self) -> f64 {
        self.used_after.saturating_sub(self.used_before) as f64 / self.sessions as f64
    }
}

/// A Redis of the bench's own, holding nothing, without persistence.
pub(crate) struct EmptyRedis {
    pub store: RedisStore,
    pub keys: DataKeys,
    /// A plain connection, for `INFO` and the like.
    pub conn: redis::aio::MultiplexedConnection,
    _redis: processes::Redis,
    _dir: TempDir,
}

impl EmptyRedis {
    pub(crate) async fn start(cpus: &CpuPlan) -> Result<Self> {
        let dir = TempDir::new("bench-redis")?;
        let redis = processes::start_redis(dir.path(), false, cpus)?;
        let keys = DataKeys::generate();
        let options = RedisOptions {
            appid: DEV_APPID.to_owned(),
            key_prefix: String::new(),
            data_keys: keys.clone(),
            timeout: Duration::from_secs(30),
        };
        let store = RedisStore::connect(&redis.url(), &options).await?;
        let conn = redis::Client::open(redis.url())?
            .get_multiplexed_async_connection()
            .await?;
        Ok(EmptyRedis {
            store,
            keys,
            conn,
            _redis: redis,
            _dir: dir,
        })
    }
}

pub async fn measure(sessions: u64, cpus: &CpuPlan) -> Result<RedisFootprint> {
    let mut empty = EmptyRedis::start(cpus).await?;
    let (store, keys) = (empty.store.clone(), empty.keys.clone());
    let used_before = used_memory(&mut empty.conn).await?;

    let mut tasks = tokio::task::JoinSet::new();
    for part in 0..CONCURRENCY {
        let (store, keys) = (store.clone(), keys.clone());
        tasks.spawn(async move {
            let sim = super::simulator();
            for i in (part..sessions).step_by(CONCURRENCY as usize) {
                let (token, session) = super::session(i, sessions, &keys, &sim);
                store.insert(token.hash(), session).await?;
            }
            Ok::<_, server::store::StoreError>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    // Each session of the bench is its account's only one, so each comes with the account's
    // session list: the most a list costs per session.
    let stored: u64 = redis::cmd("DBSIZE").query_async(&mut empty.conn).await?;
    if stored != 2 * sessions {
        return Err(format!(
            "Redis holds {stored} keys after {sessions} sessions (each with its account's \
             session list) were written"
        )
        .into());
    }
    let used_after = used_memory(&mut empty.conn).await?;
    Ok(RedisFootprint {
        sessions,
        used_before,
        used_after,
    })
}

/// `used_memory` from `INFO memory`.
pub(crate) async fn used_memory(conn: &mut redis::aio::MultiplexedConnection) -> Result<u64> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(conn).await?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| "no used_memory in INFO memory".into())
}
