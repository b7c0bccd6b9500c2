//! [`AuthUser`] as an extractor: any handler of an app that holds a [`LoginState`] learns who
//! is calling by taking `AuthUser` (required) or `Option<AuthUser>` (routes that serve both).
//!
//! - No token, or a malformed, unknown, expired or revoked one: the JSON 401 `unauthorized`,
//!   with `WWW-Authenticate: Bearer`. `Option<AuthUser>` is `None` only when no token was sent
//!   at all: a client whose token died must hear so, or it would never log in again.
//! - Store trouble: the 503 `store_unavailable`, never a 401, which would log users out.
//!
//! The answer is kept in the request's extensions, so a middleware and a handler (or two
//! extractors) of one request cost one store lookup.

use axum::{
    extract::{FromRef, FromRequestParts, OptionalFromRequestParts},
    http::{header, request::Parts},
};

use crate::{
    auth::{self, AuthUser},
    http::{ApiError, extract::bearer_token},
    state::LoginState,
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
        let user = auth::authenticate(&login, bearer_token(&parts.headers).as_deref()).await;
        login
            .check_counters
            .auth_user
            .count(user.as_ref().map(|_| true));
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
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Ok(None);
        }
        <AuthUser as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}
