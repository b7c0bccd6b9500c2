//! A circuit breaker around code2Session, so a WeChat outage fails logins fast instead of
//! piling up requests that each wait out the full timeout and retries.
//!
//! Closed: calls go through; `threshold` consecutive upstream failures open it. Open: calls
//! fail at once until `cooldown` has passed. Half-open: one trial call goes through; success
//! closes the breaker, failure opens it for another cooldown. Only WeChat's own trouble counts
//! (unreachable, timeout, busy, garbage); a user's bad code is WeChat working fine.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    /// std mutex: a comparison and an assignment per call.
    state: Mutex<State>,
    /// The state as the metrics see it, set under the mutex whenever the state changes kind.
    gauge: metrics::Gauge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { trial_started: Instant },
}

impl State {
    /// `wxlogin_breaker_state`: 0 closed, 1 open, 2 half-open.
    fn gauge_value(self) -> f64 {
        match self {
            State::Closed { .. } => 0.0,
            State::Open { .. } => 1.0,
            State::HalfOpen { .. } => 2.0,
        }
    }
}

impl Breaker {
    /// `threshold == 0` disables the breaker.
    /// `gauge` shows the state to the metrics (`metrics::Gauge::noop()` for none).
    pub fn new(threshold: u32, cooldown: Duration, gauge: metrics::Gauge) -> Self {
        gauge.set(State::Closed { failures: 0 }.gauge_value());
        Self {
            threshold,
            cooldown,
            state: Mutex::new(State::Closed { failures: 0 }),
            gauge,
        }
    }

    /// Moves to `next`, keeping the gauge in step.
    fn enter(&self, state: &mut State, next: State) {
        *state = next;
        self.gauge.set(next.gauge_value());
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// May a call go out now? `Err` carries how long until the breaker lets one through.
    pub fn admit(&self, now: Instant) -> Result<(), Duration> {
        if self.threshold == 0 {
            return Ok(());
        }
        let mut state = self.state();
        match *state {
            State::Closed { .. } => Ok(()),
            State::Open { until } if now >= until => {
                self.enter(&mut state, State::HalfOpen { trial_started: now });
                Ok(())
            }
            State::Open { until } => Err(until - now),
            // A trial that never reported back (its task was cancelled) must not wedge the
            // breaker: after a cooldown another trial may go.
            State::HalfOpen { trial_started } if now >= trial_started + self.cooldown => {
                *state = State::HalfOpen { trial_started: now };
                Ok(())
            }
            State::HalfOpen { trial_started } => Err(trial_started + self.cooldown - now),
        }
    }

    pub fn record_success(&self) {
        self.enter(&mut self.state(), State::Closed { failures: 0 });
    }

    pub fn record_failure(&self, now: Instant) {
        if self.threshold == 0 {
            return;
        }
        let mut state = self.state();
        let next = match *state {
            State::Closed { failures } if failures + 1 < self.threshold => State::Closed {
                failures: failures + 1,
            },
            State::Closed { .. } | State::HalfOpen { .. } => State::Open {
                until: now + self.cooldown,
            },
            open @ State::Open { .. } => open,
        };
        self.enter(&mut state, next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_fails_fast_then_trials_once() {
        let b = Breaker::new(3, Duration::from_secs(10), metrics::Gauge::noop());
        let t0 = Instant::now();
        for _ in 0..2 {
            assert!(b.admit(t0).is_ok());
            b.record_failure(t0);
        }
        assert!(b.admit(t0).is_ok(), "two failures: still closed");
        b.record_failure(t0);
        let wait = b.admit(t0 + Duration::from_secs(1)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(9));

        let later = t0 + Duration::from_secs(10);
        assert!(b.admit(later).is_ok(), "the trial call");
        assert!(b.admit(later).is_err(), "only one trial at a time");
        b.record_failure(later);
        assert!(
            b.admit(later + Duration::from_secs(5)).is_err(),
            "failed trial re-opens"
        );

        let again = later + Duration::from_secs(10);
        assert!(b.admit(again).is_ok());
        b.record_success();
        assert!(b.admit(again).is_ok());
        assert!(b.admit(again).is_ok(), "closed again");
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = Breaker::new(2, Duration::from_secs(10), metrics::Gauge::noop());
        let t0 = Instant::now();
        b.record_failure(t0);
        b.record_success();
        b.record_failure(t0);
        assert!(b.admit(t0).is_ok());
    }

    #[test]
    fn the_gauge_follows_the_state() {
        let shown = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(f64::NAN.to_bits()));
        let read = || f64::from_bits(shown.load(std::sync::atomic::Ordering::Relaxed));
        let b = Breaker::new(
            1,
            Duration::from_secs(10),
            metrics::Gauge::from_arc(shown.clone()),
        );
        assert_eq!(read(), 0.0, "closed from the start");
        let t0 = Instant::now();
        b.record_failure(t0);
        assert_eq!(read(), 1.0, "open");
        b.admit(t0 + Duration::from_secs(10)).unwrap();
        assert_eq!(read(), 2.0, "half-open for the trial");
        b.record_success();
        assert_eq!(read(), 0.0, "closed again");
    }

    #[test]
    fn a_lost_trial_does_not_wedge_the_breaker() {
        let b = Breaker::new(1, Duration::from_secs(10), metrics::Gauge::noop());
        let t0 = Instant::now();
        b.record_failure(t0);
        let t1 = t0 + Duration::from_secs(10);
        assert!(b.admit(t1).is_ok());
        // The trial's result never arrives.
        assert!(b.admit(t1 + Duration::from_secs(10)).is_ok());
    }
}
