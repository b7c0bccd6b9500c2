//! `GET /healthz`: liveness for load balancers. It does not touch the store, so a store
//! outage shows up as 503s on real requests rather than as instances pulled from rotation.

use axum::{Json, Router, routing::get};
use serde::Serialize;
use shared::paths;

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route(paths::HEALTH, get(health))
}

/// Always `{"status": "ok"}` while the process serves requests.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Health {
    status: &'static str,
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Liveness probe",
    responses((status = 200, description = "The process is serving", body = Health))
)]
pub(super) async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}
