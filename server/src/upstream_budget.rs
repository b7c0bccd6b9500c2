//! The per-app budget of code2Session calls, and the standing of the clients that spend it.
//!
//! Every well-formed code costs one call to WeChat, whose quota is per app; a flood of junk
//! codes from many addresses, each address within its own login limit, could otherwise spend
//! that quota and leave real users with 503s. Two things make the budget fair:
//!
//! - **Standing.** A client (an IPv4 address or an IPv6 /64, as [`ClientKey`] says) whose code
//!   WeChat refused for good (invalid, or already used) is *suspect* for [`SUSPECT_FOR`]; so is
//!   a client while one of its calls is still unanswered, since an attacker's next code comes
//!   before the verdict on the last. A success clears the mark. Every other client is in good
//!   standing, including every address never seen before: a fresh address's first code cannot
//!   be told from a real user's.
//! - **Priority.** The budget is one bucket of `rate` calls a second, holding at most a
//!   second's worth. A suspect client may spend only while the bucket holds more than its
//!   lower half, the reserve, and is refused at once otherwise. A client in good standing may
//!   spend the reserve too, and when the bucket is empty it takes the next free slot and waits
//!   for it, up to [`MAX_WAIT`], in arrival order; while anyone in good standing waits,
//!   suspect clients get nothing. So an attacker's pool of addresses gets one good-standing
//!   call per address and then only what real users leave over, while real users queue for a
//!   moment instead of failing.
//!
//! An attacker with endless fresh addresses is, by the first rule, endless good standing: no
//! per-address rule can stop that, and `docs/security.md` says what an operator can do.

use std::{
    collections::{HashMap, VecDeque},
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

use governor::clock::{Clock, DefaultClock, Reference};

pub use crate::rate_limit::ClientKey;

/// How long a refused code keeps its client suspect.
pub const SUSPECT_FOR: Duration = Duration::from_secs(10 * 60);

/// The longest a client in good standing waits for a call when the budget is spent.
pub const MAX_WAIT: Duration = Duration::from_secs(2);

/// Clients whose standing is remembered at most; see [`Standings`] for what happens past it.
pub const MAX_TRACKED_CLIENTS: usize = 100_000;

/// Whether a client's codes have been refused lately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Good,
    Suspect,
}

impl Standing {
    /// The `standing` label of the budget's metric.
    pub fn label(self) -> &'static str {
        match self {
            Standing::Good => "good",
            Standing::Suspect => "suspect",
        }
    }
}

/// One app's code2Session calls per second, spent by standing.
#[derive(Debug)]
pub struct UpstreamBudget<C: Clock = DefaultClock> {
    /// `None`: no budget.
    bucket: Option<Mutex<Bucket>>,
    clock: C,
    start: C::Instant,
}

/// GCRA in whole nanoseconds since the budget was made: a call conforms at `now` when the
/// theoretical arrival time `tat` is at most `tolerance` ahead of it.
#[derive(Debug)]
struct Bucket {
    tat: u64,
    /// Time one call's worth of budget takes to refill.
    interval: u64,
    /// How far ahead `tat` may be for a call in good standing: a full bucket less one.
    tolerance: u64,
    /// How much of the tolerance suspect clients may not use: the reserve.
    reserve: u64,
    max_wait: u64,
}

impl UpstreamBudget<DefaultClock> {
    /// `per_second == 0` turns the budget off. A second's worth may be spent at once.
    pub fn new(per_second: u32) -> Self {
        Self::with_clock(per_second, DefaultClock::default())
    }
}

impl<C: Clock> UpstreamBudget<C> {
    pub fn with_clock(per_second: u32, clock: C) -> Self {
        let bucket = NonZeroU32::new(per_second).map(|n| {
            let n = u64::from(n.get());
            let interval = (1_000_000_000 / n).max(1);
            Mutex::new(Bucket {
                tat: 0,
                interval,
                tolerance: (n - 1) * interval,
                reserve: n / 2 * interval,
                max_wait: nanos(MAX_WAIT),
            })
        });
        let start = clock.now();
        Self {
            bucket,
            clock,
            start,
        }
    }

