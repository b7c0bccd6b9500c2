//! `POST /login`: step 2 of the flow, where the mini-program hands over its `wx.login()` code.

use axum::{Router, extract::State, response::Response, routing::post};
use shared::{ErrorBody, LoginRequest, LoginResponse, paths};

use crate::{
    http::{
        ApiError, LoginState,
        extract::{AppJson, ClientIp},
    },
    metrics,
};

pub fn router() -> Router<LoginState> {
    Router::new().route(paths::LOGIN, post(login))
}

/// The seed answered `{"token"}`; `expires_in` is an addition old clients ignore.
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
        (status = 403, description = "WeChat refused a high-risk user", body = ErrorBody),
        (status = 413, description = "Body over 4 KiB", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
        (status = 429, description = "Too many logins from this client, or WeChat's quota", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 502, description = "WeChat unreachable or refusing this server", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "WeChat busy, or the session store is unavailable", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 504, description = "WeChat did not answer in time", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub(super) async fn login(
    State(state): State<LoginState>,
    ClientIp(ip): ClientIp,
    AppJson(request): AppJson<LoginRequest>,
) -> Result<Response, ApiError> {
    // Before the body is even judged: a flood of junk is throttled too.
    if let Err(retry_after) = state.login_limiter.check(ip) {
        metrics::rate_limited("login");
        metrics::login("rate_limited");
        return Err(ApiError::RateLimited { retry_after });
    }
    let issued = state
        .login
        .login(request.appid.as_deref(), &request.code)
        .await
        .map_err(ApiError::from);
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
