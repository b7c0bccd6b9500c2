//! How many failed `/wx/decrypt` attempts each user has left. Every failure answers a question
//! about the session_key (did the padding hold, did JSON come out, was it forged), so failures
//! are rationed per user, keyed by app and openid: a re-login gets a new token and a new key
//! but the same allowance.
//!
//! The allowance is a GCRA: `per_minute` failures at once, refilled one every
//! `60 s / per_minute`. It is spent before decrypting, so a user who has none left gets no
//! answer about the data at all, and given back when the data opens and passes every check,
//! so successes cost nothing. Each user is one instant (when their allowance will be full
//! again) in a bounded LRU map; a user with a full allowance is not kept at all.
//!
//! The map holds at most [`MAX_USERS`]; past it, the user whose last attempt is oldest is
//! forgotten, which costs nothing when their allowance had refilled. To push out a user still
//! inside their minute an attacker needs that many other WeChat accounts, each logged in and
//! failing within the same minute. The map lives in each process, so behind N instances a user
//! gets at most N times the allowance.

use std::{
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use hashlink::LruCache;

/// Users tracked at once: about 200 bytes each, so some 13 MiB when full.
pub const MAX_USERS: usize = 65_536;

const WINDOW: Duration = Duration::from_secs(60);

/// Who a failure is counted against: (appid, openid).
type User = (String, String);

#[derive(Debug)]
pub struct DecryptFailures {
    /// Time one failure takes to be refilled; `None` when failures are not limited.
    interval: Option<Duration>,
    /// How far ahead of now a user's full-again instant may be while one failure is left.
    tolerance: Duration,
    /// Each tracked user's full-again instant, which is past or absent when nothing is spent.
    users: Mutex<LruCache<User, Instant>>,
}

impl DecryptFailures {
    /// `per_minute == 0` turns the limit off.
    pub fn new(per_minute: u32, max_users: usize) -> Self {
        let interval = (per_minute > 0).then(|| WINDOW / per_minute);
        Self {
            interval,
            tolerance: interval.map_or(Duration::ZERO, |interval| WINDOW - interval),
            users: Mutex::new(LruCache::new(max_users.max(1))),
        }
    }

    /// Spends one failure of the user's allowance ahead of an attempt, or says how long until
    /// one is left. Give it back with [`DecryptFailures::refund`] when the attempt succeeds.
    pub fn spend(&self, appid: &str, openid: &str, now: Instant) -> Result<(), Duration> {
        let Some(interval) = self.interval else {
            return Ok(());
        };
        let mut users = self.lock();
        let user = (appid.to_owned(), openid.to_owned());
        let full_at = users.get(&user).map_or(now, |at| (*at).max(now));
        let allowed_until = now + self.tolerance;
        if full_at > allowed_until {
            return Err(full_at - allowed_until);
        }
        users.insert(user, full_at + interval);
        Ok(())
    }

    /// Gives back what [`DecryptFailures::spend`] took, for an attempt that succeeded.
    pub fn refund(&self, appid: &str, openid: &str, now: Instant) {
        let Some(interval) = self.interval else {
            return;
        };
        let mut users = self.lock();
        let user = (appid.to_owned(), openid.to_owned());
        let Some(full_at) = users.get_mut(&user) else {
            return;
        };
        match full_at.checked_sub(interval).filter(|at| *at > now) {
            Some(earlier) => *full_at = earlier,
            None => {
                users.remove(&user);
            }
        }
    }

    /// Users whose allowance is not full; never more than the map's cap.
    #[cfg(test)]
    fn tracked_users(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<User, Instant>> {
        // A panic under the lock leaves at worst one user's instant stale.
        self.users.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn ten_failures_pass_then_the_eleventh_waits_for_a_refill() {
        let limit = DecryptFailures::new(10, 100);
        let start = Instant::now();
        for _ in 0..10 {
            limit.spend("wxA", "o1", start).unwrap();
        }
        let wait = limit.spend("wxA", "o1", start).unwrap_err();
        assert_eq!(wait, 6 * SECOND, "one failure refills every 60 s / 10");
        assert_eq!(
            limit.spend("wxA", "o1", start + 5 * SECOND).unwrap_err(),
            SECOND
        );
        limit.spend("wxA", "o1", start + 6 * SECOND).unwrap();
        assert!(limit.spend("wxA", "o1", start + 6 * SECOND).is_err());
        // A minute after the last failure the whole allowance is back.
        let later = start + 66 * SECOND;
        for _ in 0..10 {
            limit.spend("wxA", "o1", later).unwrap();
        }
        assert!(limit.spend("wxA", "o1", later).is_err());
    }

    #[test]
    fn successes_give_back_what_they_spent_and_leave_no_entry() {
        let limit = DecryptFailures::new(10, 100);
        let now = Instant::now();
        for _ in 0..100 {
            limit.spend("wxA", "o1", now).unwrap();
            limit.refund("wxA", "o1", now);
        }
        assert_eq!(limit.tracked_users(), 0);
        for _ in 0..9 {
            limit.spend("wxA", "o1", now).unwrap();
        }
        limit.spend("wxA", "o1", now).unwrap();
        limit.refund("wxA", "o1", now);
        limit.spend("wxA", "o1", now).unwrap();
        assert!(limit.spend("wxA", "o1", now).is_err());
    }

    #[test]
    fn users_are_counted_apart_by_app_and_openid() {
        let limit = DecryptFailures::new(1, 100);
        let now = Instant::now();
        limit.spend("wxA", "o1", now).unwrap();
        assert!(limit.spend("wxA", "o1", now).is_err());
        limit.spend("wxA", "o2", now).unwrap();
        limit.spend("wxB", "o1", now).unwrap();
    }

    #[test]
    fn the_map_stays_within_its_cap_forgetting_the_least_recent_user() {
        let limit = DecryptFailures::new(1, 3);
        let now = Instant::now();
        for openid in ["o1", "o2", "o3", "o4"] {
            limit.spend("wxA", openid, now).unwrap();
        }
        assert_eq!(limit.tracked_users(), 3);
        assert!(limit.spend("wxA", "o4", now).is_err(), "the newest is kept");
        limit
            .spend("wxA", "o1", now)
            .expect("the oldest was forgotten");
    }

    #[test]
    fn zero_turns_the_limit_off() {
        let limit = DecryptFailures::new(0, 10);
        let now = Instant::now();
        assert!((0..1000).all(|_| limit.spend("wxA", "o1", now).is_ok()));
        assert_eq!(limit.tracked_users(), 0);
    }
}
