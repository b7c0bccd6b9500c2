//! The login state machine: states, and the transition for every (state, event) pair.
//!
//! Sans-IO in the str0m sense: [`Machine::handle`] takes one [`Event`] and returns the
//! [`Effect`]s the host must carry out. The machine reads no clock, starts no task and touches no
//! storage or network, so tests drive it faster than real time and replay any interleaving.
//!
//! Invariants the transitions keep (each one a bug of the JS app this replaces):
//! - no request carries an empty or malformed bearer; without a stored token there is no
//!   `/checklogin` at all;
//! - one login at a time: callers that need a token while one is being fetched wait for it,
//!   and a new `wx_login` is never asked for while an earlier one is unanswered;
//! - a login code is sent in exactly one `POST /login`; retries get a new code;
//! - every `ensure_login` caller is answered exactly once, and none waits past the last attempt;
//!   none waits for a check either: a usable stored token is handed out while it is verified;
//! - answers to requests and timers the machine no longer waits for are ignored;
//! - hosts learn the held token from `token_changed` only, emitted whenever it changes, and the
//!   token held is the one in storage;
//! - a token the user logged out of is kept in storage until the server confirms its revoke,
//!   is never held again, and is the only kind of token a `POST /logout` carries (see
//!   [`revoke`](crate::revoke)).

use shared::{LoginResponse, code_rules, paths};

use crate::backoff;
use crate::config::Config;
use crate::effect::{Effect, Method, Snapshot, StateName, StorageValue, WaiterResult};
use crate::event::{Answer, Event};
use crate::failure::{Failure, Remedy, classify, codes};
use crate::ids::Ids;
use crate::revoke::Revokes;
use crate::storage::{self, Found, StoredToken};
use crate::wire;

/// A token the machine holds, with what it knows about it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Session {
    token: String,
    /// `None` for a bare token of the old app: trusted as long as the server says so.
    expires_at_ms: Option<u64>,
    /// When this machine got the token from `POST /login`; `None` for a stored one.
    issued_at_ms: Option<u64>,
    /// Whether the login that produced it was started by a business-API 401 (loop guard).
    after_401: bool,
    /// Whether the server confirmed it (fresh login or `is_login: true`).
    verified: bool,
    /// Set when a business API rejected it and the loop guard kept it instead of logging in
    /// again (see [`Machine::on_api_unauthorized`]); shown as the snapshot's `last_error`.
    refused: Option<Failure>,
}

impl Session {
    fn stored(stored: StoredToken) -> Self {
        Self {
            token: stored.token,
            expires_at_ms: stored.expires_at_ms,
            issued_at_ms: None,
            after_401: false,
            verified: false,
            refused: None,
        }
    }

    fn usable_at(&self, now_ms: u64, margin_ms: u64) -> bool {
        self.expires_at_ms
            .is_none_or(|expiry| now_ms.saturating_add(margin_ms) < expiry)
    }
}

/// One round of `wx.login` + `POST /login`, and the rounds before it in the same login.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Attempt {
    /// 1 for the first round of a login.
    number: u32,
    /// The login was started by a business-API 401 (see [`Session::after_401`]).
    after_401: bool,
    /// Why the previous round failed.
    last_error: Option<Failure>,
}

impl Attempt {
    fn first(after_401: bool) -> Self {
        Self {
            number: 1,
            after_401,
            last_error: None,
        }
    }

    fn next(self, error: Failure) -> Self {
        Self {
            number: self.number.saturating_add(1),
            after_401: self.after_401,
            last_error: Some(error),
        }
    }
}

/// The answers to the launch's three reads, as they come in (`None`: not answered yet). They
/// are collected whatever the state meanwhile: even when a login or logout has made the stored
/// token moot for this process, a stored token that is pending its logout must be removed. The
/// revokes get the pending logouts too; the copy here is what they were when read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Reads {
    token: Option<Option<String>>,
    expiry: Option<Option<String>>,
    logged_out: Option<Vec<String>>,
}

