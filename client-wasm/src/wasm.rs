//! The wasm-bindgen exports: one small class over [`JsonClient`], strings in and out.
//!
//! The surface is kept to a constructor and three methods that take and return strings, so the
//! generated JS glue stays tiny and easy to port to the mini-program's `WXWebAssembly` loader.
//! Errors become thrown JS strings.

use wasm_bindgen::prelude::*;

use crate::json_client::JsonClient;

/// `new Client(configJson)`, then `client.handle(eventJson)` → effects JSON.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Client {
    inner: JsonClient,
}

#[wasm_bindgen]
impl Client {
    /// Throws the error message when `config_json` is not a valid config.
    #[wasm_bindgen(constructor)]
    pub fn new(config_json: &str) -> Result<Client, JsValue> {
        JsonClient::new(config_json)
            .map(|inner| Client { inner })
            .map_err(|e| JsValue::from_str(&e))
    }

    /// Applies one event; returns the JSON array of effects. Throws on malformed event JSON.
    pub fn handle(&mut self, event_json: &str) -> Result<String, JsValue> {
        self.inner
            .handle(event_json)
            .map_err(|e| JsValue::from_str(&e))
    }

    /// The current state's kebab-case name.
    pub fn state(&self) -> String {
        self.inner.state().to_owned()
    }

    /// The current snapshot JSON.
    pub fn snapshot(&self) -> String {
        self.inner.snapshot()
    }
}
