//! Bounded log lines: of one kind of line, at most one is written per window; the others are
//! counted, and the next line written says how many were left out (`suppressed`) and over how
//! many seconds (`suppressed_secs`).
//!
//! Why: an attacker decides how often a refusal happens, and a line per refusal turns a flood
//! of requests into a flood of log (and disk, and log shipping) that also buries the lines an
//! operator needs. The metrics still count every event; the log keeps a sample and the count.
//!
//! Why hand-written: the tracing layers that do this (tracing-throttle) sit in the subscriber,
//! so a team that mounts the routes under its own subscriber would lose the bound, and they
//! key lines by their field values, which differ per request here. This is three atomics per
//! kind of line and no lock on the way: it runs once per refused request, under attack.

use std::{
    collections::HashMap,
    sync::{
        OnceLock, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// How often a line of one kind may be written.
pub const EVERY: Duration = Duration::from_secs(10);

/// The rate bound of one kind of log line.
#[derive(Debug)]
pub struct LogThrottle {
    window: u64,
    /// When the next line may be written, in nanoseconds since [`origin`]; 0 at first.
    next: AtomicU64,
    /// When the last line was written, in the same unit.
    last: AtomicU64,
    /// Lines left out since the last one written.
    suppressed: AtomicU64,
}

/// What the line about to be written should say about those left out before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    suppressed: u64,
    over: Duration,
}

impl Admitted {
    /// Lines of this kind left out since the last one written; `None` for none, so the field
    /// is left off the line.
    pub fn suppressed(&self) -> Option<u64> {
        (self.suppressed > 0).then_some(self.suppressed)
    }

    /// The whole seconds since the last line written, when some were left out.
    pub fn suppressed_secs(&self) -> Option<u64> {
        self.suppressed().map(|_| self.over.as_secs())
    }
}

/// The instant throttles measure from: statics cannot hold an `Instant`, so they hold offsets.
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

fn nanos_since_origin(now: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(origin()).as_nanos()).unwrap_or(u64::MAX)
}

impl LogThrottle {
    /// At most one line per `window`.
    pub const fn new(window: Duration) -> Self {
        let nanos = window.as_nanos();
        Self {
            window: if nanos > u64::MAX as u128 {
                u64::MAX
            } else {
                nanos as u64
            },
            next: AtomicU64::new(0),
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether a line may be written now; `None` counts it as left out.
    pub fn admit(&self) -> Option<Admitted> {
        self.admit_at(Instant::now())
    }

    /// [`LogThrottle::admit`] at `now`, for tests that choose the time.
    pub fn admit_at(&self, now: Instant) -> Option<Admitted> {
        // `max(1)`: 0 is the "never written" mark of `last`.
        let now = nanos_since_origin(now).max(1);
        let next = self.next.load(Ordering::Relaxed);
        // Of concurrent callers past the window, the one whose exchange succeeds writes.
        if now < next
            || self
                .next
                .compare_exchange(
                    next,
                    now.saturating_add(self.window),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let suppressed = self.suppressed.swap(0, Ordering::AcqRel);
        let last = self.last.swap(now, Ordering::AcqRel);
        Some(Admitted {
            suppressed,
            over: Duration::from_nanos(now.saturating_sub(last)),
        })
    }
}

/// A [`LogThrottle`] per kind, for lines whose kind is known only when they are written (the
/// error table's labels). Kinds are `&'static str`, so their number is bounded by the program.
#[derive(Debug)]
pub struct LogThrottles {
    window: Duration,
    by_kind: RwLock<HashMap<&'static str, LogThrottle>>,
}

impl LogThrottles {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            by_kind: RwLock::new(HashMap::new()),
        }
    }

    /// [`LogThrottle::admit`] for a line of `kind`.
    pub fn admit(&self, kind: &'static str) -> Option<Admitted> {
        self.admit_at(kind, Instant::now())
    }

    pub fn admit_at(&self, kind: &'static str, now: Instant) -> Option<Admitted> {
        {
            let known = self.by_kind.read().unwrap_or_else(|e| e.into_inner());
            if let Some(throttle) = known.get(kind) {
                return throttle.admit_at(now);
            }
        }
        let mut known = self.by_kind.write().unwrap_or_else(|e| e.into_inner());
        known
            .entry(kind)
            .or_insert_with(|| LogThrottle::new(self.window))
            .admit_at(now)
    }
}

/// A `tracing` event at `level` (`warn`, `error`, …), written at most once per [`EVERY`] from
/// this call site, with the count of those left out since: `throttled!(warn, error = %e, "…")`.
macro_rules! throttled {
    ($level:ident, $($event:tt)+) => {{
        static THROTTLE: $crate::log_throttle::LogThrottle =
            $crate::log_throttle::LogThrottle::new($crate::log_throttle::EVERY);
        if let Some(admitted) = THROTTLE.admit() {
            ::tracing::$level!(
                suppressed = admitted.suppressed(),
                suppressed_secs = admitted.suppressed_secs(),
                $($event)+
            );
        }
    }};
}
pub(crate) use throttled;

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(10);

