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
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    sync::Mutex,
    time::{Duration, Instant},
};

use async_trait::async_trait;

use super::StoreError;
use crate::token::{SealedToken, TokenShape, hex};

/// What a claim is stored under: a hash the caller derives from the code and its app (see
/// `auth.rs`), never the code itself. A type of its own, like [`TokenHash`] for sessions, so
/// that no other 32 bytes (a sealed token, a token hash) can be passed where it belongs.
///
/// [`TokenHash`]: crate::token::TokenHash
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClaimKey([u8; 32]);

impl ClaimKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, for stores whose keys are text.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

impl std::fmt::Debug for ClaimKey {
    /// A short prefix is enough to correlate log lines.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClaimKey({}…)", &self.to_hex()[..8])
    }
}

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
        sealed_token: SealedToken,
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
    /// The sign-up policy, not WeChat, said no: the person has no account and sign-up is
    /// closed, their risk rank is too high, or their account is disabled.
    SignupClosed,
    RiskRejected,
    AccountDisabled,
}

/// The one encoding of claims, for stores that keep bytes (Redis): a state tag, then for a
/// finished claim an outcome tag and its fields. Every tag is written and read here only.
impl ClaimState {
    const PENDING: u8 = b'p';
    /// Issued a random token (the only shape older servers issue).
    const ISSUED: u8 = b'i';
    /// Issued an ordered token. A server that predates ordered tokens finds such a claim
    /// unreadable and answers 503 rather than hand out a token of the wrong shape.
    const ISSUED_ORDERED: u8 = b'o';
    const REFUSED: u8 = b'r';

    pub fn encode(&self) -> Vec<u8> {
        match self {
            ClaimState::Pending => vec![Self::PENDING],
            ClaimState::Done(Outcome::Issued {
                sealed_token,
                expires_at,
            }) => {
                let mut v = Vec::with_capacity(41);
                v.push(match sealed_token.shape {
                    TokenShape::Random => Self::ISSUED,
                    TokenShape::Ordered => Self::ISSUED_ORDERED,
                });
                v.extend_from_slice(&sealed_token.bytes);
                v.extend_from_slice(&expires_at.to_be_bytes());
                v
            }
            ClaimState::Done(Outcome::Refused(refusal)) => vec![
                Self::REFUSED,
                match refusal {
                    Refusal::InvalidCode => 1,
                    Refusal::CodeUsed => 2,
                    Refusal::HighRiskUser => 3,
                    Refusal::SignupClosed => 4,
                    Refusal::RiskRejected => 5,
                    Refusal::AccountDisabled => 6,
                },
            ],
        }
    }

