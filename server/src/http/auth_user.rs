//! [`AuthUser`] as an extractor: any handler of an app that holds a [`LoginState`] learns who
//! is calling by taking `AuthUser` (required) or `Option<AuthUser>` (routes that serve both).
//!
//! - No token, or a malformed, unknown, expired or revoked one: the JSON 401 `unauthorized`,
//!   with `WWW-Authenticate: Bearer`. `Option<AuthUser>` is `None` only when no token was sent
//!   at all (no header and no session cookie): a client whose token died must hear so, or it would never log in again.
//! - Store trouble: the 503 `store_unavailable`, never a 401, which would log users out.
//!
//! The token comes from `Authorization: Bearer`, or else from a browser's web-session cookie
//! (`__Host-wxlogin`); a cookie-authenticated request that changes something must come from
//! the site itself (`csrf.rs`), or it gets the 403 `csrf`.
//!
//! The answer is kept in the request's extensions, so a middleware and a handler (or two
//! extractors) of one request cost one store lookup.

use axum::{
    extract::{FromRef, FromRequestParts, OptionalFromRequestParts},
    http::{header, request::Parts},
};

use crate::{
    http::{ApiError, LoginState, cookies, extract::bearer_token},
    login::{AuthUser, LoginError},
    metrics::CheckAnswer,
};

impl<S> FromRequestParts<S> for AuthUser
where
    LoginState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(user) = parts.extensions.get::<AuthUser>() {
            return Ok(user.clone());
        }
        let login = LoginState::from_ref(state);
        let token = match bearer_token(&parts.headers) {
            Some(token) => Some(token),
            None => match cookies::read(&parts.headers, cookies::SESSION_COOKIE) {
                Some(token) => {
                    if !login.csrf.allows(&parts.method, &parts.headers) {
                        return Err(ApiError::Csrf);
                    }
                    Some(token)
                }
                None => None,
            },
        };
        let user = login.login.authenticate(token.as_deref()).await;
        let answer = check_answer(user.as_ref().map(|_| true));
        login.check_counters.auth_user.count(answer);
        let user = user?;
        parts.extensions.insert(user.clone());
        Ok(user)
    }
}

impl<S> OptionalFromRequestParts<S> for AuthUser
where
    LoginState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        if !parts.headers.contains_key(header::AUTHORIZATION)
            && !cookies::has_session(&parts.headers)
        {
            return Ok(None);
        }
        <AuthUser as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

/// What a token check counts as in the checks metric: a refused token is "not logged in" (the
/// answer the client acts on), store trouble is "store unavailable", anything else an error.
pub(super) fn check_answer(checked: Result<bool, &LoginError>) -> CheckAnswer {
    match checked {
        Ok(true) => CheckAnswer::LoggedIn,
        Ok(false) | Err(LoginError::NotLoggedIn) => CheckAnswer::NotLoggedIn,
        Err(LoginError::Store(_)) => CheckAnswer::StoreUnavailable,
        Err(_) => CheckAnswer::Error,
    }
}
