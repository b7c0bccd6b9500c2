//! A web-login ticket as a state machine: what each event does to it, decided in one pure
//! function with every pairing of state and event spelled out, so the rules can be read and
//! tested apart from the stores and the HTTP layer.
//!
//! ```text
//! Pending ──scan──▶ Scanned ──confirm──▶ Confirmed ──complete──▶ Completed
//!                      └──────deny──────▶ Denied
//! ```
//! Pending and Scanned turn Expired when the ticket's time is up. A confirmed ticket may still
//! be completed for [`COMPLETE_GRACE`] past it, so a confirmation in the last second is not
//! lost to the browser's round trip.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use shared::TicketStatus;

use crate::store::UserId;

/// How long past its expiry a confirmed ticket can still be completed.
pub const COMPLETE_GRACE: Duration = Duration::from_secs(30);

/// One ticket, as the store keeps it (JSON). The secret is kept as its SHA-256 only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// SHA-256 of the browser's cookie secret, hex.
    pub secret_hash: String,
    pub browser: Browser,
    /// Unix milliseconds from which the ticket is expired.
    pub expires_at_ms: i64,
    pub state: State,
    /// Unix milliseconds of the last change, to measure how soon browsers hear of it.
    pub changed_at_ms: i64,
}

/// The browser that asked, as the confirm page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Browser {
    pub ip: String,
    /// A short summary of its User-Agent.
    pub device: String,
    /// Unix seconds.
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    Pending,
    Scanned {
        by: UserId,
    },
    Confirmed {
        by: UserId,
    },
    Denied {
        by: UserId,
    },
    /// The browser has its session: the ticket is spent.
    Completed {
        by: UserId,
    },
}

/// What happens to a ticket. Each carries its time, unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A mini-program session of `by` scanned the code.
    Scan {
        by: UserId,
        at: i64,
    },
    Confirm {
        by: UserId,
        at: i64,
    },
    Deny {
        by: UserId,
        at: i64,
    },
    /// The browser that asked takes its session.
    Complete {
        at: i64,
    },
}

/// Why an event does not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the web-login ticket has expired")]
    Expired,
    #[error("another account scanned this web-login ticket first")]
    Taken,
    #[error("the web-login ticket was confirmed, denied or used already")]
    Closed,
    #[error("the web-login ticket must be scanned before it is confirmed or denied")]
    NotScanned,
    #[error("the web-login ticket is not confirmed")]
    NotConfirmed,
    #[error("the web-login ticket was denied in the mini-program")]
    Denied,
    #[error("the web-login ticket has made its session already")]
    Used,
}

/// What an event that applies does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The ticket changes to this; it must be written, and listeners told.
    Changed(Ticket),
    /// The event repeats one that already took effect (the same account scanning twice): the
    /// caller succeeds and nothing is written.
    Unchanged,
}

impl Ticket {
    /// A fresh ticket of `browser`, created at `now_ms`, living `ttl`.
    pub fn new(secret_hash: String, browser: Browser, now_ms: i64, ttl: Duration) -> Self {
        Self {
            secret_hash,
            browser,
            expires_at_ms: now_ms.saturating_add(millis(ttl)),
            state: State::Pending,
            changed_at_ms: now_ms,
        }
    }

    /// What the browser is shown at `now_ms`.
    pub fn status(&self, now_ms: i64) -> TicketStatus {
        match self.state {
            State::Pending | State::Scanned { .. } if self.expired(now_ms) => TicketStatus::Expired,
            State::Pending => TicketStatus::Pending,
            State::Scanned { .. } => TicketStatus::Scanned,
            State::Confirmed { .. } | State::Completed { .. } => TicketStatus::Confirmed,
            State::Denied { .. } => TicketStatus::Denied,
        }
    }

    fn expired(&self, now_ms: i64) -> bool {
        now_ms >= self.expires_at_ms
    }

    /// The account a confirmed ticket logs the browser into.
    pub fn confirmed_by(&self) -> Option<UserId> {
        match self.state {
            State::Confirmed { by } | State::Completed { by } => Some(by),
            _ => None,
        }
    }

