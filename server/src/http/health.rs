//! `GET /healthz`: liveness for load balancers. It does not touch the store, so a store
//! outage shows up as 503s on real requests rather than as instances pulled from rotation.

use axum::{Json, Router, routing::get};
use serde_json::{Value, json};
use shared::paths;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route(
        paths::HEALTH,
        get(|| async { Json::<Value>(json!({"status": "ok"})) }),
    )
}