    fn at(start: Instant, seconds: u64) -> Instant {
        start + Duration::from_secs(seconds)
    }

    #[test]
    fn the_first_line_is_written_and_the_rest_of_its_window_counted() {
        let throttle = LogThrottle::new(WINDOW);
        let start = Instant::now();
        let first = throttle.admit_at(start).expect("the first line is written");
        assert_eq!(first.suppressed(), None, "nothing was left out before it");
        for second in 0..10 {
            for _ in 0..100 {
                assert_eq!(throttle.admit_at(at(start, second)), None);
            }
        }
        let next = throttle
            .admit_at(at(start, 12))
            .expect("a line once the window has passed");
        assert_eq!(next.suppressed(), Some(1_000));
        assert_eq!(next.suppressed_secs(), Some(12));
    }

    #[test]
    fn a_quiet_kind_writes_every_line_and_reports_nothing_left_out() {
        let throttle = LogThrottle::new(WINDOW);
        let start = Instant::now();
        for n in 0..5 {
            let admitted = throttle
                .admit_at(at(start, n * 10))
                .expect("one per window");
            assert_eq!(admitted.suppressed(), None);
            assert_eq!(admitted.suppressed_secs(), None);
        }
    }

    #[test]
    fn the_count_starts_again_after_each_written_line() {
        let throttle = LogThrottle::new(WINDOW);
        let start = Instant::now();
        throttle.admit_at(start).unwrap();
        throttle.admit_at(at(start, 1));
        throttle.admit_at(at(start, 2));
        assert_eq!(
            throttle.admit_at(at(start, 10)).unwrap().suppressed(),
            Some(2)
        );
        throttle.admit_at(at(start, 15));
        let third = throttle.admit_at(at(start, 20)).unwrap();
        assert_eq!(
            (third.suppressed(), third.suppressed_secs()),
            (Some(1), Some(10))
        );
    }

    #[test]
    fn concurrent_callers_write_one_line_per_window_and_lose_no_count() {
        let throttle = LogThrottle::new(WINDOW);
        let now = Instant::now();
        let written: Vec<Admitted> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        (0..10_000)
                            .filter_map(|_| throttle.admit_at(now))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect()
        });
        assert_eq!(written.len(), 1, "{written:?}");
        let next = throttle.admit_at(now + WINDOW).unwrap();
        // A caller that lost the race just as the winner took the count may be reported on
        // the winner's line rather than the next: each is reported once either way.
        let reported: u64 = [written[0], next]
            .iter()
            .filter_map(Admitted::suppressed)
            .sum();
        assert_eq!(reported, 39_999);
    }

    #[test]
    fn kinds_are_bounded_apart() {
        let throttles = LogThrottles::new(WINDOW);
        let start = Instant::now();
        assert!(throttles.admit_at("upstream_unavailable", start).is_some());
        assert!(throttles.admit_at("upstream_unavailable", start).is_none());
        assert!(
            throttles.admit_at("store_unavailable", start).is_some(),
            "a flood of one kind does not hide the first line of another"
        );
        let later = throttles
            .admit_at("upstream_unavailable", at(start, 10))
            .unwrap();
        assert_eq!(later.suppressed(), Some(1));
    }
}
