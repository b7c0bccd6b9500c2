//! Per-client limits on `POST /login`, the one endpoint that costs an upstream call.
//!
//! governor's GCRA limiter: `burst` logins at once, refilled at `per_minute`, one state per
//! client. Two things are ours:
//! - the key: an IPv4 address, or an IPv6 prefix, /64 by default, the block one subscriber is
//!   handed and can rotate through for free ([`ClientKeying`](crate::client_ip::ClientKeying));
//! - a hard cap on tracked clients ([`CappedStore`]). A newcomer arriving at the cap takes the
//!   place of the client whose bucket refilled first, if one has: a full bucket is what an
//!   untracked client starts with, so forgetting it loses nothing. When no bucket is full,
//!   newcomers share one overflow allowance until one is.
//!
//! The overflow is deliberate. Forgetting a client that has spent its allowance would hand it
//! a fresh one, so an attacker cycling through more addresses than the cap would never meet
//! the limit. The price: while more clients than the cap have logged in within the last
//! `burst / per_minute` minutes, real newcomers share the overflow's allowance with everyone
//! else past the cap. Size `LOGIN_RATE_MAX_CLIENTS` above the distinct clients such a window
//! sees at peak (each costs about a hundred bytes).
//!
//! It lives in each process; behind a load balancer with N instances a client gets at most N
//! times the limit, which still bounds a flood while costing `/login` no network round trip.
//! `/checklogin` is deliberately not limited: it is cheap, and throttling it would make clients
//! think they are logged out.

use std::{
    collections::{BTreeSet, HashMap},
    num::NonZeroU32,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock, Reference},
    middleware::NoOpMiddleware,
    nanos::Nanos,
    state::{StateStore, keyed::ShrinkableKeyedStateStore},
};

pub use crate::client_ip::ClientKey;

/// Clients tracked at most when no cap is configured.
pub const DEFAULT_MAX_CLIENTS: u32 = 100_000;

/// governor's state of each client, at most `cap` of them, kept also in the order their
/// buckets fill up again, so that making room is a look at the first rather than a scan.
///
/// One lock over both: a check is two ordered-set updates under it (well under a microsecond
/// at the default cap), on `/login` only, whose rate the server's other limits bound anyway.
#[derive(Debug)]
pub struct CappedStore<C: Clock> {
    tracked: Mutex<Tracked>,
    cap: usize,
    clock: C,
    /// The instant governor's states count from. Read just after the limiter reads its own, so
    /// never earlier: a bucket judged full here is full there too.
    origin: Arc<OnceLock<C::Instant>>,
}

#[derive(Debug, Default)]
struct Tracked {
    /// Each client's state: GCRA's theoretical arrival time, the moment its bucket is full.
    full_at: HashMap<ClientKey, Nanos>,
    /// The same pairs, the soonest full first.
    by_full_at: BTreeSet<(Nanos, ClientKey)>,
    /// The allowance newcomers share while no tracked bucket is full.
    overflow: Option<Nanos>,
}

impl Tracked {
    fn set(&mut self, key: ClientKey, full_at: Nanos) {
        if let Some(before) = self.full_at.insert(key, full_at) {
            self.by_full_at.remove(&(before, key));
        }
        self.by_full_at.insert((full_at, key));
    }

    /// Forgets the client whose bucket is the fullest, if it is full by `now`.
    fn forget_one_full(&mut self, now: Nanos) -> bool {
        match self.by_full_at.first() {
            Some(&(full_at, key)) if full_at <= now => {
                self.by_full_at.pop_first();
                self.full_at.remove(&key);
                true
            }
            _ => false,
        }
    }
}

impl<C: Clock> CappedStore<C> {
    /// Now, on governor's scale; `None` before the limiter is built.
    fn now(&self) -> Option<Nanos> {
        let origin = self.origin.get()?;
        Some(self.clock.now().duration_since(*origin))
    }
}

impl<C: Clock> StateStore for CappedStore<C> {
    type Key = ClientKey;

    fn measure_and_replace<T, F, E>(&self, key: &ClientKey, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        let known = tracked.full_at.get(key).copied();
        let has_room = known.is_some()
            || tracked.full_at.len() < self.cap
            || self.now().is_some_and(|now| tracked.forget_one_full(now));
        if !has_room {
            let (answer, overflow) = f(tracked.overflow)?;
            tracked.overflow = Some(overflow);
            return Ok(answer);
        }
        let (answer, full_at) = f(known)?;
        tracked.set(*key, full_at);
        Ok(answer)
    }
}

