//! The wall clock in the one unit the server stamps things with. Sessions, claims and access
//! tokens are compared across processes (several instances share one store), so they use unix
//! seconds rather than a process-local `Instant`.

/// Current time in unix seconds. A clock set before 1970 reads as 0 rather than failing: every
/// stamp is then "long expired", which is the safe way to be wrong.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Current time in unix milliseconds, for schedules finer than a second (webhook retries).
pub fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