    /// Spends one call for a client of `standing`: `Ok` with how long to wait before making
    /// it (zero but for good standing when the budget is spent), or `Err` with how long until
    /// trying again could succeed.
    pub fn spend(&self, standing: Standing) -> Result<Duration, Duration> {
        let Some(bucket) = &self.bucket else {
            return Ok(Duration::ZERO);
        };
        let now = self.clock.now().duration_since(self.start).as_u64();
        let mut b = bucket.lock().unwrap_or_else(|e| e.into_inner());
        let ahead = b.tat.saturating_sub(now);
        let allowed = match standing {
            Standing::Good => b.tolerance,
            Standing::Suspect => b.tolerance - b.reserve,
        };
        if ahead <= allowed {
            b.tat = b.tat.max(now) + b.interval;
            return Ok(Duration::ZERO);
        }
        let wait = ahead - allowed;
        if standing == Standing::Good && wait <= b.max_wait {
            // `tat` is ahead of now: the slot is taken in arrival order.
            b.tat += b.interval;
            return Ok(Duration::from_nanos(wait));
        }
        Err(Duration::from_nanos(wait))
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// What WeChat said of a client's code, as far as its standing goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The code was good: the client's mark is cleared.
    Accepted,
    /// WeChat refused the code for good (invalid or used): the client is marked.
    Refused,
    /// No verdict on the code (over budget, WeChat down, a high-risk user): nothing changes.
    None,
}

/// The standing of every client seen lately, for one process and every app in it.
///
/// Bounded: past [`MAX_TRACKED_CLIENTS`], expired marks go first, then the oldest refusal
/// marks, so an attacker must cycle through more addresses than that within
/// [`SUSPECT_FOR`] to get a second good-standing call from one of them. A client with a call
/// in flight is never forgotten: such calls are bounded by the budget and the connection cap.
#[derive(Debug)]
pub struct Standings<C: Clock = DefaultClock> {
    inner: Mutex<Marks>,
    clock: C,
    start: C::Instant,
    suspect_for: u64,
    cap: usize,
}

#[derive(Debug, Default)]
struct Marks {
    clients: HashMap<ClientKey, Mark>,
    /// Refusal marks, oldest first; an entry whose client was marked again since, or
    /// cleared, is stale and skipped when it comes up.
    refusals: VecDeque<(u64, ClientKey)>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Mark {
    in_flight: u32,
    /// When WeChat last refused one of its codes.
    refused_at: Option<u64>,
}

impl Default for Standings<DefaultClock> {
    fn default() -> Self {
        Self::with_clock(MAX_TRACKED_CLIENTS, DefaultClock::default())
    }
}

impl<C: Clock> Standings<C> {
    pub fn with_clock(cap: usize, clock: C) -> Self {
        let start = clock.now();
        Self {
            inner: Mutex::default(),
            clock,
            start,
            suspect_for: nanos(SUSPECT_FOR),
            cap: cap.max(1),
        }
    }

