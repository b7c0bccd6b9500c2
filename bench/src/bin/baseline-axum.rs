//! The limit the login server is measured against: axum on tokio's default runtime (the
//! server's `#[tokio::main]`), answering `GET /checklogin` with the server's very response
//! (`Cache-Control: no-store`, `{"is_login":true}`, serialised from the same type) and no
//! store, no token, no middleware. Whatever the server spends beyond this is its own work.
//!
//! `GET /healthz` answers the server's `{"status":"ok"}` so the bench can wait for it as it
//! waits for every server. Binds `LISTEN_ADDR` (default `127.0.0.1:0`) and logs
//! `listening addr=…` as the server does; stops on SIGTERM or Ctrl-C.

use axum::{Json, Router, http::header, response::IntoResponse, routing::get};
use shared::CheckLoginResponse;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("listening addr={}", listener.local_addr()?);
    let app = Router::new()
        .route(
            "/checklogin",
            get(|| async {
                (
                    [(header::CACHE_CONTROL, "no-store")],
                    Json(CheckLoginResponse { is_login: true }),
                )
                    .into_response()
            }),
        )
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        );
    axum::serve(listener, app)
        .with_graceful_shutdown(server::shutdown_signal())
        .await
}