    /// Bytes that no version of [`ClaimState::encode`] wrote are corrupt, never a guess.
    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = || StoreError::Corrupt("unreadable code claim".into());
        match bytes {
            [Self::PENDING] => Ok(ClaimState::Pending),
            [tag @ (Self::ISSUED | Self::ISSUED_ORDERED), rest @ ..] if rest.len() == 40 => {
                let (sealed, expiry) = rest.split_at(32);
                let shape = if *tag == Self::ISSUED {
                    TokenShape::Random
                } else {
                    TokenShape::Ordered
                };
                Ok(ClaimState::Done(Outcome::Issued {
                    sealed_token: SealedToken {
                        shape,
                        bytes: sealed.try_into().map_err(|_| corrupt())?,
                    },
                    expires_at: i64::from_be_bytes(expiry.try_into().map_err(|_| corrupt())?),
                }))
            }
            [Self::REFUSED, tag] => Ok(ClaimState::Done(Outcome::Refused(match tag {
                1 => Refusal::InvalidCode,
                2 => Refusal::CodeUsed,
                3 => Refusal::HighRiskUser,
                4 => Refusal::SignupClosed,
                5 => Refusal::RiskRejected,
                6 => Refusal::AccountDisabled,
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
    async fn claim(&self, key: ClaimKey, lease: Duration)
    -> Result<Option<ClaimState>, StoreError>;
    /// Records the outcome for late-comers, kept for `keep`.
    async fn settle(
        &self,
        key: ClaimKey,
        outcome: Outcome,
        keep: Duration,
    ) -> Result<(), StoreError>;
    /// Gives the claim up so a retry can try again (after a transient failure).
    async fn release(&self, key: ClaimKey) -> Result<(), StoreError>;
}

/// Claims for a single process (memory and SQLite stores).
///
/// Each claim lives until its deadline; a min-heap of deadlines lets every call drop the
/// expired ones from the front, so no call scans the whole map. The heap is lazy: a claim that
/// was settled or released leaves its old deadline behind, recognised as stale by its serial
/// number when it comes up. Past `cap` live claims, a new one takes the place of the refused
/// claim closest to its end (a code WeChat refused: forgetting it costs at most a second
/// refusal from WeChat); with none left, it is refused ([`StoreError::ClaimsFull`]) rather
/// than evicting a pending claim, which would let a code be exchanged twice, or a success,
/// whose replay would then be told the code is used.
#[derive(Debug)]
pub struct LocalClaims {
    /// std mutex: held for a map operation only, never across an await.
    inner: Mutex<Deadlines>,
    cap: usize,
}

/// Live claims allowed at once when no cap is configured (`MAX_CLAIMS`). Each is a few dozen
/// bytes.
pub const DEFAULT_MAX_CLAIMS: usize = 200_000;

#[derive(Debug, Default)]
struct Deadlines {
    claims: HashMap<ClaimKey, Claim>,
    /// `(deadline, serial)` of every claim written, soonest first; stale ones included.
    queue: BinaryHeap<Reverse<(Instant, u64, ClaimKey)>>,
    /// The same for refused claims only: the first to make room when the table is full.
    refused: BinaryHeap<Reverse<(Instant, u64, ClaimKey)>>,
    next_serial: u64,
}

#[derive(Debug)]
struct Claim {
    state: ClaimState,
    serial: u64,
}

impl Deadlines {
    fn expire(&mut self, now: Instant) {
        while let Some(Reverse((until, serial, key))) = self.queue.peek().copied() {
            if until > now {
                break;
            }
            self.queue.pop();
            if self.claims.get(&key).is_some_and(|c| c.serial == serial) {
                self.claims.remove(&key);
            }
        }
        // Many settles and releases inside one lease leave stale deadlines behind; keep the
        // heaps within a small multiple of the live claims.
        for heap in [&mut self.queue, &mut self.refused] {
            if heap.len() > 2 * self.claims.len() + 1024 {
                let claims = &self.claims;
                heap.retain(|Reverse((_, serial, key))| {
                    claims.get(key).is_some_and(|c| c.serial == *serial)
                });
            }
        }
    }

    fn put(&mut self, key: ClaimKey, state: ClaimState, until: Instant) {
        let serial = self.next_serial;
        self.next_serial += 1;
        if let ClaimState::Done(Outcome::Refused(_)) = state {
            self.refused.push(Reverse((until, serial, key)));
        }
        self.claims.insert(key, Claim { state, serial });
        self.queue.push(Reverse((until, serial, key)));
    }

    /// Drops the refused claim closest to its end; `false` when there is none.
    fn evict_refused(&mut self) -> bool {
        while let Some(Reverse((_, serial, key))) = self.refused.pop() {
            if self.claims.get(&key).is_some_and(|c| c.serial == serial) {
                self.claims.remove(&key);
                return true;
            }
        }
        false
    }
}

impl Default for LocalClaims {
    fn default() -> Self {
        Self::with_cap(DEFAULT_MAX_CLAIMS)
    }
}

impl LocalClaims {
    pub fn with_cap(cap: usize) -> Self {
        Self {
            inner: Mutex::new(Deadlines::default()),
            cap: cap.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Deadlines> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Live claims, expired ones not counted.
    pub fn len(&self) -> usize {
        let mut inner = self.lock();
        inner.expire(Instant::now());
        inner.claims.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn claim_at(
        &self,
        key: ClaimKey,
        lease: Duration,
        now: Instant,
    ) -> Result<Option<ClaimState>, StoreError> {
        let mut inner = self.lock();
        inner.expire(now);
        if let Some(claim) = inner.claims.get(&key) {
            return Ok(Some(claim.state.clone()));
        }
        if inner.claims.len() >= self.cap && !inner.evict_refused() {
            return Err(StoreError::ClaimsFull(self.cap));
        }
        inner.put(key, ClaimState::Pending, now + lease);
        Ok(None)
    }

    /// Its deadline stays in the queue, stale, until it comes up.
    fn release_now(&self, key: ClaimKey) {
        self.lock().claims.remove(&key);
    }

    fn settle_at(&self, key: ClaimKey, outcome: Outcome, keep: Duration, now: Instant) {
        let mut inner = self.lock();
        inner.expire(now);
        inner.put(key, ClaimState::Done(outcome), now + keep);
    }
}

#[async_trait]
impl ClaimStore for LocalClaims {
    async fn claim(
        &self,
        key: ClaimKey,
        lease: Duration,
    ) -> Result<Option<ClaimState>, StoreError> {
        self.claim_at(key, lease, Instant::now())
    }

    async fn settle(
        &self,
        key: ClaimKey,
        outcome: Outcome,
        keep: Duration,
    ) -> Result<(), StoreError> {
        self.settle_at(key, outcome, keep, Instant::now());
        Ok(())
    }

    async fn release(&self, key: ClaimKey) -> Result<(), StoreError> {
        self.release_now(key);
        Ok(())
    }
}

/// The contract every claim store must meet.
#[cfg(any(test, feature = "contract-tests"))]
pub mod contract_tests {
    use super::*;

    /// Panics on the first broken rule. Uses fixed keys: run it on a store of its own.
    pub async fn run_all(claims: &dyn ClaimStore) {
        let key = ClaimKey::new([7; 32]);
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
            sealed_token: SealedToken {
                shape: TokenShape::Ordered,
                bytes: [9; 32],
            },
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

        let short = ClaimKey::new([8; 32]);
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
    fn local_claims_expire_by_their_own_deadlines() {
        let claims = LocalClaims::default();
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let issued = Outcome::Issued {
            sealed_token: SealedToken {
                shape: TokenShape::Ordered,
                bytes: [1; 32],
            },
            expires_at: 0,
        };
        assert_eq!(
            claims.claim_at(ClaimKey::new([1; 32]), 10 * s, t0).unwrap(),
            None
        );
        assert_eq!(
            claims.claim_at(ClaimKey::new([2; 32]), 2 * s, t0).unwrap(),
            None
        );
        // Settled with a shorter life than its lease: the lease's old deadline must not matter.
        claims.settle_at(ClaimKey::new([1; 32]), issued.clone(), s, t0);
        assert_eq!(
            claims.claim_at(ClaimKey::new([1; 32]), s, t0).unwrap(),
            Some(ClaimState::Done(issued))
        );
        assert_eq!(
            claims
                .claim_at(ClaimKey::new([1; 32]), 5 * s, t0 + s)
                .unwrap(),
            None,
            "settled life over"
        );
        assert_eq!(
            claims.claim_at(ClaimKey::new([2; 32]), s, t0 + s).unwrap(),
            Some(ClaimState::Pending),
            "lease still running"
        );
        assert_eq!(
            claims
                .claim_at(ClaimKey::new([2; 32]), s, t0 + 2 * s)
                .unwrap(),
            None,
            "lease over"
        );
        // [1] was claimed again at t0+1s for 5 s: its first deadline (t0+10s) is stale.
        assert_eq!(
            claims
                .claim_at(ClaimKey::new([1; 32]), s, t0 + 5 * s)
                .unwrap(),
            Some(ClaimState::Pending)
        );
        assert_eq!(
            claims
                .claim_at(ClaimKey::new([1; 32]), s, t0 + 6 * s)
                .unwrap(),
            None
        );
    }

    #[test]
    fn local_claims_refuse_past_their_cap_and_make_room_as_claims_expire() {
        let claims = LocalClaims::with_cap(100);
        let t0 = Instant::now();
        let key = |n: u32| {
            let mut k = [0; 32];
            k[..4].copy_from_slice(&n.to_be_bytes());
            ClaimKey::new(k)
        };
        for n in 0..100 {
            assert_eq!(
                claims.claim_at(key(n), Duration::from_secs(1), t0).unwrap(),
                None
            );
        }
        assert!(matches!(
            claims.claim_at(key(100), Duration::from_secs(1), t0),
            Err(StoreError::ClaimsFull(100))
        ));
        // A live claim is still answered while full.
        assert_eq!(
            claims.claim_at(key(5), Duration::from_secs(1), t0).unwrap(),
            Some(ClaimState::Pending)
        );
        let later = t0 + Duration::from_secs(1);
        assert_eq!(
            claims
                .claim_at(key(100), Duration::from_secs(1), later)
                .unwrap(),
            None
        );
        assert_eq!(claims.lock().claims.len(), 1);
    }

    #[test]
    fn a_full_table_makes_room_from_refused_claims_only_oldest_first() {
        let claims = LocalClaims::with_cap(4);
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let key = |n: u8| ClaimKey::new([n; 32]);
        let refused = Outcome::Refused(Refusal::InvalidCode);
        let issued = Outcome::Issued {
            sealed_token: SealedToken {
                shape: TokenShape::Ordered,
                bytes: [1; 32],
            },
            expires_at: 0,
        };
        for n in 1..=4 {
            assert_eq!(claims.claim_at(key(n), 60 * s, t0).unwrap(), None);
        }
        // 1 and 3 refused (3 first, so it ends first), 2 issued, 4 still pending.
        claims.settle_at(key(3), refused.clone(), 30 * s, t0);
        claims.settle_at(key(1), refused.clone(), 30 * s, t0 + s);
        claims.settle_at(key(2), issued.clone(), 30 * s, t0);

        assert_eq!(claims.claim_at(key(5), 60 * s, t0 + s).unwrap(), None);
        assert_eq!(
            claims.claim_at(key(3), s, t0 + s).unwrap(),
            None,
            "the refusal closest to its end made room"
        );
        // 3 took the place of 1, the last refusal; now every claim is pending or a success.
        assert_eq!(
            claims.claim_at(key(6), s, t0 + s).unwrap_err().kind(),
            "claims_full"
        );
        assert_eq!(
            claims.claim_at(key(2), s, t0 + s).unwrap(),
            Some(ClaimState::Done(issued)),
            "a success is never evicted"
        );
        assert_eq!(
            claims.claim_at(key(4), s, t0 + s).unwrap(),
            Some(ClaimState::Pending),
            "nor a pending claim"
        );
        assert_eq!(claims.lock().claims.len(), 4);
    }

    #[test]
    fn released_claims_leave_no_lasting_weight() {
        let claims = LocalClaims::with_cap(10);
        let t0 = Instant::now();
        for _ in 0..100_000 {
            assert_eq!(
                claims
                    .claim_at(ClaimKey::new([3; 32]), Duration::from_secs(60), t0)
                    .unwrap(),
                None
            );
            claims.release_now(ClaimKey::new([3; 32]));
        }
        assert!(
            claims.lock().queue.len() <= 1024 + 3,
            "{}",
            claims.lock().queue.len()
        );
    }

    #[test]
    fn states_round_trip_through_bytes() {
        let mut states = vec![
            ClaimState::Pending,
            ClaimState::Done(Outcome::Issued {
                sealed_token: SealedToken {
                    shape: TokenShape::Ordered,
                    bytes: [0xab; 32],
                },
                expires_at: -5,
            }),
            ClaimState::Done(Outcome::Issued {
                sealed_token: SealedToken {
                    shape: TokenShape::Random,
                    bytes: [0xcd; 32],
                },
                expires_at: 7,
            }),
        ];
        for refusal in [
            Refusal::InvalidCode,
            Refusal::CodeUsed,
            Refusal::HighRiskUser,
            Refusal::SignupClosed,
            Refusal::RiskRejected,
            Refusal::AccountDisabled,
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
