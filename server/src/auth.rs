//! The login service: turns a `wx.login()` code into a session and a token, tells who a token
//! belongs to, and ends sessions. Transport-free: it speaks in [`AuthError`], which `http/`
//! maps to statuses, so every rule here is testable without HTTP and the handlers stay thin.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};
use shared::code_rules;

use crate::{
    apps::App,
    data_keys::{OpenError, SessionKey},
    state::LoginState,
    store::{ClaimKey, ClaimState, Outcome, Refusal, Session, StoreError},
    time::unix_now,
    token::Token,
    wechat::WechatError,
};

/// Why a login rule said no. Each variant is one thing a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The code cannot be one WeChat issued; WeChat was not asked.
    #[error("{0}")]
    MalformedCode(&'static str),
    /// The login names an AppID this server does not serve.
    #[error("this server does not serve the mini-program {0:?}")]
    UnknownApp(String),
    /// No token, or one that is malformed, unknown, expired or revoked.
    #[error("not logged in")]
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
}

impl AuthError {
    /// What kind of refusal this is, as the login metric's `outcome` label: a fixed set of
    /// names, one per thing an operator would act on differently.
    pub fn outcome(&self) -> &'static str {
        match self {
            AuthError::MalformedCode(_) | AuthError::Wechat(WechatError::InvalidCode) => {
                "invalid_code"
            }
            AuthError::Wechat(WechatError::CodeUsed) => "code_used",
            AuthError::UnknownApp(_) => "unknown_app",
            AuthError::NotLoggedIn => "not_logged_in",
            AuthError::Wechat(WechatError::HighRiskUser) => "high_risk_user",
            AuthError::Wechat(WechatError::RateLimited) => "upstream_rate_limited",
            AuthError::Wechat(
                WechatError::Busy { .. }
                | WechatError::Unreachable(_)
                | WechatError::CircuitOpen { .. }
                | WechatError::OverBudget { .. },
            ) => "upstream_unavailable",
            AuthError::Wechat(WechatError::Timeout) | AuthError::ExchangePending => {
                "upstream_timeout"
            }
            AuthError::Wechat(
                WechatError::Misconfigured { .. }
                | WechatError::Other { .. }
                | WechatError::BadResponse(_)
                | WechatError::InvalidPhoneCode,
            ) => "upstream_error",
            AuthError::Store(_) => "store_unavailable",
            AuthError::SessionKey(_) => "internal",
        }
    }
}

/// A fresh login: the raw token (shown to the client once, never stored) and its lifetime.
#[derive(Debug)]
pub struct Issued {
    pub token: Token,
    pub expires_in: u64,
}

/// Who is behind a request whose token is live. Never carries the session_key: what reaches
/// handlers can reach a response by mistake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    pub openid: String,
    /// Present when WeChat gave one (the app is bound to an Open Platform account).
    pub unionid: Option<String>,
    /// The mini-program the session belongs to.
    pub appid: String,
    /// Unix seconds; the token is refused from this instant on.
    pub expires_at: i64,
}

impl From<&Session> for AuthUser {
    fn from(session: &Session) -> Self {
        Self {
            openid: session.openid.clone(),
            unionid: session.unionid.clone(),
            appid: session.appid.clone(),
            expires_at: session.expires_at,
        }
    }
}

/// Rejects codes WeChat could never have issued, so junk never costs an upstream call.
pub fn validate_code(code: &str) -> Result<(), AuthError> {
    if code.is_empty() {
        return Err(AuthError::MalformedCode("`code` must not be empty"));
    }
    if code.len() > code_rules::MAX_LEN {
        return Err(AuthError::MalformedCode(
            "`code` is longer than 128 characters",
        ));
    }
    if !code.bytes().all(code_rules::is_code_byte) {
        return Err(AuthError::MalformedCode(
            "`code` may only contain ASCII letters, digits, `-` and `_`",
        ));
    }
    Ok(())
}

/// Steps 3 and 4 of the flow: exchange the code at WeChat, keep the session, issue a token.
/// `appid` picks the mini-program the code is from; `None` is the default (first) app.
///
/// Idempotent per code: concurrent or repeated calls with one code within its life share one
/// exchange and get the same token (see `store/claims.rs`).
pub async fn login(
    state: &LoginState,
    appid: Option<&str>,
    code: &str,
) -> Result<Issued, AuthError> {
    validate_code(code)?;
    let app = state
        .apps
        .for_login(appid)
        .ok_or_else(|| AuthError::UnknownApp(appid.unwrap_or_default().to_owned()))?;
    let key = ClaimKey::new(claim_key(app.appid(), code));
    let lease = exchange_lease(state);
    let deadline = Instant::now() + lease + Duration::from_secs(1);
    loop {
        match state.stores.claims.claim(key, lease).await? {
            None => return exchange_detached(state, app, code, key, lease).await,
            Some(ClaimState::Done(outcome)) => return open_outcome(state, outcome, code).await,
            Some(ClaimState::Pending) if Instant::now() < deadline => {
                tokio::time::sleep(CLAIM_POLL).await;
            }
            Some(ClaimState::Pending) => return Err(AuthError::ExchangePending),
        }
    }
}

