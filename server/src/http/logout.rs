//! `POST /logout`: ends the session of the bearer token on every instance at once.

use utoipa_axum::{router::OpenApiRouter, routes};

use super::openapi::StoreUnavailable;
use axum::{extract::State, http::StatusCode};
use shared::ErrorBody;

use crate::http::{ApiError, LoginState, extract::MaybeBearer};

pub fn router() -> OpenApiRouter<LoginState> {
    OpenApiRouter::new().routes(routes!(logout))
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
        (status = 503, response = StoreUnavailable),
    )
)]
pub(super) async fn logout(
    State(state): State<LoginState>,
    MaybeBearer(bearer): MaybeBearer,
) -> Result<StatusCode, ApiError> {
    state.login.logout(bearer.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}
