//! The API's one error type, and the one table that states every error: its HTTP status, its
//! stable `code`, its metric label, its retry hint and how it is logged.
//!
//! Handlers return `Result<_, ApiError>` and use `?`; the login service's [`LoginError`] and
//! extractor rejections convert into it. [`ApiError::into_response`] only builds the answer: it
//! hands what the operator should see along as a response extension ([`ErrorReport`]), and
//! [`report`] (run by a layer of the routes, and by the server for answers made outside them)
//! logs it and counts it. So a team's app that merges the routes keeps the error logs and
//! metrics, and a response can be built in a test without touching either.

use std::{sync::LazyLock, time::Duration};

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use shared::{ErrorBody, ErrorCode};

use crate::{
    accounts::AccountError,
    log_throttle::{self, LogThrottles},
    login::LoginError,
    oidc::OidcError,
    open_data::OpenDataError,
    store::StoreError,
    web_login::{Refusal as TicketRefusal, WebLoginError},
    wechat::WechatError,
};

/// How long a client should wait after upstream trouble before trying again.
const UPSTREAM_RETRY_AFTER: Duration = Duration::from_secs(5);
/// Store trouble is usually a blip (a failover, a restart): ask for a quick retry.
const STORE_RETRY_AFTER: Duration = Duration::from_secs(2);
/// A full claims table empties as exchanges finish, within seconds.
const CLAIMS_RETRY_AFTER: Duration = Duration::from_secs(1);
/// WeChat's quotas (code2Session's, mini-program codes') are per minute.
const WECHAT_RATE_RETRY_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// What the login service refused, or could not do.
    #[error(transparent)]
    Login(#[from] LoginError),
    /// What the account service refused, or could not do.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// What the web login refused. Its store and WeChat troubles convert to
    /// [`ApiError::Login`]'s, stated once.
    #[error(transparent)]
    WebLogin(WebLoginError),
    /// What the OpenID Connect provider refused. Its store trouble converts to
    /// [`ApiError::Login`]'s, stated once.
    #[error(transparent)]
    Oidc(OidcError),
    /// A cookie-authenticated change from another site.
    #[error(
        "a request authenticated by cookie that changes something must come from the site \
         itself (Sec-Fetch-Site: same-origin, or an Origin listed in WEB_ORIGINS)"
    )]
    Csrf,
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
    pub log: LogAs,
}

/// How an error answer is logged. Whoever sends the requests decides how often an error
/// happens, so the lines an operator sees are rate-bounded per label: one per
/// [`log_throttle::EVERY`], the next one saying how many were left out. The metrics count
/// every one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogAs {
    /// The client's own mistake (a malformed body, a bad code): nothing for the operator.
    Debug,
    /// A refusal that a flood or a struggling WeChat causes (a limit, a timeout, an open
    /// breaker): worth seeing, never worth a line per request.
    Warn,
    /// A fault on this side (the store, a bug, the app's credentials): the operator must act.
    Error,
}

const fn stated(
    status: StatusCode,
    code: ErrorCode,
    label: &'static str,
    retry_after: Option<Duration>,
    log: LogAs,
) -> Statement {
    Statement {
        status,
        code,
        label,
        retry_after,
        log,
    }
}

