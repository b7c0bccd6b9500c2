//! The login service: turns a `wx.login()` code into a session and a token, answers whether a
//! token is good, and ends sessions. Transport-free, so every rule here is testable without
//! HTTP, and the handlers in `http/` stay thin.

use shared::code_rules;

use crate::{
    error::ApiError,
    state::AppState,
    store::{Session, unix_now},
    token::Token,
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
pub async fn login(state: &AppState, code: &str) -> Result<Issued, ApiError> {
    validate_code(code)?;
    let wechat = state.wechat.code_to_session(code).await?;
    let token = Token::generate();
    let ttl = state.config.token_ttl.as_secs();
    let now = unix_now();
    let session = Session {
        openid: wechat.openid,
        unionid: wechat.unionid,
        session_key: wechat.session_key,
        created_at: now,
        expires_at: now.saturating_add(ttl as i64),
    };
    tracing::info!(openid = %session.openid, token = ?token.hash(), "login");
    state.store.insert(token.hash(), session).await?;
    Ok(Issued {
        token,
        expires_in: ttl,
    })
}

/// Whether `token` names a live session. A malformed token is simply not logged in; store
/// trouble is an error, never a `false` that would send every client into a fresh login.
pub async fn is_logged_in(state: &AppState, token: Option<&str>) -> Result<bool, ApiError> {
    let Some(token) = token.and_then(Token::parse) else {
        return Ok(false);
    };
    Ok(state.store.get(token.hash(), unix_now()).await?.is_some())
}

/// Ends the session of `token` everywhere at once. Ending an unknown or already-ended session
/// succeeds, so a client may retry a logout safely.
pub async fn logout(state: &AppState, token: &str) -> Result<(), ApiError> {
    let token = Token::parse(token).ok_or(ApiError::Unauthorized)?;
    let removed = state.store.remove(token.hash()).await?;
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
