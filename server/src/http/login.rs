//! `POST /login`: step 2 of the flow, where the mini-program hands over its `wx.login()` code.

use utoipa_axum::{router::OpenApiRouter, routes};

use super::openapi::{
    BodyTimeout, PayloadTooLarge, UnsupportedMediaType, WechatTimeout, WechatUnreachable,
};
use axum::{extract::State, response::Response};
use shared::{ErrorBody, LoginRequest, LoginResponse};

use crate::{
    http::{
        ApiError, LoginState,
        extract::{AppJson, ClientIp, UserAgent},
    },
    login::LoginAttempt,
    metrics,
};

/// At most `max` characters of `text`, cut at a character boundary.
fn truncate_chars(text: &str, max: usize) -> &str {
    text.char_indices()
        .nth(max)
        .map_or(text, |(at, _)| &text[..at])
}

pub fn router() -> OpenApiRouter<LoginState> {
    OpenApiRouter::new().routes(routes!(login))
}

/// Old clients read `{"token"}` only; `expires_in` is an addition they ignore.
#[utoipa::path(
    post,
    path = "/login",
    tag = "login",
    summary = "Exchange a wx.login() code for a login token",
    description = "Idempotent per code: repeating a request with the same code within its \
                   five-minute life returns the same token without a second WeChat call.",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse,
            headers(("Cache-Control" = String, description = "no-store"))),
        (status = 400, description = "Malformed body, a malformed, unknown, expired or used code, \
            or an `appid` the server does not serve (unknown_app)", body = ErrorBody),
        (status = 403, description = "WeChat refused a high-risk user (high_risk_user), sign-up \
            is closed to people without an account (signup_closed), WeChat's risk rank is above \
            what sign-up allows (risk_rejected), or the account is disabled (account_disabled)",
            body = ErrorBody),
        (status = 408, response = BodyTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, description = "Too many logins from this client, or WeChat's quota", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 502, response = WechatUnreachable),
        (status = 503, description = "WeChat busy, the app's WeChat budget spent or its breaker \
            open (upstream_unavailable), the session store unavailable (store_unavailable), or \
            as many logins in the middle of their exchange as the server holds \
            (logins_in_flight)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 504, response = WechatTimeout),
    )
)]
pub(super) async fn login(
    State(state): State<LoginState>,
    ClientIp(ip): ClientIp,
    UserAgent(user_agent): UserAgent,
    AppJson(request): AppJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let client = state.config.client_keying().key(ip);
    // Before the body is even judged: a flood of junk is throttled too.
    if let Err(retry_after) = state.login_limiter.check(client) {
        metrics::rate_limited("login");
        metrics::login("rate_limited");
        return Err(ApiError::RateLimited { retry_after });
    }
    if let Some(device) = &request.device
        && device.chars().count() > shared::MAX_DEVICE_CHARS
    {
        return Err(ApiError::InvalidRequest(format!(
            "`device` is longer than {} characters",
            shared::MAX_DEVICE_CHARS
        )));
    }
    let device = request
        .device
        .as_deref()
        .or_else(|| user_agent.as_deref())
        .map(|d| truncate_chars(d, shared::MAX_DEVICE_CHARS));
    let attempt = LoginAttempt {
        appid: request.appid.as_deref(),
        code: &request.code,
        client,
        ip: Some(ip),
        device,
    };
    let issued = state.login.login(attempt).await.map_err(ApiError::from);
    metrics::login(match &issued {
        Ok(_) => "ok",
        Err(e) => e.statement().label,
    });
    let issued = issued?;
    Ok(super::private(LoginResponse {
        token: issued.token.into_string(),
        expires_in: issued.expires_in,
    }))
}
