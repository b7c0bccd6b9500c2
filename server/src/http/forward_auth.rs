//! `GET /auth`: forward authentication, so a backend in any language learns the user behind a
//! request from its reverse proxy. nginx (`auth_request`), Traefik (`forwardAuth`) and Envoy
//! (`ext_authz`) send us the client's `Authorization` header; a `2xx` lets the request through
//! with the headers below copied onto it, anything else is the client's answer.
//!
//! Proxies differ in what they send: nginx's subrequest is a `GET` of `/auth`, Traefik keeps
//! the client's method when `preserveRequestMethod` is set, and Envoy keeps the method and
//! appends the client's path to its prefix (`/auth/api/orders`). So every usual method is
//! answered, at `/auth` and below it. The `Authorization` header decides, or else a browser's
//! web-session cookie; for the cookie, the CSRF rule applies to the client's own request,
//! whose method the proxy names in `X-Original-Method` (nginx) or `X-Forwarded-Method`
//! (Traefik) and whose `Origin` and `Sec-Fetch-Site` it passes along.
//!
//! The proxy must also drop these headers when the client sends them itself, or a client
//! could name any user: `deploy/nginx.conf` shows how.

use utoipa_axum::{router::OpenApiRouter, routes};

use super::openapi::{StoreUnavailable, Unauthorized};
use axum::{
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    routing::{MethodFilter, on},
};
use shared::paths;

use crate::{
    http::{ApiError, LoginState},
    login::AuthUser,
};

/// The person's account id: the same for all their sessions, of every app and kind.
pub const USER_ID_HEADER: HeaderName = HeaderName::from_static("x-user-id");
/// The user's openid in this mini-program (mini-program sessions only).
pub const OPENID_HEADER: HeaderName = HeaderName::from_static("x-wechat-openid");
/// The mini-program's AppID.
pub const APPID_HEADER: HeaderName = HeaderName::from_static("x-wechat-appid");
/// The user's unionid, only when WeChat gave one.
pub const UNIONID_HEADER: HeaderName = HeaderName::from_static("x-wechat-unionid");

pub fn router() -> OpenApiRouter<LoginState> {
    let methods = MethodFilter::GET
        .or(MethodFilter::POST)
        .or(MethodFilter::PUT)
        .or(MethodFilter::PATCH)
        .or(MethodFilter::DELETE);
    // The documented operation, served by the method filter above (the path attribute names
    // the same methods); the original path a proxy may append is served alike, undocumented.
    let (schemas, paths, _) = routes!(forward_auth);
    OpenApiRouter::new()
        .routes((schemas, paths, on(methods, forward_auth)))
        .route(
            &format!("{}/{{*original_path}}", paths::FORWARD_AUTH),
            on(methods, forward_auth),
        )
}

#[utoipa::path(
    method(get, post, put, patch, delete),
    path = "/auth",
    tag = "login",
    summary = "Forward auth: who the bearer token or web-session cookie belongs to, as headers for a reverse proxy",
    description = "A web session (cookie) gets X-User-Id only. With the cookie, a client request \
        that changes something (its method in X-Original-Method or X-Forwarded-Method) must come \
        from the site itself (Sec-Fetch-Site: same-origin, or an Origin in WEB_ORIGINS), else 403 csrf.",
    security(("bearer" = []), ("web_session" = [])),
    responses(
        (status = 204, description = "Logged in; copy these headers onto the upstream request",
            headers(
                ("X-User-Id" = String, description = "The person's account id"),
                ("X-WeChat-OpenId" = String, description = "The user's openid"),
                ("X-WeChat-AppId" = String, description = "The mini-program's AppID"),
                ("X-WeChat-UnionId" = String, description = "The user's unionid, when known"),
                ("Cache-Control" = String, description = "no-store"),
            )),
        (status = 401, response = Unauthorized),
        (status = 403, description = "A cookie-authenticated change from another site (`csrf`)", body = shared::ErrorBody),
        (status = 503, response = StoreUnavailable),
    )
)]
pub(super) async fn forward_auth(user: AuthUser) -> Result<(StatusCode, HeaderMap), ApiError> {
    let mut headers = HeaderMap::with_capacity(5);
    headers.insert(USER_ID_HEADER, header_value(&user.user_id.to_string())?);
    if let Some(mp) = &user.mini_program {
        headers.insert(OPENID_HEADER, header_value(&mp.openid)?);
        headers.insert(APPID_HEADER, header_value(&mp.appid)?);
        if let Some(unionid) = &mp.unionid {
            headers.insert(UNIONID_HEADER, header_value(unionid)?);
        }
    }
    // A proxy may cache auth answers; one user's answer must never serve another's request.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok((StatusCode::NO_CONTENT, headers))
}

/// WeChat's ids are URL-safe ASCII; anything else would be a corrupt session, not a header.
fn header_value(id: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(id)
        .map_err(|_| ApiError::Internal("a stored WeChat id is not a valid header value".into()))
}
