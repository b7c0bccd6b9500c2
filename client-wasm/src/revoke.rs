//! Logging out on the server too, whatever the network does: the tokens the user logged out
//! of are kept in storage until the server confirms their `POST /logout`, and sent again until
//! it does.
//!
//! Why: a logout that only forgets the token on the device leaves the session alive on the
//! server for the rest of the token's life, usable by anyone who copied the token. On a bad
//! network the request fails, and the app may be closed before a retry; so the token is
//! written under `logout_storage_key` *before* the request goes out, and removed only when the
//! server confirms: any 2xx, or 401 (the server does not know the token, which is just as
//! ended). Anything else (no answer, a timeout, 5xx, 429, another 4xx) keeps it: it is sent
//! again after a backoff while the app runs, at once after a login or check the server
//! answered with success, and at the next launch.
//!
//! This runs beside the login, not inside it: the login never waits for a revoke, and a
//! revoke only ever carries a token the user logged out of, never the one held now (a new
//! login's token is a new token).
//!
//! Stored form: a JSON array of token strings, oldest first (`["t1","t2"]`; its JSON text in
//! a string-only storage), absent when nothing is pending. At most [`MAX_PENDING_LOGOUTS`] are
//! kept; past that the oldest is dropped, the one closest to expiring on its own. One request
//! is in flight at a time, for the oldest token.

use shared::paths;

use crate::backoff;
use crate::config::Config;
use crate::effect::{Effect, Method, StorageValue};
use crate::event::Answer;
use crate::ids::Ids;

/// How many unconfirmed logouts are kept. Several pile up only when the user logs in and out
/// repeatedly on a network that never reaches the server; eight bounds the storage and the
/// requests at a launch while keeping every realistic case.
pub const MAX_PENDING_LOGOUTS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// The stored list has not been read yet (before launch, or its read is unanswered).
    /// Nothing is written or sent until it is, so the stored tokens are never overwritten;
    /// tokens logged out of meanwhile wait in memory and are written with the stored ones. (The
    /// hosts answer reads at once, before any other event, so in practice there are none.)
    Unread,
    /// Nothing in flight, nothing waiting: the list is empty, or held back until the machine
    /// lets it go ([`Revokes::resume`]).
    Idle,
    /// `POST /logout` with `token`, the oldest pending, is in flight.
    Sending { request: u32, token: String },
    /// The last attempt failed; the next one goes out when `timer` fires (or sooner, see
    /// [`Revokes::send_now`]).
    Waiting { timer: u32 },
}

/// The pending revokes and where their sending stands.
#[derive(Debug)]
pub(crate) struct Revokes {
    /// Oldest first; what storage holds once the list has been read.
    tokens: Vec<String>,
    phase: Phase,
    /// Consecutive failed attempts, for the backoff; back to 0 at each confirmation.
    failures: u32,
}

impl Revokes {
    pub(crate) fn new() -> Self {
        Self {
            tokens: Vec::new(),
            phase: Phase::Unread,
            failures: 0,
        }
    }

    pub(crate) fn tokens(&self) -> &[String] {
        &self.tokens
    }

    fn contains(&self, token: &str) -> bool {
        self.tokens.iter().any(|t| t == token)
    }

    /// The answer to the launch's read of `logout_storage_key` (`raw`, read as `stored`): the
    /// stored tokens, then any logged out of before it came. Storage is rewritten when that
    /// differs from what it holds (tokens added, junk or repeats dropped); the machine says
    /// when to start sending ([`Revokes::resume`]).
    pub(crate) fn on_read(
        &mut self,
        stored: Vec<String>,
        raw: Option<&str>,
        config: &Config,
        fx: &mut Vec<Effect>,
    ) {
        if !matches!(self.phase, Phase::Unread) {
            return;
        }
        let added = std::mem::take(&mut self.tokens);
        for token in stored.into_iter().chain(added) {
            self.push(token);
        }
        self.phase = Phase::Idle;
        let current = (!self.tokens.is_empty()).then(|| self.value().to_text());
        if current.as_deref() != raw.map(str::trim).filter(|r| !r.is_empty()) {
            self.persist(config, fx);
        }
    }

