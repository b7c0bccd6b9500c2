//! `GET /healthz`: liveness for load balancers. It does not touch the store, so a store
//! outage shows up as 503s on real requests rather than as instances pulled from rotation.

use axum::Json;
use serde::Serialize;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router<S: Clone + Send + Sync + 'static>() -> OpenApiRouter<S> {
    OpenApiRouter::new().routes(routes!(health))
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
