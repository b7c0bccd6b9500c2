//! Per-client limits on `POST /login`, the one endpoint that costs an upstream call.
//!
//! governor's keyed GCRA limiter: `burst` logins at once, refilled at `per_minute`, one state per
//! client. Two things are ours:
//! - the key: an IPv4 address, or an IPv6 address's /64, the block one subscriber is handed and
//!   can rotate through for free;
//! - a hard cap on tracked clients. Clients whose bucket is full again are forgotten (governor's
//!   `retain_recent`) when the cap is reached, at most once a second; when even that leaves no
//!   room, new clients share one overflow bucket until room is made. A spray of addresses thus
//!   costs bounded memory and no per-request scan, and cannot be used to skip the limit.
//!
//! It lives in each process; behind a load balancer with N instances a client gets at most N
//! times the limit, which still bounds a flood while costing `/login` no network round trip.
//! `/checklogin` is deliberately not limited: it is cheap, and throttling it would make clients
//! think they are logged out.

use std::{net::IpAddr, num::NonZeroU32, sync::Mutex, time::Duration};

use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock, Reference},
    middleware::NoOpMiddleware,
    nanos::Nanos,
    state::{
        StateStore,
        keyed::{DashMapStateStore, ShrinkableKeyedStateStore},
    },
};

pub use crate::client_ip::ClientKey;

/// Clients tracked at most when no cap is configured.
pub const DEFAULT_MAX_CLIENTS: u32 = 100_000;

/// governor's DashMap store with a ceiling: a client not yet tracked, arriving while `cap`
/// clients are, is counted under [`ClientKey::Overflow`] instead of being added.
#[derive(Debug)]
pub struct CappedStore {
    clients: DashMapStateStore<ClientKey>,
    cap: usize,
}

impl StateStore for CappedStore {
    type Key = ClientKey;

    fn measure_and_replace<T, F, E>(&self, key: &ClientKey, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        // Concurrent newcomers may each see room: the cap holds within the number of requests
        // in flight, which the connection cap bounds.
        let key = if self.clients.len() >= self.cap && !self.clients.contains_key(key) {
            &ClientKey::Overflow
        } else {
            key
        };
        self.clients.measure_and_replace(key, f)
    }
}

impl ShrinkableKeyedStateStore<ClientKey> for CappedStore {
    fn retain_recent(&self, drop_below: Nanos) {
        self.clients.retain_recent(drop_below);
    }

    fn shrink_to_fit(&self) {
        self.clients.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.clients.len()
    }

    fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

type KeyedLimiter<C> =
    RateLimiter<ClientKey, CappedStore, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The `POST /login` limit of one process.
#[derive(Debug)]
pub struct ClientLimiter<C: Clock + Clone = DefaultClock> {
    /// `None`: limiting is off.
    limiter: Option<KeyedLimiter<C>>,
    clock: C,
    cap: usize,
    /// When full buckets were last forgotten; sweeping is a pass over every client, so it is
    /// rationed rather than done per request.
    last_sweep: Mutex<Option<C::Instant>>,
}

/// The least time between two sweeps of the tracked clients.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

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
            let store = CappedStore {
                clients: DashMapStateStore::default(),
                cap,
            };
            RateLimiter::new(quota, store, clock.clone())
        });
        Self {
            limiter,
            clock,
            cap,
            last_sweep: Mutex::new(None),
        }
    }

    /// Takes one request's worth from `ip`'s allowance, or says how long until there is one.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if limiter.len() >= self.cap {
            self.sweep(limiter);
        }
        limiter
            .check_key(&ClientKey::from(ip))
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Clients tracked now; never above the cap by more than the requests in flight.
    pub fn tracked_clients(&self) -> usize {
        self.limiter.as_ref().map_or(0, |l| l.len())
    }

    pub fn max_clients(&self) -> usize {
        self.cap
    }

    fn sweep(&self, limiter: &KeyedLimiter<C>) {
        let now = self.clock.now();
        {
            let mut last = self.last_sweep.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|at| Duration::from(now.duration_since(at)) < SWEEP_EVERY) {
                return;
            }
            *last = Some(now);
        }
        limiter.retain_recent();
        limiter.shrink_to_fit();
    }
}

/// The server-wide budget of code2Session calls per second, so that a flood of well-formed
/// junk codes from many addresses cannot spend the AppID's WeChat quota.
#[derive(Debug)]
pub struct UpstreamBudget {
    limiter: Option<governor::DefaultDirectRateLimiter>,
}

impl UpstreamBudget {
    /// `per_second == 0` turns the budget off. A second's worth may be spent at once.
    pub fn new(per_second: u32) -> Self {
        Self {
            limiter: NonZeroU32::new(per_second).map(|n| RateLimiter::direct(Quota::per_second(n))),
        }
    }

    /// Spends one call, or says how long until one is available.
    pub fn spend(&self) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
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

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
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

    #[test]
    fn the_tracked_set_never_passes_its_cap_and_idle_clients_make_room() {
        let (limiter, clock) = limiter(60, 1, 1_000);
        for n in 0..5_000u32 {
            let _ = limiter.check(IpAddr::from(n.to_be_bytes()));
            assert!(
                limiter.tracked_clients() <= 1_001,
                "{}",
                limiter.tracked_clients()
            );
        }
        // Past the cap, newcomers share one allowance: a spray cannot skip the limit.
        assert!(limiter.check(ip("192.0.2.1")).is_err());
        assert!(limiter.check(ip("192.0.2.2")).is_err());
        // Once the first ones' buckets are full again they are forgotten, and newcomers are
        // tracked on their own.
        clock.advance(Duration::from_secs(2));
        assert!(limiter.check(ip("192.0.2.3")).is_ok());
        assert!(
            limiter.tracked_clients() < 10,
            "{}",
            limiter.tracked_clients()
        );
        assert!(limiter.check(ip("192.0.2.4")).is_ok());
    }

    #[test]
    fn zero_rate_means_no_limit() {
        let (limiter, _) = limiter(0, 1, 10);
        for _ in 0..1000 {
            assert!(limiter.check(ip("10.0.0.1")).is_ok());
        }
        assert_eq!(limiter.tracked_clients(), 0);
    }

    #[test]
    fn the_upstream_budget_allows_a_second_then_refuses() {
        let budget = UpstreamBudget::new(5);
        for _ in 0..5 {
            assert!(budget.spend().is_ok());
        }
        let wait = budget.spend().unwrap_err();
        assert!(wait <= Duration::from_millis(200), "{wait:?}");
        let off = UpstreamBudget::new(0);
        assert!((0..1000).all(|_| off.spend().is_ok()));
    }
}