/// How often a request waiting on another's exchange looks for the outcome.
const CLAIM_POLL: Duration = Duration::from_millis(20);

/// Runs the exchange in a task of its own. Once WeChat is asked, the code is spent whatever
/// happens to the request: if the client hangs up, the caller's future is dropped, but the
/// exchange still finishes and records its outcome, and the client's retry with the same code
/// gets that outcome.
async fn exchange_detached(
    state: &LoginState,
    app: &App,
    code: &str,
    key: ClaimKey,
    lease: Duration,
) -> Result<Issued, AuthError> {
    let state = state.clone();
    let app = app.clone();
    let code = code.to_owned();
    let task =
        tokio::spawn(async move { exchange_and_settle(&state, &app, &code, key, lease).await });
    match task.await {
        Ok(result) => result,
        // A bug in the exchange: let the panic surface where panics are handled.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // The runtime is shutting down.
        Err(_) => Err(AuthError::ExchangePending),
    }
}

/// The claim is the caller's: ask WeChat, keep the session, and leave the outcome for
/// late-comers. `lease` is how long the claim is ours.
async fn exchange_and_settle(
    state: &LoginState,
    app: &App,
    code: &str,
    key: ClaimKey,
    lease: Duration,
) -> Result<Issued, AuthError> {
    let lease_ends = Instant::now() + lease;
    let wechat = match app.wechat.code_to_session(code).await {
        Ok(wechat) => wechat,
        Err(e) => {
            let recorded = match final_refusal(&e) {
                // WeChat's refusals stand for as long as the code lives.
                Some(refusal) => {
                    let outcome = Outcome::Refused(refusal);
                    state.stores.claims.settle(key, outcome, CODE_LIFE).await
                }
                // Transient trouble: let a retry with the same code try again.
                None => state.stores.claims.release(key).await,
            };
            if let Err(store) = recorded {
                tracing::warn!(error = %store, "could not record a refused code exchange");
            }
            return Err(e.into());
        }
    };
    // WeChat has spent the code: from here on, store trouble is waited out within the lease
    // rather than reported, since a retry could only be told "code used".
    let token = Token::generate();
    let now = unix_now();
    let expires_at = now.saturating_add(state.config.token_ttl.as_secs() as i64);
    let appid = app.appid().to_owned();
    let session = Session {
        session_key: state.data_keys.seal(
            &SessionKey::new(wechat.session_key),
            &appid,
            &wechat.openid,
        ),
        appid,
        openid: wechat.openid,
        unionid: wechat.unionid,
        created_at: now,
        expires_at,
    };
    tracing::info!(openid = %session.openid, token = ?token.hash(), "login");
    let hash = token.hash();
    persist(lease_ends, || {
        state.stores.sessions.insert(hash, session.clone())
    })
    .await?;
    let remembered = persist(lease_ends, || {
        state.stores.users.add_session_key(
            &session.appid,
            &session.openid,
            session.session_key.clone(),
        )
    })
    .await;
    if let Err(e) = remembered {
        // The login stands; open data made under the keys before this one may not open.
        tracing::warn!(error = %e, "could not add the session_key to the user's key history");
    }
    // A success is replayed for the short window only.
    let window = state.config.code_replay_window.min(CODE_LIFE);
    let outcome = Outcome::Issued {
        sealed_token: token.seal(code),
        expires_at,
    };
    let settled = persist(lease_ends, || {
        state.stores.claims.settle(key, outcome.clone(), window)
    })
    .await;
    if let Err(e) = settled {
        // The session stands and this caller has its token; only a replay of the code is lost.
        tracing::warn!(error = %e, "could not record the outcome of a code exchange");
    }
    Ok(Issued {
        token,
        expires_in: seconds_until(expires_at),
    })
}