impl<C: Clock> ShrinkableKeyedStateStore<ClientKey> for CappedStore<C> {
    fn retain_recent(&self, drop_below: Nanos) {
        let mut tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        while tracked.forget_one_full(drop_below) {}
    }

    fn shrink_to_fit(&self) {
        self.tracked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .full_at
            .shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.tracked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .full_at
            .len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

type KeyedLimiter<C> =
    RateLimiter<ClientKey, CappedStore<C>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The `POST /login` limit of one process.
#[derive(Debug)]
pub struct ClientLimiter<C: Clock + Clone = DefaultClock> {
    /// `None`: limiting is off.
    limiter: Option<KeyedLimiter<C>>,
    clock: C,
    cap: usize,
}

impl ClientLimiter<DefaultClock> {
    /// `per_minute == 0` turns limiting off. At most `max_clients` clients are tracked.
    pub fn new(per_minute: u32, burst: u32, max_clients: u32) -> Self {
        Self::with_clock(per_minute, burst, max_clients, DefaultClock::default())
    }
}

impl<C: Clock + Clone> ClientLimiter<C> {
    pub fn with_clock(per_minute: u32, burst: u32, max_clients: u32, clock: C) -> Self {
        let cap = usize::try_from(max_clients.max(1)).unwrap_or(usize::MAX);
        let limiter = NonZeroU32::new(per_minute).map(|per_minute| {
            let quota = Quota::with_period(Duration::from_secs(60) / per_minute.get())
                .expect("a period of at least 60 s / u32::MAX is positive")
                .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
            let origin = Arc::new(OnceLock::new());
            let store = CappedStore {
                tracked: Mutex::default(),
                cap,
                clock: clock.clone(),
                origin: origin.clone(),
            };
            let limiter = RateLimiter::new(quota, store, clock.clone());
            origin.get_or_init(|| clock.now());
            limiter
        });
        Self {
            limiter,
            clock,
            cap,
        }
    }

    /// Takes one request's worth from `client`'s allowance, or says how long until there is
    /// one.
    pub fn check(&self, client: ClientKey) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter
            .check_key(&client)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Clients tracked now; never above the cap.
    pub fn tracked_clients(&self) -> usize {
        self.limiter.as_ref().map_or(0, |l| l.len())
    }

    pub fn max_clients(&self) -> usize {
        self.cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn limiter(
        per_minute: u32,
        burst: u32,
        cap: u32,
    ) -> (ClientLimiter<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        (
            ClientLimiter::with_clock(per_minute, burst, cap, clock.clone()),
            clock,
        )
    }

    fn ip(text: &str) -> ClientKey {
        crate::client_ip::ClientKeying::default().key(text.parse().unwrap())
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let (limiter, clock) = limiter(60, 3, 100);
        for _ in 0..3 {
            assert!(limiter.check(ip("10.0.0.1")).is_ok());
        }
        let wait = limiter.check(ip("10.0.0.1")).unwrap_err();
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        clock.advance(Duration::from_secs(1));
        assert!(limiter.check(ip("10.0.0.1")).is_ok(), "one refilled");
        assert!(limiter.check(ip("10.0.0.1")).is_err());
    }

    #[test]
    fn clients_are_limited_separately() {
        let (limiter, _) = limiter(60, 1, 100);
        assert!(limiter.check(ip("10.0.0.1")).is_ok());
        assert!(limiter.check(ip("10.0.0.1")).is_err());
        assert!(limiter.check(ip("10.0.0.2")).is_ok());
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64() {
        let (limiter, _) = limiter(60, 1, 100);
        assert!(limiter.check(ip("2001:db8:1:2::1")).is_ok());
        assert!(
            limiter
                .check(ip("2001:db8:1:2:ffff:1234:5678:9abc"))
                .is_err(),
            "another address of the same /64 shares the allowance"
        );
        assert!(
            limiter.check(ip("2001:db8:1:3::1")).is_ok(),
            "the next /64 is someone else"
        );
        assert!(limiter.check(ip("::ffff:10.0.0.9")).is_ok());
        assert!(
            limiter.check(ip("10.0.0.9")).is_err(),
            "mapped IPv4 is that IPv4"
        );
    }

    fn nth_client(n: u32) -> ClientKey {
        ClientKey::V4((0x0a00_0000 | n).to_be_bytes())
    }

    #[test]
    fn the_tracked_set_never_passes_its_cap_and_full_buckets_make_room() {
        let (limiter, clock) = limiter(60, 1, 1_000);
        for n in 0..5_000u32 {
            let _ = limiter.check(nth_client(n));
            assert!(
                limiter.tracked_clients() <= 1_000,
                "{}",
                limiter.tracked_clients()
            );
        }
        // Past the cap, newcomers share one allowance: a spray cannot skip the limit.
        assert!(limiter.check(ip("192.0.2.1")).is_err());
        assert!(limiter.check(ip("192.0.2.2")).is_err());
        // Once the first ones' buckets are full again, each newcomer takes one's place.
        clock.advance(Duration::from_secs(1));
        for n in 3..100 {
            assert!(limiter.check(ip(&format!("192.0.2.{n}"))).is_ok());
        }
        assert_eq!(limiter.tracked_clients(), 1_000);
    }

    #[test]
    fn a_client_cycling_through_twice_the_cap_still_meets_a_limit() {
        const CAP: u32 = 100;
        const BURST: u32 = 2;
        let (limiter, clock) = limiter(60, BURST, CAP);
        let mut allowed = 0;
        for _round in 0..10 {
            for n in 0..2 * CAP {
                if limiter.check(nth_client(n)).is_ok() {
                    allowed += 1;
                }
            }
            // Less than one refill per client over the whole run.
            clock.advance(Duration::from_millis(50));
        }
        // Each tracked address's burst, and the overflow's: forgetting a spent address would
        // have given every round a fresh burst per address, 4,000 in all.
        assert_eq!(allowed, (CAP + 1) * BURST);
        assert!(limiter.tracked_clients() <= CAP as usize);
    }

    #[test]
    fn newcomers_get_their_own_bucket_as_soon_as_a_full_one_can_be_forgotten() {
        let (limiter, clock) = limiter(60, 1, 100);
        for n in 0..100 {
            assert!(limiter.check(nth_client(n)).is_ok());
        }
        clock.advance(Duration::from_millis(500));
        assert!(limiter.check(ip("192.0.2.1")).is_ok(), "the overflow's one");
        assert!(
            limiter.check(ip("192.0.2.2")).is_err(),
            "no bucket is full yet: newcomers share the overflow"
        );
        // The first buckets are full exactly one period after they were spent; no sweep is
        // waited for.
        clock.advance(Duration::from_millis(500));
        assert!(limiter.check(ip("192.0.2.2")).is_ok());
        assert!(limiter.check(ip("192.0.2.3")).is_ok());
        assert!(
            limiter.check(ip("192.0.2.2")).is_err(),
            "a newcomer's bucket is its own, spent by its own request"
        );
        assert_eq!(limiter.tracked_clients(), 100);
    }

    #[test]
    fn a_full_bucket_is_forgotten_before_any_that_is_not() {
        let (limiter, clock) = limiter(60, 2, 3);
        assert!(limiter.check(ip("10.0.0.1")).is_ok());
        for client in ["10.0.0.2", "10.0.0.3"] {
            assert!(limiter.check(ip(client)).is_ok());
            assert!(limiter.check(ip(client)).is_ok());
        }
        // 10.0.0.1 spent one of two, and has it back after a second; the others, one of two.
        clock.advance(Duration::from_secs(1));
        assert!(limiter.check(ip("10.0.0.4")).is_ok());
        assert_eq!(limiter.tracked_clients(), 3);
        for client in ["10.0.0.2", "10.0.0.3"] {
            assert!(limiter.check(ip(client)).is_ok(), "the one refilled");
            assert!(
                limiter.check(ip(client)).is_err(),
                "{client} was remembered"
            );
        }
    }

    #[test]
    fn zero_rate_means_no_limit() {
        let (limiter, _) = limiter(0, 1, 10);
        for _ in 0..1000 {
            assert!(limiter.check(ip("10.0.0.1")).is_ok());
        }
        assert_eq!(limiter.tracked_clients(), 0);
    }
}
