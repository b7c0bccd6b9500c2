//! Request ids and access logging.
//!
//! Every request gets an id (the caller's `X-Request-Id` when it is sane, else a fresh UUID),
//! echoed in the response and attached to every log line the request causes. Only the path is
//! logged, never the query string or headers: `/checklogin?token=` and `Authorization` carry
//! tokens, and a token in a log file is a login anyone with the file can use.

use std::time::Instant;

use axum::{
    extract::Request,
    http::{HeaderName, HeaderValue},
    middleware::Next,
    response::Response,
};
use tracing::Instrument;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub async fn log_request(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .filter(|v| {
            v.len() <= 64
                && v.as_bytes()
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        })
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .expect("a UUID is a valid header value")
        });
    request.headers_mut().insert(REQUEST_ID.clone(), id.clone());
    let span = tracing::info_span!(
        "request",
        id = %id.to_str().unwrap_or("-"),
        method = %request.method(),
        path = %request.uri().path(),
    );
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            micros = started.elapsed().as_micros() as u64,
            "done"
        );
    });
    response.headers_mut().insert(REQUEST_ID.clone(), id);
    response
}
