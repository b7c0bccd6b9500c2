//! Durations as settings are written: `250ms`, `90s`, `15m`, `12h`, `7d`.

use std::time::Duration;

/// An age limit that `0` turns off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxAge(pub Option<Duration>);

/// `0` (no limit) or a duration as [`parse_duration`] reads it.
pub fn parse_max_age(s: &str) -> Result<MaxAge, String> {
    if s.trim().trim_end_matches(|c: char| c.is_ascii_alphabetic()) == "0" {
        return Ok(MaxAge(None));
    }
    parse_duration(s).map(|d| MaxAge(Some(d)))
}

/// Parses `250ms`, `90`, `90s`, `15m`, `12h` or `7d`. Zero is refused: every duration here is
/// a timeout, a lifetime or an interval, and none of them means anything at zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 250ms, 90s, 15m, 12h or 7d"))?;
    if n == 0 {
        return Err(format!("{s:?}: the duration must be longer than zero"));
    }
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(format!(
                "unknown duration unit {other:?}: use ms, s, m, h or d"
            ));
        }
    };
    n.checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{s:?} is too long"))
}
