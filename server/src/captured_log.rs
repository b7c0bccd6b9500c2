//! A log writer that keeps what it was given, for tests that read their log lines back: that a
//! line carries its request id, that no secret ever reaches one.

use std::sync::{Arc, Mutex};

/// Cloned into a subscriber's `with_writer(move || log.clone())`; every clone appends to the
/// same buffer.
#[derive(Debug, Clone, Default)]
pub struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl CapturedLog {
    /// A log of this thread's lines at INFO and above, in plain text, kept until the guard
    /// drops.
    pub fn of_this_thread() -> (Self, tracing::subscriber::DefaultGuard) {
        let captured = Self::default();
        let writer = captured.clone();
        let guard = tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .with_max_level(tracing::Level::INFO)
                .finish(),
        );
        // Another thread, with no subscriber, may have met a call site first and left it
        // cached as disabled for every thread; this subscriber must see it.
        tracing::callsite::rebuild_interest_cache();
        (captured, guard)
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
