//! The crate docs' JSON examples and config, checked against the code.

use client_wasm::{Config, Effect, Event};

/// Every JSON example in the crate docs parses as what it claims to be, and re-serialises to
/// the same JSON, so the docs the JS host is written against cannot drift from the code.
#[test]
fn documented_json_examples_are_exact() {
    let docs = include_str!("../../src/lib.rs");
    let examples: Vec<&str> = docs
        .lines()
        .filter_map(|l| l.strip_prefix("//! "))
        .filter(|l| l.starts_with("{\"type\""))
        .collect();
    let (mut events, mut effects) = (0, 0);
    for line in examples {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        if let Ok(event) = Event::from_json(line) {
            assert_eq!(serde_json::to_value(&event).unwrap(), value, "{line}");
            events += 1;
        } else {
            let effect: Effect =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(serde_json::to_value(&effect).unwrap(), value, "{line}");
            assert_eq!(
                client_wasm::effects_to_json(std::slice::from_ref(&effect)),
                ["[", line, "]"].concat()
            );
            effects += 1;
        }
    }
    assert_eq!((events, effects), (17, 20));
    // The config example: the lines of the first ```json block after "Config".
    let json = docs
        .lines()
        .skip_while(|l| !l.starts_with("//! Config"))
        .skip_while(|l| *l != "//! ```json")
        .skip(1)
        .take_while(|l| *l != "//! ```")
        .map(|l| l.trim_start_matches("//!"))
        .collect::<String>();
    let config: Config = serde_json::from_str(&json).unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(Config::from_json(&json).unwrap(), Config::default());
}
