//! A team's own API with the WeChat login mounted in it.
//!
//! The team keeps its state and its routes; the login service brings `/login`, `/checklogin`,
//! `/logout`, `/me` and `/auth` (and, in dev mode, the WeChat simulator), and any handler
//! learns its caller by taking [`AuthUser`]: a request without a live token never reaches the
//! handler (401), and store trouble is a 503, never a 401 that would log the user out.

use axum::{
    Json, Router,
    extract::{FromRef, State},
    routing::get,
};
use serde::Serialize;
use server::{ApiError, AuthUser, LoginState};

/// Everything the team's handlers share. `FromRef` lets the login routes and `AuthUser` take
/// their part of it.
#[derive(Debug, Clone, FromRef)]
pub struct AppState {
    pub login: LoginState,
    pub greeting: &'static str,
}

/// The whole app: the team's routes and the login routes, one router.
pub fn app(login: LoginState) -> Router {
    let state = AppState {
        login: login.clone(),
        greeting: "Hello from the business API",
    };
    Router::new()
        .route("/api/hello", get(hello))
        .merge(server::routes(login))
        // Unknown paths answer in the same JSON error shape as the login routes.
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
}

/// Answer of `GET /api/hello`.
#[derive(Debug, Serialize)]
pub struct Hello {
    /// The person: the same across the team's mini-programs, so the key of the team's data.
    pub user_id: String,
    /// Who they are in this mini-program, for a mini-program session.
    pub openid: Option<String>,
    pub greeting: String,
}

/// A protected endpoint: taking `AuthUser` is all it takes.
async fn hello(State(state): State<AppState>, user: AuthUser) -> Json<Hello> {
    Json(Hello {
        greeting: format!("{}, {}!", state.greeting, user.user_id),
        user_id: user.user_id.to_string(),
        openid: user.openid().map(str::to_owned),
    })
}
