//! A stand-in for WeChat's servers, for development and tests.
//!
//! It speaks `auth.code2Session` exactly as WeChat does — same query, same JSON body labelled
//! `text/plain`, same `errcode`s — and keeps WeChat's rules: a code is issued per `wx.login()`,
//! works once, and expires after five minutes; more than 100 exchanges per user per minute get
//! 45011; users whose name starts with `risky` get 40226; users whose name starts with `bound`
//! get a unionid (an app bound to an Open Platform account), others none. Because the real [`WechatClient`]
//! calls it over HTTP, dev mode exercises the production path end to end.
//!
//! Routes, relative to where the router is mounted (the server uses `/sim`):
//! - `GET /sns/jscode2session?appid&secret&js_code&grant_type` — WeChat's API.
//! - `POST /wx.login` — body `{}` or `{"user": "alice"}`; answers `{"code": "..."}`, standing
//!   in for `wx.login()` in browsers and tests. Each user has a stable `openid`.
//! - `POST /faults` — body `{"errcodes": [-1, 40029]}`: the next exchanges answer these
//!   errcodes, in order, before normal service resumes (how tests and the harness show trouble).
//! - `GET /stats` — `{"code2session_calls": n, "codes_issued": n}`, so tests can prove that
//!   bad input never reached WeChat.
//!
//! - `POST /cgi-bin/stable_token`, `POST /wxa/business/getuserphonenumber?access_token` —
//!   WeChat's access-token and phone-number APIs (see `open_api.rs`).
//! - `POST /wxa/getuserriskrank?access_token` — WeChat's risk rank: 4 for openids that start
//!   with `risky` (the openids of users whose name does), 0 for others, unless set.
//! - `POST /risk` — body `{"user", "rank"}` sets a user's rank; `{"failing": true}` makes the
//!   risk API fail until `{"failing": false}`.
//! - `POST /phone-code` — body `{"user", "phoneNumber"?}`; answers `{"code"}`, standing in for
//!   the code a `getPhoneNumber` button gives.
//! - `POST /open-data` — body `{"user"}`; answers `{"encryptedData", "iv", "rawData",
//!   "signature"}` under the user's current session_key, as `wx.getUserInfo`-style APIs hand
//!   them to the client.
//! - `POST /wxa/getwxacodeunlimit?access_token` — WeChat's mini-program code: a PNG QR code
//!   that reads `<page>?scene=<scene>`, or WeChat's errors (see `wxacode.rs`).
//! - `POST /wxacode` — body `{"quota_per_minute"?}` sets the quota of codes per minute;
//!   answers `{"quota_per_minute", "wxacode_calls"}`.
//!
//! Each `wx.login()` gives the user a new session_key, as WeChat does. In process,
//! [`Simulator::session_key_of`] tells a test the one a user holds.
//!
//! [`WechatClient`]: super::WechatClient

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::{Query, State},
    http::header,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::errcode;

mod open_api;
mod wxacode;

pub use open_api::SimOpenData;
pub use wxacode::{DEMO_PAGES, WXACODE_QUOTA_PER_MINUTE};

/// WeChat's documented life of a login code.
pub const CODE_TTL: Duration = Duration::from_secs(5 * 60);
/// How often issuing a code also sweeps out codes long expired.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// WeChat's documented limit of exchanges per user per minute.
const RATE_LIMIT_PER_MINUTE: usize = 100;
const DEFAULT_USER: &str = "dev-user";

/// The simulator's state; clone it to keep a handle for inspection in tests.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("appid", &self.inner.appid)
            .finish_non_exhaustive()
    }
}

struct Inner {
    appid: String,
    secret: String,
    code_ttl: Duration,
    state: Mutex<SimState>,
}

#[derive(Default)]
struct SimState {
    codes: HashMap<String, IssuedCode>,
    /// When `codes` was last swept of old codes (`None`: never).
    swept_at: Option<Instant>,
    faults: VecDeque<i64>,
    recent_calls: HashMap<String, VecDeque<Instant>>,
    code2session_calls: u64,
    codes_issued: u64,
    /// Each user's current session_key (base64), as WeChat keeps one per user.
    session_keys: HashMap<String, String>,
    /// Users who get a unionid from now on, as when the app is bound to an Open Platform
    /// account after they first logged in.
    bound_later: std::collections::HashSet<String>,
    open: open_api::OpenState,
    wxacode: wxacode::WxaCodeState,
}