    fn now(&self) -> u64 {
        self.clock.now().duration_since(self.start).as_u64()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Marks> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The client's standing now, and a call of its counted as in flight until
    /// [`Standings::end`]. One step, so that two codes sent at once cannot both pass as the
    /// client's first.
    pub fn begin(&self, client: ClientKey) -> Standing {
        let now = self.now();
        let mut marks = self.lock();
        self.expire(&mut marks, now);
        let mark = marks.clients.entry(client).or_default();
        let standing = if mark.in_flight > 0 || mark.refused_at.is_some() {
            Standing::Suspect
        } else {
            Standing::Good
        };
        mark.in_flight += 1;
        standing
    }

    /// The client's call begun with [`Standings::begin`] is over, with `verdict`.
    pub fn end(&self, client: ClientKey, verdict: Verdict) {
        let now = self.now();
        let mut marks = self.lock();
        let Some(mark) = marks.clients.get_mut(&client) else {
            return;
        };
        mark.in_flight = mark.in_flight.saturating_sub(1);
        match verdict {
            Verdict::Accepted => mark.refused_at = None,
            Verdict::Refused => mark.refused_at = Some(now),
            Verdict::None => {}
        }
        let mark = *mark;
        if mark.in_flight == 0 && mark.refused_at.is_none() {
            marks.clients.remove(&client);
        }
        if verdict == Verdict::Refused {
            marks.refusals.push_back((now, client));
            self.make_room(&mut marks);
        }
        self.expire(&mut marks, now);
    }

    /// Clients with a mark or a call in flight.
    pub fn tracked(&self) -> usize {
        self.lock().clients.len()
    }

    /// Drops the refusal marks older than [`SUSPECT_FOR`].
    fn expire(&self, marks: &mut Marks, now: u64) {
        while let Some(&(at, client)) = marks.refusals.front() {
            if at.saturating_add(self.suspect_for) > now {
                break;
            }
            marks.refusals.pop_front();
            forget_refusal(marks, client, at);
        }
        // Clients marked again and again leave stale entries behind; keep the queue within a
        // small multiple of the clients.
        if marks.refusals.len() > 2 * marks.clients.len() + 1024 {
            let clients = &marks.clients;
            marks
                .refusals
                .retain(|(at, client)| clients.get(client).and_then(|m| m.refused_at) == Some(*at));
        }
    }

    /// Past the cap, forgets the oldest refusal marks.
    fn make_room(&self, marks: &mut Marks) {
        while marks.clients.len() > self.cap {
            let Some((at, client)) = marks.refusals.pop_front() else {
                return;
            };
            forget_refusal(marks, client, at);
        }
    }
}

/// Clears `client`'s refusal mark if it is still the one made at `at`.
fn forget_refusal(marks: &mut Marks, client: ClientKey, at: u64) {
    if let Some(mark) = marks.clients.get_mut(&client)
        && mark.refused_at == Some(at)
    {
        mark.refused_at = None;
        if mark.in_flight == 0 {
            marks.clients.remove(&client);
        }
    }
}

/// A client's call in flight, ended with [`Verdict::None`] unless [`Call::end`] says
/// otherwise: a call dropped half-way (a panic, a shutdown) must not leave its client
/// suspect for ever.
#[derive(Debug)]
pub struct Call {
    standings: Arc<Standings>,
    client: ClientKey,
    standing: Standing,
    ended: bool,
}

impl Call {
    pub fn begin(standings: &Arc<Standings>, client: ClientKey) -> Self {
        let standing = standings.begin(client);
        Self {
            standings: standings.clone(),
            client,
            standing,
            ended: false,
        }
    }

    /// The client's standing when the call began.
    pub fn standing(&self) -> Standing {
        self.standing
    }

