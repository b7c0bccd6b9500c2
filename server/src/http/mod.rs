//! The HTTP surface: routes, extractors and middleware. Read `login.rs`, `checklogin.rs`,
//! `me.rs`, `forward_auth.rs` and `logout.rs` in that order; they follow the flow.
//!
//! Two ways in: [`routes`] is what a team merges into its own app (the login endpoints and
//! nothing that could clash with theirs); [`router`] is the standalone server's whole app.

mod auth_user;
mod body_deadline;
mod checklogin;
mod cookies;
pub mod csrf;
mod error;
mod extract;
mod forward_auth;
mod harness;
mod health;
mod login;
mod login_state;
mod logout;
mod me;
mod me_sessions;
mod oidc;
mod open_data;
mod openapi;
mod request_log;
mod web_login;

pub use body_deadline::{BodyTimedOut, DeadlineBody};
pub use cookies::{SESSION_COOKIE, TICKET_COOKIE_PREFIX};
pub use error::{ApiError, Statement, report};
pub use forward_auth::{APPID_HEADER, OPENID_HEADER, UNIONID_HEADER, USER_ID_HEADER};
pub use login_state::{LoginState, Parts};
pub use openapi::ApiDoc;

use utoipa_axum::router::OpenApiRouter;

use axum::{Router, extract::DefaultBodyLimit};
use tower_http::catch_panic::CatchPanicLayer;

/// Largest request body accepted. A login body is `{"code": "<32 chars>"}`; a few KiB leaves
/// room for growth while a flood of large bodies costs nothing.
pub const BODY_LIMIT: usize = 4 * 1024;

/// A JSON answer that carries a token or user data: `Cache-Control: no-store`, so no browser,
/// WebView or shared proxy keeps it for a later caller.
fn private<T: serde::Serialize>(body: T) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        axum::Json(body),
    )
        .into_response()
}

/// The login endpoints (`/login`, `/checklogin`, `/logout`, `/me`, `/auth`, `/web-login`, and in dev mode
/// the simulator at `/sim` and the harness at `/harness/`), ready to merge into an app of any
/// state type. Fallbacks, health checks and access logs stay the app's own.
pub fn routes<S>(state: LoginState) -> Router<S> {
    let (mut api, _) = documented_routes().split_for_parts();
    if let Some(sim) = &state.simulator {
        api = api
            .nest("/sim", sim.router())
            .merge(harness::router(&state.config.harness_dir));
    }
    // One `layer` call: axum boxes every route's service once per call, and this runs on
    // every request of the login endpoints, `/checklogin` included.
    let layers = tower::ServiceBuilder::new()
        .layer(error::report_layer())
        .layer(DefaultBodyLimit::max(BODY_LIMIT));
    api.layer(layers).with_state(state)
}

/// Every documented login endpoint, each module's routes with their OpenAPI paths: the one
/// declaration both [`routes`] and the document are made from.
fn documented_routes() -> OpenApiRouter<LoginState> {
    OpenApiRouter::new()
        .merge(login::router())
        .merge(checklogin::router())
        .merge(me::router())
        .merge(me_sessions::router())
        .merge(forward_auth::router())
        .merge(logout::router())
        .merge(open_data::router())
        .merge(web_login::router())
        .merge(oidc::router())
}

/// The OpenAPI document of the standalone server's API, as `/openapi.json` serves it.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    openapi::document(documented_routes())
}

/// The standalone server's app: [`routes`] plus `/healthz`, `/openapi.json`, JSON fallbacks,
/// panic recovery and request logging. Tests call it directly.
pub fn router(state: LoginState) -> Router {
    Router::new()
        .merge(routes(state))
        .merge(health::router().split_for_parts().0)
        .merge(openapi::router(openapi_document()))
        // These answers are made outside `routes`, whose layer reports its own errors; each
        // reports itself rather than add a layer to every request, `/healthz` included.
        .fallback(|| async { reported(ApiError::NotFound) })
        .method_not_allowed_fallback(|| async { reported(ApiError::MethodNotAllowed) })
        .layer(CatchPanicLayer::custom(|_| {
            reported(ApiError::Internal("a handler panicked".into()))
        }))
        .layer(request_log::RequestLogLayer)
}

/// `error`'s answer, logged and counted already.
fn reported(error: ApiError) -> axum::response::Response {
    let mut response = axum::response::IntoResponse::into_response(error);
    report(&mut response);
    response
}
