//! Extractors that fail with [`ApiError`] instead of axum's plain-text rejections, so every
//! refusal has the same JSON shape.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request, rejection::JsonRejection},
    http::{HeaderMap, StatusCode, header, request::Parts},
};
use serde::de::DeserializeOwned;

use std::net::SocketAddr;

use axum::extract::ConnectInfo;

use crate::{
    http::LoginState,
    http::{ApiError, BODY_LIMIT, body_deadline::BodyTimedOut},
};

/// `axum::Json` with our error body.
#[derive(Debug)]
pub struct AppJson<T>(pub T);

impl<S, T> FromRequest<S> for AppJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge { limit: BODY_LIMIT }
            } else if BodyTimedOut::caused(&e) {
                ApiError::BodyTimeout
            } else {
                ApiError::InvalidRequest(e.body_text())
            }
        })?;
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
        // serde lets a struct be written as an array (`["abc"]`); the protocol does not.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::InvalidRequest("expected a JSON object".into()));
        }
        Ok(AppJson(value))
    }
}

/// `application/json` or any `application/*+json`, parameters (charset) allowed.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json"))
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        // `AppJson` reads the body and checks its type itself, so only parsing can fail here.
        match rejection {
            JsonRejection::JsonSyntaxError(e) => ApiError::MalformedJson(e.body_text()),
            other => ApiError::InvalidRequest(other.body_text()),
        }
    }
}

/// The token of `Authorization: Bearer <token>`, if the header is there and of that scheme.
#[derive(Debug)]
pub struct MaybeBearer(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeBearer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(MaybeBearer(bearer_token(&parts.headers)))
    }
}

/// The token of an `Authorization: Bearer <token>` header; `None` for any other scheme, a
/// header that is not text, or an empty token.
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    let token = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// The request's `User-Agent`, when it has one that is text.
#[derive(Debug, Clone)]
pub struct UserAgent(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for UserAgent {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        Ok(UserAgent(agent))
    }
}

/// The client's address: the TCP peer, or the one our trusted proxies report for it (see
/// [`crate::client_ip`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub std::net::IpAddr);

impl FromRequestParts<LoginState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &LoginState,
    ) -> Result<Self, Self::Rejection> {
        // Served without a socket (a test's `oneshot`), there is no peer: all such requests
        // are one client.
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map_or(
            std::net::Ipv4Addr::UNSPECIFIED.into(),
            |ConnectInfo(addr)| addr.ip(),
        );
        Ok(ClientIp(state.proxies.client_ip(peer, &parts.headers)))
    }
}
