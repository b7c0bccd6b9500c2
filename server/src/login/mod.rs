//! The login service: turns a `wx.login()` code into a session and a token, tells who a token
//! belongs to, ends sessions, and does what needs the session_key only the server holds (open
//! data, the phone number). Transport-free: it speaks in [`LoginError`], which `http/` maps to
//! statuses in one table, so every rule here is testable without HTTP and handlers stay thin.
//!
//! It holds exactly what the rules need: the rules' own settings, the stores, the apps (each
//! with its WeChat client and access token) and the data keys.
//!
//! - `exchange.rs`: the code exchange, once per code however many requests bring it;
//! - `signup.rs`: the account a login belongs to, and who may have one;
//! - `sessions.rs`: who a token belongs to, and logout;
//! - `user_data.rs`: the session_keys, open data, the phone number and `/me`;
//! - `decrypt_failures.rs`: each user's allowance of failed decrypts.

mod decrypt_failures;
mod error;
mod exchange;
mod sessions;
mod signup;
mod user_data;

pub use error::LoginError;
pub use user_data::Me;

use std::{net::IpAddr, sync::Arc, time::Duration};

use self::decrypt_failures::DecryptFailures;
use crate::{
    apps::Apps,
    data_keys::DataKeys,
    store::{Session, SessionKind, Stores, UserId},
    token::{Token, TokenHash},
    upstream_budget::{ClientKey, Standings},
};

/// The settings the login rules read.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// How long a token is accepted, from login (absolute, not sliding).
    pub token_ttl: Duration,
    /// How long a repeated login with the same code gets the first one's token.
    pub code_replay_window: Duration,
    /// How long one request may hold a code's exchange: see [`Rules::exchange_lease`].
    pub exchange_lease: Duration,
    /// How old open data may be by its watermark; `None` accepts any age.
    pub open_data_max_age: Option<Duration>,
    /// Failed decrypts allowed per user and minute; `0` allows any number.
    pub decrypt_failures_per_minute: u32,
    /// Who may get an account at their first login.
    pub signup: Signup,
}

/// Who may get an account at their first login. People with an account always log in (unless
/// an operator disabled it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signup {
    /// `false`: only people who have an account log in; WeChat is asked nothing more.
    pub open: bool,
    /// Refuse a new account to people whose WeChat risk rank (0 to 4) is above this; `None`
    /// does not ask WeChat.
    pub max_risk_rank: Option<u8>,
}

impl Default for Signup {
    fn default() -> Self {
        Self {
            open: true,
            max_risk_rank: None,
        }
    }
}

impl Rules {
    /// Long enough for the slowest exchange WeChat's settings allow (every busy retry timing
    /// out), so a live holder never loses its claim.
    pub fn exchange_lease(wechat_timeout: Duration, busy_retries: u32) -> Duration {
        wechat_timeout * (busy_retries + 1) + Duration::from_secs(2 + 2 * u64::from(busy_retries))
    }
}

/// The login service. Cheap to clone: one `Arc` around what it holds, since an exchange runs
/// in a task of its own and takes a handle with it.
#[derive(Debug, Clone)]
pub struct LoginService(Arc<Parts>);

/// What a [`LoginService`] holds; read through its methods.
#[derive(Debug)]
pub struct Parts {
    rules: Rules,
    stores: Stores,
    apps: Apps,
    data_keys: DataKeys,
    /// Which clients' codes WeChat refused lately, across every app.
    standings: Arc<Standings>,
    decrypt_failures: DecryptFailures,
}

impl std::ops::Deref for LoginService {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

impl LoginService {
    pub fn new(rules: Rules, stores: Stores, apps: Apps, data_keys: DataKeys) -> Self {
        Self(Arc::new(Parts {
            rules,
            stores,
            apps,
            data_keys,
            standings: Arc::new(Standings::default()),
            decrypt_failures: DecryptFailures::new(
                rules.decrypt_failures_per_minute,
                decrypt_failures::MAX_USERS,
            ),
        }))
    }

