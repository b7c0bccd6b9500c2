//! `POST /logout`: ends the session of the bearer token on every instance at once.

use axum::{Router, extract::State, http::StatusCode, routing::post};
use shared::paths;

use crate::{auth, error::ApiError, http::extract::MaybeBearer, state::AppState};

pub fn router() -> Router<AppState> {
    Router::new().route(paths::LOGOUT, post(logout))
}

async fn logout(
    State(state): State<AppState>,
    MaybeBearer(bearer): MaybeBearer,
) -> Result<StatusCode, ApiError> {
    let token = bearer.ok_or(ApiError::Unauthorized)?;
    auth::logout(&state, &token).await?;
    Ok(StatusCode::NO_CONTENT)
}
