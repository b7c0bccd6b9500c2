//! Deleting expired sessions, for the stores that keep them until told to (SQLite, memory):
//! reads already hide an expired session, so this only keeps the store small. A store that
//! expires entries by itself (Redis, by TTL) does not implement it, and nothing runs for it.

use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;
use tokio::task::JoinHandle;

use super::StoreError;
use crate::time::unix_now;

#[async_trait]
pub trait ExpiredDeletion: Send + Sync + fmt::Debug {
    /// Deletes every session that expired before `now` (unix seconds) and says how many went.
    async fn delete_expired(&self, now: i64) -> Result<u64, StoreError>;
}

/// Deletes what `expiry` holds expired now, then every `every` (which must not be zero),
/// until the task is aborted. A failure is logged and counted, and the next round tries
/// again: a store that is down now may be back by then.
pub fn spawn_expiry_deletion(expiry: Arc<dyn ExpiredDeletion>, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match expiry.delete_expired(unix_now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "expired sessions deleted"),
                Err(e) => {
                    crate::metrics::store_error(e.kind());
                    tracing::warn!(error = %e, "purging expired sessions failed");
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        store::{MemoryStore, SessionStore, contract_tests},
        token::Token,
    };

    #[tokio::test]
    async fn the_task_deletes_expired_sessions_round_after_round() {
        let store = Arc::new(MemoryStore::default());
        let live = Token::generate().hash();
        store
            .insert(live, contract_tests::session("o-live", 3600))
            .await
            .unwrap();
        let task = spawn_expiry_deletion(store.clone(), Duration::from_millis(10));
        for round in 0..3 {
            let expired = Token::generate().hash();
            store
                .insert(expired, contract_tests::session("o-expired", -1))
                .await
                .unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            // Read as of the epoch, when even an expired session is alive: present until deleted.
            while store.get(expired, 0).await.unwrap().is_some() {
                assert!(std::time::Instant::now() < deadline, "round {round}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        assert!(store.get(live, unix_now()).await.unwrap().is_some());
        task.abort();
    }
}
