//! Why a login rule said no: the service's one error type. What each refusal means over HTTP
//! (status, `code`, metric label) is decided in one table, in `http/error.rs`.

use std::time::Duration;

use crate::{
    data_keys::OpenError, open_data::OpenDataError, store::StoreError, wechat::WechatError,
};

/// Each variant is one thing a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The code cannot be one WeChat issued; WeChat was not asked.
    #[error("{0}")]
    MalformedCode(&'static str),
    /// The login names an AppID this server does not serve.
    #[error("this server does not serve the mini-program {0:?}; check `appid`")]
    UnknownApp(String),
    /// No token, or one that is malformed, unknown, expired or revoked.
    #[error("a valid `Authorization: Bearer <token>` header is required")]
    NotLoggedIn,
    /// WeChat refused the code or could not be asked.
    #[error(transparent)]
    Wechat(#[from] WechatError),
    /// The session store failed: nothing is known about the token, so it is neither accepted
    /// nor refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another request holds this code's exchange and did not finish within its lease.
    #[error("another request's exchange of this code did not finish in time")]
    ExchangePending,
    /// The session is live but its session_key does not open under the configured data keys;
    /// only code that needs the session_key meets this.
    #[error("cannot open the session_key: {0}")]
    SessionKey(#[from] OpenError),
    /// Open data that cannot be opened or is not acceptable.
    #[error(transparent)]
    OpenData(#[from] OpenDataError),
    /// This user's failed decrypts used up their allowance; nothing was decrypted.
    #[error(
        "too many attempts at open data failed to decrypt or pass its checks; retry after {retry_after:?}"
    )]
    DecryptFailuresLimited { retry_after: Duration },
    /// The person has no account and sign-up is closed.
    #[error("sign-up is closed: only people who already have an account can log in")]
    SignupClosed,
    /// WeChat rates the person's risk above what sign-up allows; no account was made.
    #[error("sign-up refused: WeChat rates this user's risk too high")]
    RiskRejected,
    /// An operator disabled the account.
    #[error("this account is disabled")]
    AccountDisabled,
    /// What was asked needs a mini-program session (open data, the phone number).
    #[error("this needs a session made by a mini-program login")]
    MiniprogramSessionRequired,
    /// The number is bound to another account; nothing changed.
    #[error("this phone number belongs to another account")]
    PhoneInUse,
}
