//! The simulator's side of WeChat's server-to-server APIs and open data: `stable_token`
//! access tokens that expire and that a second fetcher can invalidate (40001), phone-number
//! codes, and `encryptedData` under a user's current session_key.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use axum::{
    Json,
    extract::{Query, State},
    response::Response,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Digest;
use subtle::ConstantTimeEq;

use super::{Simulator, errcode, error, wechat_body};
use crate::{open_data, time::unix_now};

/// WeChat's lifetime of an access token.
pub const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(7200);
/// How long a phone-number code works, like a login code.
const PHONE_CODE_TTL: Duration = Duration::from_secs(5 * 60);

/// errcodes of the access-token APIs.
pub mod errcode_token {
    pub const INVALID: i64 = 40001;
    pub const EXPIRED: i64 = 42001;
}

#[derive(Default)]
pub(super) struct OpenState {
    token: Option<IssuedToken>,
    /// `None`: [`ACCESS_TOKEN_TTL`].
    token_ttl: Option<Duration>,
    token_calls: u64,
    phone_codes: HashMap<String, PhoneCode>,
    /// Risk ranks set by tests, by openid; others follow the openid rule.
    risk_ranks: HashMap<String, u8>,
    /// `getuserriskrank` answers a system error while set.
    risk_check_failing: bool,
    risk_rank_calls: u64,
}

struct IssuedToken {
    value: String,
    issued_at: Instant,
}

struct PhoneCode {
    phone: String,
    /// The openid of the user the code was issued to: WeChat checks it when the caller names
    /// one.
    openid: String,
    issued_at: Instant,
}

/// What a `wx.getUserInfo`-style API hands the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimOpenData {
    pub encrypted_data: String,
    pub iv: String,
    pub raw_data: String,
    pub signature: String,
}

/// A fresh 16-byte session_key in WeChat's base64 form.
pub(super) fn random_session_key() -> String {
    let mut key = [0u8; 16];
    getrandom::fill(&mut key).expect("the OS random number generator failed");
    STANDARD.encode(key)
}

