//! The API's one error type, and the one table that states every error: its HTTP status, its
//! stable `code`, its metric label and its retry hint.
//!
//! Handlers return `Result<_, ApiError>` and use `?`; the login service's [`LoginError`] and
//! extractor rejections convert into it. [`ApiError::into_response`] only builds the answer: it
//! hands what the operator should see along as a response extension ([`ErrorReport`]), and
//! [`report`] (run by a layer of the routes, and by the server for answers made outside them)
//! logs it and counts it. So a team's app that merges the routes keeps the error logs and
//! metrics, and a response can be built in a test without touching either.

use std::time::Duration;

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use shared::{ErrorBody, ErrorCode};

use crate::{login::LoginError, open_data::OpenDataError, wechat::WechatError};

/// How long a client should wait after upstream trouble before trying again.
const UPSTREAM_RETRY_AFTER: Duration = Duration::from_secs(5);
/// Store trouble is usually a blip (a failover, a restart): ask for a quick retry.
const STORE_RETRY_AFTER: Duration = Duration::from_secs(2);
/// WeChat's code2Session quota is per minute.
const WECHAT_RATE_RETRY_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// What the login service refused, or could not do.
    #[error(transparent)]
    Login(#[from] LoginError),
    /// The body is not JSON.
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    /// JSON of the wrong shape.
    #[error("the request body does not match the expected shape: {0}")]
    InvalidRequest(String),
    /// Not `application/json`.
    #[error("expected a JSON body with `Content-Type: application/json`")]
    UnsupportedMediaType,
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// This client's logins are over their rate.
    #[error("too many requests, retry after {retry_after:?}")]
    RateLimited { retry_after: Duration },
    #[error("no such endpoint")]
    NotFound,
    #[error("this endpoint does not accept that method")]
    MethodNotAllowed,
    /// The body was not complete within `BODY_TIMEOUT` of the headers.
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    /// The request outlived `REQUEST_TIMEOUT`.
    #[error("the server did not finish this request in time")]
    RequestTimeout,
    /// A bug; the detail goes to the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

/// How one error is stated: what the client is told, and what the metrics count it as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statement {
    pub status: StatusCode,
    pub code: ErrorCode,
    /// The metric label: the `outcome` of a login, a fixed set of names, one per thing an
    /// operator would act on differently (several codes may share one).
    pub label: &'static str,
    pub retry_after: Option<Duration>,
}

const fn stated(
    status: StatusCode,
    code: ErrorCode,
    label: &'static str,
    retry_after: Option<Duration>,
) -> Statement {
    Statement {
        status,
        code,
        label,
        retry_after,
    }
}