    /// The transition `event` makes, or why it makes none.
    pub fn apply(&self, event: Event) -> Result<Outcome, Refusal> {
        use State as S;
        let at = event.at();
        let changed = |state| {
            Ok(Outcome::Changed(Ticket {
                state,
                changed_at_ms: at,
                ..self.clone()
            }))
        };
        match (self.state, event) {
            (S::Pending | S::Scanned { .. }, _) if self.expired(at) => Err(Refusal::Expired),
            (S::Pending, Event::Scan { by, .. }) => changed(S::Scanned { by }),
            (S::Pending, Event::Confirm { .. } | Event::Deny { .. }) => Err(Refusal::NotScanned),
            (S::Pending | S::Scanned { .. }, Event::Complete { .. }) => Err(Refusal::NotConfirmed),
            (S::Scanned { by: owner }, Event::Scan { by, .. }) if owner == by => {
                Ok(Outcome::Unchanged)
            }
            (S::Scanned { by: owner }, Event::Confirm { by, .. }) if owner == by => {
                changed(S::Confirmed { by })
            }
            (S::Scanned { by: owner }, Event::Deny { by, .. }) if owner == by => {
                changed(S::Denied { by })
            }
            (
                S::Scanned { .. },
                Event::Scan { .. } | Event::Confirm { .. } | Event::Deny { .. },
            ) => Err(Refusal::Taken),
            (S::Confirmed { by: owner }, Event::Confirm { by, .. }) if owner == by => {
                Ok(Outcome::Unchanged)
            }
            (S::Denied { by: owner }, Event::Deny { by, .. }) if owner == by => {
                Ok(Outcome::Unchanged)
            }
            (
                S::Confirmed { by: owner } | S::Denied { by: owner } | S::Completed { by: owner },
                Event::Scan { by, .. } | Event::Confirm { by, .. } | Event::Deny { by, .. },
            ) => Err(if owner == by {
                Refusal::Closed
            } else {
                Refusal::Taken
            }),
            (S::Confirmed { by }, Event::Complete { at }) => {
                if at >= self.expires_at_ms.saturating_add(millis(COMPLETE_GRACE)) {
                    Err(Refusal::Expired)
                } else {
                    changed(S::Completed { by })
                }
            }
            (S::Denied { .. }, Event::Complete { .. }) => Err(Refusal::Denied),
            (S::Completed { .. }, Event::Complete { .. }) => Err(Refusal::Used),
        }
    }
}