/// Runs a store write until it succeeds or `until` passes, backing off between tries.
async fn persist<F, Fut>(until: Instant, mut write: F) -> Result<(), StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), StoreError>>,
{
    let mut delay = Duration::from_millis(50);
    loop {
        match write().await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() + delay >= until => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "store write failed after WeChat answered; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// WeChat's documented life of a code: no claim needs to outlive it.
const CODE_LIFE: Duration = Duration::from_secs(5 * 60);

/// Whole seconds from now until `expires_at`, never negative.
fn seconds_until(expires_at: i64) -> u64 {
    u64::try_from(expires_at.saturating_sub(unix_now())).unwrap_or(0)
}

/// The store key of a code's claim: a hash under its own domain label, so neither the code
/// nor the sealing pad can be learnt from it. Codes are WeChat's per app, so the app is part
/// of the key: one app's code can never find another's claim.
fn claim_key(appid: &str, code: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"wxlogin code claim\0")
        .chain_update(appid.as_bytes())
        .chain_update(b"\0")
        .chain_update(code.as_bytes())
        .finalize()
        .into()
}

/// Long enough for the slowest exchange the configuration allows (every busy retry timing
/// out), so a live holder never loses its claim.
fn exchange_lease(state: &LoginState) -> Duration {
    let c = &state.config;
    c.wechat_timeout * (c.wechat_busy_retries + 1)
        + Duration::from_secs(2 + 2 * u64::from(c.wechat_busy_retries))
}

/// WeChat refusals that are final for a code; everything else may go another way on retry.
fn final_refusal(e: &WechatError) -> Option<Refusal> {
    match e {
        WechatError::InvalidCode => Some(Refusal::InvalidCode),
        WechatError::CodeUsed => Some(Refusal::CodeUsed),
        WechatError::HighRiskUser => Some(Refusal::HighRiskUser),
        _ => None,
    }
}

/// What another request's exchange of this code came to. A token whose session has ended
/// (logged out, expired) is never handed out again: the code is spent.
async fn open_outcome(
    state: &LoginState,
    outcome: Outcome,
    code: &str,
) -> Result<Issued, AuthError> {
    match outcome {
        Outcome::Issued {
            sealed_token,
            expires_at,
        } => {
            let token = Token::unseal(&sealed_token, code);
            let live = state
                .stores
                .sessions
                .get(token.hash(), unix_now())
                .await?
                .is_some();
            if !live {
                return Err(WechatError::CodeUsed.into());
            }
            Ok(Issued {
                token,
                expires_in: seconds_until(expires_at),
            })
        }
        Outcome::Refused(Refusal::InvalidCode) => Err(WechatError::InvalidCode.into()),
        Outcome::Refused(Refusal::CodeUsed) => Err(WechatError::CodeUsed.into()),
        Outcome::Refused(Refusal::HighRiskUser) => Err(WechatError::HighRiskUser.into()),
    }
}

/// Who owns `token`. A missing or malformed token is [`AuthError::NotLoggedIn`] without a
/// store lookup; store trouble is [`AuthError::Store`], never a "not logged in" that would
/// send every client into a fresh login.
pub async fn authenticate(state: &LoginState, token: Option<&str>) -> Result<AuthUser, AuthError> {
    Ok(AuthUser::from(&*live_session(state, token).await?))
}

/// The live session of `token` in one of this server's apps. A session of an app it does not
/// serve (several deployments sharing one store) is as unknown here as a token never issued.
async fn live_session(state: &LoginState, token: Option<&str>) -> Result<Arc<Session>, AuthError> {
    let hash = token
        .and_then(Token::hash_of)
        .ok_or(AuthError::NotLoggedIn)?;
    state
        .stores
        .sessions
        .get(hash, unix_now())
        .await?
        .filter(|session| state.apps.get(&session.appid).is_some())
        .ok_or(AuthError::NotLoggedIn)
}

/// WeChat's session_key of `token`'s session, for code that must use it (decrypting the
/// user's open data). A key that does not open under the configured data keys is
/// [`AuthError::SessionKey`] here only: the session itself stays logged in.
pub async fn session_key(state: &LoginState, token: Option<&str>) -> Result<SessionKey, AuthError> {
    let session = live_session(state, token).await?;
    Ok(state
        .data_keys
        .open(&session.session_key, &session.appid, &session.openid)?)
}

/// Every session_key that may have encrypted open data `token`'s user holds, newest first: the
/// session's own, then the user's earlier ones (see `store/users.rs`). Keys the configured data
/// keys cannot open are skipped; when none opens, [`AuthError::SessionKey`].
pub async fn session_keys(
    state: &LoginState,
    token: Option<&str>,
) -> Result<(AuthUser, Vec<SessionKey>), AuthError> {
    let session = live_session(state, token).await?;
    let history = state
        .stores
        .users
        .user(&session.appid, &session.openid)
        .await?
        .map(|user| user.session_keys)
        .unwrap_or_default();
    let own = state
        .data_keys
        .open(&session.session_key, &session.appid, &session.openid);
    let mut keys = Vec::with_capacity(history.len() + 1);
    let mut first_error = None;
    for opened in std::iter::once(own).chain(
        history
            .iter()
            .filter(|sealed| **sealed != session.session_key)
            .map(|sealed| {
                state
                    .data_keys
                    .open(sealed, &session.appid, &session.openid)
            }),
    ) {
        match opened {
            Ok(key) => keys.push(key),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let (true, Some(e)) = (keys.is_empty(), first_error) {
        return Err(e.into());
    }
    Ok((AuthUser::from(&*session), keys))
}

/// Whether `token` names a live session: [`authenticate`] as a yes or no, for `/checklogin`.
pub async fn is_logged_in(state: &LoginState, token: Option<&str>) -> Result<bool, AuthError> {
    // The session itself, not an [`AuthUser`] made of copies of its strings: this answers
    // every launch of every user.
    match live_session(state, token).await {
        Ok(_) => Ok(true),
        Err(AuthError::NotLoggedIn) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Ends the session of `token` everywhere at once. Ending an unknown or already-ended session
/// succeeds, so a client may retry a logout safely.
pub async fn logout(state: &LoginState, token: Option<&str>) -> Result<(), AuthError> {
    let token = token.and_then(Token::parse).ok_or(AuthError::NotLoggedIn)?;
    let removed = state.stores.sessions.remove(token.hash()).await?;
    tracing::info!(token = ?token.hash(), removed, "logout");
    Ok(())
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
