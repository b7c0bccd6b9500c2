//! A fake host for the machine: it keeps storage, records every effect, tracks what is
//! outstanding (wx.login, requests, timers, reads) and the token `token_changed` announced, and
//! checks the machine's invariants on every step, so both the scripted tests and the property
//! tests get those checks for free. It also keeps a model of the logouts the server has not
//! confirmed, and checks storage against it: a token to revoke is never lost until confirmed.
//! [`Host::relaunch`] ends the app's process and starts a new one over the same storage.

#![allow(dead_code)] // each test binary uses a different part of the driver

use std::collections::{BTreeMap, BTreeSet};

use client_wasm::{
    Config, Effect, Event, MAX_PENDING_LOGOUTS, Machine, Method, StateName, StorageValue,
    WaiterResult,
};

/// The default storage keys.
pub const TOKEN_KEY: &str = "token";
pub const EXPIRY_KEY: &str = "token_expires_at_ms";
pub const LOGOUT_KEY: &str = "logout_pending";

/// An `http_request` the host has not answered yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub id: u32,
    pub method: Method,
    pub path: String,
    pub bearer: Option<String>,
    pub body: Option<String>,
}

impl Request {
    /// The code of a `POST /login`.
    pub fn code(&self) -> Option<String> {
        let body: serde_json::Value = serde_json::from_str(self.body.as_deref()?).ok()?;
        Some(body.get("code")?.as_str()?.to_owned())
    }
}

#[derive(Debug)]
pub struct Host {
    pub machine: Machine,
    pub now_ms: u64,
    /// The device's storage, JSON values as wx storage keeps them.
    pub storage: BTreeMap<String, StorageValue>,
    /// The current token and its expiry, as the last `token_changed` said.
    pub token: Option<String>,
    pub token_expires_at_ms: Option<u64>,
    /// Every effect ever returned, in order.
    pub log: Vec<Effect>,
    /// Unanswered `wx_login`s (the machine must keep this at most 1).
    pub wx_pending: u32,
    pub requests: Vec<Request>,
    /// Started timers not fired yet: (id, due time).
    pub timers: Vec<(u32, u64)>,
    pub reads: Vec<String>,
    /// Waiters the host asked for, and how each was answered.
    pub asked: BTreeSet<u32>,
    pub resolved: BTreeMap<u32, WaiterResult>,
    /// Every code sent in a `POST /login`.
    pub codes_posted: BTreeSet<String>,
    next_code: u32,
    /// Tokens issued by the fake server; unique across relaunches, as a real server's are.
    next_token: u32,
    /// The model: tokens the user logged out of whose `POST /logout` has not been confirmed
    /// (204/401), oldest first, the oldest dropped past the cap. Storage must hold exactly
    /// these once the machine has read them.
    pub unconfirmed: Vec<String>,
    /// Every token the user logged out of, confirmed or not: none may ever be held again.
    pub logged_out_of: BTreeSet<String>,
    /// Whether this process's machine has had the stored pending logouts.
    pub pending_read: bool,
}

impl Host {
    pub fn new(config: Config) -> Self {
        Self {
            machine: Machine::new(config),
            now_ms: 1_000_000,
            storage: BTreeMap::new(),
            token: None,
            token_expires_at_ms: None,
            log: Vec::new(),
            wx_pending: 0,
            requests: Vec::new(),
            timers: Vec::new(),
            reads: Vec::new(),
            asked: BTreeSet::new(),
            resolved: BTreeMap::new(),
            codes_posted: BTreeSet::new(),
            next_code: 0,
            next_token: 0,
            unconfirmed: Vec::new(),
            logged_out_of: BTreeSet::new(),
            pending_read: false,
        }
    }

    /// The app's process ends (killed, or closed with requests and timers outstanding) and a
    /// new one starts over the same storage: only what was stored survives. Waiters of the old
    /// process that were never answered are gone with it.
    pub fn relaunch(&mut self) {
        self.machine = Machine::new(self.machine.config().clone());
        self.token = None;
        self.token_expires_at_ms = None;
        self.wx_pending = 0;
        self.requests.clear();
        self.timers.clear();
        self.reads.clear();
        let resolved = &self.resolved;
        self.asked.retain(|w| resolved.contains_key(w));
        self.pending_read = false;
    }