    pub fn end(mut self, verdict: Verdict) {
        self.ended = true;
        self.standings.end(self.client, verdict);
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.ended {
            self.standings.end(self.client, Verdict::None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    const MS: Duration = Duration::from_millis(1);

    fn budget(per_second: u32) -> (UpstreamBudget<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        (UpstreamBudget::with_clock(per_second, clock.clone()), clock)
    }

    fn client(n: u32) -> ClientKey {
        ClientKey::V4(n.to_be_bytes())
    }

    #[test]
    fn suspect_clients_spend_only_above_the_reserve_and_are_refused_at_once() {
        let (budget, _) = budget(10);
        // Ten a second, five of them reserved.
        for _ in 0..5 {
            assert_eq!(budget.spend(Standing::Suspect), Ok(Duration::ZERO));
        }
        let retry = budget.spend(Standing::Suspect).unwrap_err();
        assert!(retry > Duration::ZERO && retry <= 100 * MS, "{retry:?}");
        // The reserve is still whole for clients in good standing.
        for _ in 0..5 {
            assert_eq!(budget.spend(Standing::Good), Ok(Duration::ZERO));
        }
    }

    #[test]
    fn good_standing_waits_in_arrival_order_up_to_the_bound() {
        let (budget, clock) = budget(10);
        for _ in 0..10 {
            assert_eq!(budget.spend(Standing::Good), Ok(Duration::ZERO));
        }
        // Empty: each next client waits one more interval, first come first served.
        for n in 1..=20u32 {
            assert_eq!(budget.spend(Standing::Good), Ok(100 * MS * n), "{n}");
        }
        // Two seconds of waiters queued: the next is refused rather than kept waiting longer.
        let retry = budget.spend(Standing::Good).unwrap_err();
        assert!(retry > MAX_WAIT, "{retry:?}");
        // While good standing waits, suspects get nothing.
        assert!(budget.spend(Standing::Suspect).is_err());
        clock.advance(Duration::from_secs(2));
        assert!(
            budget.spend(Standing::Suspect).is_err(),
            "the queue drained but the reserve has not refilled"
        );
        clock.advance(Duration::from_millis(600));
        assert_eq!(budget.spend(Standing::Suspect), Ok(Duration::ZERO));
    }

    #[test]
    fn a_flood_of_suspects_leaves_the_reserve_to_good_standing() {
        let (budget, clock) = budget(50);
        let mut good = 0;
        let mut suspect = 0;
        // Ten seconds: suspects try every millisecond, a real user every 100 ms.
        for ms in 0..10_000u32 {
            if budget.spend(Standing::Suspect).is_ok() {
                suspect += 1;
            }
            if ms % 100 == 0 {
                assert_eq!(
                    budget.spend(Standing::Good),
                    Ok(Duration::ZERO),
                    "a real user at {ms} ms is served at once"
                );
                good += 1;
            }
            clock.advance(MS);
        }
        assert_eq!(good, 100);
        // The rest of the budget, and not more, went to suspects.
        assert!((390..=430).contains(&suspect), "{suspect}");
    }

    #[test]
    fn no_budget_means_no_limit() {
        let (budget, _) = budget(0);
        assert!((0..1000).all(|_| budget.spend(Standing::Suspect) == Ok(Duration::ZERO)));
    }

    fn standings(cap: usize) -> (Standings<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        (Standings::with_clock(cap, clock.clone()), clock)
    }

    #[test]
    fn a_refused_code_makes_its_client_suspect_until_a_success_or_time_clears_it() {
        let (standings, clock) = standings(100);
        assert_eq!(standings.begin(client(1)), Standing::Good);
        standings.end(client(1), Verdict::Refused);
        assert_eq!(standings.begin(client(1)), Standing::Suspect);
        assert_eq!(standings.begin(client(2)), Standing::Good, "others are not");
        standings.end(client(2), Verdict::None);
        standings.end(client(1), Verdict::Accepted);
        assert_eq!(
            standings.begin(client(1)),
            Standing::Good,
            "a success clears"
        );
        standings.end(client(1), Verdict::Refused);

        clock.advance(SUSPECT_FOR - MS);
        assert_eq!(standings.begin(client(1)), Standing::Suspect);
        standings.end(client(1), Verdict::None);
        clock.advance(MS);
        assert_eq!(
            standings.begin(client(1)),
            Standing::Good,
            "the mark expired"
        );
        standings.end(client(1), Verdict::None);
        assert_eq!(standings.tracked(), 0, "nothing left behind");
    }

    #[test]
    fn a_call_in_flight_makes_the_next_code_suspect() {
        let (standings, _) = standings(100);
        assert_eq!(standings.begin(client(1)), Standing::Good);
        assert_eq!(standings.begin(client(1)), Standing::Suspect);
        standings.end(client(1), Verdict::None);
        standings.end(client(1), Verdict::None);
        assert_eq!(
            standings.begin(client(1)),
            Standing::Good,
            "no verdict, no mark"
        );
        standings.end(client(1), Verdict::None);
        assert_eq!(standings.tracked(), 0);
    }

    #[test]
    fn past_the_cap_the_oldest_marks_are_forgotten_first() {
        let (standings, clock) = standings(1_000);
        for n in 0..5_000 {
            standings.begin(client(n));
            standings.end(client(n), Verdict::Refused);
            clock.advance(MS);
            assert!(standings.tracked() <= 1_000, "{}", standings.tracked());
        }
        assert_eq!(
            standings.begin(client(0)),
            Standing::Good,
            "the oldest went"
        );
        assert_eq!(standings.begin(client(4_999)), Standing::Suspect);
        assert_eq!(standings.begin(client(4_000)), Standing::Suspect);
    }

    #[test]
    fn a_dropped_call_ends_without_a_verdict() {
        let standings = Arc::new(Standings::default());
        let call = Call::begin(&standings, client(7));
        assert_eq!(call.standing(), Standing::Good);
        drop(call);
        assert_eq!(standings.tracked(), 0);
        let call = Call::begin(&standings, client(7));
        call.end(Verdict::Refused);
        assert_eq!(
            Call::begin(&standings, client(7)).standing(),
            Standing::Suspect
        );
    }
}
