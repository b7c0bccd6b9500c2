//! `/harness/` (dev mode only): the leptos browser harness that drives the client state
//! machine against this server, for watching and poking the login flow by hand and for the
//! browser tests. Until it is built, the page says how to build it instead of a bare 404.
//!
//! `/harness/web-login` is the harness's second page, a website's "scan to log in" page: the
//! same `index.html`, whose module picks the page by the address (one build, one entry point).

use std::path::Path;

use axum::{
    Router,
    http::{StatusCode, header},
    response::{Html, IntoResponse, Redirect},
    routing::get,
};
use tower_http::services::{ServeDir, ServeFile};

use crate::http::LoginState;

/// Where the harness is mounted.
pub const PATH: &str = "/harness";
/// The web login page, within the harness.
pub const WEB_LOGIN_PATH: &str = "/harness/web-login";

pub fn router(dir: &Path) -> Router<LoginState> {
    let router = Router::new().route(PATH, get(|| async { Redirect::permanent("/harness/") }));
    let index = dir.join("index.html");
    if index.is_file() {
        return router
            .route_service(WEB_LOGIN_PATH, ServeFile::new(index))
            .nest_service(
                "/harness/",
                ServeDir::new(dir).append_index_html_on_directories(true),
            );
    }
    let hint = not_built_page(dir);
    let explain = get(move || {
        let hint = hint.clone();
        async move {
            let no_cache = [(header::CACHE_CONTROL, "no-store")];
            (StatusCode::SERVICE_UNAVAILABLE, no_cache, Html(hint)).into_response()
        }
    });
    router
        .route("/harness/", explain.clone())
        .route("/harness/{*rest}", explain)
}

fn not_built_page(dir: &Path) -> String {
    format!(
        "<!doctype html><meta charset=utf-8><title>Harness not built</title>\
         <h1>The browser harness has not been built yet</h1>\
         <p>Build it with <code>cargo xtask build</code>, then reload this page \
         (restart the server if it was started before the build).</p>\
         <p>Looked in <code>{}</code>.</p>",
        dir.display()
    )
}
