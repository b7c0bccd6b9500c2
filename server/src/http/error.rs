//! The API's one error type, and the only place HTTP statuses are chosen.
//!
//! Handlers return `Result<_, ApiError>` and use `?`; extractor rejections, WeChat failures and
//! store failures convert into it. [`ApiError::into_response`] picks the status, the stable
//! `code`, the `Retry-After` header, and the human message — and logs server-side detail that
//! must not reach the client.

use std::time::Duration;

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use shared::{ErrorBody, ErrorCode};

use crate::{auth::AuthError, open_data::OpenDataError, store::StoreError, wechat::WechatError};

/// How long a client should wait after upstream trouble before trying again.
const UPSTREAM_RETRY_AFTER: Duration = Duration::from_secs(5);
/// Store trouble is usually a blip (a failover, a restart): ask for a quick retry.
const STORE_RETRY_AFTER: Duration = Duration::from_secs(2);
/// WeChat's code2Session quota is per minute.
const WECHAT_RATE_RETRY_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// `400`: the body is not JSON.
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    /// `400`: JSON of the wrong shape.
    #[error("the request body does not match the expected shape: {0}")]
    InvalidRequest(String),
    /// `415`: not `application/json`.
    #[error("expected a JSON body with `Content-Type: application/json`")]
    UnsupportedMediaType,
    /// `413`.
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// `400`: the code is malformed (checked before WeChat is asked).
    #[error("{0}")]
    MalformedCode(&'static str),
    /// `400`: the login names an AppID the server does not serve.
    #[error("this server does not serve the mini-program {0:?}; check `appid`")]
    UnknownApp(String),
    /// `401`, with `WWW-Authenticate: Bearer`.
    #[error("a valid `Authorization: Bearer <token>` header is required")]
    Unauthorized,
    /// `429`, with `Retry-After`.
    #[error("too many requests, retry after {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// `400`/`403`/`429`/`502`/`503`/`504` depending on what WeChat said.
    #[error(transparent)]
    Wechat(#[from] WechatError),
    /// `503`, with `Retry-After`.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `404`.
    #[error("no such endpoint")]
    NotFound,
    /// `405`.
    #[error("this endpoint does not accept that method")]
    MethodNotAllowed,
    /// `504`: another request's exchange of the same code did not finish in time.
    #[error("{0}")]
    ExchangePending(AuthError),
    /// `400`: open data that cannot be opened or is not acceptable, each with its own code.
    #[error(transparent)]
    OpenData(#[from] OpenDataError),
    /// `503`, with `Retry-After`: the request outlived `REQUEST_TIMEOUT`.
    #[error("the server did not finish this request in time")]
    RequestTimeout,
    /// `500`: a bug; the detail goes to the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// Status, stable code, and retry hint of this error.
    fn classify(&self) -> (StatusCode, ErrorCode, Option<Duration>) {
        use ApiError as E;
        match self {
            E::MalformedJson(_) => (StatusCode::BAD_REQUEST, ErrorCode::MalformedJson, None),
            E::InvalidRequest(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, None),
            E::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                None,
            ),
            E::PayloadTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                None,
            ),
            E::MalformedCode(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidCode, None),
            E::UnknownApp(_) => (StatusCode::BAD_REQUEST, ErrorCode::UnknownApp, None),
            E::Unauthorized => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, None),
            E::RateLimited { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                Some(*retry_after),
            ),
            E::Wechat(w) => match w {
                WechatError::InvalidCode | WechatError::InvalidPhoneCode => {
                    (StatusCode::BAD_REQUEST, ErrorCode::InvalidCode, None)
                }
                WechatError::CodeUsed => (StatusCode::BAD_REQUEST, ErrorCode::CodeUsed, None),
                WechatError::HighRiskUser => (StatusCode::FORBIDDEN, ErrorCode::HighRiskUser, None),
                WechatError::RateLimited => (
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::RateLimited,
                    Some(WECHAT_RATE_RETRY_AFTER),
                ),
                WechatError::Busy { .. } => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::UpstreamUnavailable,
                    Some(UPSTREAM_RETRY_AFTER),
                ),
                WechatError::CircuitOpen { retry_after }
                | WechatError::OverBudget { retry_after } => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::UpstreamUnavailable,
                    Some(*retry_after),
                ),
                WechatError::Timeout => (
                    StatusCode::GATEWAY_TIMEOUT,
                    ErrorCode::UpstreamTimeout,
                    Some(UPSTREAM_RETRY_AFTER),
                ),
                WechatError::Unreachable(_) => (
                    StatusCode::BAD_GATEWAY,
                    ErrorCode::UpstreamUnavailable,
                    Some(UPSTREAM_RETRY_AFTER),
                ),
                WechatError::Misconfigured { .. }
                | WechatError::Other { .. }
                | WechatError::BadResponse(_) => (
                    StatusCode::BAD_GATEWAY,
                    ErrorCode::UpstreamError,
                    Some(UPSTREAM_RETRY_AFTER),
                ),
            },
            E::Store(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::StoreUnavailable,
                Some(STORE_RETRY_AFTER),
            ),
            E::NotFound => (StatusCode::NOT_FOUND, ErrorCode::NotFound, None),
            E::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                None,
            ),
            E::ExchangePending(_) => (
                StatusCode::GATEWAY_TIMEOUT,
                ErrorCode::UpstreamTimeout,
                Some(UPSTREAM_RETRY_AFTER),
            ),
            E::OpenData(e) => (
                StatusCode::BAD_REQUEST,
                match e {
                    OpenDataError::BadBase64(_) => ErrorCode::InvalidBase64,
                    OpenDataError::BadIvLength | OpenDataError::BadDataLength => {
                        ErrorCode::InvalidLength
                    }
                    OpenDataError::StaleSessionKey => ErrorCode::StaleSessionKey,
                    OpenDataError::NoWatermark => ErrorCode::InvalidOpenData,
                    OpenDataError::WrongApp => ErrorCode::WatermarkMismatch,
                    OpenDataError::Expired { .. } => ErrorCode::OpenDataExpired,
                },
                None,
            ),
            E::RequestTimeout => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::RequestTimeout,
                Some(UPSTREAM_RETRY_AFTER),
            ),
            E::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, None),
        }
    }

    /// What the client is told. Server-side failures get a fixed sentence: their detail (store
    /// paths, WeChat's errmsg, a panic message) is for the operator's log, not for the world.
    fn public_message(&self) -> String {
        match self {
            ApiError::Wechat(
                WechatError::Misconfigured { .. }
                | WechatError::Other { .. }
                | WechatError::BadResponse(_),
            ) => "WeChat could not complete the login; try again later".into(),
            ApiError::Wechat(WechatError::Unreachable(_)) => {
                "WeChat is unreachable; try again later".into()
            }
            ApiError::Store(_) => "the session store is unavailable; try again shortly".into(),
            ApiError::Internal(_) => "something went wrong on the server".into(),
            other => other.to_string(),
        }
    }
}

