//! `GET /me`: who the bearer token belongs to, for the mini-program's pages and as the
//! smallest example of a handler that takes [`AuthUser`].

use utoipa_axum::{router::OpenApiRouter, routes};

use super::openapi::{StoreUnavailable, Unauthorized};
use axum::{extract::State, response::Response};
use shared::{MeResponse, PhoneNumber};

use crate::{
    http::{ApiError, LoginState},
    login::AuthUser,
    store::Phone,
};

pub fn router() -> OpenApiRouter<LoginState> {
    OpenApiRouter::new().routes(routes!(me))
}

#[utoipa::path(
    get,
    path = "/me",
    tag = "login",
    summary = "Who the session (bearer token or web-login cookie) belongs to",
    security(("bearer" = []), ("web_session" = [])),
    responses(
        (status = 200, description = "The logged-in user", body = MeResponse,
            headers(("Cache-Control" = String, description = "no-store"))),
        (status = 401, response = Unauthorized),
        (status = 503, response = StoreUnavailable),
    )
)]
pub(super) async fn me(
    State(state): State<LoginState>,
    user: AuthUser,
) -> Result<Response, ApiError> {
    let me = state.login.me(user).await?;
    let (user, phone) = (me.user, me.phone.map(wire_phone));
    let mp = user.mini_program.as_ref();
    let body = MeResponse {
        user_id: user.user_id.to_string(),
        kind: user.kind.as_str().to_owned(),
        openid: mp.map(|mp| mp.openid.clone()),
        unionid: mp.and_then(|mp| mp.unionid.clone()),
        appid: mp.map(|mp| mp.appid.clone()),
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
