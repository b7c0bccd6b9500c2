//! `POST /login`: step 2 of the flow, where the mini-program hands over its `wx.login()` code.

use axum::{Json, Router, extract::State, routing::post};
use shared::{LoginRequest, LoginResponse, paths};

use crate::{
    auth,
    error::ApiError,
    http::extract::{AppJson, ClientIp},
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new().route(paths::LOGIN, post(login))
}

/// The seed answered `{"token"}`; `expires_in` is an addition old clients ignore.
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AppJson(request): AppJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    // Before the body is even judged: a flood of junk is throttled too.
    state
        .login_limiter
        .check(ip, std::time::Instant::now())
        .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
    let issued = auth::login(&state, &request.code).await?;
    Ok(Json(LoginResponse {
        token: issued.token.into_string(),
        expires_in: issued.expires_in,
    }))
}
