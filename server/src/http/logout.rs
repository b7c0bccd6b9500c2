//! `POST /logout`: ends the session of the bearer token, or of the browser's web-session
//! cookie, on every instance at once; a browser's cookie is cleared too.

use utoipa_axum::{router::OpenApiRouter, routes};

use super::openapi::StoreUnavailable;
use axum::{
    extract::State,
    http::{HeaderMap, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use shared::ErrorBody;

use crate::http::{ApiError, LoginState, cookies, extract::MaybeBearer};

pub fn router() -> OpenApiRouter<LoginState> {
    OpenApiRouter::new().routes(routes!(logout))
}

#[utoipa::path(
    post,
    path = "/logout",
    tag = "login",
    summary = "End the session of the bearer token or web-session cookie, on every instance",
    description = "Idempotent: logging out an unknown or ended session succeeds too. With the \
        web-session cookie (and no bearer token) the request must come from the site itself \
        (`Sec-Fetch-Site: same-origin`, or an `Origin` in WEB_ORIGINS), and the cookie is \
        cleared.",
    security(("bearer" = []), ("web_session" = [])),
    responses(
        (status = 204, description = "Logged out",
            headers(("Set-Cookie" = String, description = "Clears the web-session cookie, when it was used"))),
        (status = 403, description = "A cookie-authenticated logout from another site (`csrf`)", body = ErrorBody),
        (status = 401, description = "No bearer token, or not a well-formed one", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "Bearer"))),
        (status = 503, response = StoreUnavailable),
    )
)]
pub(super) async fn logout(
    State(state): State<LoginState>,
    method: Method,
    headers: HeaderMap,
    MaybeBearer(bearer): MaybeBearer,
) -> Result<Response, ApiError> {
    if bearer.is_some() {
        state.login.logout(bearer.as_deref()).await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let cookie = cookies::read(&headers, cookies::SESSION_COOKIE);
    if cookie.is_some() && !state.csrf.allows(&method, &headers) {
        return Err(ApiError::Csrf);
    }
    state.login.logout(cookie.as_deref()).await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, cookies::clear_session())],
    )
        .into_response())
}
