//! Claims on login codes in Redis: `SET NX` with a lease, so that of the instances asked for
//! one code at once exactly one exchanges it, and the others read the outcome it settles.

use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands;

use super::RedisStore;
use crate::store::{ClaimKey, ClaimState, ClaimStore, Outcome, StoreError};

#[async_trait]
impl ClaimStore for RedisStore {
    async fn claim(
        &self,
        key: ClaimKey,
        lease: Duration,
    ) -> Result<Option<ClaimState>, StoreError> {
        let won = self
            .set_if_absent(self.keys.claim(&key), ClaimState::Pending.encode(), lease)
            .await?;
        if won {
            return Ok(None);
        }
        // Someone holds it. If the hold ended between the two commands, report it as pending:
        // the caller's next round wins it.
        let mut c = self.conn.clone();
        let raw: Option<Vec<u8>> = self
            .run(async move { c.get(self.keys.claim(&key)).await })
            .await?;
        raw.map_or(Ok(Some(ClaimState::Pending)), |v| {
            ClaimState::decode(&v).map(Some)
        })
    }

    async fn settle(
        &self,
        key: ClaimKey,
        outcome: Outcome,
        keep: Duration,
    ) -> Result<(), StoreError> {
        let value = ClaimState::Done(outcome).encode();
        let ms = keep.as_millis().max(1) as u64;
        let mut c = self.conn.clone();
        self.run(async move { c.pset_ex(self.keys.claim(&key), value, ms).await })
            .await
    }

    async fn release(&self, key: ClaimKey) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        self.run(async move { c.del(self.keys.claim(&key)).await })
            .await
    }
}
