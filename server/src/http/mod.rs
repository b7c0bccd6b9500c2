//! The HTTP surface: routes, extractors and middleware. Read `login.rs`, `checklogin.rs` and
//! `logout.rs` in that order; they follow the flow.

mod checklogin;
mod extract;
pub mod harness;
mod health;
mod login;
mod logout;
mod openapi;
mod request_log;

use axum::{Router, extract::DefaultBodyLimit, middleware};
use tower_http::catch_panic::CatchPanicLayer;

use crate::{error::ApiError, state::AppState};

/// Largest request body accepted. A login body is `{"code": "<32 chars>"}`; a few KiB leaves
/// room for growth while a flood of large bodies costs nothing.
pub const BODY_LIMIT: usize = 4 * 1024;

/// The whole application, ready to serve. Tests call it directly.
pub fn router(state: AppState) -> Router {
    let mut app = Router::new()
        .merge(login::router())
        .merge(checklogin::router())
        .merge(logout::router())
        .merge(health::router())
        .merge(openapi::router());
    if let Some(sim) = &state.simulator {
        app = app
            .nest("/sim", sim.router())
            .merge(harness::router(&state.config.harness_dir));
    }
    app.fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError::Internal(
                "a handler panicked".into(),
            ))
        }))
        .layer(middleware::from_fn(request_log::log_request))
        .with_state(state)
}