    pub fn state(&self) -> &'static str {
        self.machine.state().as_str()
    }

    /// Hands one event to the machine, applies storage effects, records the rest and checks
    /// every invariant. Returns this step's effects.
    pub fn send(&mut self, event: Event) -> Vec<Effect> {
        if let Event::EnsureLogin { waiter, .. } = event {
            assert!(
                self.asked.insert(waiter),
                "test bug: waiter {waiter} reused"
            );
        }
        let held_before = self.token.clone();
        if let Event::StorageRead { key, .. } = &event
            && *key == self.machine.config().logout_storage_key
        {
            self.pending_read = true;
        }
        let effects = self.machine.handle(event.clone());
        // The wasm path's hand-written JSON must be exactly serde's.
        assert_eq!(
            client_wasm::effects_to_json(&effects),
            serde_json::to_string(&effects).unwrap()
        );
        for (i, effect) in effects.iter().enumerate() {
            self.record(effect, &effects[i + 1..], &event);
        }
        // A logout revokes the token held; `session_ended` too, unless the server already
        // ended that very token's session (then it is only never to be held again).
        let revoked = match &event {
            Event::LogoutRequested { .. } => held_before,
            Event::SessionEnded { token, .. } => {
                self.logged_out_of.insert(token.clone());
                held_before.filter(|held| held != token)
            }
            _ => None,
        };
        if let Some(token) = revoked {
            self.logged_out_of.insert(token.clone());
            self.unconfirmed.retain(|t| *t != token);
            self.unconfirmed.push(token);
            if self.unconfirmed.len() > MAX_PENDING_LOGOUTS {
                self.unconfirmed.remove(0);
            }
        }
        self.check_resting_state();
        self.check_token(&effects);
        self.check_revokes(&effects);
        self.log.extend(effects.iter().cloned());
        effects
    }

    /// The pending logouts in storage are the model's (once read), the machine's too, and none
    /// is the token held now; no `POST /logout` carries the held token.
    fn check_revokes(&self, effects: &[Effect]) {
        if let Some(held) = &self.token {
            assert!(
                !self.logged_out_of.contains(held),
                "the held token {held} is one the user logged out of"
            );
        }
        for effect in effects {
            if let Effect::HttpRequest {
                path,
                bearer: Some(bearer),
                ..
            } = effect
                && path == "/logout"
            {
                assert_ne!(Some(bearer), self.token.as_ref(), "revoking the held token");
            }
        }
        if self.pending_read {
            assert_eq!(
                self.stored_pending(),
                self.unconfirmed,
                "stored pending logouts"
            );
            assert_eq!(self.machine.pending_logouts(), &self.unconfirmed[..]);
        }
    }

    /// The tokens stored under the pending-logouts key, as wx storage (an array) or a
    /// string-only storage (its JSON text) holds them.
    pub fn stored_pending(&self) -> Vec<String> {
        let key = &self.machine.config().logout_storage_key;
        match self.storage.get(key) {
            None => Vec::new(),
            Some(StorageValue::Tokens(tokens)) => {
                assert!(!tokens.is_empty(), "an empty list is removed, not stored");
                tokens.clone()
            }
            // A string-only storage's form, left as found when current.
            Some(StorageValue::Text(text)) => serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("pending logouts stored as {text:?}: {e}")),
            Some(other) => panic!("pending logouts stored as {other:?}"),
        }
    }

    /// Puts pending logouts in storage as an earlier process left them; `expected` is what the
    /// machine must make of them (the model's start).
    pub fn put_pending(&mut self, value: StorageValue, expected: &[&str]) {
        self.put(LOGOUT_KEY, value);
        self.unconfirmed = expected.iter().map(|t| (*t).to_owned()).collect();
        self.logged_out_of = self.unconfirmed.iter().cloned().collect();
    }

    fn record(&mut self, effect: &Effect, after: &[Effect], event: &Event) {
        let last = after.is_empty();
        match effect {
            Effect::ReadStorage { key } => self.reads.push(key.clone()),
            Effect::WriteStorage { key, value } => {
                self.storage.insert(key.clone(), value.clone());
            }
            Effect::RemoveStorage { key } => {
                self.storage.remove(key);
            }
            Effect::WxLogin => {
                assert_eq!(
                    self.wx_pending, 0,
                    "second wx_login in flight after {event:?}"
                );
                self.wx_pending += 1;
            }
            Effect::HttpRequest {
                request,
                method,
                path,
                bearer,
                body,
            } => {
                if let Some(bearer) = bearer {
                    assert!(
                        !bearer.trim().is_empty() && !bearer.contains(char::is_whitespace),
                        "bad bearer {bearer:?}"
                    );
                }
                let req = Request {
                    id: *request,
                    method: *method,
                    path: path.clone(),
                    bearer: bearer.clone(),
                    body: body.clone(),
                };
                match path.as_str() {
                    "/checklogin" => {
                        assert_eq!(*method, Method::Get);
                        assert!(bearer.is_some(), "checklogin without a token");
                    }
                    "/logout" => {
                        assert_eq!(*method, Method::Post);
                        assert!(body.is_none());
                        let bearer = bearer.as_ref().expect("logout without a token");
                        // Written before it is sent: a process that dies now loses nothing.
                        assert!(
                            self.stored_pending().contains(bearer),
                            "{bearer} sent to /logout before it was stored"
                        );
                        assert!(
                            self.requests.iter().all(|r| r.path != "/logout"),
                            "two revokes in flight"
                        );
                    }
                    "/login" => {
                        assert_eq!(*method, Method::Post);
                        assert!(bearer.is_none());
                        let code = req.code().expect("login body has a code");
                        assert!(!code.is_empty());
                        assert!(
                            self.codes_posted.insert(code.clone()),
                            "code {code} sent twice"
                        );
                    }
                    other => panic!("unexpected path {other}"),
                }
                assert!(
                    self.requests.iter().all(|r| r.id != *request),
                    "request id {request} reused while outstanding"
                );
                self.requests.push(req);
            }
            Effect::StartTimer { timer, delay_ms } => {
                assert!(*delay_ms <= self.machine.config().max_backoff_ms);
                self.timers.push((*timer, self.now_ms + delay_ms));
            }
            Effect::TokenChanged {
                token,
                expires_at_ms,
            } => {
                assert!(
                    matches!(after, [] | [Effect::StateChanged(_)]),
                    "token_changed must come last or just before state_changed: {after:?}"
                );
                assert!(
                    (token, expires_at_ms) != (&self.token, &self.token_expires_at_ms),
                    "token_changed without a change after {event:?}"
                );
                if let Some(token) = token {
                    assert!(!token.is_empty() && !token.contains(char::is_whitespace));
                } else {
                    assert_eq!(*expires_at_ms, None);
                }
                self.token = token.clone();
                self.token_expires_at_ms = *expires_at_ms;
            }
            Effect::StateChanged(snapshot) => {
                assert!(last, "state_changed must be the last effect");
                assert_eq!(snapshot.state, self.machine.state());
                assert!(StateName::ALL.contains(&snapshot.state));
            }
            Effect::ResolveWaiters { waiters, result } => {
                assert!(!waiters.is_empty(), "empty resolve_waiters");
                if let WaiterResult::Ok { token } = result {
                    assert!(!token.is_empty() && !token.contains(char::is_whitespace));
                }
                for w in waiters {
                    assert!(self.asked.contains(w), "resolved unknown waiter {w}");
                    assert!(
                        self.resolved.insert(*w, result.clone()).is_none(),
                        "waiter {w} resolved twice"
                    );
                }
            }
        }
    }

    /// In a state where no login is under way, nobody may be left waiting (not even for a
    /// check: a token being checked is handed out).
    fn check_resting_state(&self) {
        let resting = matches!(
            self.machine.state(),
            StateName::Checking | StateName::LoggedIn | StateName::Failed | StateName::LoggedOut
        );
        if resting {
            assert!(
                self.machine.pending_waiters().is_empty(),
                "waiters {:?} left pending in {}",
                self.machine.pending_waiters(),
                self.state()
            );
        }
    }

    /// The host's token (from `token_changed`) is the one the machine holds, is the one it
    /// hands out, and is what storage holds, in the current form.
    fn check_token(&self, effects: &[Effect]) {
        let holds = matches!(
            self.machine.state(),
            StateName::Checking | StateName::LoggedIn
        );
        assert_eq!(
            self.token.is_some(),
            holds,
            "token {:?} in state {}",
            self.token,
            self.state()
        );
        for effect in effects {
            if let Effect::ResolveWaiters {
                result: WaiterResult::Ok { token },
                ..
            } = effect
            {
                assert_eq!(
                    Some(token),
                    self.token.as_ref(),
                    "handed out a token not held"
                );
                let margin = self.machine.config().expiry_margin_ms;
                assert!(
                    self.token_expires_at_ms
                        .is_none_or(|expiry| self.now_ms + margin < expiry),
                    "handed out {token}, which expires at {:?}, at {}",
                    self.token_expires_at_ms,
                    self.now_ms
                );
            }
        }
        if let Some(token) = &self.token {
            let config = self.machine.config();
            let text = |key: &str| self.storage.get(key).map(StorageValue::to_text);
            assert_eq!(text(&config.storage_key).as_ref(), Some(token), "storage");
            assert_eq!(
                text(&config.expiry_storage_key),
                self.token_expires_at_ms.map(|ms| ms.to_string()),
                "stored expiry"
            );
        }
    }

    /// Puts a value in the device's storage, as some earlier app version left it.
    pub fn put(&mut self, key: &str, value: StorageValue) {
        self.storage.insert(key.to_owned(), value);
    }

    /// Stores a token in the current form (bare token, expiry as a number).
    pub fn put_token(&mut self, token: &str, expires_at_ms: Option<u64>) {
        self.put(TOKEN_KEY, text(token));
        match expires_at_ms {
            Some(ms) => self.put(EXPIRY_KEY, StorageValue::Number(ms)),
            None => {
                self.storage.remove(EXPIRY_KEY);
            }
        }
    }

    /// The stored value of `key` as a string-only storage would hold it.
    pub fn stored_text(&self, key: &str) -> Option<String> {
        self.storage.get(key).map(StorageValue::to_text)
    }

    // ---- conveniences for scripted tests -----------------------------------------------------

    pub fn launch(&mut self) -> Vec<Effect> {
        self.send(Event::Launched {
            now_ms: self.now_ms,
        })
    }

    /// Answers the oldest outstanding storage read from the fake storage, as the JSON path
    /// hands it over (a number as its digits).
    pub fn answer_read(&mut self) -> Vec<Effect> {
        let key = self.reads.remove(0);
        let value = self.storage.get(&key).map(StorageValue::to_text);
        self.send(Event::StorageRead {
            key,
            value,
            now_ms: self.now_ms,
        })
    }

    /// Answers every outstanding storage read; the effects of all the answers.
    pub fn answer_reads(&mut self) -> Vec<Effect> {
        assert!(!self.reads.is_empty(), "no read to answer");
        let mut effects = Vec::new();
        while !self.reads.is_empty() {
            effects.extend(self.answer_read());
        }
        effects
    }

    pub fn ensure(&mut self, waiter: u32) -> Vec<Effect> {
        self.send(Event::EnsureLogin {
            waiter,
            now_ms: self.now_ms,
        })
    }

    pub fn fresh_code(&mut self) -> String {
        self.next_code += 1;
        format!("code{}", self.next_code)
    }

    /// A token the fake server has never issued before.
    pub fn fresh_token(&mut self) -> String {
        self.next_token += 1;
        format!("tok-{}", self.next_token)
    }

    /// Answers the outstanding wx.login with a new code.
    pub fn wx_ok(&mut self) -> Vec<Effect> {
        assert_eq!(self.wx_pending, 1, "no wx_login to answer");
        self.wx_pending = 0;
        let code = self.fresh_code();
        self.send(Event::WxLoginSucceeded {
            code,
            now_ms: self.now_ms,
        })
    }

    pub fn wx_fail(&mut self) -> Vec<Effect> {
        assert_eq!(self.wx_pending, 1, "no wx_login to answer");
        self.wx_pending = 0;
        self.send(Event::WxLoginFailed {
            err_msg: "login:fail".into(),
            now_ms: self.now_ms,
        })
    }

    /// Takes the outstanding request to `path` (the only one; panics otherwise).
    pub fn take(&mut self, path: &str) -> Request {
        let matching: Vec<usize> = (0..self.requests.len())
            .filter(|&i| self.requests[i].path == path)
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "expected one {path} request: {:?}",
            self.requests
        );
        self.requests.remove(matching[0])
    }

    /// Answers `req`, which must be outstanding (taken from `requests`). A 2xx or 401 to a
    /// `POST /logout` confirms its revoke in the model.
    pub fn respond(
        &mut self,
        req: &Request,
        status: u16,
        body: &str,
        retry_after_s: Option<u32>,
    ) -> Vec<Effect> {
        if req.path == "/logout" && ((200..300).contains(&status) || status == 401) {
            let bearer = req.bearer.as_ref().unwrap();
            self.unconfirmed.retain(|t| t != bearer);
        }
        self.send(Event::HttpResponse {
            request: req.id,
            status,
            body: body.to_owned(),
            retry_after_s,
            now_ms: self.now_ms,
        })
    }

    pub fn network_fail(&mut self, req: &Request) -> Vec<Effect> {
        self.send(Event::HttpFailed {
            request: req.id,
            err_msg: "request:fail".into(),
            now_ms: self.now_ms,
        })
    }

    /// Advances the clock to the earliest timer and fires it.
    pub fn fire_next_timer(&mut self) -> Vec<Effect> {
        assert!(!self.timers.is_empty(), "no timer to fire");
        let (i, _) = self
            .timers
            .iter()
            .enumerate()
            .min_by_key(|(_, (_, due))| *due)
            .unwrap();
        let (timer, due) = self.timers.remove(i);
        self.now_ms = self.now_ms.max(due);
        self.send(Event::TimerFired {
            timer,
            now_ms: self.now_ms,
        })
    }

    pub fn login_requested(&mut self) -> Vec<Effect> {
        self.send(Event::LoginRequested {
            now_ms: self.now_ms,
        })
    }

    pub fn logout(&mut self) -> Vec<Effect> {
        self.send(Event::LogoutRequested {
            now_ms: self.now_ms,
        })
    }

    /// The server confirmed that `token`'s session is over (every session of the account, or
    /// the account, ended with it).
    pub fn session_ended(&mut self, token: &str) -> Vec<Effect> {
        self.send(Event::SessionEnded {
            token: token.to_owned(),
            now_ms: self.now_ms,
        })
    }

    pub fn forget(&mut self) -> Vec<Effect> {
        self.send(Event::ForgetToken {
            now_ms: self.now_ms,
        })
    }

    pub fn unauthorized(&mut self, token: Option<&str>) -> Vec<Effect> {
        self.send(Event::ApiUnauthorized {
            token: token.map(str::to_owned),
            now_ms: self.now_ms,
        })
    }

    /// wx.login → POST /login → 200 with `token`.
    pub fn complete_login(&mut self, token: &str, expires_in: u64) -> Vec<Effect> {
        self.wx_ok();
        let req = self.take("/login");
        self.respond(&req, 200, &login_ok(token, expires_in), None)
    }
}