/// Where the machine is. Data that only matters in one state lives in that state, so it cannot
/// be stale elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Unknown,
    ReadingStorage,
    /// A stored token is held and handed out while `GET /checklogin` verifies it.
    Checking {
        session: Session,
        request: u32,
    },
    GettingCode {
        attempt: Attempt,
    },
    ExchangingCode {
        attempt: Attempt,
        request: u32,
    },
    LoggedIn {
        session: Session,
    },
    RetryWaiting {
        attempt: Attempt,
        timer: u32,
        error: Failure,
    },
    Failed {
        error: Failure,
    },
    LoggedOut,
}

impl State {
    fn name(&self) -> StateName {
        match self {
            State::Unknown => StateName::Unknown,
            State::ReadingStorage => StateName::ReadingStorage,
            State::Checking { .. } => StateName::Checking,
            State::GettingCode { .. } => StateName::GettingCode,
            State::ExchangingCode { .. } => StateName::ExchangingCode,
            State::LoggedIn { .. } => StateName::LoggedIn,
            State::RetryWaiting { .. } => StateName::RetryWaiting,
            State::Failed { .. } => StateName::Failed,
            State::LoggedOut => StateName::LoggedOut,
        }
    }

    /// The token the machine holds in this state, if any.
    fn session(&self) -> Option<&Session> {
        match self {
            State::Checking { session, .. } | State::LoggedIn { session } => Some(session),
            State::Unknown
            | State::ReadingStorage
            | State::GettingCode { .. }
            | State::ExchangingCode { .. }
            | State::RetryWaiting { .. }
            | State::Failed { .. }
            | State::LoggedOut => None,
        }
    }

    fn session_mut(&mut self) -> Option<&mut Session> {
        match self {
            State::Checking { session, .. } | State::LoggedIn { session } => Some(session),
            State::Unknown
            | State::ReadingStorage
            | State::GettingCode { .. }
            | State::ExchangingCode { .. }
            | State::RetryWaiting { .. }
            | State::Failed { .. }
            | State::LoggedOut => None,
        }
    }
}

/// The client's login machine. See the crate docs for the event and effect formats.
#[derive(Debug)]
pub struct Machine {
    config: Config,
    state: State,
    /// `ensure_login` callers not answered yet. Non-empty only while storage is read or a login
    /// is under way (or before launch): every transition that gets or drops a token answers them.
    waiters: Vec<u32>,
    /// The launch's reads, from `read_storage` until all three answers are in and used.
    reads: Option<Reads>,
    /// Tokens logged out of whose revoke the server has not confirmed; independent of `state`.
    revokes: Revokes,
    /// Whether this process has read the token stored at launch (and removed it if it is
    /// pending its logout), or removed or replaced it. Until then no revoke is sent: a revoke
    /// confirmed (and so no longer pending) while the stored token it names is still in storage
    /// would let the next launch take that token for a live one.
    token_keys_settled: bool,
    ids: Ids,
    /// A `wx_login` is unanswered, possibly from a login abandoned since (logout, forced login).
    /// A new login then waits for that answer instead of asking again: the code is still good.
    wx_in_flight: bool,
    /// What the host was last told, to send `state_changed` only on change.
    reported: Snapshot,
    /// The token (and expiry) the host was last told of, to send `token_changed` only on change.
    reported_token: Option<(String, Option<u64>)>,
}

