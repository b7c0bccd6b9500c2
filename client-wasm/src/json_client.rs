//! The JSON-string face of the machine: what the wasm bindings export, kept free of
//! wasm-bindgen so native tests cover it too.
//!
//! Everything that crosses this boundary comes from a host that may have bugs, so bad JSON is an
//! `Err` with a readable message, never a panic.

use crate::config::Config;
use crate::effect::effects_to_json;
use crate::event::Event;
use crate::machine::Machine;

/// A [`Machine`] driven by JSON strings.
#[derive(Debug)]
pub struct JsonClient {
    machine: Machine,
}

impl JsonClient {
    /// `config_json` is a [`Config`] object; an empty string or `{}` means all defaults.
    pub fn new(config_json: &str) -> Result<Self, String> {
        let config = if config_json.trim().is_empty() {
            Config::default()
        } else {
            Config::from_json(config_json).map_err(|e| describe("invalid config", &e))?
        };
        Ok(Self {
            machine: Machine::new(config),
        })
    }

    /// Applies one event (a JSON object) and returns the effects as a JSON array.
    pub fn handle(&mut self, event_json: &str) -> Result<String, String> {
        let event = Event::from_json(event_json).map_err(|e| describe("invalid event", &e))?;
        Ok(effects_to_json(&self.machine.handle(event)))
    }

    /// The current state's kebab-case name.
    pub fn state(&self) -> &'static str {
        self.machine.state().as_str()
    }

    /// The current snapshot as JSON (the `state_changed` fields, without `type`).
    pub fn snapshot(&self) -> String {
        self.machine.snapshot().to_json()
    }
}

fn describe(what: &str, error: &str) -> String {
    [what, ": ", error].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(
            JsonClient::new("{")
                .unwrap_err()
                .starts_with("invalid config: ")
        );
        assert!(JsonClient::new(r#"{"max_attempts":"five"}"#).is_err());
        let mut client = JsonClient::new("").unwrap();
        for bad in [
            "",
            "nope",
            "[]",
            "{}",
            r#"{"type":"launched"}"#,
            r#"{"type":"launched","now_ms":-1}"#,
        ] {
            let err = client.handle(bad).unwrap_err();
            assert!(err.starts_with("invalid event: "), "{bad}: {err}");
        }
        assert_eq!(client.state(), "unknown");
    }

    #[test]
    fn a_launch_round_trip() {
        let mut client = JsonClient::new(r#"{"storage_key":"tok"}"#).unwrap();
        let fx = client.handle(r#"{"type":"launched","now_ms":0}"#).unwrap();
        assert_eq!(
            fx,
            r#"[{"type":"read_storage","key":"tok"},{"type":"read_storage","key":"token_expires_at_ms"},{"type":"read_storage","key":"logout_pending"},{"type":"state_changed","state":"reading-storage","token_expires_at_ms":null,"verified":false,"attempt":0,"last_error":null}]"#
        );
        assert_eq!(client.state(), "reading-storage");
        assert!(
            client
                .snapshot()
                .starts_with(r#"{"state":"reading-storage""#)
        );
    }
}
