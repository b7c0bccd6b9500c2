//! Request ids and access logging.
//!
//! Every request gets an id (the caller's `X-Request-Id` when it is sane, else a fresh one),
//! echoed in the response and attached, through an `info` span, to every log line the request
//! causes, so a client's report of an id finds its login or error in the log. Only the path is
//! logged, never the query string or headers: `/checklogin?token=` and `Authorization` carry
//! tokens, and a token in a log file is a login anyone with the file can use.
//!
//! This runs on every request, `/checklogin` included, so it is kept cheap: fresh ids come
//! from a counter behind a per-process random prefix (no random-number syscall per request),
//! and the one-line access log is at `debug`, as tower-http's `TraceLayer` puts it: at the
//! default `info` nothing is formatted or written for a request that logs nothing itself.
//! `RUST_LOG=info,server::http::request_log=debug` turns the access lines on.

use std::{
    sync::{
        LazyLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use axum::{
    extract::Request,
    http::{HeaderName, HeaderValue},
    middleware::Next,
    response::Response,
};
use tracing::Instrument;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest caller-sent id kept; longer ones are replaced.
const MAX_ID_LEN: usize = 64;

pub async fn log_request(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .filter(|v| is_sane_id(v.as_bytes()))
        .cloned()
        .unwrap_or_else(fresh_id);
    let span = tracing::info_span!(
        "request",
        id = id.to_str().unwrap_or("-"),
        method = %request.method(),
        path = request.uri().path(),
    );
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::debug!(
            status = response.status().as_u16(),
            micros = started.elapsed().as_micros() as u64,
            "done"
        );
    });
    response.headers_mut().insert(REQUEST_ID.clone(), id);
    response
}

/// Short, and only characters that cannot forge a log line or a header.
fn is_sane_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

/// Drawn once: ids of different processes (instances, restarts) differ by it.
static PROCESS_PREFIX: LazyLock<u64> = LazyLock::new(|| {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS has randomness");
    u64::from_le_bytes(bytes)
});

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// `<16 hex digits of the process prefix>-<16 hex digits of a counter>`: unique within the
/// process, and across processes but for a 2⁻⁶⁴ chance.
fn fresh_id() -> HeaderValue {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let mut text = [0u8; 33];
    write_hex(&mut text[..16], *PROCESS_PREFIX);
    text[16] = b'-';
    write_hex(&mut text[17..], n);
    HeaderValue::from_bytes(&text).expect("hex digits and a dash make a header value")
}

fn write_hex(out: &mut [u8], value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in out.iter_mut().rev().enumerate() {
        *byte = DIGITS[((value >> (4 * i)) & 0xf) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_ids_share_the_process_prefix_and_never_repeat() {
        let ids: Vec<String> = (0..1000)
            .map(|_| fresh_id().to_str().unwrap().to_owned())
            .collect();
        let prefix = format!("{:016x}-", *PROCESS_PREFIX);
        for id in &ids {
            assert_eq!(id.len(), 33, "{id}");
            assert!(id.starts_with(&prefix), "{id}");
            assert!(is_sane_id(id.as_bytes()));
        }
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
    }

    #[test]
    fn hex_is_fixed_width() {
        let mut out = [0u8; 16];
        write_hex(&mut out, 0xab);
        assert_eq!(&out, b"00000000000000ab");
        write_hex(&mut out, u64::MAX);
        assert_eq!(&out, b"ffffffffffffffff");
    }

    #[test]
    fn only_short_plain_ids_are_taken_from_the_caller() {
        assert!(is_sane_id(b"trace-123"));
        assert!(is_sane_id(&[b'a'; MAX_ID_LEN]));
        for bad in [&b""[..], &[b'a'; MAX_ID_LEN + 1], b"a b", b"a\r\nb", b"a_b"] {
            assert!(!is_sane_id(bad), "{bad:?}");
        }
    }
}
