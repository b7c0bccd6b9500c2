//! One deadline for a request's whole body, counted from the moment its headers were read.
//!
//! A client that sends its headers and then one byte at a time would otherwise hold its
//! connection until `REQUEST_TIMEOUT`: a per-read timeout (tower-http's `TimeoutBody`) starts
//! again with every byte, so a trickle keeps it alive forever. Here the deadline is fixed
//! when the body is wrapped, and a body still unfinished then ends with [`BodyTimedOut`],
//! which the extractors turn into a 408 that closes the connection.

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
};

use axum::BoxError;
use hyper::body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

pin_project! {
    /// `inner`, ended with [`BodyTimedOut`] if it is not complete by `deadline`.
    #[derive(Debug)]
    pub struct DeadlineBody<B> {
        #[pin]
        inner: B,
        deadline: Instant,
        // Armed only once the body makes the reader wait: a request without a body, or whose
        // body came with its headers, never touches the timer.
        #[pin]
        timer: Option<Sleep>,
    }
}

impl<B> DeadlineBody<B> {
    pub fn new(inner: B, deadline: Instant) -> Self {
        Self {
            inner,
            deadline,
            timer: None,
        }
    }
}

/// The body was not complete by its deadline (`BODY_TIMEOUT`).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body did not arrive within BODY_TIMEOUT")]
pub struct BodyTimedOut;

impl BodyTimedOut {
    /// Whether `error`, or any error it was made from, is a body that ran out of time: body
    /// errors reach the extractors wrapped in axum's own.
    pub fn caused(error: &(dyn std::error::Error + 'static)) -> bool {
        let mut cause = Some(error);
        while let Some(error) = cause {
            if error.is::<BodyTimedOut>() {
                return true;
            }
            cause = error.source();
        }
        false
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        // Checked before the body, so that a steady trickle cannot outrun it either.
        if let Some(timer) = this.timer.as_mut().as_pin_mut()
            && timer.poll(cx).is_ready()
        {
            crate::metrics::connection_closed("body_timeout");
            return Poll::Ready(Some(Err(BodyTimedOut.into())));
        }
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        if this.timer.is_none() {
            this.timer
                .set(Some(tokio::time::sleep_until(*this.deadline)));
        }
        let timer = this.timer.as_pin_mut().expect("armed just above");
        ready!(timer.poll(cx));
        crate::metrics::connection_closed("body_timeout");
        Poll::Ready(Some(Err(BodyTimedOut.into())))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Bytes;
    use http_body_util::BodyExt;
    use std::{convert::Infallible, time::Duration};
    use tokio::sync::mpsc;

    /// A body the test feeds a chunk at a time, as a slow client sends one.
    struct Fed(mpsc::Receiver<Bytes>);

    impl Body for Fed {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            self.0
                .poll_recv(cx)
                .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
        }
    }

    /// A body of `chunks` bytes, one byte every `every`, under a deadline `limit` away.
    fn trickle(chunks: usize, every: Duration, limit: Duration) -> DeadlineBody<Fed> {
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            for _ in 0..chunks {
                tokio::time::sleep(every).await;
                if tx.send(Bytes::from_static(b"x")).await.is_err() {
                    return;
                }
            }
        });
        DeadlineBody::new(Fed(rx), Instant::now() + limit)
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_is_cut_off_at_the_deadline_not_kept_alive_by_each_byte() {
        let started = Instant::now();
        // A byte every 300 ms would take 30 s; each byte comes well within any per-read limit.
        let body = trickle(100, Duration::from_millis(300), Duration::from_secs(2));
        let error = body.collect().await.unwrap_err();
        assert!(BodyTimedOut::caused(&*error), "{error}");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_millis(2300),
            "ended after {took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_complete_before_its_deadline_is_read_whole() {
        let body = trickle(5, Duration::from_millis(300), Duration::from_secs(2));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"xxxxx");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_body_ends_at_its_deadline() {
        let started = Instant::now();
        let (_tx, rx) = mpsc::channel(1);
        let body = DeadlineBody::new(Fed(rx), Instant::now() + Duration::from_secs(5));
        let error = body.collect().await.unwrap_err();
        assert!(BodyTimedOut::caused(&*error));
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[test]
    fn the_cause_is_found_however_deeply_it_is_wrapped() {
        let wrapped = axum::Error::new(axum::Error::new(BodyTimedOut));
        assert!(BodyTimedOut::caused(&wrapped));
        assert!(!BodyTimedOut::caused(&axum::Error::new(
            std::io::Error::other("reset")
        )));
    }
}
