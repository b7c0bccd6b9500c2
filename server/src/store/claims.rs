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
    /// The exchange finished with this outcome.
    Done(Outcome),
}

/// What one exchange of a code came to, as late-comers with the same code must hear it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A session was created. The token is kept only sealed under the code (see
    /// `Token::seal`), so the store never holds a token anyone could use.
    Issued {
        sealed_token: [u8; 32],
        /// Unix seconds.
        expires_at: i64,
    },
    /// WeChat refused the code for good.
    Refused(Refusal),
}

/// WeChat's answers about a code that will not change while the code lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    InvalidCode,
    CodeUsed,
    HighRiskUser,
}

/// The one encoding of claims, for stores that keep bytes (Redis): a state tag, then for a
/// finished claim an outcome tag and its fields. Every tag is written and read here only.
impl ClaimState {
    const PENDING: u8 = b'p';
    const ISSUED: u8 = b'i';
    const REFUSED: u8 = b'r';

    pub fn encode(&self) -> Vec<u8> {
        match self {
            ClaimState::Pending => vec![Self::PENDING],
            ClaimState::Done(Outcome::Issued {
                sealed_token,
                expires_at,
            }) => {
                let mut v = Vec::with_capacity(41);
                v.push(Self::ISSUED);
                v.extend_from_slice(sealed_token);
                v.extend_from_slice(&expires_at.to_be_bytes());
                v
            }
            ClaimState::Done(Outcome::Refused(refusal)) => vec![
                Self::REFUSED,
                match refusal {
                    Refusal::InvalidCode => 1,
                    Refusal::CodeUsed => 2,
                    Refusal::HighRiskUser => 3,
                },
            ],
        }
    }

    /// Bytes that no version of [`ClaimState::encode`] wrote are corrupt, never a guess.
    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = || StoreError::Corrupt("unreadable code claim".into());
        match bytes {
            [Self::PENDING] => Ok(ClaimState::Pending),
            [Self::ISSUED, rest @ ..] if rest.len() == 40 => {
                let (sealed, expiry) = rest.split_at(32);
                Ok(ClaimState::Done(Outcome::Issued {
                    sealed_token: sealed.try_into().map_err(|_| corrupt())?,
                    expires_at: i64::from_be_bytes(expiry.try_into().map_err(|_| corrupt())?),
                }))
            }
            [Self::REFUSED, tag] => Ok(ClaimState::Done(Outcome::Refused(match tag {
                1 => Refusal::InvalidCode,
                2 => Refusal::CodeUsed,
                3 => Refusal::HighRiskUser,
                _ => return Err(corrupt()),
            }))),
            _ => Err(corrupt()),
        }
    }
}

#[async_trait]
pub trait ClaimStore: Send + Sync + std::fmt::Debug {
    /// Takes `key` for `lease` if nobody holds it: `None` means the caller won and must settle
    /// or release it; otherwise the current state.
    async fn claim(&self, key: [u8; 32], lease: Duration)
    -> Result<Option<ClaimState>, StoreError>;
    /// Records the outcome for late-comers, kept for `keep`.
    async fn settle(
        &self,
        key: [u8; 32],
        outcome: Outcome,
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

    async fn settle(
        &self,
        key: [u8; 32],
        outcome: Outcome,
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
        let outcome = Outcome::Issued {
            sealed_token: [9; 32],
            expires_at: 1_700_000_000,
        };
        claims
            .settle(key, outcome.clone(), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(
            claims.claim(key, Duration::from_secs(5)).await.unwrap(),
            Some(ClaimState::Done(outcome))
        );
        claims.release(key).await.unwrap();
        assert_eq!(
            claims.claim(key, Duration::from_secs(5)).await.unwrap(),
            None,
            "a released claim is free again"
        );
        claims.release(key).await.unwrap();

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
        let mut states = vec![
            ClaimState::Pending,
            ClaimState::Done(Outcome::Issued {
                sealed_token: [0xab; 32],
                expires_at: -5,
            }),
        ];
        for refusal in [
            Refusal::InvalidCode,
            Refusal::CodeUsed,
            Refusal::HighRiskUser,
        ] {
            states.push(ClaimState::Done(Outcome::Refused(refusal)));
        }
        for state in states {
            assert_eq!(ClaimState::decode(&state.encode()).unwrap(), state);
        }
    }

    #[test]
    fn unknown_bytes_are_corrupt_not_pending() {
        for bytes in [&b""[..], b"d", b"pp", b"r\x09", &[b'i'; 40]] {
            assert!(
                matches!(ClaimState::decode(bytes), Err(StoreError::Corrupt(_))),
                "{bytes:?}"
            );
        }
    }
}