    /// Sends the oldest pending token if nothing is in flight or waiting out a backoff.
    pub(crate) fn resume(&mut self, ids: &mut Ids, fx: &mut Vec<Effect>) {
        if matches!(self.phase, Phase::Idle) {
            self.send_now(ids, fx);
        }
    }

    /// The user logged out of `token`: it is written to storage at once. The machine then
    /// calls [`Revokes::send_now`], once the token itself has left storage.
    pub(crate) fn add(&mut self, token: String, config: &Config, fx: &mut Vec<Effect>) {
        self.push(token);
        if !matches!(self.phase, Phase::Unread) {
            self.persist(config, fx);
        }
    }

    /// Sends the oldest pending token now, unless a request is in flight already, the list is
    /// unread or empty. A backoff under way is cut short: this is called when there is reason
    /// to think the server is reachable (a logout pressed, a login answered).
    pub(crate) fn send_now(&mut self, ids: &mut Ids, fx: &mut Vec<Effect>) {
        match self.phase {
            Phase::Unread | Phase::Sending { .. } => {}
            Phase::Idle | Phase::Waiting { .. } => {
                let Some(token) = self.tokens.first() else {
                    return;
                };
                let request = ids.next();
                fx.push(Effect::HttpRequest {
                    request,
                    method: Method::Post,
                    path: paths::LOGOUT.to_owned(),
                    bearer: Some(token.clone()),
                    body: None,
                });
                self.phase = Phase::Sending {
                    request,
                    token: token.clone(),
                };
            }
        }
    }

    /// An HTTP answer; `false` when it is not for the revoke in flight.
    pub(crate) fn on_answer(
        &mut self,
        request: u32,
        answer: Answer<'_>,
        config: &Config,
        ids: &mut Ids,
        fx: &mut Vec<Effect>,
    ) -> bool {
        let Phase::Sending {
            request: in_flight,
            token,
        } = &self.phase
        else {
            return false;
        };
        if *in_flight != request {
            return false;
        }
        let token = token.clone();
        let retry_after_s = match answer {
            Answer::Response {
                status: 200..=299 | 401,
                ..
            } => {
                self.failures = 0;
                self.phase = Phase::Idle;
                let before = self.tokens.len();
                self.tokens.retain(|t| *t != token);
                // (It may have been dropped from a full list while in flight.)
                if self.tokens.len() != before {
                    self.persist(config, fx);
                }
                self.send_now(ids, fx);
                return true;
            }
            Answer::Response { retry_after_s, .. } => retry_after_s,
            Answer::Failed { .. } => None,
        };
        // Never given up on, so never longer than `max_backoff_ms` either, even when the
        // server asks for more: one small request per device per period is no burden.
        self.failures = self.failures.saturating_add(1);
        let delay_ms = backoff::delay_ms(config, self.failures)
            .max(retry_after_s.map_or(0, |s| u64::from(s) * 1000))
            .min(config.max_backoff_ms);
        let timer = ids.next();
        fx.push(Effect::StartTimer { timer, delay_ms });
        self.phase = Phase::Waiting { timer };
        true
    }

    /// A timer ran out; `false` when it is not the revoke's.
    pub(crate) fn on_timer(&mut self, timer: u32, ids: &mut Ids, fx: &mut Vec<Effect>) -> bool {
        if !matches!(self.phase, Phase::Waiting { timer: t } if t == timer) {
            return false;
        }
        self.send_now(ids, fx);
        true
    }

    /// Appends `token` unless it is there already, dropping the oldest past the cap.
    fn push(&mut self, token: String) {
        if !self.contains(&token) {
            self.tokens.push(token);
        }
        if self.tokens.len() > MAX_PENDING_LOGOUTS {
            // (Not `remove(0)`, whose shifting drags a memmove into the wasm module.)
            self.tokens = self.tokens.split_off(1);
        }
    }

    fn value(&self) -> StorageValue {
        StorageValue::Tokens(self.tokens.clone())
    }

    fn persist(&self, config: &Config, fx: &mut Vec<Effect>) {
        let key = config.logout_storage_key.clone();
        fx.push(if self.tokens.is_empty() {
            Effect::RemoveStorage { key }
        } else {
            Effect::WriteStorage {
                key,
                value: self.value(),
            }
        });
    }
}