fn random_text(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    getrandom::fill(&mut raw).expect("the OS random number generator failed");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

impl Simulator {
    /// Shortens the life of access tokens, so tests can watch them expire.
    pub fn set_access_token_ttl(&self, ttl: Duration) {
        self.state().open.token_ttl = Some(ttl);
    }

    /// Fetches a new access token the way another process would, invalidating the one the
    /// server holds: its next call gets 40001.
    pub fn invalidate_access_token(&self) {
        let mut state = self.state();
        state.open.token = Some(IssuedToken {
            value: random_text(48),
            issued_at: Instant::now(),
        });
    }

    /// The token `stable_token` hands out now, for tests that look for it where it must not be.
    pub fn current_access_token(&self) -> Option<String> {
        self.state().open.token.as_ref().map(|t| t.value.clone())
    }

    /// Calls of `stable_token` so far.
    pub fn access_token_calls(&self) -> u64 {
        self.state().open.token_calls
    }

    /// The code a `getPhoneNumber` button would give `user`, bound to `phone` (a default per
    /// user when `None`).
    pub fn issue_phone_code(&self, user: &str, phone: Option<&str>) -> String {
        let phone = phone.map_or_else(|| self.phone_of(user), str::to_owned);
        let openid = self.openid_for(user);
        let code = random_text(24).replace(['-', '_'], "p");
        let mut state = self.state();
        let now = Instant::now();
        state
            .open
            .phone_codes
            .retain(|_, c| now.duration_since(c.issued_at) < PHONE_CODE_TTL);
        state.open.phone_codes.insert(
            code.clone(),
            PhoneCode {
                phone,
                openid,
                issued_at: now,
            },
        );
        code
    }

    /// The number a user has unless a test gives another: stable, mainland-shaped.
    pub fn phone_of(&self, user: &str) -> String {
        let digest = sha2::Sha256::digest(user.as_bytes());
        let digits: String = digest
            .iter()
            .take(8)
            .map(|b| char::from(b'0' + b % 10))
            .collect();
        format!("139{digits}")
    }

    /// Open data for `user` under the session_key they hold now, with a watermark of this app
    /// and of now; `None` when the user never logged in.
    pub fn open_data_for(&self, user: &str) -> Option<SimOpenData> {
        let session_key = self.session_key_of(user)?;
        let key: [u8; 16] = STANDARD.decode(&session_key).ok()?.try_into().ok()?;
        let mut iv = [0u8; 16];
        getrandom::fill(&mut iv).expect("the OS random number generator failed");
        let raw = json!({ "nickName": user, "gender": 0, "language": "zh_CN" }).to_string();
        let mut plain: serde_json::Map<String, Value> = serde_json::from_str(&raw).ok()?;
        plain.insert("openId".into(), json!(self.openid_for(user)));
        plain.insert(
            "watermark".into(),
            json!({ "appid": self.appid(), "timestamp": unix_now() }),
        );
        let sealed = open_data::seal(Value::Object(plain).to_string().as_bytes(), &key, &iv);
        let signature = sha1_hex(&format!("{raw}{session_key}"));
        Some(SimOpenData {
            encrypted_data: STANDARD.encode(sealed),
            iv: STANDARD.encode(iv),
            raw_data: raw,
            signature,
        })
    }

    /// `stable_token`: the current token while it lives, a new one when asked to force or
    /// when it expired.
    fn stable_token(&self, body: &StableTokenBody) -> Value {
        let mut state = self.state();
        state.open.token_calls += 1;
        if body.grant_type.as_deref() != Some("client_credential") {
            return error(errcode::INVALID_GRANT_TYPE, "invalid grant_type");
        }
        if body.appid.as_deref() != Some(self.inner.appid.as_str()) {
            return error(errcode::INVALID_APPID, "invalid appid");
        }
        let secret_ok = body
            .secret
            .as_deref()
            .is_some_and(|s| bool::from(s.as_bytes().ct_eq(self.inner.secret.as_bytes())));
        if !secret_ok {
            return error(errcode::INVALID_SECRET, "invalid appsecret");
        }
        let ttl = state.open.token_ttl.unwrap_or(ACCESS_TOKEN_TTL);
        let live = state
            .open
            .token
            .as_ref()
            .filter(|t| t.issued_at.elapsed() < ttl);
        let token = match live {
            Some(token) if !body.force_refresh => token,
            _ => state.open.token.insert(IssuedToken {
                value: random_text(48),
                issued_at: Instant::now(),
            }),
        };
        let left = ttl.saturating_sub(token.issued_at.elapsed());
        json!({ "access_token": token.value, "expires_in": left.as_secs().max(1) })
    }

    /// `getuserphonenumber`: the token first, then the code.
    fn phone_number(&self, access_token: Option<&str>, body: &PhoneBody) -> Value {
        let mut state = self.state();
        if let Some(errcode) = state.faults.pop_front() {
            return error(errcode, "simulated fault");
        }
        if let Some(refusal) = token_refusal(&state.open, access_token) {
            return refusal;
        }
        let Some(code) = body.code.as_deref().filter(|c| !c.is_empty()) else {
            return error(errcode::MISSING_CODE, "missing code");
        };
        let Some(issued) = state.open.phone_codes.remove(code) else {
            return error(errcode::INVALID_CODE, "invalid code");
        };
        if issued.issued_at.elapsed() >= PHONE_CODE_TTL {
            return error(errcode::INVALID_CODE, "invalid code");
        }
        // An openid that is not the code's owner: WeChat refuses the code as it would any
        // code that is not this user's, and the code is spent either way.
        if body.openid.as_deref().is_some_and(|o| o != issued.openid) {
            return error(errcode::INVALID_CODE, "invalid code, openid mismatch");
        }
        let pure = issued.phone;
        json!({
            "errcode": 0,
            "errmsg": "ok",
            "phone_info": {
                "phoneNumber": format!("+86{pure}"),
                "purePhoneNumber": pure,
                "countryCode": "86",
                "watermark": { "timestamp": unix_now(), "appid": self.appid() },
            }
        })
    }
}

/// WeChat's answer to a call with an access token that is not the current one, or expired.
pub(super) fn token_refusal(open: &OpenState, access_token: Option<&str>) -> Option<Value> {
    let ttl = open.token_ttl.unwrap_or(ACCESS_TOKEN_TTL);
    match (&open.token, access_token) {
        (Some(current), Some(given)) if current.value == given => (current.issued_at.elapsed()
            >= ttl)
            .then(|| error(errcode_token::EXPIRED, "access_token expired")),
        _ => Some(error(
            errcode_token::INVALID,
            "invalid credential, access_token is invalid or not latest",
        )),
    }
}

/// The simulated risk rank of `openid`: what a test set, else 4 for openids that start with
/// `risky` and 0 for the rest.
fn risk_rank_of(open: &OpenState, openid: &str) -> u8 {
    open.risk_ranks
        .get(openid)
        .copied()
        .unwrap_or(if openid.starts_with("risky") { 4 } else { 0 })
}

impl Simulator {
    /// `getuserriskrank`: the token first, then the rank of the openid.
    fn user_risk_rank(&self, access_token: Option<&str>, body: &RiskRankBody) -> Value {
        let mut state = self.state();
        state.open.risk_rank_calls += 1;
        if let Some(refusal) = token_refusal(&state.open, access_token) {
            return refusal;
        }
        if state.open.risk_check_failing {
            return error(errcode::BUSY, "system error");
        }
        match (body.appid.as_deref(), body.openid.as_deref(), body.scene) {
            (Some(appid), Some(openid), Some(0 | 1)) if appid == self.appid() => {
                json!({
                    "errcode": 0,
                    "errmsg": "getuserriskrank succ",
                    "risk_rank": risk_rank_of(&state.open, openid),
                    "unoin_id": 0,
                })
            }
            _ => error(errcode::INVALID_ARGUMENT, "invalid args"),
        }
    }

    /// Gives `user` this risk rank from now on.
    pub fn set_risk_rank(&self, user: &str, rank: u8) {
        let openid = self.openid_for(user);
        self.state().open.risk_ranks.insert(openid, rank);
    }

    /// Makes `getuserriskrank` fail (a system error) while `failing`.
    pub fn set_risk_check_failing(&self, failing: bool) {
        self.state().open.risk_check_failing = failing;
    }

    /// How many times `getuserriskrank` was called.
    pub fn risk_rank_calls(&self) -> u64 {
        self.state().open.risk_rank_calls
    }
}

fn sha1_hex(text: &str) -> String {
    sha1::Sha1::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Deserialize)]