impl Event {
    fn at(self) -> i64 {
        match self {
            Event::Scan { at, .. }
            | Event::Confirm { at, .. }
            | Event::Deny { at, .. }
            | Event::Complete { at } => at,
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(120);
    const T0: i64 = 1_700_000_000_000;

    fn ticket() -> Ticket {
        let browser = Browser {
            ip: "203.0.113.9".into(),
            device: "Chrome on Windows".into(),
            created_at: T0 / 1000,
        };
        Ticket::new("00".into(), browser, T0, TTL)
    }

    fn step(ticket: &Ticket, event: Event) -> Ticket {
        match ticket.apply(event) {
            Ok(Outcome::Changed(next)) => next,
            other => panic!("{event:?} on {:?}: {other:?}", ticket.state),
        }
    }

    #[test]
    fn scan_confirm_complete_is_the_happy_path() {
        let alice = UserId::generate();
        let t = ticket();
        assert_eq!(t.status(T0), TicketStatus::Pending);
        let t = step(
            &t,
            Event::Scan {
                by: alice,
                at: T0 + 1,
            },
        );
        assert_eq!(t.status(T0 + 1), TicketStatus::Scanned);
        assert_eq!(t.changed_at_ms, T0 + 1);
        let t = step(
            &t,
            Event::Confirm {
                by: alice,
                at: T0 + 2,
            },
        );
        assert_eq!(t.status(T0 + 2), TicketStatus::Confirmed);
        assert_eq!(t.confirmed_by(), Some(alice));
        let t = step(&t, Event::Complete { at: T0 + 3 });
        assert_eq!(t.apply(Event::Complete { at: T0 + 4 }), Err(Refusal::Used));
        assert_eq!(t.status(T0 + 4), TicketStatus::Confirmed);
    }

    #[test]
    fn the_first_account_to_scan_owns_the_ticket() {
        let (alice, bob) = (UserId::generate(), UserId::generate());
        let t = step(&ticket(), Event::Scan { by: alice, at: T0 });
        assert_eq!(
            t.apply(Event::Scan { by: alice, at: T0 }),
            Ok(Outcome::Unchanged)
        );
        for event in [
            Event::Scan { by: bob, at: T0 },
            Event::Confirm { by: bob, at: T0 },
            Event::Deny { by: bob, at: T0 },
        ] {
            assert_eq!(t.apply(event), Err(Refusal::Taken), "{event:?}");
        }
        let confirmed = step(&t, Event::Confirm { by: alice, at: T0 });
        assert_eq!(
            confirmed.apply(Event::Scan { by: bob, at: T0 }),
            Err(Refusal::Taken)
        );
        assert_eq!(
            confirmed.apply(Event::Deny { by: alice, at: T0 }),
            Err(Refusal::Closed)
        );
    }

    #[test]
    fn nothing_but_a_scan_moves_a_pending_ticket() {
        let alice = UserId::generate();
        let t = ticket();
        assert_eq!(
            t.apply(Event::Confirm { by: alice, at: T0 }),
            Err(Refusal::NotScanned)
        );
        assert_eq!(
            t.apply(Event::Deny { by: alice, at: T0 }),
            Err(Refusal::NotScanned)
        );
        assert_eq!(
            t.apply(Event::Complete { at: T0 }),
            Err(Refusal::NotConfirmed)
        );
    }

    #[test]
    fn a_denied_ticket_completes_nothing() {
        let alice = UserId::generate();
        let t = step(&ticket(), Event::Scan { by: alice, at: T0 });
        let t = step(&t, Event::Deny { by: alice, at: T0 });
        assert_eq!(t.status(T0), TicketStatus::Denied);
        assert_eq!(t.apply(Event::Complete { at: T0 }), Err(Refusal::Denied));
        assert_eq!(
            t.apply(Event::Confirm { by: alice, at: T0 }),
            Err(Refusal::Closed)
        );
        assert_eq!(
            t.apply(Event::Deny { by: alice, at: T0 }),
            Ok(Outcome::Unchanged)
        );
    }

    #[test]
    fn time_up_expires_an_open_ticket_but_not_a_confirmed_one_within_the_grace() {
        let alice = UserId::generate();
        let end = T0 + 120_000;
        let t = ticket();
        assert_eq!(t.status(end - 1), TicketStatus::Pending);
        assert_eq!(t.status(end), TicketStatus::Expired);
        assert_eq!(
            t.apply(Event::Scan { by: alice, at: end }),
            Err(Refusal::Expired)
        );
        let scanned = step(
            &t,
            Event::Scan {
                by: alice,
                at: end - 10,
            },
        );
        assert_eq!(scanned.status(end), TicketStatus::Expired);
        assert_eq!(
            scanned.apply(Event::Confirm { by: alice, at: end }),
            Err(Refusal::Expired)
        );
        assert_eq!(
            scanned.apply(Event::Complete { at: end }),
            Err(Refusal::Expired)
        );
        let confirmed = step(
            &scanned,
            Event::Confirm {
                by: alice,
                at: end - 1,
            },
        );
        assert_eq!(confirmed.status(end + 5_000), TicketStatus::Confirmed);
        step(&confirmed, Event::Complete { at: end + 5_000 });
        assert_eq!(
            confirmed.apply(Event::Complete { at: end + 30_000 }),
            Err(Refusal::Expired)
        );
    }

    #[test]
    fn a_ticket_reads_back_as_it_was_written() {
        let alice = UserId::generate();
        let t = step(&ticket(), Event::Scan { by: alice, at: T0 });
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Ticket>(&json).unwrap(), t);
    }
}
