//! Medians and the number formats of the report.
//!
//! Medians, not means: one round disturbed by something else on the machine (the other core
//! is shared) moves a mean of three by a third of the disturbance and a median not at all.

/// The median of `values` (the mean of the middle two for an even count); `NaN` when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

/// `part / whole`, or `NaN` when the whole is not a positive number (no baseline measured).
pub fn ratio(part: f64, whole: f64) -> f64 {
    if whole > 0.0 { part / whole } else { f64::NAN }
}

/// A whole number with thousands separators, as a reader expects it: `41,230`.
pub fn thousands(value: f64) -> String {
    if !value.is_finite() {
        return "n/a".into();
    }
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if value < -0.5 {
        out.insert(0, '-');
    }
    out
}

/// A ratio as `0.62×`.
pub fn times(ratio: f64) -> String {
    if ratio.is_finite() {
        format!("{ratio:.2}×")
    } else {
        "n/a".into()
    }
}

/// A byte count as `1.2 MiB`, `34.5 KiB` or `812 B`.
pub fn bytes(n: f64) -> String {
    const KIB: f64 = 1024.0;
    if !n.is_finite() {
        "n/a".into()
    } else if n >= KIB * KIB {
        format!("{:.1} MiB", n / KIB / KIB)
    } else if n >= KIB {
        format!("{:.1} KiB", n / KIB)
    } else {
        format!("{n:.0} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts_ignores_order_and_nan() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[5.0, f64::NAN, 1.0, 9.0]), 5.0);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn ratio_without_a_baseline_is_not_a_number() {
        assert_eq!(ratio(30.0, 40.0), 0.75);
        assert!(ratio(1.0, 0.0).is_nan());
        assert_eq!(times(0.754), "0.75×");
        assert_eq!(times(f64::NAN), "n/a");
    }

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(thousands(41_230.4), "41,230");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1_000_000.0), "1,000,000");
        assert_eq!(thousands(-1234.0), "-1,234");
        assert_eq!(bytes(812.0), "812 B");
        assert_eq!(bytes(35_328.0), "34.5 KiB");
        assert_eq!(bytes(3.5 * 1024.0 * 1024.0), "3.5 MiB");
    }
}
