//! `POST /logout`: ends the session of the bearer token on every instance at once.

use axum::{Router, extract::State, http::StatusCode, routing::post};
use shared::{ErrorBody, paths};

use crate::{auth, error::ApiError, http::extract::MaybeBearer, state::AppState};

pub fn router() -> Router<AppState> {
    Router::new().route(paths::LOGOUT, post(logout))
}

#[utoipa::path(
    post,
    path = "/logout",
    tag = "login",
    summary = "End the session of the bearer token, on every instance",
    description = "Idempotent: logging out an unknown or ended session succeeds too.",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, description = "No bearer token, or not a well-formed one", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "Bearer"))),
        (status = 503, description = "The session store is unavailable", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub(super) async fn logout(
    State(state): State<AppState>,
    MaybeBearer(bearer): MaybeBearer,
) -> Result<StatusCode, ApiError> {
    let token = bearer.ok_or(ApiError::Unauthorized)?;
    auth::logout(&state, &token).await?;
    Ok(StatusCode::NO_CONTENT)
}