struct IssuedCode {
    user: String,
    issued_at: Instant,
    used: bool,
}

/// Counters exposed at `GET /stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    pub code2session_calls: u64,
    pub codes_issued: u64,
}

#[derive(Deserialize)]
struct Code2SessionQuery {
    appid: Option<String>,
    secret: Option<String>,
    js_code: Option<String>,
    grant_type: Option<String>,
}

#[derive(Deserialize, Default)]
struct WxLoginBody {
    user: Option<String>,
}

#[derive(Deserialize)]
struct FaultsBody {
    errcodes: Vec<i64>,
}

impl Simulator {
    pub fn new(appid: impl Into<String>, secret: impl Into<String>) -> Self {
        Self::with_code_ttl(appid, secret, CODE_TTL)
    }

    /// A simulator whose codes expire sooner, so tests can watch expiry without waiting.
    pub fn with_code_ttl(
        appid: impl Into<String>,
        secret: impl Into<String>,
        code_ttl: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                appid: appid.into(),
                secret: secret.into(),
                code_ttl,
                state: Mutex::new(SimState::default()),
            }),
        }
    }

    /// The simulator's routes, ready to mount into any router.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        Router::new()
            .route("/sns/jscode2session", get(code2session))
            .route("/wx.login", post(wx_login))
            .route("/faults", post(push_faults))
            .route("/stats", get(stats))
            .route("/cgi-bin/stable_token", post(open_api::stable_token))
            .route(
                "/wxa/business/getuserphonenumber",
                post(open_api::phone_number),
            )
            .route("/wxa/getuserriskrank", post(open_api::user_risk_rank))
            .route("/risk", post(open_api::risk_control))
            .route("/phone-code", post(open_api::phone_code))
            .route("/open-data", post(open_api::open_data))
            .route("/wxa/getwxacodeunlimit", post(wxacode::wxacode))
            .route("/wxacode", post(wxacode::wxacode_control))
            .with_state(self.clone())
    }

    /// Issues a fresh code for `user`, as `wx.login()` would on that user's phone.
    pub fn issue_code(&self, user: &str) -> String {
        let mut raw = [0u8; 24];
        getrandom::fill(&mut raw).expect("the OS random number generator failed");
        let code = URL_SAFE_NO_PAD.encode(raw).replace(['-', '_'], "x");
        let mut state = self.state();
        let now = Instant::now();
        let ttl = self.inner.code_ttl;
        // Old codes are swept at most once a second, not at every code: a sweep visits every
        // code, and `cargo xtask bench` mints a hundred thousand codes in a few seconds, which
        // a sweep per code made quadratic. Memory stays bounded all the same.
        if state
            .swept_at
            .is_none_or(|at| now.duration_since(at) >= SWEEP_INTERVAL)
        {
            state
                .codes
                .retain(|_, c| now.duration_since(c.issued_at) < ttl * 2);
            state.swept_at = Some(now);
        }
        state.codes.insert(
            code.clone(),
            IssuedCode {
                user: user.to_owned(),
                issued_at: now,
                used: false,
            },
        );
        state.codes_issued += 1;
        // WeChat gives the user a new session_key at every wx.login(); the exchange reveals it.
        state
            .session_keys
            .insert(user.to_owned(), open_api::random_session_key());
        code
    }

    /// `user` gets a unionid from now on: the app was bound to an Open Platform account after
    /// they first logged in.
    pub fn bind_unionid(&self, user: &str) {
        self.state().bound_later.insert(user.to_owned());
    }

    /// Makes the next exchanges answer these errcodes, in order.
    pub fn push_faults(&self, errcodes: impl IntoIterator<Item = i64>) {
        self.state().faults.extend(errcodes);
    }

    pub fn appid(&self) -> &str {
        &self.inner.appid
    }

    /// For tests that configure a server against this simulator.
    pub fn secret(&self) -> &str {
        &self.inner.secret
    }

    pub fn stats(&self) -> SimStats {
        let state = self.state();
        SimStats {
            code2session_calls: state.code2session_calls,
            codes_issued: state.codes_issued,
        }
    }

    /// The session_key `user` holds now: given at their last `wx.login()`, revealed by the
    /// exchange of that code. What WeChat and the server share, so a test can look for it where
    /// it must not be (a store file, a log).
    pub fn session_key_of(&self, user: &str) -> Option<String> {
        self.state().session_keys.get(user).cloned()
    }

    /// The openid WeChat would give `user` in this app: stable per (app, user), opaque.
    pub fn openid_for(&self, user: &str) -> String {
        let digest = Sha256::digest(format!("{}:{user}", self.inner.appid));
        // Risky users' openids say so, for the risk-rank rule.
        let prefix = if user.starts_with("risky") {
            "risky"
        } else {
            "o"
        };
        format!("{prefix}{}", &URL_SAFE_NO_PAD.encode(digest)[..27])
    }

    /// The unionid WeChat gives `user` across the Open Platform account's apps: the same for
    /// every app of this simulator's, unlike the openid.
    pub fn unionid_for(&self, user: &str) -> String {
        let digest = Sha256::digest(format!("union:{user}"));
        format!("u{}", &URL_SAFE_NO_PAD.encode(digest)[..27])
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SimState> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// WeChat's decision for one exchange, as the JSON body it would send.
    fn exchange(&self, q: &Code2SessionQuery) -> serde_json::Value {
        let mut state = self.state();
        state.code2session_calls += 1;
        if let Some(errcode) = state.faults.pop_front() {
            return error(errcode, "simulated fault");
        }
        if q.appid.as_deref() != Some(self.inner.appid.as_str()) {
            return error(errcode::INVALID_APPID, "invalid appid");
        }
        let secret_ok = q
            .secret
            .as_deref()
            .is_some_and(|s| bool::from(s.as_bytes().ct_eq(self.inner.secret.as_bytes())));
        if !secret_ok {
            return error(errcode::INVALID_SECRET, "invalid appsecret");
        }
        if q.grant_type.as_deref() != Some("authorization_code") {
            return error(errcode::INVALID_GRANT_TYPE, "invalid grant_type");
        }
        let Some(code) = q.js_code.as_deref().filter(|c| !c.is_empty()) else {
            return error(errcode::MISSING_CODE, "missing code");
        };
        let ttl = self.inner.code_ttl;
        let Some(issued) = state.codes.get_mut(code) else {
            return error(errcode::INVALID_CODE, "invalid code");
        };
        if issued.issued_at.elapsed() >= ttl {
            return error(errcode::INVALID_CODE, "invalid code");
        }
        if issued.used {
            return error(errcode::CODE_USED, "code been used");
        }
        issued.used = true;
        let user = issued.user.clone();
        if user.starts_with("risky") {
            return error(errcode::HIGH_RISK_USER, "user is a high risk user");
        }
        let now = Instant::now();
        let calls = state.recent_calls.entry(user.clone()).or_default();
        calls.retain(|t| now.duration_since(*t) < Duration::from_secs(60));
        if calls.len() >= RATE_LIMIT_PER_MINUTE {
            return error(errcode::RATE_LIMITED, "api minute-quota reach limit");
        }
        calls.push_back(now);

        let session_key = state
            .session_keys
            .entry(user.clone())
            .or_insert_with(open_api::random_session_key)
            .clone();
        let bound = user.starts_with("bound") || state.bound_later.contains(&user);
        drop(state);
        let mut answer = json!({
            "openid": self.openid_for(&user),
            "session_key": session_key,
        });
        // WeChat sends a unionid only for apps bound to an Open Platform account; users whose
        // name starts with `bound` play those, and users a test bound later.
        if bound {
            answer["unionid"] = json!(self.unionid_for(&user));
        }
        answer
    }
}