pub(super) struct StableTokenBody {
    grant_type: Option<String>,
    appid: Option<String>,
    secret: Option<String>,
    #[serde(default)]
    force_refresh: bool,
}

#[derive(Deserialize)]
pub(super) struct TokenQuery {
    access_token: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct PhoneBody {
    code: Option<String>,
    /// Optional: when given, the code must belong to this user.
    openid: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct RiskRankBody {
    appid: Option<String>,
    openid: Option<String>,
    scene: Option<u8>,
}

/// `POST /risk`: a test's settings of `getuserriskrank`.
#[derive(Deserialize)]
pub(super) struct RiskControlBody {
    /// With `rank`: that user's rank from now on.
    user: Option<String>,
    rank: Option<u8>,
    /// Whether the API fails.
    failing: Option<bool>,
}

#[derive(Deserialize)]
pub(super) struct UserBody {
    user: Option<String>,
    #[serde(rename = "phoneNumber")]
    phone_number: Option<String>,
}

pub(super) async fn stable_token(
    State(sim): State<Simulator>,
    Json(body): Json<StableTokenBody>,
) -> Response {
    wechat_body(sim.stable_token(&body))
}

pub(super) async fn phone_number(
    State(sim): State<Simulator>,
    Query(query): Query<TokenQuery>,
    Json(body): Json<PhoneBody>,
) -> Response {
    wechat_body(sim.phone_number(query.access_token.as_deref(), &body))
}

pub(super) async fn user_risk_rank(
    State(sim): State<Simulator>,
    Query(query): Query<TokenQuery>,
    Json(body): Json<RiskRankBody>,
) -> Response {
    wechat_body(sim.user_risk_rank(query.access_token.as_deref(), &body))
}

pub(super) async fn risk_control(
    State(sim): State<Simulator>,
    Json(body): Json<RiskControlBody>,
) -> axum::http::StatusCode {
    if let (Some(user), Some(rank)) = (body.user.as_deref(), body.rank) {
        sim.set_risk_rank(user, rank.min(4));
    }
    if let Some(failing) = body.failing {
        sim.set_risk_check_failing(failing);
    }
    axum::http::StatusCode::NO_CONTENT
}

pub(super) async fn phone_code(
    State(sim): State<Simulator>,
    Json(body): Json<UserBody>,
) -> Json<Value> {
    let user = body.user.unwrap_or_else(|| super::DEFAULT_USER.to_owned());
    Json(json!({ "code": sim.issue_phone_code(&user, body.phone_number.as_deref()) }))
}

pub(super) async fn open_data(
    State(sim): State<Simulator>,
    Json(body): Json<UserBody>,
) -> Result<Json<SimOpenData>, axum::http::StatusCode> {
    let user = body.user.unwrap_or_else(|| super::DEFAULT_USER.to_owned());
    sim.open_data_for(&user)
        .map(Json)
        .ok_or(axum::http::StatusCode::NOT_FOUND)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_body(sim: &Simulator, force_refresh: bool) -> StableTokenBody {
        StableTokenBody {
            grant_type: Some("client_credential".into()),
            appid: Some(sim.appid().into()),
            secret: Some(sim.secret().into()),
            force_refresh,
        }
    }

    fn phone(sim: &Simulator, token: &Value, code: &str) -> Value {
        phone_as(sim, token, code, None)
    }

    fn phone_as(sim: &Simulator, token: &Value, code: &str, openid: Option<&str>) -> Value {
        sim.phone_number(
            token["access_token"].as_str(),
            &PhoneBody {
                code: Some(code.into()),
                openid: openid.map(str::to_owned),
            },
        )
    }

    #[test]
    fn stable_token_repeats_until_forced_and_a_new_one_invalidates_the_old() {
        let sim = Simulator::new("wxapp", "s3cret");
        let first = sim.stable_token(&token_body(&sim, false));
        assert!(first["expires_in"].as_u64().unwrap() > 7000);
        assert_eq!(
            sim.stable_token(&token_body(&sim, false))["access_token"],
            first["access_token"]
        );
        let forced = sim.stable_token(&token_body(&sim, true));
        assert_ne!(forced["access_token"], first["access_token"]);
        let code = sim.issue_phone_code("alice", None);
        assert_eq!(phone(&sim, &first, &code)["errcode"], 40001);
        let answer = phone(&sim, &forced, &code);
        assert_eq!(
            answer["phone_info"]["purePhoneNumber"],
            sim.phone_of("alice")
        );
        assert_eq!(answer["phone_info"]["watermark"]["appid"], "wxapp");
        assert_eq!(
            phone(&sim, &forced, &code)["errcode"],
            40029,
            "a code works once"
        );
        assert_eq!(sim.access_token_calls(), 3);
    }

    #[test]
    fn tokens_expire_with_42001_and_bad_credentials_get_their_errcodes() {
        let sim = Simulator::new("wxapp", "s3cret");
        sim.set_access_token_ttl(Duration::from_millis(20));
        let token = sim.stable_token(&token_body(&sim, false));
        std::thread::sleep(Duration::from_millis(30));
        let code = sim.issue_phone_code("bob", Some("13800000000"));
        assert_eq!(phone(&sim, &token, &code)["errcode"], 42001);
        let mut body = token_body(&sim, false);
        body.secret = Some("wrong".into());
        assert_eq!(sim.stable_token(&body)["errcode"], 40125);
        // A login code sent to the phone API: WeChat's 40029.
        let fresh = sim.stable_token(&token_body(&sim, false));
        let login_code = sim.issue_code("bob");
        assert_eq!(phone(&sim, &fresh, &login_code)["errcode"], 40029);
        assert_eq!(
            phone(&sim, &fresh, &code)["phone_info"]["purePhoneNumber"],
            "13800000000"
        );
    }

    #[test]
    fn a_phone_code_checked_against_another_users_openid_is_refused_and_spent() {
        let sim = Simulator::new("wxapp", "s3cret");
        let token = sim.stable_token(&token_body(&sim, false));
        let code = sim.issue_phone_code("bob", Some("13800000001"));
        let alice = sim.openid_for("alice");
        assert_eq!(
            phone_as(&sim, &token, &code, Some(&alice))["errcode"],
            40029
        );
        let bob = sim.openid_for("bob");
        assert_eq!(
            phone_as(&sim, &token, &code, Some(&bob))["errcode"],
            40029,
            "the refused code is spent"
        );
        let code = sim.issue_phone_code("bob", Some("13800000001"));
        assert_eq!(
            phone_as(&sim, &token, &code, Some(&bob))["phone_info"]["purePhoneNumber"],
            "13800000001"
        );
    }

    #[test]
    fn open_data_opens_under_the_users_current_key_only() {
        let sim = Simulator::new("wxapp", "s3cret");
        assert!(sim.open_data_for("carol").is_none(), "never logged in");
        sim.issue_code("carol");
        let before = sim.session_key_of("carol").unwrap();
        let data = sim.open_data_for("carol").unwrap();
        sim.issue_code("carol");
        let after = sim.session_key_of("carol").unwrap();
        assert_ne!(before, after, "every wx.login() brings a new session_key");
        let key = |b64: &str| -> [u8; 16] { STANDARD.decode(b64).unwrap().try_into().unwrap() };
        let sealed = open_data::Sealed::parse(&data.encrypted_data, &data.iv).unwrap();
        assert!(sealed.open([&key(&after)]).is_err());
        let opened = sealed.open([&key(&after), &key(&before)]).unwrap();
        assert_eq!(opened["openId"], sim.openid_for("carol"));
        open_data::check_watermark(&opened, "wxapp", unix_now(), Some(Duration::from_secs(60)))
            .unwrap();
        assert!(open_data::signature_matches(
            &data.raw_data,
            &data.signature,
            &before
        ));
        assert!(!open_data::signature_matches(
            &data.raw_data,
            &data.signature,
            &after
        ));
    }
}
