//! `GET /me`: who the bearer token belongs to, for the mini-program's pages and as the
//! smallest example of a handler that takes [`AuthUser`].

use axum::{Router, extract::State, response::Response, routing::get};
use shared::{ErrorBody, MeResponse, PhoneNumber, paths};

use crate::{
    http::{ApiError, LoginState},
    login::AuthUser,
    store::Phone,
};

pub fn router() -> Router<LoginState> {
    Router::new().route(paths::ME, get(me))
}

#[utoipa::path(
    get,
    path = "/me",
    tag = "login",
    summary = "Who the bearer token belongs to",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The logged-in user", body = MeResponse,
            headers(("Cache-Control" = String, description = "no-store"))),
        (status = 401, description = "No token, or one that is malformed, unknown, expired or revoked",
            body = ErrorBody, headers(("WWW-Authenticate" = String, description = "Bearer"))),
        (status = 503, description = "The session store is unavailable: retry, do not log in again",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub(super) async fn me(
    State(state): State<LoginState>,
    user: AuthUser,
) -> Result<Response, ApiError> {
    let me = state.login.me(user).await?;
    let (user, phone) = (me.user, me.phone.map(wire_phone));
    let body = MeResponse {
        openid: user.openid,
        unionid: user.unionid,
        appid: user.appid,
        expires_at: user.expires_at,
        phone,
    };
    Ok(super::private(body))
}

/// The stored number as the API shows it.
pub(super) fn wire_phone(phone: Phone) -> PhoneNumber {
    PhoneNumber {
        phone_number: phone.phone_number,
        pure_phone_number: phone.pure_phone_number,
        country_code: phone.country_code,
    }
}
