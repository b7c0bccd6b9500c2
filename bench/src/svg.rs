//! A horizontal bar chart as a standalone SVG, written by hand: a few rectangles and labels
//! need no plotting library, and the file stays small and readable in a diff.

use std::fmt::Write as _;

/// One bar: `label` inside its `group` (bars of one group are drawn under one heading, in the
/// order given), `value` sets the length, `note` is written after the value, and `range`
/// (lowest, highest), when given, is drawn across the bar as a whisker.
#[derive(Debug, Clone)]
pub struct Bar {
    pub group: String,
    pub label: String,
    pub value: f64,
    pub range: Option<(f64, f64)>,
    pub note: String,
    pub color: &'static str,
}

const WIDTH: f64 = 820.0;
const LABEL_WIDTH: f64 = 150.0;
/// Room right of the longest bar for its value and note.
const VALUE_WIDTH: f64 = 190.0;
const BAR_HEIGHT: f64 = 18.0;
const BAR_GAP: f64 = 6.0;
const GROUP_GAP: f64 = 28.0;
const TOP: f64 = 58.0;

/// The chart: `title` and `subtitle` on top, the bars below, each group under its heading.
pub fn bar_chart(title: &str, subtitle: &str, bars: &[Bar]) -> String {
    let max = bars
        .iter()
        .flat_map(|b| [b.value, b.range.map_or(f64::NAN, |(_, high)| high)])
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let span = WIDTH - LABEL_WIDTH - VALUE_WIDTH - 20.0;
    let x = |value: f64| {
        if max > 0.0 && value.is_finite() {
            LABEL_WIDTH + value / max * span
        } else {
            LABEL_WIDTH
        }
    };
    let mut body = String::new();
    let mut y = TOP;
    let mut group: Option<&str> = None;
    for bar in bars {
        if group != Some(bar.group.as_str()) {
            if group.is_some() {
                y += GROUP_GAP - BAR_GAP;
            }
            group = Some(&bar.group);
            let _ = writeln!(
                body,
                r#"  <text x="10" y="{:.1}" class="group">{}</text>"#,
                y + 4.0,
                escape(&bar.group)
            );
            y += 12.0;
        }
        let length = if max > 0.0 && bar.value.is_finite() {
            (bar.value / max * span).max(1.0)
        } else {
            0.0
        };
        let _ = writeln!(
            body,
            r#"  <text x="{:.1}" y="{:.1}" class="label">{}</text>"#,
            LABEL_WIDTH - 8.0,
            y + BAR_HEIGHT - 5.0,
            escape(&bar.label)
        );
        let _ = writeln!(
            body,
            r#"  <rect x="{LABEL_WIDTH:.1}" y="{y:.1}" width="{length:.1}" height="{BAR_HEIGHT:.1}" fill="{}"/>"#,
            bar.color
        );
        let mut end = LABEL_WIDTH + length;
        if let Some((low, high)) = bar.range.filter(|(l, h)| l.is_finite() && h.is_finite()) {
            let (from, to, mid) = (x(low), x(high), y + BAR_HEIGHT / 2.0);
            let _ = writeln!(
                body,
                r#"  <path d="M{from:.1} {mid:.1}H{to:.1}M{from:.1} {:.1}V{:.1}M{to:.1} {:.1}V{:.1}" class="range"/>"#,
                mid - 4.0,
                mid + 4.0,
                mid - 4.0,
                mid + 4.0
            );
            end = end.max(to);
        }
        let _ = writeln!(
            body,
            r#"  <text x="{:.1}" y="{:.1}" class="value">{}</text>"#,
            end + 6.0,
            y + BAR_HEIGHT - 5.0,
            escape(format!("{} {}", crate::stats::thousands(bar.value), bar.note).trim_end())
        );
        y += BAR_HEIGHT + BAR_GAP;
    }
    let height = y + 14.0;
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH:.0}" height="{height:.0}" viewBox="0 0 {WIDTH:.0} {height:.0}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="12">
  <style>
    .title {{ font-size: 15px; font-weight: 600; fill: #222; }}
    .subtitle {{ fill: #555; }}
    .group {{ font-weight: 600; fill: #222; }}
    .label {{ text-anchor: end; fill: #333; }}
    .value {{ fill: #333; }}
    .range {{ stroke: #222; stroke-width: 1.2; fill: none; }}
  </style>
  <rect width="100%" height="100%" fill="#fff"/>
  <text x="10" y="22" class="title">{}</text>
  <text x="10" y="40" class="subtitle">{}</text>
{body}</svg>
"##,
        escape(title),
        escape(subtitle)
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(group: &str, label: &str, value: f64) -> Bar {
        Bar {
            group: group.into(),
            label: label.into(),
            value,
            range: None,
            note: "(0.50×)".into(),
            color: "#4e79a7",
        }
    }

    #[test]
    fn bars_scale_to_the_largest_and_groups_get_one_heading() {
        let svg = bar_chart(
            "req/s",
            "a & b",
            &[
                bar("GET /checklogin", "baseline", 40_000.0),
                bar("GET /checklogin", "SQLite", 20_000.0),
                bar("POST /login", "SQLite", f64::NAN),
            ],
        );
        assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a &amp; b"), "text is escaped");
        assert_eq!(svg.matches(">GET /checklogin</text>").count(), 1);
        assert_eq!(svg.matches(">POST /login</text>").count(), 1);
        let span = WIDTH - LABEL_WIDTH - VALUE_WIDTH - 20.0;
        assert!(
            svg.contains(&format!(r#"width="{span:.1}""#)),
            "the largest fills the span"
        );
        assert!(
            svg.contains(&format!(r#"width="{:.1}""#, span / 2.0)),
            "half as long"
        );
        assert!(
            svg.contains(r#"width="0.0""#),
            "an unmeasured bar has no length"
        );
        assert!(svg.contains(">40,000 (0.50×)</text>"));
        assert!(svg.contains(">n/a (0.50×)</text>"));

        let whisker = bar_chart(
            "t",
            "s",
            &[Bar {
                range: Some((10.0, 20.0)),
                ..bar("g", "x", 15.0)
            }],
        );
        let at = |v: f64| LABEL_WIDTH + v / 20.0 * span;
        assert!(
            whisker.contains(&format!(r#"d="M{:.1} "#, at(10.0))),
            "the range's highest sets the scale: {whisker}"
        );
        assert!(whisker.contains(&format!(r#"x="{:.1}" y"#, at(20.0) + 6.0)));
    }
}
