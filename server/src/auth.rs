//! The login service: turns a `wx.login()` code into a session and a token, answers whether a
//! token is good, and ends sessions. Transport-free, so every rule here is testable without
//! HTTP, and the handlers in `http/` stay thin.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use shared::code_rules;

use crate::{
    error::ApiError,
    state::AppState,
    store::{ClaimState, Session, unix_now},
    token::Token,
    wechat::WechatError,
};

/// A fresh login: the raw token (shown to the client once, never stored) and its lifetime.
#[derive(Debug)]
pub struct Issued {
    pub token: Token,
    pub expires_in: u64,
}

/// Rejects codes WeChat could never have issued, so junk never costs an upstream call.
pub fn validate_code(code: &str) -> Result<(), ApiError> {
    if code.is_empty() {
        return Err(ApiError::MalformedCode("`code` must not be empty"));
    }
    if code.len() > code_rules::MAX_LEN {
        return Err(ApiError::MalformedCode(
            "`code` is longer than 128 characters",
        ));
    }
    if !code.bytes().all(code_rules::is_code_byte) {
        return Err(ApiError::MalformedCode(
            "`code` may only contain ASCII letters, digits, `-` and `_`",
        ));
    }
    Ok(())
}

/// Steps 3 and 4 of the flow: exchange the code at WeChat, keep the session, issue a token.
///
/// Idempotent per code: concurrent or repeated calls with one code within its life share one
/// exchange and get the same token (see `store/claims.rs`).
pub async fn login(state: &AppState, code: &str) -> Result<Issued, ApiError> {
    validate_code(code)?;
    let key = claim_key(code);
    let lease = exchange_lease(state);
    let deadline = Instant::now() + lease + Duration::from_secs(1);
    loop {
        match state.stores.claims.claim(key, lease).await? {
            None => return exchange_and_settle(state, code, key).await,
            Some(ClaimState::Done(outcome)) => return open_outcome(&outcome, code),
            Some(ClaimState::Pending) if Instant::now() < deadline => {
                tokio::time::sleep(CLAIM_POLL).await;
            }
            Some(ClaimState::Pending) => {
                return Err(ApiError::Wechat(WechatError::Timeout));
            }
        }
    }
}

/// How often a request waiting on another's exchange looks for the outcome.
const CLAIM_POLL: Duration = Duration::from_millis(20);

/// The claim is the caller's: do the real work and leave the outcome for late-comers.
async fn exchange_and_settle(
    state: &AppState,
    code: &str,
    key: [u8; 32],
) -> Result<Issued, ApiError> {
    let result = exchange(state, code).await;
    let outcome = match &result {
        Ok((token, expires_at)) => Some(seal_success(token, code, *expires_at)),
        Err(ApiError::Wechat(e)) => refusal_tag(e).map(|tag| vec![OUTCOME_REFUSED, tag]),
        Err(_) => None,
    };
    let settled = match outcome {
        // WeChat's answer about this code will not change while the code lives.
        Some(outcome) => state.stores.claims.settle(key, outcome, CODE_LIFE).await,
        // Transient trouble: let a retry with the same code try again.
        None => state.stores.claims.release(key).await,
    };
    if let Err(e) = settled {
        tracing::warn!(error = %e, "could not record the outcome of a code exchange");
    }
    let (token, expires_at) = result?;
    Ok(Issued {
        token,
        expires_in: expires_at.saturating_sub(unix_now()).max(0) as u64,
    })
}

/// The exchange proper: WeChat, then the session store.
async fn exchange(state: &AppState, code: &str) -> Result<(Token, i64), ApiError> {
    let wechat = state.wechat.code_to_session(code).await?;
    let token = Token::generate();
    let now = unix_now();
    let expires_at = now.saturating_add(state.config.token_ttl.as_secs() as i64);
    let session = Session {
        openid: wechat.openid,
        unionid: wechat.unionid,
        session_key: wechat.session_key,
        created_at: now,
        expires_at,
    };
    tracing::info!(openid = %session.openid, token = ?token.hash(), "login");
    state.stores.sessions.insert(token.hash(), session).await?;
    Ok((token, expires_at))
}

/// WeChat's documented life of a code: no claim needs to outlive it.
const CODE_LIFE: Duration = Duration::from_secs(5 * 60);
const OUTCOME_TOKEN: u8 = 1;
const OUTCOME_REFUSED: u8 = 2;

/// The store key of a code's claim: a hash under its own domain label, so neither the code
/// nor the sealing pad can be learnt from it.
fn claim_key(code: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"wxlogin code claim\0")
        .chain_update(code.as_bytes())
        .finalize()
        .into()
}

/// Long enough for the slowest exchange the configuration allows (every busy retry timing
/// out), so a live holder never loses its claim.
fn exchange_lease(state: &AppState) -> Duration {
    let c = &state.config;
    c.wechat_timeout * (c.wechat_busy_retries + 1)
        + Duration::from_secs(2 + 2 * u64::from(c.wechat_busy_retries))
}

fn seal_success(token: &Token, code: &str, expires_at: i64) -> Vec<u8> {
    let mut v = Vec::with_capacity(41);
    v.push(OUTCOME_TOKEN);
    v.extend_from_slice(&token.seal(code));
    v.extend_from_slice(&expires_at.to_be_bytes());
    v
}

/// WeChat refusals that are final for a code, and their one-byte tags.
fn refusal_tag(e: &WechatError) -> Option<u8> {
    match e {
        WechatError::InvalidCode => Some(1),
        WechatError::CodeUsed => Some(2),
        WechatError::HighRiskUser => Some(3),
        _ => None,
    }
}

/// What another request's exchange of this code came to.
fn open_outcome(outcome: &[u8], code: &str) -> Result<Issued, ApiError> {
    match outcome {
        [OUTCOME_TOKEN, rest @ ..] if rest.len() == 40 => {
            let sealed: [u8; 32] = rest[..32].try_into().expect("length checked");
            let expires_at = i64::from_be_bytes(rest[32..].try_into().expect("length checked"));
            Ok(Issued {
                token: Token::unseal(&sealed, code),
                expires_in: expires_at.saturating_sub(unix_now()).max(0) as u64,
            })
        }
        [OUTCOME_REFUSED, 1] => Err(WechatError::InvalidCode.into()),
        [OUTCOME_REFUSED, 2] => Err(WechatError::CodeUsed.into()),
        [OUTCOME_REFUSED, 3] => Err(WechatError::HighRiskUser.into()),
        _ => Err(ApiError::Internal("unreadable code claim outcome".into())),
    }
}

/// Whether `token` names a live session. A malformed token is simply not logged in; store
/// trouble is an error, never a `false` that would send every client into a fresh login.
pub async fn is_logged_in(state: &AppState, token: Option<&str>) -> Result<bool, ApiError> {
    let Some(token) = token.and_then(Token::parse) else {
        return Ok(false);
    };
    Ok(state
        .stores
        .sessions
        .get(token.hash(), unix_now())
        .await?
        .is_some())
}

/// Ends the session of `token` everywhere at once. Ending an unknown or already-ended session
/// succeeds, so a client may retry a logout safely.
pub async fn logout(state: &AppState, token: &str) -> Result<(), ApiError> {
    let token = Token::parse(token).ok_or(ApiError::Unauthorized)?;
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
