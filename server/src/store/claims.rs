//! Claims on login codes, which make `POST /login` idempotent.
//!
//! WeChat accepts a code once. A double tap, a client retry after a lost answer, or two pages
//! logging in at once would otherwise turn one user's login into a `40163` failure. So the
//! first request for a code *claims* it (Redis `SET NX` with a short lease, or a map entry in
//! one process), calls WeChat, and *settles* the claim with the outcome; every other request
//! for the same code waits for that outcome instead of calling WeChat. A claim whose holder
//! died simply runs out its lease.
//!
//! The stores see only derived keys and sealed outcomes (see `auth.rs`): never a code, never a
//! raw token.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use async_trait::async_trait;

use super::StoreError;

/// Where a claim stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimState {
    /// Someone is exchanging the code right now.
    Pending,
    /// The exchange finished; the bytes are its sealed outcome.
    Done(Vec<u8>),
}

impl ClaimState {
    /// One tag byte, then the outcome.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            ClaimState::Pending => vec![b'p'],
            ClaimState::Done(outcome) => {
                let mut v = Vec::with_capacity(outcome.len() + 1);
                v.push(b'd');
                v.extend_from_slice(outcome);
                v
            }
        }
    }

    pub fn decode(bytes: &[u8]) -> Self {
        match bytes.split_first() {
            Some((b'd', outcome)) => ClaimState::Done(outcome.to_vec()),
            _ => ClaimState::Pending,
        }
    }
}

#[async_trait]
pub trait ClaimStore: Send + Sync + std::fmt::Debug {
    /// Takes `key` for `lease` if nobody holds it: `None` means the caller won and must settle
    /// or release it; otherwise the current state.
    async fn claim(&self, key: [u8; 32], lease: Duration)
    -> Result<Option<ClaimState>, StoreError>;
    /// The current state, without taking anything.
    async fn peek(&self, key: [u8; 32]) -> Result<Option<ClaimState>, StoreError>;
    /// Records the outcome for late-comers, kept for `keep`.
    async fn settle(
        &self,
        key: [u8; 32],
        outcome: Vec<u8>,
        keep: Duration,
    ) -> Result<(), StoreError>;
    /// Gives the claim up so a retry can try again (after a transient failure).
    async fn release(&self, key: [u8; 32]) -> Result<(), StoreError>;
}

/// Claims for a single process (memory and SQLite stores).
#[derive(Debug, Default)]
pub struct LocalClaims {
    /// std mutex: held for a map operation only, never across an await.
    claims: Mutex<HashMap<[u8; 32], (ClaimState, Instant)>>,
}

impl LocalClaims {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (ClaimState, Instant)>> {
        self.claims.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl ClaimStore for LocalClaims {
    async fn claim(
        &self,
        key: [u8; 32],
        lease: Duration,
    ) -> Result<Option<ClaimState>, StoreError> {
        let now = Instant::now();
        let mut map = self.map();
        map.retain(|_, (_, until)| *until > now);
        if let Some((state, _)) = map.get(&key) {
            return Ok(Some(state.clone()));
        }
        map.insert(key, (ClaimState::Pending, now + lease));
        Ok(None)
    }

    async fn peek(&self, key: [u8; 32]) -> Result<Option<ClaimState>, StoreError> {
        let now = Instant::now();
        Ok(self
            .map()
            .get(&key)
            .filter(|(_, until)| *until > now)
            .map(|(state, _)| state.clone()))
    }

    async fn settle(
        &self,
        key: [u8; 32],
        outcome: Vec<u8>,
        keep: Duration,
    ) -> Result<(), StoreError> {
        self.map()
            .insert(key, (ClaimState::Done(outcome), Instant::now() + keep));
        Ok(())
    }

    async fn release(&self, key: [u8; 32]) -> Result<(), StoreError> {
        self.map().remove(&key);
        Ok(())
    }
}

/// The contract every claim store must meet.
#[cfg(any(test, feature = "contract-tests"))]
pub mod contract_tests {
    use super::*;

    /// Panics on the first broken rule. Uses fixed keys: run it on a store of its own.
    pub async fn run_all(claims: &dyn ClaimStore) {
        let key = [7u8; 32];
        assert_eq!(
            claims.claim(key, Duration::from_secs(5)).await.unwrap(),
            None,
            "first wins"
        );
        assert_eq!(
            claims.claim(key, Duration::from_secs(5)).await.unwrap(),
            Some(ClaimState::Pending),
            "second waits"
        );
        claims
            .settle(key, b"outcome".to_vec(), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(
            claims.claim(key, Duration::from_secs(5)).await.unwrap(),
            Some(ClaimState::Done(b"outcome".to_vec()))
        );
        claims.release(key).await.unwrap();
        assert_eq!(claims.peek(key).await.unwrap(), None);

        let short = [8u8; 32];
        assert_eq!(
            claims
                .claim(short, Duration::from_millis(50))
                .await
                .unwrap(),
            None
        );
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(
            claims.claim(short, Duration::from_secs(5)).await.unwrap(),
            None,
            "a lease whose holder vanished runs out"
        );
        claims.release(short).await.unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_claims_meet_the_contract() {
        contract_tests::run_all(&LocalClaims::default()).await;
    }

    #[test]
    fn states_round_trip_through_bytes() {
        for state in [
            ClaimState::Pending,
            ClaimState::Done(vec![1, 2, 3]),
            ClaimState::Done(vec![]),
        ] {
            assert_eq!(ClaimState::decode(&state.encode()), state);
        }
    }
}