pub fn login_ok(token: &str, expires_in: u64) -> String {
    serde_json::json!({"token": token, "expires_in": expires_in}).to_string()
}

pub fn error_body(code: &str) -> String {
    serde_json::json!({"error": {"code": code, "message": "msg"}}).to_string()
}

/// A string storage value.
pub fn text(s: &str) -> StorageValue {
    StorageValue::Text(s.to_owned())
}

/// The JSON text this crate stored under `token` before the two keys.
pub fn first_form(token: &str, expires_at_ms: u64) -> String {
    serde_json::to_string(&client_wasm::StoredToken {
        token: token.to_owned(),
        expires_at_ms: Some(expires_at_ms),
    })
    .unwrap()
}

/// The `state_changed` states among `effects`.
pub fn states(effects: &[Effect]) -> Vec<&'static str> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::StateChanged(s) => Some(s.state.as_str()),
            _ => None,
        })
        .collect()
}

/// The tokens `token_changed` announced among `effects` (`None`: dropped).
pub fn tokens(effects: &[Effect]) -> Vec<Option<&str>> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::TokenChanged { token, .. } => Some(token.as_deref()),
            _ => None,
        })
        .collect()
}

/// The effects without the reports (`state_changed`, `token_changed`), for exact comparisons.
pub fn actions(effects: &[Effect]) -> Vec<Effect> {
    effects
        .iter()
        .filter(|e| !matches!(e, Effect::StateChanged(_) | Effect::TokenChanged { .. }))
        .cloned()
        .collect()
}