fn error(errcode: i64, errmsg: &str) -> serde_json::Value {
    let mut rid = [0u8; 6];
    getrandom::fill(&mut rid).ok();
    let rid: String = rid.iter().map(|b| format!("{b:02x}")).collect();
    json!({ "errcode": errcode, "errmsg": format!("{errmsg}, rid: {rid}") })
}

/// WeChat labels its JSON as text/plain; the simulator does too, so the client is tested
/// against the real quirk.
fn wechat_body(value: serde_json::Value) -> Response {
    ([(header::CONTENT_TYPE, "text/plain")], value.to_string()).into_response()
}

async fn code2session(
    State(sim): State<Simulator>,
    Query(q): Query<Code2SessionQuery>,
) -> Response {
    wechat_body(sim.exchange(&q))
}

async fn wx_login(State(sim): State<Simulator>, body: Option<Json<WxLoginBody>>) -> Response {
    let user = body
        .and_then(|Json(b)| b.user)
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_USER.to_owned());
    Json(shared::SimLoginResponse {
        code: sim.issue_code(&user),
    })
    .into_response()
}

async fn push_faults(State(sim): State<Simulator>, Json(body): Json<FaultsBody>) -> Response {
    sim.push_faults(body.errcodes);
    axum::http::StatusCode::NO_CONTENT.into_response()
}