impl ApiError {
    /// The table: every error the API can answer, and how it is stated. The only place HTTP
    /// statuses are chosen.
    pub fn statement(&self) -> Statement {
        use AccountError as A;
        use ApiError as E;
        use LogAs as Log;
        use LoginError as L;
        use OpenDataError as O;
        use StatusCode as S;
        use TicketRefusal as T;
        use WebLoginError as WL;
        use WechatError as W;
        use shared::ErrorCode as C;
        const UPSTREAM: Option<Duration> = Some(UPSTREAM_RETRY_AFTER);
        match self {
            E::MalformedJson(_) => stated(
                S::BAD_REQUEST,
                C::MalformedJson,
                "malformed_json",
                None,
                Log::Debug,
            ),
            E::InvalidRequest(_) => stated(
                S::BAD_REQUEST,
                C::InvalidRequest,
                "invalid_request",
                None,
                Log::Debug,
            ),
            E::UnsupportedMediaType => stated(
                S::UNSUPPORTED_MEDIA_TYPE,
                C::UnsupportedMediaType,
                "unsupported_media_type",
                None,
                Log::Debug,
            ),
            E::PayloadTooLarge { .. } => stated(
                S::PAYLOAD_TOO_LARGE,
                C::PayloadTooLarge,
                "payload_too_large",
                None,
                Log::Debug,
            ),
            E::RateLimited { retry_after } => stated(
                S::TOO_MANY_REQUESTS,
                C::RateLimited,
                "rate_limited",
                Some(*retry_after),
                Log::Warn,
            ),
            E::NotFound => stated(S::NOT_FOUND, C::NotFound, "not_found", None, Log::Debug),
            E::MethodNotAllowed => stated(
                S::METHOD_NOT_ALLOWED,
                C::MethodNotAllowed,
                "method_not_allowed",
                None,
                Log::Debug,
            ),
            E::BodyTimeout => stated(
                S::REQUEST_TIMEOUT,
                C::RequestTimeout,
                "body_timeout",
                None,
                Log::Warn,
            ),
            E::RequestTimeout => stated(
                S::SERVICE_UNAVAILABLE,
                C::RequestTimeout,
                "request_timeout",
                UPSTREAM,
                Log::Warn,
            ),
            E::Internal(_) | E::Login(L::SessionKey(_)) => stated(
                S::INTERNAL_SERVER_ERROR,
                C::Internal,
                "internal",
                None,
                Log::Error,
            ),
            E::Login(L::MalformedCode(_) | L::Wechat(W::InvalidCode | W::InvalidPhoneCode)) => {
                stated(
                    S::BAD_REQUEST,
                    C::InvalidCode,
                    "invalid_code",
                    None,
                    Log::Debug,
                )
            }
            E::Login(L::UnknownApp(_)) => stated(
                S::BAD_REQUEST,
                C::UnknownApp,
                "unknown_app",
                None,
                Log::Debug,
            ),
            E::Login(L::NotLoggedIn) => stated(
                S::UNAUTHORIZED,
                C::Unauthorized,
                "not_logged_in",
                None,
                Log::Debug,
            ),
            E::Login(L::Wechat(W::CodeUsed)) => {
                stated(S::BAD_REQUEST, C::CodeUsed, "code_used", None, Log::Debug)
            }
            E::Login(L::Wechat(W::HighRiskUser)) => stated(
                S::FORBIDDEN,
                C::HighRiskUser,
                "high_risk_user",
                None,
                Log::Debug,
            ),
            E::Login(L::Wechat(W::RateLimited)) => stated(
                S::TOO_MANY_REQUESTS,
                C::RateLimited,
                "upstream_rate_limited",
                Some(WECHAT_RATE_RETRY_AFTER),
                Log::Warn,
            ),
            // The app's codes for the minute are spent: no browser can start a web login until
            // the minute turns, which the operator should see, but not once per request.
            E::Login(L::Wechat(W::WxaCodeQuota)) => stated(
                S::SERVICE_UNAVAILABLE,
                C::QrQuotaExceeded,
                "qr_quota_exceeded",
                Some(WECHAT_RATE_RETRY_AFTER),
                Log::Warn,
            ),
            // WEB_LOGIN_PAGE names no page of the published version: every web login fails
            // until the operator fixes the configuration.
            E::Login(L::Wechat(W::WxaCodePageMissing)) => stated(
                S::INTERNAL_SERVER_ERROR,
                C::WebLoginPageMissing,
                "web_login_page_missing",
                None,
                Log::Error,
            ),
            // The server makes the scenes: one WeChat refuses is a bug here.
            E::Login(L::Wechat(W::InvalidScene)) => stated(
                S::INTERNAL_SERVER_ERROR,
                C::Internal,
                "internal",
                None,
                Log::Error,
            ),
            E::Login(L::Wechat(W::Busy { .. })) => stated(
                S::SERVICE_UNAVAILABLE,
                C::UpstreamUnavailable,
                "upstream_unavailable",
                UPSTREAM,
                Log::Warn,
            ),
            E::Login(L::Wechat(W::CircuitOpen { retry_after } | W::OverBudget { retry_after })) => {
                stated(
                    S::SERVICE_UNAVAILABLE,
                    C::UpstreamUnavailable,
                    "upstream_unavailable",
                    Some(*retry_after),
                    Log::Warn,
                )
            }
            // WeChat out of reach is this side's network, or WeChat down: for the operator.
            E::Login(L::Wechat(W::Unreachable(_))) => stated(
                S::BAD_GATEWAY,
                C::UpstreamUnavailable,
                "upstream_unavailable",
                UPSTREAM,
                Log::Error,
            ),
            E::Login(L::Wechat(W::Timeout) | L::ExchangePending) => stated(
                S::GATEWAY_TIMEOUT,
                C::UpstreamTimeout,
                "upstream_timeout",
                UPSTREAM,
                Log::Warn,
            ),
            E::Login(L::Wechat(W::Misconfigured { .. } | W::Other { .. } | W::BadResponse(_))) => {
                stated(
                    S::BAD_GATEWAY,
                    C::UpstreamError,
                    "upstream_error",
                    UPSTREAM,
                    Log::Error,
                )
            }
            E::Login(L::Store(StoreError::ClaimsFull(_))) => stated(
                S::SERVICE_UNAVAILABLE,
                C::LoginsInFlight,
                "logins_in_flight",
                Some(CLAIMS_RETRY_AFTER),
                Log::Warn,
            ),
            E::Login(L::Store(_)) | E::Account(A::Store(_)) => stated(
                S::SERVICE_UNAVAILABLE,
                C::StoreUnavailable,
                "store_unavailable",
                Some(STORE_RETRY_AFTER),
                Log::Error,
            ),
            E::Login(L::SignupClosed) => stated(
                S::FORBIDDEN,
                C::SignupClosed,
                "signup_closed",
                None,
                Log::Debug,
            ),
            E::Login(L::RiskRejected) => stated(
                S::FORBIDDEN,
                C::RiskRejected,
                "risk_rejected",
                None,
                Log::Debug,
            ),
            E::Login(L::AccountDisabled) => stated(
                S::FORBIDDEN,
                C::AccountDisabled,
                "account_disabled",
                None,
                Log::Debug,
            ),
            E::Login(L::MiniprogramSessionRequired) | E::Account(A::MiniprogramSessionRequired) => {
                stated(
                    S::FORBIDDEN,
                    C::MiniprogramSessionRequired,
                    "miniprogram_session_required",
                    None,
                    Log::Debug,
                )
            }
            E::Login(L::PhoneInUse) => {
                stated(S::CONFLICT, C::PhoneInUse, "phone_in_use", None, Log::Debug)
            }
            E::Account(A::ReauthRequired) => stated(
                S::FORBIDDEN,
                C::ReauthRequired,
                "reauth_required",
                None,
                Log::Debug,
            ),
            E::Account(A::SessionNotFound | A::NoSuchAccount) => stated(
                S::NOT_FOUND,
                C::NotFound,
                "session_not_found",
                None,
                Log::Debug,
            ),
            E::Csrf => stated(S::FORBIDDEN, C::Csrf, "csrf", None, Log::Debug),
            E::Oidc(OidcError::InvalidClient) => stated(
                S::UNAUTHORIZED,
                C::InvalidClient,
                "invalid_client",
                None,
                Log::Debug,
            ),
            E::Oidc(OidcError::InvalidGrant(_) | OidcError::UnknownCode) => stated(
                S::BAD_REQUEST,
                C::InvalidGrant,
                "invalid_grant",
                None,
                Log::Debug,
            ),
            E::Oidc(OidcError::InvalidRequest(_)) => stated(
                S::BAD_REQUEST,
                C::InvalidRequest,
                "invalid_request",
                None,
                Log::Debug,
            ),
            E::Oidc(OidcError::UnsupportedGrantType) => stated(
                S::BAD_REQUEST,
                C::UnsupportedGrantType,
                "unsupported_grant_type",
                None,
                Log::Debug,
            ),
            E::Oidc(OidcError::InvalidToken) => stated(
                S::UNAUTHORIZED,
                C::InvalidToken,
                "invalid_token",
                None,
                Log::Debug,
            ),
            E::Oidc(OidcError::Signing(_) | OidcError::Store(_)) => stated(
                S::INTERNAL_SERVER_ERROR,
                C::Internal,
                "internal",
                None,
                Log::Error,
            ),
            E::WebLogin(WL::NotFound) => stated(
                S::NOT_FOUND,
                C::TicketNotFound,
                "ticket_not_found",
                None,
                Log::Debug,
            ),
            E::WebLogin(WL::Refused(refusal)) => {
                let (status, code, label) = match refusal {
                    T::Expired => (S::GONE, C::TicketExpired, "ticket_expired"),
                    T::Taken => (S::CONFLICT, C::TicketTaken, "ticket_taken"),
                    T::Closed | T::Denied => (S::CONFLICT, C::TicketClosed, "ticket_closed"),
                    T::Used => (S::CONFLICT, C::TicketUsed, "ticket_used"),
                    T::NotScanned => (S::BAD_REQUEST, C::TicketNotScanned, "ticket_not_scanned"),
                    T::NotConfirmed => (
                        S::BAD_REQUEST,
                        C::TicketNotConfirmed,
                        "ticket_not_confirmed",
                    ),
                };
                stated(status, code, label, None, Log::Debug)
            }
            E::WebLogin(WL::TooManyTickets { retry_after }) => stated(
                S::TOO_MANY_REQUESTS,
                C::TooManyTickets,
                "too_many_tickets",
                Some(*retry_after),
                Log::Warn,
            ),
            E::WebLogin(WL::AccountGone) => stated(
                S::FORBIDDEN,
                C::AccountDisabled,
                "account_disabled",
                None,
                Log::Debug,
            ),
            // `From<WebLoginError>` sends these to `ApiError::Login`; built by hand, they
            // are still a fault of this side.
            E::WebLogin(WL::Store(_) | WL::Wechat(_)) => stated(
                S::INTERNAL_SERVER_ERROR,
                C::Internal,
                "internal",
                None,
                Log::Error,
            ),
            E::Login(L::DecryptFailuresLimited { retry_after }) => stated(
                S::TOO_MANY_REQUESTS,
                C::RateLimited,
                "decrypt_failures_limited",
                Some(*retry_after),
                Log::Warn,
            ),
            E::Login(L::OpenData(open)) => {
                let (code, label) = match open {
                    O::BadBase64(_) => (C::InvalidBase64, "invalid_base64"),
                    O::BadIvLength | O::BadDataLength => (C::InvalidLength, "invalid_length"),
                    O::StaleSessionKey => (C::StaleSessionKey, "stale_session_key"),
                    O::NoWatermark => (C::InvalidOpenData, "invalid_open_data"),
                    O::WrongApp => (C::WatermarkMismatch, "watermark_mismatch"),
                    O::Expired { .. } => (C::OpenDataExpired, "open_data_expired"),
                    O::Forged(_) => (C::ForgedOpenData, "forged_open_data"),
                };
                stated(S::BAD_REQUEST, code, label, None, Log::Debug)
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
            ApiError::Login(L::Store(StoreError::ClaimsFull(_))) => {
                "the server is busy with other logins; try again shortly".into()
            }
            ApiError::Login(L::Store(_)) | ApiError::Account(AccountError::Store(_)) => {
                "the session store is unavailable; try again shortly".into()
            }
            ApiError::Internal(_)
            | ApiError::Login(L::SessionKey(_) | L::Wechat(WechatError::InvalidScene)) => {
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

impl From<OidcError> for ApiError {
    fn from(e: OidcError) -> Self {
        match e {
            OidcError::Store(e) => ApiError::Login(LoginError::Store(e)),
            other => ApiError::Oidc(other),
        }
    }
}

impl ApiError {
    /// The answer in RFC 6749's shape, `{"error", "error_description"}`, for the OAuth
    /// endpoints: the same row of the table (status, metric label, log), the OAuth name of
    /// its code.
    pub fn into_oauth_response(self) -> Response {
        let statement = self.statement();
        let description = self.public_message();
        let mut response = self.into_response();
        let error = match statement.code {
            ErrorCode::InvalidClient
            | ErrorCode::InvalidGrant
            | ErrorCode::UnsupportedGrantType
            | ErrorCode::InvalidToken => serde_json::to_value(statement.code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "server_error".into()),
            code if statement.status.is_client_error() && !code.is_transient() => {
                "invalid_request".into()
            }
            code if code.is_transient() && code != ErrorCode::Internal => {
                "temporarily_unavailable".into()
            }
            _ => "server_error".into(),
        };
        let body = serde_json::json!({ "error": error, "error_description": description });
        *response.body_mut() = axum::body::Body::from(body.to_string());
        let headers = response.headers_mut();
        headers.remove(header::CONTENT_LENGTH);
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match statement.code {
            ErrorCode::InvalidClient => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"oauth\""),
                );
            }
            ErrorCode::InvalidToken => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            _ => {}
        }
        response
    }
}

impl From<WebLoginError> for ApiError {
    fn from(e: WebLoginError) -> Self {
        match e {
            WebLoginError::Store(e) => ApiError::Login(LoginError::Store(e)),
            WebLoginError::Wechat(e) => ApiError::Login(LoginError::Wechat(e)),
            other => ApiError::WebLogin(other),
        }
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
    /// The table's label: what the metrics count it as, and what its log lines are bounded by.
    label: &'static str,
    log: LogAs,
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
            label: statement.label,
            log: statement.log,
            detail: self.to_string(),
            store_kind: match &self {
                // A flood of logins, not a fault of the store: counted by the logins metric.
                ApiError::Login(LoginError::Store(StoreError::ClaimsFull(_))) => None,
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

/// The bounds of the error lines, one per label (and one for bad credentials, so that a flood
/// of other upstream errors cannot hide that line).
static ERROR_LINES: LazyLock<LogThrottles> =
    LazyLock::new(|| LogThrottles::new(log_throttle::EVERY));

/// Logs and counts the error an answer carries, once: the report is taken out, so a layer
/// further out that runs this again finds nothing. Every error is counted; its line is
/// written as the table's [`LogAs`] says.
pub fn report(response: &mut Response) {
    let _ = report_within(response, &ERROR_LINES);
}

/// [`report`] under `bounds`; says at which level a line was written, `None` when none was
/// (no error, or one left out by its bound).
fn report_within(response: &mut Response, bounds: &LogThrottles) -> Option<LogAs> {
    let report = response.extensions_mut().remove::<ErrorReport>()?;
    crate::metrics::error_answer(report.label);
    if let Some(kind) = report.store_kind {
        crate::metrics::store_error(kind);
    }
    let error = report.detail;
    let status = report.status.as_u16();
    let label = report.label;
    if report.log == LogAs::Debug {
        tracing::debug!(%error, status, "request refused");
        return Some(LogAs::Debug);
    }
    let kind = if report.misconfigured {
        "misconfigured"
    } else {
        label
    };
    let admitted = bounds.admit(kind)?;
    let suppressed = admitted.suppressed();
    let suppressed_secs = admitted.suppressed_secs();
    if report.misconfigured {
        tracing::error!(
            suppressed,
            suppressed_secs,
            %error,
            "check the AppID and its secret (WECHAT_APPID and WECHAT_SECRET, or CONFIG_FILE)"
        );
    } else if report.log == LogAs::Error {
        tracing::error!(suppressed, suppressed_secs, %error, status, %label, "request failed");
    } else {
        tracing::warn!(suppressed, suppressed_secs, %error, status, %label, "request refused");
    }
    Some(report.log)
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

    #[test]
    fn upstream_and_store_trouble_carry_retry_after() {
        for err in [
            ApiError::from(WechatError::Busy { attempts: 4 }),
            ApiError::from(WechatError::Timeout),
            ApiError::from(WechatError::Unreachable("refused".into())),
            ApiError::from(WechatError::RateLimited),
            ApiError::Login(LoginError::Store(StoreError::Unavailable("down".into()))),
            ApiError::Login(LoginError::Store(StoreError::ClaimsFull(20))),
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
    fn mini_program_code_refusals_say_what_to_do() {
        let quota = ApiError::from(WechatError::WxaCodeQuota);
        let stated = quota.statement();
        assert_eq!(
            (
                stated.status.as_u16(),
                stated.code,
                stated.label,
                stated.log
            ),
            (
                503,
                ErrorCode::QrQuotaExceeded,
                "qr_quota_exceeded",
                LogAs::Warn
            )
        );
        assert!(stated.code.is_transient());
        let response = quota.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "60");

        let page = ApiError::from(WechatError::WxaCodePageMissing);
        let stated = page.statement();
        assert_eq!(
            (stated.status.as_u16(), stated.code, stated.log),
            (500, ErrorCode::WebLoginPageMissing, LogAs::Error)
        );
        assert!(!stated.code.is_transient());
        let message = page.public_message();
        assert!(message.contains("WEB_LOGIN_PAGE"), "{message}");
        assert!(message.contains("trial or develop"), "{message}");

        let scene = ApiError::from(WechatError::InvalidScene);
        let stated = scene.statement();
        assert_eq!(
            (stated.status.as_u16(), stated.code, stated.label),
            (500, ErrorCode::Internal, "internal")
        );
        assert_eq!(scene.public_message(), "something went wrong on the server");
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
    fn refusals_a_flood_causes_are_warnings_and_faults_here_are_errors() {
        let log_of = |e: ApiError| e.statement().log;
        for flood in [
            ApiError::RateLimited {
                retry_after: Duration::from_secs(1),
            },
            ApiError::RequestTimeout,
            ApiError::from(WechatError::OverBudget {
                retry_after: Duration::from_secs(1),
            }),
            ApiError::from(WechatError::CircuitOpen {
                retry_after: Duration::from_secs(1),
            }),
            ApiError::from(WechatError::Busy { attempts: 3 }),
            ApiError::from(WechatError::Timeout),
            ApiError::from(WechatError::RateLimited),
        ] {
            assert_eq!(log_of(flood), LogAs::Warn);
        }
        for fault in [
            ApiError::Internal("bug".into()),
            ApiError::Login(LoginError::Store(StoreError::Unavailable("down".into()))),
            ApiError::from(WechatError::Unreachable("refused".into())),
        ] {
            assert_eq!(log_of(fault), LogAs::Error);
        }
        for mistake in [
            ApiError::MalformedJson("x".into()),
            ApiError::NotFound,
            ApiError::from(WechatError::InvalidCode),
            ApiError::Login(LoginError::NotLoggedIn),
        ] {
            assert_eq!(log_of(mistake), LogAs::Debug);
        }
    }

    /// Which lines are written, not what a subscriber makes of them: tracing caches each call
    /// site's interest across threads, so a test thread's own subscriber can miss a line that
    /// another test's thread met first. `tests/operations/log_volume.rs` reads the real log.
    #[test]
    fn a_flood_of_one_error_writes_one_line_and_another_error_still_gets_its_own() {
        let bounds = LogThrottles::new(log_throttle::EVERY);
        let mut lines = Vec::new();
        for _ in 0..1_000 {
            let over = WechatError::OverBudget {
                retry_after: Duration::from_secs(1),
            };
            lines.extend(report_within(
                &mut ApiError::from(over).into_response(),
                &bounds,
            ));
            assert_eq!(
                report_within(&mut ApiError::NotFound.into_response(), &bounds),
                Some(LogAs::Debug),
                "a client's mistake is a debug line every time"
            );
        }
        assert_eq!(lines, [LogAs::Warn]);
        let store_down = ApiError::Login(LoginError::Store(StoreError::Unavailable("x".into())));
        assert_eq!(
            report_within(&mut store_down.into_response(), &bounds),
            Some(LogAs::Error)
        );
        let again = WechatError::OverBudget {
            retry_after: Duration::from_secs(1),
        };
        assert_eq!(
            report_within(&mut ApiError::from(again).into_response(), &bounds),
            None
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
        let full = ApiError::Login(LoginError::Store(StoreError::ClaimsFull(20))).statement();
        assert_eq!(
            (full.status.as_u16(), full.code, full.label),
            (503, ErrorCode::LoginsInFlight, "logins_in_flight"),
            "a full claims table is not the store's fault"
        );
    }
}