impl Machine {
    pub fn new(config: Config) -> Self {
        let mut machine = Self {
            config,
            state: State::Unknown,
            waiters: Vec::new(),
            reads: None,
            revokes: Revokes::new(),
            token_keys_settled: false,
            ids: Ids::new(),
            wx_in_flight: false,
            reported: Snapshot {
                state: StateName::Unknown,
                token_expires_at_ms: None,
                verified: false,
                attempt: 0,
                last_error: None,
            },
            reported_token: None,
        };
        machine.reported = machine.snapshot();
        machine
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn state(&self) -> StateName {
        self.state.name()
    }

    /// `ensure_login` callers still waiting for an answer.
    pub fn pending_waiters(&self) -> &[u32] {
        &self.waiters
    }

    /// Tokens logged out of whose `POST /logout` the server has not confirmed, oldest first.
    pub fn pending_logouts(&self) -> &[String] {
        self.revokes.tokens()
    }

    pub fn snapshot(&self) -> Snapshot {
        let (attempt, last_error) = match &self.state {
            State::GettingCode { attempt } | State::ExchangingCode { attempt, .. } => {
                (attempt.number, attempt.last_error.clone())
            }
            State::RetryWaiting { attempt, error, .. } => (attempt.number, Some(error.clone())),
            State::Failed { error } => (0, Some(error.clone())),
            State::Checking { session, .. } | State::LoggedIn { session } => {
                (0, session.refused.clone())
            }
            State::Unknown | State::ReadingStorage | State::LoggedOut => (0, None),
        };
        let session = self.state.session();
        Snapshot {
            state: self.state.name(),
            token_expires_at_ms: session.and_then(|s| s.expires_at_ms),
            verified: session.is_some_and(|s| s.verified),
            attempt,
            last_error,
        }
    }

    /// Applies one event and returns what the host must do, in order.
    pub fn handle(&mut self, event: Event) -> Vec<Effect> {
        let mut fx = Vec::new();
        match event {
            Event::Launched { .. } => self.on_launched(&mut fx),
            Event::StorageRead { key, value, now_ms } => {
                self.on_storage_read(&key, value, now_ms, &mut fx);
            }
            Event::EnsureLogin { waiter, now_ms } => self.on_ensure_login(waiter, now_ms, &mut fx),
            Event::LoginRequested { .. } => self.on_login_requested(&mut fx),
            Event::WxLoginSucceeded { code, .. } => self.on_wx_login_succeeded(code, &mut fx),
            Event::WxLoginFailed { err_msg, .. } => self.on_wx_login_failed(err_msg, &mut fx),
            Event::HttpResponse {
                request,
                status,
                body,
                retry_after_s,
                now_ms,
            } => self.on_http_answer(
                request,
                Answer::Response {
                    status,
                    body: &body,
                    retry_after_s,
                },
                now_ms,
                &mut fx,
            ),
            Event::HttpFailed {
                request,
                err_msg,
                now_ms,
            } => {
                self.on_http_answer(
                    request,
                    Answer::Failed { err_msg: &err_msg },
                    now_ms,
                    &mut fx,
                );
            }
            Event::TimerFired { timer, .. } => self.on_timer_fired(timer, &mut fx),
            Event::ApiUnauthorized { token, now_ms } => {
                self.on_api_unauthorized(token.as_deref(), now_ms, &mut fx);
            }
            Event::LogoutRequested { .. } => self.on_logout(None, &mut fx),
            Event::SessionEnded { token, .. } => self.on_logout(Some(&token), &mut fx),
            Event::ForgetToken { .. } => self.on_forget_token(&mut fx),
        }
        if self.token_keys_settled {
            self.revokes.resume(&mut self.ids, &mut fx);
        }
        // The token and the snapshot are compared with what the host was told, so each event
        // reports the net change once, however many steps it took.
        let held = self
            .state
            .session()
            .map(|s| (s.token.clone(), s.expires_at_ms));
        if held != self.reported_token {
            fx.push(Effect::TokenChanged {
                token: held.as_ref().map(|(token, _)| token.clone()),
                expires_at_ms: held.as_ref().and_then(|(_, expiry)| *expiry),
            });
            self.reported_token = held;
        }
        let snapshot = self.snapshot();
        if snapshot != self.reported {
            self.reported = snapshot.clone();
            fx.push(Effect::StateChanged(snapshot));
        }
        fx
    }

    // ---- events ----------------------------------------------------------------------------

    fn on_launched(&mut self, fx: &mut Vec<Effect>) {
        match self.state {
            State::Unknown => self.read_storage(fx),
            // Launch was implied by an earlier event (an `ensure_login`, a forced login, a
            // logout).
            State::ReadingStorage
            | State::Checking { .. }
            | State::GettingCode { .. }
            | State::ExchangingCode { .. }
            | State::LoggedIn { .. }
            | State::RetryWaiting { .. }
            | State::Failed { .. }
            | State::LoggedOut => {}
        }
    }

    /// Collects the answers for the three keys (the pending logouts go to the revokes as well);
    /// once all are in, decides what the stored token means.
    fn on_storage_read(
        &mut self,
        key: &str,
        value: Option<String>,
        now_ms: u64,
        fx: &mut Vec<Effect>,
    ) {
        let reads = self.reads.as_mut();
        if key == self.config.logout_storage_key {
            let stored = storage::read_pending(value.as_deref());
            if let Some(reads) = reads {
                reads.logged_out = Some(stored.clone());
            }
            self.revokes
                .on_read(stored, value.as_deref(), &self.config, fx);
        } else if let Some(reads) = reads {
            if key == self.config.storage_key {
                reads.token = Some(value);
            } else if key == self.config.expiry_storage_key {
                reads.expiry = Some(value);
            } else {
                return;
            }
        } else {
            return;
        }
        self.take_stored_token(now_ms, fx);
    }

    /// Once every read is in: a usable token is held (and handed out) at once while the check
    /// runs; an older form is rewritten in the current one first. A token pending its logout
    /// is no token, and is removed: it is still stored only if the app died between writing
    /// the logout and removing the token, and the user logged out of it. If a login or logout
    /// has moved on meanwhile, only that removal is left to do.
    fn take_stored_token(&mut self, now_ms: u64, fx: &mut Vec<Effect>) {
        let Some(Reads {
            token: Some(token),
            expiry: Some(expiry),
            logged_out: Some(logged_out),
        }) = &self.reads
        else {
            // An answer is still to come.
            return;
        };
        let Found { token, rewrite } = storage::read(token.as_deref(), expiry.as_deref());
        let logged_out_of = token
            .as_ref()
            .is_some_and(|t| logged_out.contains(&t.token));
        let (token, rewrite) = if logged_out_of {
            (None, true)
        } else {
            (token, rewrite)
        };
        self.reads = None;
        if !matches!(self.state, State::ReadingStorage) {
            // Unless a login or logout has written or removed the keys since (then what was
            // read is gone already).
            if logged_out_of && !self.token_keys_settled {
                self.remove_storage(fx);
            }
            self.token_keys_settled = true;
            return;
        }
        self.token_keys_settled = true;
        let Some(stored) = token else {
            if rewrite {
                // Junk under our keys: clear it so it is not re-read at every launch.
                self.remove_storage(fx);
            }
            self.start_login(Attempt::first(false), fx);
            return;
        };
        let session = Session::stored(stored);
        if session.usable_at(now_ms, self.config.expiry_margin_ms) {
            if rewrite {
                self.persist(&session.token, session.expires_at_ms, fx);
            }
            self.check(session, fx);
        } else {
            // Expired: the server would refuse it, so do not even ask.
            self.remove_storage(fx);
            self.start_login(Attempt::first(false), fx);
        }
    }

    fn on_ensure_login(&mut self, waiter: u32, now_ms: u64, fx: &mut Vec<Effect>) {
        match &self.state {
            State::Unknown => {
                // Asked before launch: the need implies the launch.
                self.waiters.push(waiter);
                self.read_storage(fx);
            }
            State::ReadingStorage
            | State::GettingCode { .. }
            | State::ExchangingCode { .. }
            | State::RetryWaiting { .. } => self.waiters.push(waiter),
            // A stored token being checked is handed out like a confirmed one: waiting for the
            // check would delay every launch by a round trip, and a token the server refuses
            // surfaces anyway (the check's answer, or a business API's 401).
            State::Checking { session, .. } | State::LoggedIn { session } => {
                if session.usable_at(now_ms, self.config.expiry_margin_ms) {
                    let token = session.token.clone();
                    fx.push(Effect::ResolveWaiters {
                        waiters: vec![waiter],
                        result: WaiterResult::Ok { token },
                    });
                } else {
                    self.waiters.push(waiter);
                    self.start_login(Attempt::first(false), fx);
                }
            }
            State::Failed { .. } | State::LoggedOut => {
                self.waiters.push(waiter);
                self.start_login(Attempt::first(false), fx);
            }
        }
    }

    fn on_login_requested(&mut self, fx: &mut Vec<Effect>) {
        if matches!(self.state, State::Unknown) {
            // Asked before launch: launch first, for the pending logouts and so that a stored
            // token pending its logout is removed.
            self.read_storage(fx);
        }
        match self.state {
            // Already logging in: the user's press joins it rather than spending a second code.
            State::GettingCode { .. } | State::ExchangingCode { .. } => {}
            // Everything else, the held token and a running backoff included, gives way to a
            // fresh login with a full attempt budget: the user asked for exactly that.
            State::Unknown
            | State::ReadingStorage
            | State::Checking { .. }
            | State::LoggedIn { .. }
            | State::RetryWaiting { .. }
            | State::Failed { .. }
            | State::LoggedOut => self.start_login(Attempt::first(false), fx),
        }
    }

    fn on_wx_login_succeeded(&mut self, code: String, fx: &mut Vec<Effect>) {
        self.wx_in_flight = false;
        let State::GettingCode { attempt } = &self.state else {
            // The login that asked was abandoned; the unused code just lapses.
            return;
        };
        let attempt = attempt.clone();
        // The server's own rule: a code it would refuse unasked is not worth a request, and
        // `wx.login` handing out junk is treated like `wx.login` failing.
        if code_rules::check(&code).is_err() {
            let error = Failure::new(codes::WX_LOGIN_FAILED, "wx.login gave no usable code");
            self.attempt_failed(
                attempt,
                Remedy::RetryLater {
                    retry_after_ms: None,
                },
                error,
                fx,
            );
            return;
        }
        let request = self.ids.next();
        let body = wire::login_request(&code, &self.config.appid, &self.config.device);
        fx.push(Effect::HttpRequest {
            request,
            method: Method::Post,
            path: paths::LOGIN.to_owned(),
            bearer: None,
            body: Some(body),
        });
        self.state = State::ExchangingCode { attempt, request };
    }

    fn on_wx_login_failed(&mut self, err_msg: String, fx: &mut Vec<Effect>) {
        self.wx_in_flight = false;
        let State::GettingCode { attempt } = &self.state else {
            return;
        };
        let attempt = attempt.clone();
        // wx.login fails when the phone is offline or WeChat is busy: worth retrying.
        let error = Failure::new(codes::WX_LOGIN_FAILED, err_msg);
        self.attempt_failed(
            attempt,
            Remedy::RetryLater {
                retry_after_ms: None,
            },
            error,
            fx,
        );
    }

    fn on_http_answer(
        &mut self,
        request: u32,
        answer: Answer<'_>,
        now_ms: u64,
        fx: &mut Vec<Effect>,
    ) {
        if self
            .revokes
            .on_answer(request, answer, &self.config, &mut self.ids, fx)
        {
            return;
        }
        match &self.state {
            State::Checking {
                session,
                request: r,
            } if *r == request => {
                let session = session.clone();
                self.on_check_answer(session, answer, fx);
            }
            State::ExchangingCode {
                attempt,
                request: r,
            } if *r == request => {
                let attempt = attempt.clone();
                self.on_login_answer(attempt, answer, now_ms, fx);
            }
            // A stale answer: a logout, forced login or timer moved on.
            State::Unknown
            | State::ReadingStorage
            | State::Checking { .. }
            | State::GettingCode { .. }
            | State::ExchangingCode { .. }
            | State::LoggedIn { .. }
            | State::RetryWaiting { .. }
            | State::Failed { .. }
            | State::LoggedOut => return,
        }
        // The server works again: a revoke waiting out its backoff need not wait any longer.
        if let Answer::Response {
            status: 200..=299, ..
        } = answer
        {
            self.revokes.send_now(&mut self.ids, fx);
        }
    }

    /// Only a definite "no" from the server (`is_login: false` or 401) throws the token away.
    /// When the check cannot be done (network, 5xx, anything unexpected) the unexpired token is
    /// kept and used unverified: a business call that then gets a 401 reports
    /// `api_unauthorized` and the machine logs in again. Logging in afresh on every flaky check
    /// would instead turn a short server outage into a burst of `wx.login` calls.
    fn on_check_answer(&mut self, mut session: Session, answer: Answer<'_>, fx: &mut Vec<Effect>) {
        let verdict = match answer {
            Answer::Response {
                status: 200, body, ..
            } => wire::check_login_response(body).map(|r| r.is_login),
            Answer::Response { status: 401, .. } => Some(false),
            Answer::Response { .. } | Answer::Failed { .. } => None,
        };
        match verdict {
            Some(false) => {
                self.remove_storage(fx);
                self.start_login(Attempt::first(false), fx);
            }
            Some(true) | None => {
                session.verified = verdict.is_some();
                self.logged_in(session, fx);
            }
        }
    }

    fn on_login_answer(
        &mut self,
        attempt: Attempt,
        answer: Answer<'_>,
        now_ms: u64,
        fx: &mut Vec<Effect>,
    ) {
        let (remedy, error) = match answer {
            Answer::Response {
                status: 200..=299,
                body,
                ..
            } => {
                match wire::login_response(body) {
                    Some(LoginResponse { token, expires_in })
                        if storage::is_valid_token(&token) =>
                    {
                        let expires_at_ms = now_ms.saturating_add(expires_in.saturating_mul(1000));
                        self.persist(&token, Some(expires_at_ms), fx);
                        let session = Session {
                            token,
                            expires_at_ms: Some(expires_at_ms),
                            issued_at_ms: Some(now_ms),
                            after_401: attempt.after_401,
                            verified: true,
                            refused: None,
                        };
                        self.logged_in(session, fx);
                        return;
                    }
                    // A success answer without a usable token is a server bug; asking again
                    // would only repeat it.
                    _ => (
                        Remedy::GiveUp,
                        Failure::new(codes::BAD_RESPONSE, "login answer has no usable token"),
                    ),
                }
            }
            Answer::Response {
                status,
                body,
                retry_after_s,
            } => classify(status, body, retry_after_s),
            // The server may or may not have spent the code; the retry gets a new one anyway.
            Answer::Failed { err_msg } => (
                Remedy::RetryLater {
                    retry_after_ms: None,
                },
                Failure::new(codes::NETWORK_ERROR, err_msg),
            ),
        };
        self.attempt_failed(attempt, remedy, error, fx);
    }

    fn on_timer_fired(&mut self, timer: u32, fx: &mut Vec<Effect>) {
        if self.revokes.on_timer(timer, &mut self.ids, fx) {
            return;
        }
        let next = match &self.state {
            State::RetryWaiting {
                attempt,
                timer: t,
                error,
            } if *t == timer => attempt.clone().next(error.clone()),
            // A timer of a backoff that a user action or logout already ended.
            State::Unknown
            | State::ReadingStorage
            | State::Checking { .. }
            | State::GettingCode { .. }
            | State::ExchangingCode { .. }
            | State::LoggedIn { .. }
            | State::RetryWaiting { .. }
            | State::Failed { .. }
            | State::LoggedOut => return,
        };
        self.start_login(next, fx);
    }

    /// A 401 from a business API means the held token is dead: drop it and log in once more.
    /// Calls that were made with the same token and fail alike find no token held (or a newer
    /// one) and are ignored, so any number of concurrent 401s cause one login.
    ///
    /// If the token was itself issued for such a 401 less than `relogin_guard_ms` ago, the
    /// server (or that API) is rejecting whatever it issues: clock skew, an API that does not
    /// accept these tokens. Logging in again would only repeat it, once per call. The token is
    /// kept instead, marked refused (the snapshot's `last_error`, code `unauthorized`), and
    /// callers' requests fail with their 401. Once the guard time has passed, a 401 logs in
    /// again: at most one such login per `relogin_guard_ms`.
    fn on_api_unauthorized(&mut self, token: Option<&str>, now_ms: u64, fx: &mut Vec<Effect>) {
        let guard_ms = self.config.relogin_guard_ms;
        let Some(session) = self.state.session_mut() else {
            // No token held: a login is already replacing it, or the user logged out.
            return;
        };
        if token.is_some_and(|t| t != session.token) {
            // A call made with a token already replaced.
            return;
        }
        let looping = session.after_401
            && session
                .issued_at_ms
                .is_some_and(|at| now_ms.saturating_sub(at) < guard_ms);
        if looping {
            if session.refused.is_none() {
                session.refused = Some(Failure::new(
                    codes::UNAUTHORIZED,
                    "the server rejected a token it had just issued; not logging in again for now",
                ));
            }
            return;
        }
        self.remove_storage(fx);
        self.start_login(Attempt::first(true), fx);
    }

    /// Logging out never waits for the server: the token is gone locally at once, and its
    /// revoke (`POST /logout`) is kept in storage and sent until the server confirms it (see
    /// [`revoke`](crate::revoke)). It is written before the token is removed: an app that dies
    /// in between leaves it both stored and pending, and the next launch then treats it as
    /// logged out of instead of losing the revoke. Callers still waiting get `logged_out`. A
    /// login under way is abandoned (its answers become stale); a token the server issues for
    /// it is never used.
    ///
    /// `ended` is a token whose session the server has confirmed over (`session_ended`: the
    /// host ended every session of the account, or the account): the same logout, without a
    /// revoke for that token, which the server would only answer with a 401. Any other token
    /// held by then (a login that finished meanwhile) is revoked as usual: the user asked to be
    /// logged out, whichever token it is.
    fn on_logout(&mut self, ended: Option<&str>, fx: &mut Vec<Effect>) {
        if matches!(self.state, State::Unknown) {
            // Before launch: launch, or the pending logouts would never be read.
            self.read_storage(fx);
        }
        if let Some(session) = self.state.session()
            && ended != Some(session.token.as_str())
        {
            let token = session.token.clone();
            self.revokes.add(token, &self.config, fx);
        }
        self.remove_storage(fx);
        self.revokes.send_now(&mut self.ids, fx);
        self.reject_waiters(Failure::new(codes::LOGGED_OUT, "logged out"), fx);
        self.state = State::LoggedOut;
    }

    fn on_forget_token(&mut self, fx: &mut Vec<Effect>) {
        self.remove_storage(fx);
        match self.state {
            // Nothing read yet; the launch that follows reads the now empty storage.
            State::Unknown => {}
            // No token is held while logging in, and the one being fetched is a new one.
            State::GettingCode { .. }
            | State::ExchangingCode { .. }
            | State::RetryWaiting { .. }
            | State::Failed { .. }
            | State::LoggedOut => {}
            State::ReadingStorage | State::Checking { .. } | State::LoggedIn { .. } => {
                if self.waiters.is_empty() {
                    self.state = State::LoggedOut;
                } else {
                    self.start_login(Attempt::first(false), fx);
                }
            }
        }
    }

    // ---- transitions shared by several events ------------------------------------------------

    /// The launch: asks for the three keys, once (it is only called from `Unknown`); the
    /// answers may come in any order (see `on_storage_read`).
    fn read_storage(&mut self, fx: &mut Vec<Effect>) {
        for key in [
            &self.config.storage_key,
            &self.config.expiry_storage_key,
            &self.config.logout_storage_key,
        ] {
            fx.push(Effect::ReadStorage { key: key.clone() });
        }
        self.reads = Some(Reads::default());
        self.state = State::ReadingStorage;
    }

    /// Writes a token in the current form: the bare string, and the expiry as a number (or no
    /// expiry key at all when it is unknown).
    fn persist(&mut self, token: &str, expires_at_ms: Option<u64>, fx: &mut Vec<Effect>) {
        self.token_keys_settled = true;
        fx.push(Effect::WriteStorage {
            key: self.config.storage_key.clone(),
            value: StorageValue::Text(token.to_owned()),
        });
        fx.push(match expires_at_ms {
            Some(expires_at_ms) => Effect::WriteStorage {
                key: self.config.expiry_storage_key.clone(),
                value: StorageValue::Number(expires_at_ms),
            },
            None => Effect::RemoveStorage {
                key: self.config.expiry_storage_key.clone(),
            },
        });
    }

    fn remove_storage(&mut self, fx: &mut Vec<Effect>) {
        self.token_keys_settled = true;
        for key in [&self.config.storage_key, &self.config.expiry_storage_key] {
            fx.push(Effect::RemoveStorage { key: key.clone() });
        }
    }

    /// Holds a stored token, hands it to everyone waiting, and verifies it in the background.
    /// Only called with a valid token, so no request ever carries an empty bearer.
    fn check(&mut self, session: Session, fx: &mut Vec<Effect>) {
        let request = self.ids.next();
        fx.push(Effect::HttpRequest {
            request,
            method: Method::Get,
            path: paths::CHECK_LOGIN.to_owned(),
            bearer: Some(session.token.clone()),
            body: None,
        });
        self.answer_waiters(&session.token, fx);
        self.state = State::Checking { session, request };
    }

    fn start_login(&mut self, attempt: Attempt, fx: &mut Vec<Effect>) {
        if !self.wx_in_flight {
            self.wx_in_flight = true;
            fx.push(Effect::WxLogin);
        }
        self.state = State::GettingCode { attempt };
    }

    /// Decides, after a failed round, between another round now (new code), a backoff, and
    /// giving up.
    fn attempt_failed(
        &mut self,
        attempt: Attempt,
        remedy: Remedy,
        error: Failure,
        fx: &mut Vec<Effect>,
    ) {
        let last = attempt.number >= self.config.attempts();
        match remedy {
            Remedy::GiveUp => self.fail(error, fx),
            Remedy::NewCode | Remedy::RetryLater { .. } if last => {
                self.fail(error.because("gave up after the last attempt"), fx);
            }
            Remedy::NewCode => self.start_login(attempt.next(error), fx),
            Remedy::RetryLater { retry_after_ms } => {
                let backoff = backoff::delay_ms(&self.config, attempt.number);
                let delay_ms = match retry_after_ms {
                    // Waiting longer than the configured cap would leave callers hanging for
                    // longer than the app expects; retrying sooner would ignore the server.
                    Some(wait) if wait > self.config.max_backoff_ms => {
                        self.fail(error.because("the server asked to wait too long"), fx);
                        return;
                    }
                    Some(wait) => backoff.max(wait),
                    None => backoff,
                };
                let timer = self.ids.next();
                fx.push(Effect::StartTimer { timer, delay_ms });
                self.state = State::RetryWaiting {
                    attempt,
                    timer,
                    error,
                };
            }
        }
    }

    fn logged_in(&mut self, session: Session, fx: &mut Vec<Effect>) {
        self.answer_waiters(&session.token, fx);
        self.state = State::LoggedIn { session };
    }

    fn answer_waiters(&mut self, token: &str, fx: &mut Vec<Effect>) {
        if !self.waiters.is_empty() {
            fx.push(Effect::ResolveWaiters {
                waiters: std::mem::take(&mut self.waiters),
                result: WaiterResult::Ok {
                    token: token.to_owned(),
                },
            });
        }
    }

    fn fail(&mut self, error: Failure, fx: &mut Vec<Effect>) {
        self.reject_waiters(error.clone(), fx);
        self.state = State::Failed { error };
    }

    fn reject_waiters(&mut self, error: Failure, fx: &mut Vec<Effect>) {
        if !self.waiters.is_empty() {
            fx.push(Effect::ResolveWaiters {
                waiters: std::mem::take(&mut self.waiters),
                result: WaiterResult::Err(error),
            });
        }
    }
}
