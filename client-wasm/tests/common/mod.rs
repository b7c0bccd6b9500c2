//! A fake host for the machine: it keeps storage, records every effect, tracks what is
//! outstanding (wx.login, requests, timers, reads) and checks the machine's invariants on every
//! step, so both the scripted tests and the property tests get those checks for free.

#![allow(dead_code)] // each test binary uses a different part of the driver

use std::collections::{BTreeMap, BTreeSet};

use client_wasm::{Config, Effect, Event, Machine, Method, StateName, WaiterResult};

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
    pub storage: BTreeMap<String, String>,
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
}

impl Host {
    pub fn new(config: Config) -> Self {
        Self {
            machine: Machine::new(config),
            now_ms: 1_000_000,
            storage: BTreeMap::new(),
            log: Vec::new(),
            wx_pending: 0,
            requests: Vec::new(),
            timers: Vec::new(),
            reads: Vec::new(),
            asked: BTreeSet::new(),
            resolved: BTreeMap::new(),
            codes_posted: BTreeSet::new(),
            next_code: 0,
        }
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
        let effects = self.machine.handle(event.clone());
        // The wasm path's hand-written JSON must be exactly serde's.
        assert_eq!(
            client_wasm::effects_to_json(&effects),
            serde_json::to_string(&effects).unwrap()
        );
        for (i, effect) in effects.iter().enumerate() {
            self.record(effect, i + 1 == effects.len(), &event);
        }
        self.check_resting_state();
        self.log.extend(effects.iter().cloned());
        effects
    }

    fn record(&mut self, effect: &Effect, last: bool, event: &Event) {
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
                        assert!(bearer.is_some(), "logout without a token");
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

    /// In a state where nothing is under way, nobody may be left waiting.
    fn check_resting_state(&self) {
        let resting = matches!(
            self.machine.state(),
            StateName::LoggedIn | StateName::Failed | StateName::LoggedOut
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

    // ---- conveniences for scripted tests -----------------------------------------------------

    pub fn launch(&mut self) -> Vec<Effect> {
        self.send(Event::Launched {
            now_ms: self.now_ms,
        })
    }

    /// Answers the oldest outstanding storage read from the fake storage.
    pub fn answer_read(&mut self) -> Vec<Effect> {
        let key = self.reads.remove(0);
        let value = self.storage.get(&key).cloned();
        self.send(Event::StorageRead {
            key,
            value,
            now_ms: self.now_ms,
        })
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

    /// Answers the outstanding wx.login with a new code.
    pub fn wx_ok(&mut self) -> Vec<Effect> {
        assert_eq!(self.wx_pending, 1, "no wx_login to answer");
        self.wx_pending = 0;
        let code = self.fresh_code();
        self.send(Event::WxLoginSucceeded { code })
    }

    pub fn wx_fail(&mut self) -> Vec<Effect> {
        assert_eq!(self.wx_pending, 1, "no wx_login to answer");
        self.wx_pending = 0;
        self.send(Event::WxLoginFailed {
            err_msg: "login:fail".into(),
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

    pub fn respond(
        &mut self,
        req: &Request,
        status: u16,
        body: &str,
        retry_after_s: Option<u32>,
    ) -> Vec<Effect> {
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
        self.send(Event::TimerFired { timer })
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

/// The stored form of a token, as the machine writes it.
pub fn stored(token: &str, expires_at_ms: u64) -> String {
    client_wasm::encode_stored_token(&client_wasm::StoredToken {
        token: token.to_owned(),
        expires_at_ms: Some(expires_at_ms),
    })
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

/// The effects without `state_changed`, for exact comparisons.
pub fn actions(effects: &[Effect]) -> Vec<Effect> {
    effects
        .iter()
        .filter(|e| !matches!(e, Effect::StateChanged(_)))
        .cloned()
        .collect()
}
