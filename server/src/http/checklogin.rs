//! `GET /checklogin`: the check the mini-program makes at every launch.
//!
//! The token may come as `?token=` (the older form, kept for old clients) or as
//! `Authorization: Bearer` (preferred: headers stay out of proxy access logs). With both, the
//! header wins. No token at all is a plain "not logged in", as old clients expect.

use utoipa_axum::{router::OpenApiRouter, routes};

use super::openapi::StoreUnavailable;
use axum::{
    extract::{RawQuery, State},
    response::Response,
};
use shared::CheckLoginResponse;

use crate::http::{ApiError, LoginState, auth_user::check_answer, extract::MaybeBearer};

pub fn router() -> OpenApiRouter<LoginState> {
    OpenApiRouter::new().routes(routes!(check_login))
}

#[utoipa::path(
    get,
    path = "/checklogin",
    tag = "login",
    summary = "Is this token logged in?",
    description = "The token may come as `Authorization: Bearer` (preferred) or as `?token=` \
                   (the original form); with both, the header wins. No token is `false`.",
    params(("token" = Option<String>, Query, description = "The login token (legacy form)")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "A definite answer", body = CheckLoginResponse,
            headers(("Cache-Control" = String, description = "no-store"))),
        (status = 503, response = StoreUnavailable),
    )
)]
pub(super) async fn check_login(
    State(state): State<LoginState>,
    MaybeBearer(bearer): MaybeBearer,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    // Parsed by hand: a repeated or odd query must not turn into a plain-text rejection.
    let from_query = || {
        url::form_urlencoded::parse(query.as_deref()?.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
    };
    let token = bearer.or_else(from_query);
    let is_login = state.login.is_logged_in(token.as_deref()).await;
    state
        .check_counters
        .checklogin
        .count(check_answer(is_login.as_ref().copied()));
    let is_login = is_login?;
    Ok(super::private(CheckLoginResponse { is_login }))
}
