//! A reader of Prometheus' text exposition format (version 0.0.4), strict enough that a
//! malformed line fails the test that scraped it: `# HELP` and `# TYPE` comments, and samples
//! `name{label="value",…} value [timestamp]` with escaped label values.

use std::collections::BTreeMap;

/// One scrape: every sample, and the type each metric family declared.
#[derive(Debug, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    pub types: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Exposition {
    /// `GET /metrics` from the listener at `addr`, parsed.
    pub async fn scrape(addr: std::net::SocketAddr) -> Self {
        let text = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        Self::parse(&text)
    }

    /// Parses `text`, panicking with the line at the first one that is not the format.
    pub fn parse(text: &str) -> Self {
        let mut exposition = Self::default();
        for (number, line) in text.lines().enumerate() {
            let fail = |why: &str| panic!("exposition line {}: {why}: {line:?}", number + 1);
            if line.trim().is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                let mut words = comment.trim_start().splitn(3, ' ');
                match (words.next(), words.next(), words.next()) {
                    (Some("TYPE"), Some(name), Some(kind)) => {
                        let known = ["counter", "gauge", "histogram", "summary", "untyped"];
                        if !is_metric_name(name) || !known.contains(&kind) {
                            fail("a TYPE line names a metric and one of the five types");
                        }
                        if exposition.types.insert(name.into(), kind.into()).is_some() {
                            fail("a second TYPE line for one metric");
                        }
                    }
                    (Some("HELP"), Some(name), _) if is_metric_name(name) => {}
                    (Some("HELP" | "TYPE"), ..) => fail("a malformed HELP or TYPE line"),
                    _ => {} // any other comment
                }
                continue;
            }
            match parse_sample(line) {
                Some(sample) => exposition.samples.push(sample),
                None => fail("not a sample"),
            }
        }
        exposition
    }

    /// The value of the sample named `name` whose labels include `labels`; `None` when there
    /// is none. Panics when several match: the caller's labels did not pick one series.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut matching = self.samples.iter().filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        });
        let first = matching.next()?;
        assert!(
            matching.next().is_none(),
            "{name} {labels:?} matches several series"
        );
        Some(first.value)
    }

    /// Like [`Exposition::value`], with an absent series read as 0, as Prometheus' `rate`
    /// reads a counter not yet created.
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or(0.0)
    }

    /// The declared type of the family `name`.
    pub fn type_of(&self, name: &str) -> Option<&str> {
        self.types.get(name).map(String::as_str)
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    is_metric_name(name) && !name.contains(':')
}

/// `name{labels} value [timestamp]`, or `None` when the line is not one.
fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' ']).unwrap_or(line.len());
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = parse_labels(inner, &mut labels)?;
    }
    let mut fields = rest.strip_prefix(' ')?.split(' ');
    let value = parse_value(fields.next()?)?;
    if let Some(timestamp) = fields.next() {
        timestamp.parse::<i64>().ok()?;
    }
    if fields.next().is_some() {
        return None;
    }
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Reads `k="v",…}` into `labels`; the text after the closing brace.
fn parse_labels<'a>(mut text: &'a str, labels: &mut BTreeMap<String, String>) -> Option<&'a str> {
    loop {
        if let Some(rest) = text.strip_prefix('}') {
            return Some(rest);
        }
        let (name, rest) = text.split_once("=\"")?;
        if !is_label_name(name) {
            return None;
        }
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let after = loop {
            match chars.next()? {
                (i, '"') => break &rest[i + 1..],
                (_, '\\') => match chars.next()?.1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    _ => return None,
                },
                (_, c) => value.push(c),
            }
        };
        if labels.insert(name.to_owned(), value).is_some() {
            return None;
        }
        text = after.strip_prefix(',').unwrap_or(after);
        if !after.starts_with([',', '}']) {
            return None;
        }
    }
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_types_samples_and_escaped_labels() {
        let text = "# HELP a_total Things.\n# TYPE a_total counter\n\
                    a_total{kind=\"x\\\"y\\\\z\",b=\"\"} 3\nb_seconds_bucket{le=\"+Inf\"} 2 1700000000\n\
                    c 1.5e3\n";
        let e = Exposition::parse(text);
        assert_eq!(e.type_of("a_total"), Some("counter"));
        assert_eq!(
            e.value("a_total", &[("kind", "x\"y\\z"), ("b", "")]),
            Some(3.0)
        );
        assert_eq!(e.value("b_seconds_bucket", &[("le", "+Inf")]), Some(2.0));
        assert_eq!(e.value("c", &[]), Some(1500.0));
        assert_eq!(e.count("missing_total", &[]), 0.0);
    }

    #[test]
    #[should_panic(expected = "not a sample")]
    fn refuses_a_line_that_is_not_the_format() {
        Exposition::parse("a_total{kind=\"x} 3\n");
    }

    #[test]
    #[should_panic(expected = "not a sample")]
    fn refuses_a_value_that_is_not_a_number() {
        Exposition::parse("a_total 3x\n");
    }
}