impl ApiError {
    /// The table: every error the API can answer, and how it is stated. The only place HTTP
    /// statuses are chosen.
    pub fn statement(&self) -> Statement {
        use ApiError as E;
        use LoginError as L;
        use OpenDataError as O;
        use StatusCode as S;
        use WechatError as W;
        use shared::ErrorCode as C;
        const UPSTREAM: Option<Duration> = Some(UPSTREAM_RETRY_AFTER);
        match self {
            E::MalformedJson(_) => stated(S::BAD_REQUEST, C::MalformedJson, "malformed_json", None),
            E::InvalidRequest(_) => {
                stated(S::BAD_REQUEST, C::InvalidRequest, "invalid_request", None)
            }
            E::UnsupportedMediaType => stated(
                S::UNSUPPORTED_MEDIA_TYPE,
                C::UnsupportedMediaType,
                "unsupported_media_type",
                None,
            ),
            E::PayloadTooLarge { .. } => stated(
                S::PAYLOAD_TOO_LARGE,
                C::PayloadTooLarge,
                "payload_too_large",
                None,
            ),
            E::RateLimited { retry_after } => stated(
                S::TOO_MANY_REQUESTS,
                C::RateLimited,
                "rate_limited",
                Some(*retry_after),
            ),
            E::NotFound => stated(S::NOT_FOUND, C::NotFound, "not_found", None),
            E::MethodNotAllowed => stated(
                S::METHOD_NOT_ALLOWED,
                C::MethodNotAllowed,
                "method_not_allowed",
                None,
            ),
            E::BodyTimeout => stated(S::REQUEST_TIMEOUT, C::RequestTimeout, "body_timeout", None),
            E::RequestTimeout => stated(
                S::SERVICE_UNAVAILABLE,
                C::RequestTimeout,
                "request_timeout",
                UPSTREAM,
            ),
            E::Internal(_) | E::Login(L::SessionKey(_)) => {
                stated(S::INTERNAL_SERVER_ERROR, C::Internal, "internal", None)
            }
            E::Login(L::MalformedCode(_) | L::Wechat(W::InvalidCode | W::InvalidPhoneCode)) => {
                stated(S::BAD_REQUEST, C::InvalidCode, "invalid_code", None)
            }
            E::Login(L::UnknownApp(_)) => {
                stated(S::BAD_REQUEST, C::UnknownApp, "unknown_app", None)
            }
            E::Login(L::NotLoggedIn) => {
                stated(S::UNAUTHORIZED, C::Unauthorized, "not_logged_in", None)
            }
            E::Login(L::Wechat(W::CodeUsed)) => {
                stated(S::BAD_REQUEST, C::CodeUsed, "code_used", None)
            }
            E::Login(L::Wechat(W::HighRiskUser)) => {
                stated(S::FORBIDDEN, C::HighRiskUser, "high_risk_user", None)
            }
            E::Login(L::Wechat(W::RateLimited)) => stated(
                S::TOO_MANY_REQUESTS,
                C::RateLimited,
                "upstream_rate_limited",
                Some(WECHAT_RATE_RETRY_AFTER),
            ),
            E::Login(L::Wechat(W::Busy { .. })) => stated(
                S::SERVICE_UNAVAILABLE,
                C::UpstreamUnavailable,
                "upstream_unavailable",
                UPSTREAM,
            ),
            E::Login(L::Wechat(W::CircuitOpen { retry_after } | W::OverBudget { retry_after })) => {
                stated(
                    S::SERVICE_UNAVAILABLE,
                    C::UpstreamUnavailable,
                    "upstream_unavailable",
                    Some(*retry_after),
                )
            }
            E::Login(L::Wechat(W::Unreachable(_))) => stated(
                S::BAD_GATEWAY,
                C::UpstreamUnavailable,
                "upstream_unavailable",
                UPSTREAM,
            ),
            E::Login(L::Wechat(W::Timeout) | L::ExchangePending) => stated(
                S::GATEWAY_TIMEOUT,
                C::UpstreamTimeout,
                "upstream_timeout",
                UPSTREAM,
            ),
            E::Login(L::Wechat(W::Misconfigured { .. } | W::Other { .. } | W::BadResponse(_))) => {
                stated(S::BAD_GATEWAY, C::UpstreamError, "upstream_error", UPSTREAM)
            }
            E::Login(L::Store(_)) => stated(
                S::SERVICE_UNAVAILABLE,
                C::StoreUnavailable,
                "store_unavailable",
                Some(STORE_RETRY_AFTER),
            ),
            E::Login(L::OpenData(open)) => {
                let (code, label) = match open {
                    O::BadBase64(_) => (C::InvalidBase64, "invalid_base64"),
                    O::BadIvLength | O::BadDataLength => (C::InvalidLength, "invalid_length"),
                    O::StaleSessionKey => (C::StaleSessionKey, "stale_session_key"),
                    O::NoWatermark => (C::InvalidOpenData, "invalid_open_data"),
                    O::WrongApp => (C::WatermarkMismatch, "watermark_mismatch"),
                    O::Expired { .. } => (C::OpenDataExpired, "open_data_expired"),
                };
                stated(S::BAD_REQUEST, code, label, None)
            }
        }
    }

    /// What the client is told. Server-side failures get a fixed sentence: their detail (store
    /// paths, WeChat's errmsg, a panic message) is for the operator's log, not for the world.
    fn public_message(&self) -> String {
        use LoginError as L;
        match self {
            ApiError::Login(L::Wechat(
                WechatError::Misconfigured { .. }
                | WechatError::Other { .. }
                | WechatError::BadResponse(_),
            )) => "WeChat could not complete the login; try again later".into(),
            ApiError::Login(L::Wechat(WechatError::Unreachable(_))) => {
                "WeChat is unreachable; try again later".into()
            }
            ApiError::Login(L::Store(_)) => {
                "the session store is unavailable; try again shortly".into()
            }
            ApiError::Internal(_) | ApiError::Login(L::SessionKey(_)) => {
                "something went wrong on the server".into()
            }
            other => other.to_string(),
        }
    }

    /// The metric label of a login service error, as the table states it.
    pub fn label_of(error: LoginError) -> &'static str {
        ApiError::Login(error).statement().label
    }
}

impl From<WechatError> for ApiError {
    fn from(e: WechatError) -> Self {
        ApiError::Login(e.into())
    }
}