/// The login rules' refusals, as the API states them.
impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::MalformedCode(why) => ApiError::MalformedCode(why),
            AuthError::UnknownApp(appid) => ApiError::UnknownApp(appid),
            AuthError::NotLoggedIn => ApiError::Unauthorized,
            AuthError::Wechat(e) => ApiError::Wechat(e),
            AuthError::Store(e) => ApiError::Store(e),
            e @ AuthError::ExchangePending => ApiError::ExchangePending(e),
            e @ AuthError::SessionKey(_) => ApiError::Internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, retry_after) = self.classify();
        match &self {
            ApiError::Wechat(WechatError::Misconfigured { .. }) => {
                tracing::error!(
                    error = %self,
                    "check the AppID and its secret (WECHAT_APPID and WECHAT_SECRET, or CONFIG_FILE)"
                );
            }
            ApiError::Store(e) => {
                crate::metrics::store_error(e);
                tracing::error!(error = %self, "request failed");
            }
            _ if status.is_server_error() => tracing::error!(error = %self, "request failed"),
            _ => tracing::debug!(error = %self, status = status.as_u16(), "request refused"),
        }
        let mut response =
            (status, Json(ErrorBody::new(code, self.public_message()))).into_response();
        let headers = response.headers_mut();
        if let Some(after) = retry_after {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(after.as_secs().max(1)),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_and_store_trouble_carry_retry_after() {
        for err in [
            ApiError::Wechat(WechatError::Busy { attempts: 4 }),
            ApiError::Wechat(WechatError::Timeout),
            ApiError::Wechat(WechatError::Unreachable("refused".into())),
            ApiError::Wechat(WechatError::RateLimited),
            ApiError::Store(StoreError::Unavailable("down".into())),
            ApiError::RateLimited {
                retry_after: Duration::from_millis(300),
            },
        ] {
            let response = err.into_response();
            let after = response.headers()[header::RETRY_AFTER].to_str().unwrap();
            assert!(after.parse::<u64>().unwrap() >= 1, "{after}");
        }
    }

    #[test]
    fn wechat_errcodes_map_to_client_meaningful_statuses() {
        let cases = [
            (WechatError::InvalidCode, 400, ErrorCode::InvalidCode),
            (WechatError::CodeUsed, 400, ErrorCode::CodeUsed),
            (WechatError::HighRiskUser, 403, ErrorCode::HighRiskUser),
            (WechatError::RateLimited, 429, ErrorCode::RateLimited),
            (
                WechatError::Busy { attempts: 3 },
                503,
                ErrorCode::UpstreamUnavailable,
            ),
            (WechatError::Timeout, 504, ErrorCode::UpstreamTimeout),
            (
                WechatError::Misconfigured {
                    errcode: 40125,
                    errmsg: "invalid appsecret".into(),
                },
                502,
                ErrorCode::UpstreamError,
            ),
        ];
        for (err, status, code) in cases {
            let (s, c, _) = ApiError::Wechat(err).classify();
            assert_eq!((s.as_u16(), c), (status, code));
        }
    }

    #[test]
    fn internal_detail_stays_out_of_the_message() {
        let err = ApiError::Store(StoreError::Unavailable("/var/secret/path: disk I/O".into()));
        assert!(!err.public_message().contains("/var/secret"));
        let err = ApiError::Wechat(WechatError::Other {
            errcode: 99,
            errmsg: "internal rid: 123".into(),
        });
        assert!(!err.public_message().contains("rid"));
    }
}
