//! Deterministic retry delays: doubling from a base, capped, no jitter.
//!
//! Jitter spreads retries of many clients over time, but each mini-program instance is one user,
//! and deterministic delays make the machine's behaviour reproducible in tests and logs. The
//! server's `Retry-After` (handled by the machine) is what protects it under load.

use crate::config::Config;

/// Delay before the next attempt after `failures` consecutive failures (1 for the first):
/// `base`, `2·base`, `4·base`, … but never more than `max_backoff_ms`.
pub fn delay_ms(config: &Config, failures: u32) -> u64 {
    let doublings = failures.saturating_sub(1).min(63);
    let factor = 1u64 << doublings;
    config
        .base_backoff_ms
        .saturating_mul(factor)
        .min(config.max_backoff_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_base_up_to_the_cap() {
        let config = Config::default();
        let delays: Vec<u64> = (1..=9).map(|n| delay_ms(&config, n)).collect();
        assert_eq!(
            delays,
            [
                500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000
            ]
        );
    }

    #[test]
    fn huge_failure_counts_do_not_overflow() {
        let config = Config::default();
        assert_eq!(delay_ms(&config, u32::MAX), 30_000);
        assert_eq!(delay_ms(&config, 0), 500);
    }
}