async fn stats(State(sim): State<Simulator>) -> Json<SimStats> {
    Json(sim.stats())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(sim: &Simulator, code: &str) -> Code2SessionQuery {
        Code2SessionQuery {
            appid: Some(sim.inner.appid.clone()),
            secret: Some(sim.inner.secret.clone()),
            js_code: Some(code.into()),
            grant_type: Some("authorization_code".into()),
        }
    }

    #[test]
    fn a_code_works_once_then_answers_40163() {
        let sim = Simulator::new("wxapp", "s3cret");
        let code = sim.issue_code("alice");
        let first = sim.exchange(&query(&sim, &code));
        assert_eq!(first["openid"], sim.openid_for("alice"));
        assert!(first["session_key"].as_str().unwrap().len() >= 22);
        assert_eq!(
            sim.session_key_of("alice").as_deref(),
            first["session_key"].as_str()
        );
        assert_eq!(sim.exchange(&query(&sim, &code))["errcode"], 40163);
    }

    #[test]
    fn unknown_and_expired_codes_answer_40029() {
        let sim = Simulator::with_code_ttl("wxapp", "s3cret", Duration::from_millis(20));
        assert_eq!(sim.exchange(&query(&sim, "nope"))["errcode"], 40029);
        let code = sim.issue_code("bob");
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(sim.exchange(&query(&sim, &code))["errcode"], 40029);
    }

    #[test]
    fn wrong_credentials_and_parameters_get_wechats_errcodes() {
        let sim = Simulator::new("wxapp", "s3cret");
        let code = sim.issue_code("carol");
        let mut q = query(&sim, &code);
        q.secret = Some("wrong".into());
        assert_eq!(sim.exchange(&q)["errcode"], 40125);
        q = query(&sim, &code);
        q.appid = Some("other".into());
        assert_eq!(sim.exchange(&q)["errcode"], 40013);
        q = query(&sim, &code);
        q.grant_type = None;
        assert_eq!(sim.exchange(&q)["errcode"], 40002);
        q = query(&sim, "");
        assert_eq!(sim.exchange(&q)["errcode"], 41008);
        // None of the refusals spent the code.
        assert!(sim.exchange(&query(&sim, &code))["openid"].is_string());
    }

    #[test]
    fn risky_users_rate_limits_and_queued_faults() {
        let sim = Simulator::new("wxapp", "s3cret");
        let code = sim.issue_code("risky-eve");
        assert_eq!(sim.exchange(&query(&sim, &code))["errcode"], 40226);

        for _ in 0..RATE_LIMIT_PER_MINUTE {
            let code = sim.issue_code("busy-bee");
            assert!(sim.exchange(&query(&sim, &code))["openid"].is_string());
        }
        let code = sim.issue_code("busy-bee");
        assert_eq!(sim.exchange(&query(&sim, &code))["errcode"], 45011);

        sim.push_faults([-1, 40029]);
        let code = sim.issue_code("dave");
        assert_eq!(sim.exchange(&query(&sim, &code))["errcode"], -1);
        assert_eq!(sim.exchange(&query(&sim, &code))["errcode"], 40029);
        assert!(sim.exchange(&query(&sim, &code))["openid"].is_string());
    }

    #[test]
    fn openids_are_stable_per_user_and_distinct_across_users() {
        let sim = Simulator::new("wxapp", "s3cret");
        assert_eq!(sim.openid_for("a"), sim.openid_for("a"));
        assert_ne!(sim.openid_for("a"), sim.openid_for("b"));
        assert_eq!(sim.openid_for("a").len(), 28);
    }
}