    /// Steps 3 and 4 of the flow: exchange the code at WeChat, keep the session, issue a
    /// token. `appid` picks the mini-program the code is from; `None` is the default (first)
    /// app.
    ///
    /// Idempotent per code: concurrent or repeated calls with one code within its life share
    /// one exchange and get the same token (see `store/claims.rs`). `client` is who sent it:
    /// a client whose codes WeChat refused lately gets less of the app's WeChat budget.
    pub async fn login(&self, attempt: LoginAttempt<'_>) -> Result<Issued, LoginError> {
        exchange::login(self, attempt).await
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The mini-programs served, the default first.
    pub fn apps(&self) -> &Apps {
        &self.apps
    }

    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    pub fn data_keys(&self) -> &DataKeys {
        &self.data_keys
    }

    /// Which clients WeChat refused lately: other calls to WeChat on a client's behalf (the
    /// web login's codes) spend the budget by the same standing.
    pub fn standings(&self) -> &Arc<Standings> {
        &self.standings
    }
}

/// One `POST /login`, as the transport hands it over.
#[derive(Debug, Clone, Copy)]
pub struct LoginAttempt<'a> {
    /// The mini-program the code is from; `None` for the default (first) app.
    pub appid: Option<&'a str>,
    pub code: &'a str,
    /// Who sent the code, for its share of the app's WeChat budget.
    pub client: ClientKey,
    /// The client's address, shown in its session list and sent to WeChat's risk check.
    pub ip: Option<IpAddr>,
    /// What the client says it runs on (or its `User-Agent`), for the session list.
    pub device: Option<&'a str>,
}

/// A fresh login: the raw token (shown to the client once, never stored) and its lifetime.
#[derive(Debug)]
pub struct Issued {
    pub token: Token,
    pub expires_in: u64,
}

/// Who is behind a request whose token is live: always an account, and for a session made by
/// a mini-program login, who the person is in that app. Never carries the session_key: what
/// reaches handlers can reach a response by mistake. Built only by this crate, so fields can
/// be added.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthUser {
    /// The person's account: the same for every app and every kind of session.
    pub user_id: UserId,
    pub kind: SessionKind,
    /// Present for mini-program sessions only.
    pub mini_program: Option<MiniProgramUser>,
    /// Unix seconds when the session began.
    pub logged_in_at: i64,
    /// Unix seconds; the token is refused from this instant on.
    pub expires_at: i64,
    /// The session's key, so that the person's session list can mark this one.
    pub(crate) session: TokenHash,
}

/// The person in one mini-program.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MiniProgramUser {
    /// The mini-program the session belongs to.
    pub appid: String,
    pub openid: String,
    /// Present when WeChat gave one (the app is bound to an Open Platform account).
    pub unionid: Option<String>,
}

impl AuthUser {
    fn of(session: &Session, key: TokenHash) -> Self {
        let mini_program = match session.kind {
            SessionKind::Miniprogram => Some(MiniProgramUser {
                appid: session.appid.clone(),
                openid: session.openid.clone(),
                unionid: session.unionid.clone(),
            }),
            SessionKind::Web | SessionKind::Oidc => None,
        };
        Self {
            user_id: session.user_id,
            kind: session.kind,
            mini_program,
            logged_in_at: session.created_at,
            expires_at: session.expires_at,
            session: key,
        }
    }

    /// The person in the mini-program, for what only a mini-program session can do (open
    /// data, the phone number).
    pub fn in_mini_program(&self) -> Result<&MiniProgramUser, LoginError> {
        self.mini_program
            .as_ref()
            .ok_or(LoginError::MiniprogramSessionRequired)
    }

    /// The openid, for a mini-program session.
    pub fn openid(&self) -> Option<&str> {
        self.mini_program.as_ref().map(|m| m.openid.as_str())
    }

    /// The app, for a mini-program session.
    pub fn appid(&self) -> Option<&str> {
        self.mini_program.as_ref().map(|m| m.appid.as_str())
    }

    /// The session's public id, as the session list shows it.
    pub fn session_id(&self) -> String {
        self.session.public_id()
    }
}

/// Rejects codes WeChat could never have issued, so junk never costs an upstream call. Phone
/// codes follow the same shape.
pub fn validate_code(code: &str) -> Result<(), LoginError> {
    shared::code_rules::check(code).map_err(|e| LoginError::MalformedCode(e.message()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_validated_before_any_upstream_call() {
        assert!(validate_code("0a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P").is_ok());
        assert!(validate_code("").is_err());
        assert!(validate_code(&"a".repeat(129)).is_err());
        assert!(validate_code(&"a".repeat(128)).is_ok());
        for bad in ["a b", "a&secret=x", "ä", "a\n", "a%20"] {
            assert!(validate_code(bad).is_err(), "{bad:?}");
        }
    }
}
