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
    future::Future,
    pin::Pin,
    sync::{
        LazyLock,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll, ready},
    time::Instant,
};

use axum::{
    extract::Request,
    http::{HeaderName, HeaderValue},
    response::Response,
};
use tracing::Span;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest caller-sent id kept; longer ones are replaced.
const MAX_ID_LEN: usize = 64;

/// Gives every request its id and span, and logs the access line. A tower layer with a future
/// of its own rather than `middleware::from_fn`, whose boxed future and cloned inner service
/// per request cost `/checklogin` a measurable share of its time.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestLogLayer;

impl<S> tower::Layer<S> for RequestLogLayer {
    type Service = RequestLog<S>;

    fn layer(&self, inner: S) -> RequestLog<S> {
        RequestLog { inner }
    }
}

/// See [`RequestLogLayer`].
#[derive(Debug, Clone)]
pub struct RequestLog<S> {
    inner: S,
}

impl<S> tower::Service<Request> for RequestLog<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Logged<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let id = request
            .headers()
            .get(&REQUEST_ID)
            .filter(|v| is_sane_id(v.as_bytes()))
            .cloned()
            .unwrap_or_else(fresh_id);
        // Displayed, not debugged: hyper has already refused a path with characters that
        // could forge a log line, and the id passed `is_sane_id` or is ours.
        let span = tracing::info_span!(
            "request",
            id = %id.to_str().unwrap_or("-"),
            method = %request.method(),
            path = %request.uri().path(),
        );
        // The clock is read for the access line only, which is off by default.
        let started = tracing::enabled!(tracing::Level::DEBUG).then(Instant::now);
        // Entered only around polls: building the inner future (axum's routing) logs nothing,
        // and an enter and exit per request are measurable on `/checklogin`.
        let inner = self.inner.call(request);
        Logged {
            inner,
            span,
            id: Some(id),
            started,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response of [`RequestLog`]: the inner future polled inside the request's span, then
    /// the access line and the `X-Request-Id` header.
    pub struct Logged<F> {
        #[pin]
        inner: F,
        span: Span,
        id: Option<HeaderValue>,
        started: Option<Instant>,
    }
}

impl<F, E> Future for Logged<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(started) = this.started {
            tracing::debug!(
                status = response.status().as_u16(),
                micros = started.elapsed().as_micros() as u64,
                "done"
            );
        }
        if let Some(id) = this.id.take() {
            response.headers_mut().insert(REQUEST_ID.clone(), id);
        }
        Poll::Ready(Ok(response))
    }
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

    #[tokio::test(flavor = "current_thread")]
    async fn a_line_the_request_causes_carries_its_id_and_the_answer_echoes_it() {
        use tower::{Layer, ServiceExt};
        let (captured, _subscriber) = crate::captured_log::CapturedLog::of_this_thread();
        let handler = tower::service_fn(|_: Request| async {
            tracing::warn!("store slow");
            Ok::<_, std::convert::Infallible>(Response::new(axum::body::Body::empty()))
        });
        let service = RequestLogLayer.layer(handler);

        let asked = Request::builder()
            .uri("/checklogin?token=secret")
            .header(&REQUEST_ID, "trace-42")
            .body(axum::body::Body::empty())
            .unwrap();
        let answer = service.clone().oneshot(asked).await.unwrap();
        assert_eq!(answer.headers()[&REQUEST_ID], "trace-42");
        let fresh = service
            .oneshot(Request::new(axum::body::Body::empty()))
            .await
            .unwrap();
        let fresh_id = fresh.headers()[&REQUEST_ID].to_str().unwrap().to_owned();
        assert!(fresh_id.starts_with(&format!("{:016x}-", *PROCESS_PREFIX)));

        let log = captured.text();
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 2, "{log}");
        assert!(
            lines[0].contains("request{id=trace-42 method=GET path=/checklogin}")
                && lines[0].contains("store slow"),
            "{log}"
        );
        assert!(lines[1].contains(&format!("id={fresh_id}")), "{log}");
        assert!(
            !log.contains("secret"),
            "the query stays out of the log: {log}"
        );
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
