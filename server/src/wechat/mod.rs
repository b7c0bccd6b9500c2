//! Talking to WeChat: the `auth.code2Session` client, the server-to-server APIs that use the
//! access token (phone numbers, risk ranks, mini-program codes), and a faithful simulator of
//! them.
//!
//! The client (`client.rs`) is the only code that calls WeChat. The simulator (`simulator/`)
//! serves WeChat's exact request and response shapes so development and tests run the same
//! client over real HTTP, without an AppID and without the internet.

pub mod access_token;
mod breaker;
pub mod client;
pub mod simulator;
pub mod wxacode;

pub use breaker::Breaker;
pub use client::WechatClient;
pub use wxacode::{EnvVersion, WxaCodeRequest};

/// What a successful `code2Session` yields.
#[derive(Clone, PartialEq, Eq)]
pub struct WechatSession {
    pub openid: String,
    pub unionid: Option<String>,
    /// Never logged, never sent to the client.
    pub session_key: String,
}

impl std::fmt::Debug for WechatSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WechatSession")
            .field("openid", &self.openid)
            .field("unionid", &self.unionid)
            .field("session_key", &"[redacted]")
            .finish()
    }
}

/// Documented `errcode`s of `auth.code2Session`.
pub mod errcode {
    pub const BUSY: i64 = -1;
    pub const INVALID_CODE: i64 = 40029;
    pub const CODE_USED: i64 = 40163;
    pub const HIGH_RISK_USER: i64 = 40226;
    pub const RATE_LIMITED: i64 = 45011;
    pub const INVALID_APPID: i64 = 40013;
    pub const INVALID_SECRET: i64 = 40125;
    pub const MISSING_CODE: i64 = 41008;
    /// A request of the wrong shape (a missing field, an unknown scene).
    pub const INVALID_ARGUMENT: i64 = 40097;
    pub const INVALID_GRANT_TYPE: i64 = 40002;
    /// The access token is not (any longer) the app's current one.
    pub const ACCESS_TOKEN_INVALID: i64 = 40001;
    /// Not an access token at all.
    pub const ACCESS_TOKEN_UNRECOGNISED: i64 = 40014;
    pub const ACCESS_TOKEN_EXPIRED: i64 = 42001;
    /// `getwxacodeunlimit`'s per-minute quota (about 5,000 codes) is spent.
    pub const WXACODE_QUOTA: i64 = 45009;
    /// `getwxacodeunlimit`'s `page` is not a page of the published version, or is malformed
    /// (a leading `/`, a query).
    pub const INVALID_PAGE: i64 = 41030;
    /// `getwxacodeunlimit`'s `scene` is too long or has a character WeChat does not take.
    pub const INVALID_SCENE: i64 = 40169;
}

/// A user's phone number as `getuserphonenumber` answers it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhoneInfo {
    pub phone_number: String,
    pub pure_phone_number: String,
    pub country_code: String,
}

/// Why a code could not be exchanged. Each variant is one thing the caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum WechatError {
    #[error("WeChat says the code is invalid or expired (40029)")]
    InvalidCode,
    #[error("WeChat says the code was already used (40163)")]
    CodeUsed,
    /// 40029 from the phone-number API: the code is not a live `getPhoneNumber` code.
    #[error(
        "WeChat says this phone-number code is invalid or expired (40029): send the code of the \
         getPhoneNumber button's event, not a wx.login() code, within five minutes"
    )]
    InvalidPhoneCode,
    #[error("WeChat refused a high-risk user (40226)")]
    HighRiskUser,
    #[error("WeChat rate limit hit (45011)")]
    RateLimited,
    /// 45009 from `getwxacodeunlimit`: the app's codes for this minute are spent.
    #[error("WeChat's quota of mini-program codes per minute is spent (45009); retry later")]
    WxaCodeQuota,
    /// 41030 from `getwxacodeunlimit`: the configured page is not one WeChat can find.
    #[error(
        "WeChat says the web-login page is not a page of the published mini-program (41030): \
         set WEB_LOGIN_PAGE to a page of the released version (no leading `/`, no query), or \
         use env_version trial or develop"
    )]
    WxaCodePageMissing,
    /// 40169: a scene WeChat does not take. The server makes scenes, so this is a bug here.
    #[error("WeChat refused the mini-program code's scene (40169)")]
    InvalidScene,
    #[error("WeChat stayed busy (-1) after {attempts} attempts")]
    Busy { attempts: u32 },
    /// 40013/40125: the server's own AppID or secret is wrong. Operators must fix it.
    #[error("WeChat rejected this server's credentials ({errcode}: {errmsg})")]
    Misconfigured { errcode: i64, errmsg: String },
    #[error("WeChat answered errcode {errcode}: {errmsg}")]
    Other { errcode: i64, errmsg: String },
    #[error("WeChat's answer could not be read: {0}")]
    BadResponse(String),
    #[error("WeChat did not answer in time")]
    Timeout,
    #[error("WeChat is unreachable: {0}")]
    Unreachable(String),
    /// This server's own budget of calls per second is spent (`UPSTREAM_RATE_PER_SECOND`);
    /// WeChat was not asked.
    #[error("this server's budget of WeChat calls per second is spent")]
    OverBudget { retry_after: std::time::Duration },
    /// Recent calls kept failing; logins fail fast until the breaker lets a trial through.
    #[error("WeChat calls are suspended after repeated failures (circuit open)")]
    CircuitOpen { retry_after: std::time::Duration },
}

impl WechatError {
    /// Whether this failure is WeChat's own trouble, as opposed to a verdict on the request.
    pub fn is_upstream_fault(&self) -> bool {
        matches!(
            self,
            WechatError::Busy { .. }
                | WechatError::Timeout
                | WechatError::Unreachable(_)
                | WechatError::BadResponse(_)
        )
    }
}