/// What the operator should learn of an error answer, handed from [`ApiError::into_response`]
/// to [`report`] in the response's extensions.
#[derive(Debug, Clone)]
pub struct ErrorReport {
    status: StatusCode,
    /// The full error, detail included: for the log only.
    detail: String,
    /// The kind of store failure, counted by the store-errors metric.
    store_kind: Option<&'static str>,
    /// WeChat refused this server's own credentials: the operator must act.
    misconfigured: bool,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let statement = self.statement();
        let report = ErrorReport {
            status: statement.status,
            detail: self.to_string(),
            store_kind: match &self {
                ApiError::Login(LoginError::Store(e)) => Some(e.kind()),
                _ => None,
            },
            misconfigured: matches!(
                self,
                ApiError::Login(LoginError::Wechat(WechatError::Misconfigured { .. }))
            ),
        };
        let body = ErrorBody::new(statement.code, self.public_message());
        let mut response = (statement.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(after) = statement.retry_after {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(after.as_secs().max(1)),
            );
        }
        if statement.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        // The rest of a late body may still be on its way: the connection cannot carry another
        // request, and hyper closes it once this answer is written.
        if statement.status == StatusCode::REQUEST_TIMEOUT {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response.extensions_mut().insert(report);
        response
    }
}

/// Logs and counts the error an answer carries, once: the report is taken out, so a layer
/// further out that runs this again finds nothing.
pub fn report(response: &mut Response) {
    let Some(report) = response.extensions_mut().remove::<ErrorReport>() else {
        return;
    };
    let error = report.detail;
    if let Some(kind) = report.store_kind {
        crate::metrics::store_error(kind);
    }
    if report.misconfigured {
        tracing::error!(
            %error,
            "check the AppID and its secret (WECHAT_APPID and WECHAT_SECRET, or CONFIG_FILE)"
        );
    } else if report.status.is_server_error() {
        tracing::error!(%error, "request failed");
    } else {
        tracing::debug!(%error, status = report.status.as_u16(), "request refused");
    }
}

/// [`report`] as a layer: a plain function on the response, with no future or allocation of
/// its own, since it wraps `/checklogin` too.
pub fn report_layer() -> tower::util::MapResponseLayer<fn(Response) -> Response> {
    fn reported(mut response: Response) -> Response {
        report(&mut response);
        response
    }
    tower::util::MapResponseLayer::new(reported as fn(Response) -> Response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    #[test]
    fn upstream_and_store_trouble_carry_retry_after() {
        for err in [
            ApiError::from(WechatError::Busy { attempts: 4 }),
            ApiError::from(WechatError::Timeout),
            ApiError::from(WechatError::Unreachable("refused".into())),
            ApiError::from(WechatError::RateLimited),
            ApiError::Login(LoginError::Store(StoreError::Unavailable("down".into()))),
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
            let stated = ApiError::from(err).statement();
            assert_eq!((stated.status.as_u16(), stated.code), (status, code));
        }
    }

    #[test]
    fn a_late_body_is_a_408_that_ends_the_connection() {
        let response = ApiError::BodyTimeout.into_response();
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(response.headers()[header::CONNECTION], "close");
        assert_eq!(
            ApiError::BodyTimeout.statement().code,
            ErrorCode::RequestTimeout
        );
    }

    #[test]
    fn internal_detail_stays_out_of_the_message() {
        let err = ApiError::Login(LoginError::Store(StoreError::Unavailable(
            "/var/secret/path: disk I/O".into(),
        )));
        assert!(!err.public_message().contains("/var/secret"));
        let err = ApiError::from(WechatError::Other {
            errcode: 99,
            errmsg: "internal rid: 123".into(),
        });
        assert!(!err.public_message().contains("rid"));
    }

    #[test]
    fn an_error_answer_carries_its_report_until_it_is_reported_once() {
        let mut response =
            ApiError::Login(LoginError::Store(StoreError::Unavailable("disk".into())))
                .into_response();
        assert!(response.extensions().get::<ErrorReport>().is_some());
        report(&mut response);
        assert!(
            response.extensions().get::<ErrorReport>().is_none(),
            "a second reporter finds nothing to log again"
        );
    }

    #[test]
    fn login_outcomes_keep_their_metric_labels() {
        assert_eq!(ApiError::label_of(LoginError::NotLoggedIn), "not_logged_in");
        assert_eq!(
            ApiError::label_of(LoginError::Wechat(WechatError::RateLimited)),
            "upstream_rate_limited"
        );
        assert_eq!(
            ApiError::label_of(LoginError::MalformedCode("x")),
            "invalid_code"
        );
        assert_eq!(
            ApiError::label_of(LoginError::ExchangePending),
            "upstream_timeout"
        );
    }
}
