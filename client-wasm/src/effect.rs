//! What the machine asks the host to do, and the state snapshot it reports.
//!
//! Effects are plain data so the JS host can receive them as JSON (`{"type":"…", …}`); the exact
//! shapes are documented, with examples, in the crate docs. The host performs them in order.

use serde::{Deserialize, Serialize};

use crate::failure::Failure;
use crate::json_codec::Writer;

/// One instruction for the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Effect {
    /// Read `key` and answer with `storage_read`. The machine asks for several keys at once;
    /// each read gets its own answer.
    ReadStorage { key: String },
    /// Store `value` under `key`, as the JSON value it is (a string, a number or an array of
    /// strings): wx storage keeps JSON values natively, so it is stored as is, never as JSON
    /// text.
    WriteStorage { key: String, value: StorageValue },
    /// Remove `key`.
    RemoveStorage { key: String },
    /// Call `wx.login()` and answer with `wx_login_succeeded` or `wx_login_failed`. Never asked
    /// for while an earlier one is unanswered.
    WxLogin,
    /// Send an HTTP request to the server base URL + `path` and answer with `http_response` or
    /// `http_failed` carrying the same `request` id. When `bearer` is set, send
    /// `Authorization: Bearer <bearer>`; when `body` is set, send it as `application/json`.
    HttpRequest {
        request: u32,
        method: Method,
        path: String,
        #[serde(default)]
        bearer: Option<String>,
        #[serde(default)]
        body: Option<String>,
    },
    /// Answer with `timer_fired` after `delay_ms`.
    StartTimer { timer: u32, delay_ms: u64 },
    /// The token the machine holds changed: a stored token was read and accepted, a login
    /// produced one, or it was dropped (`token: null`: a 401, a `false` from the check, expiry,
    /// logout, forget, a forced login). Hosts keep their copy of the current token from this
    /// effect only. At most one per event, just before `state_changed` (or last).
    TokenChanged {
        token: Option<String>,
        expires_at_ms: Option<u64>,
    },
    /// The state (or what the snapshot shows of it) changed; at most one per event, always last.
    StateChanged(Snapshot),
    /// Answer these `ensure_login` callers.
    ResolveWaiters {
        waiters: Vec<u32>,
        result: WaiterResult,
    },
}

/// A value for the host's storage: the token (a string), its expiry (a number of
/// milliseconds), or the tokens whose logout the server has not confirmed (an array of
/// strings). A host whose storage keeps strings only (localStorage) stores the number's
/// decimal digits and the array's JSON text; the machine reads them back either way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StorageValue {
    Text(String),
    Number(u64),
    Tokens(Vec<String>),
}

impl StorageValue {
    /// The value as a string-only storage keeps it.
    pub fn to_text(&self) -> String {
        match self {
            StorageValue::Text(text) => text.clone(),
            StorageValue::Number(_) | StorageValue::Tokens(_) => {
                let mut w = Writer::new();
                self.write_json(&mut w);
                w.finish()
            }
        }
    }

    fn write_json(&self, w: &mut Writer) {
        match self {
            StorageValue::Text(text) => w.string(text),
            StorageValue::Number(n) => w.u64(*n),
            StorageValue::Tokens(tokens) => {
                w.begin_array();
                for token in tokens {
                    w.string(token);
                }
                w.end_array();
            }
        }
    }
}

/// HTTP method of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
}

/// How an `ensure_login` ends: `{"ok":{"token":"…"}}` or `{"err":{"code":"…","message":"…"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaiterResult {
    Ok { token: String },
    Err(Failure),
}

/// The stable name of each state, used as `data-state` by the harness and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StateName {
    /// Not launched yet.
    Unknown,
    /// Waiting for `storage_read`.
    ReadingStorage,
    /// A stored token is being verified with `GET /checklogin`.
    Checking,
    /// `wx.login` is in flight.
    GettingCode,
    /// `POST /login` is in flight.
    ExchangingCode,
    /// A token is held; `ensure_login` answers at once.
    LoggedIn,
    /// An attempt failed transiently; a backoff timer runs.
    RetryWaiting,
    /// Gave up; a later `ensure_login` or `login_requested` starts afresh.
    Failed,
    /// No token after a logout or `forget_token`; a later `ensure_login` or `login_requested`
    /// logs in again.
    LoggedOut,
}

impl StateName {
    /// Every state name, for hosts and tests that check a name is known.
    pub const ALL: [StateName; 9] = [
        StateName::Unknown,
        StateName::ReadingStorage,
        StateName::Checking,
        StateName::GettingCode,
        StateName::ExchangingCode,
        StateName::LoggedIn,
        StateName::RetryWaiting,
        StateName::Failed,
        StateName::LoggedOut,
    ];

    /// The kebab-case name, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            StateName::Unknown => "unknown",
            StateName::ReadingStorage => "reading-storage",
            StateName::Checking => "checking",
            StateName::GettingCode => "getting-code",
            StateName::ExchangingCode => "exchanging-code",
            StateName::LoggedIn => "logged-in",
            StateName::RetryWaiting => "retry-waiting",
            StateName::Failed => "failed",
            StateName::LoggedOut => "logged-out",
        }
    }
}

/// What a UI may show about the machine. The token itself is left out so that logging
/// snapshots never leaks it; callers get it through `ensure_login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub state: StateName,
    /// Expiry of the held (or checked) token, when known.
    pub token_expires_at_ms: Option<u64>,
    /// Whether the server confirmed the held token (`false` while it is trusted only because
    /// the check could not reach the server).
    pub verified: bool,
    /// Number of the login attempt under way or last failed; 0 outside a login.
    pub attempt: u32,
    /// The failure that led to `retry-waiting` or `failed`, or that the current attempt follows.
    pub last_error: Option<Failure>,
}

impl Effect {
    /// The JSON the host receives, spelled exactly as the serde derive spells it (the wasm path
    /// uses this instead of serde_json, see `json_codec`).
    pub fn write_json(&self, w: &mut Writer) {
        w.begin_object();
        match self {
            Effect::ReadStorage { key } => {
                w.str_member("type", "read_storage");
                w.str_member("key", key);
            }
            Effect::WriteStorage { key, value } => {
                w.str_member("type", "write_storage");
                w.str_member("key", key);
                w.key("value");
                value.write_json(w);
            }
            Effect::RemoveStorage { key } => {
                w.str_member("type", "remove_storage");
                w.str_member("key", key);
            }
            Effect::WxLogin => w.str_member("type", "wx_login"),
            Effect::HttpRequest {
                request,
                method,
                path,
                bearer,
                body,
            } => {
                w.str_member("type", "http_request");
                w.key("request");
                w.u64(u64::from(*request));
                w.str_member("method", method.as_str());
                w.str_member("path", path);
                w.key("bearer");
                w.opt_string(bearer.as_deref());
                w.key("body");
                w.opt_string(body.as_deref());
            }
            Effect::StartTimer { timer, delay_ms } => {
                w.str_member("type", "start_timer");
                w.key("timer");
                w.u64(u64::from(*timer));
                w.key("delay_ms");
                w.u64(*delay_ms);
            }
            Effect::TokenChanged {
                token,
                expires_at_ms,
            } => {
                w.str_member("type", "token_changed");
                w.key("token");
                w.opt_string(token.as_deref());
                w.key("expires_at_ms");
                w.opt_u64(*expires_at_ms);
            }
            Effect::StateChanged(snapshot) => {
                w.str_member("type", "state_changed");
                snapshot.write_members(w);
            }
            Effect::ResolveWaiters { waiters, result } => {
                w.str_member("type", "resolve_waiters");
                w.key("waiters");
                w.begin_array();
                for waiter in waiters {
                    w.u64(u64::from(*waiter));
                }
                w.end_array();
                w.key("result");
                w.begin_object();
                match result {
                    WaiterResult::Ok { token } => {
                        w.key("ok");
                        w.begin_object();
                        w.str_member("token", token);
                        w.end_object();
                    }
                    WaiterResult::Err(failure) => {
                        w.key("err");
                        write_failure(w, failure);
                    }
                }
                w.end_object();
            }
        }
        w.end_object();
    }
}

/// A JSON array of effects.
pub fn effects_to_json(effects: &[Effect]) -> String {
    let mut w = Writer::new();
    w.begin_array();
    for effect in effects {
        effect.write_json(&mut w);
    }
    w.end_array();
    w.finish()
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

impl Snapshot {
    /// The snapshot as a JSON object (the `state_changed` members without `type`).
    pub fn to_json(&self) -> String {
        let mut w = Writer::new();
        w.begin_object();
        self.write_members(&mut w);
        w.end_object();
        w.finish()
    }

    fn write_members(&self, w: &mut Writer) {
        w.str_member("state", self.state.as_str());
        w.key("token_expires_at_ms");
        w.opt_u64(self.token_expires_at_ms);
        w.key("verified");
        w.bool(self.verified);
        w.key("attempt");
        w.u64(u64::from(self.attempt));
        w.key("last_error");
        match &self.last_error {
            Some(failure) => write_failure(w, failure),
            None => w.null(),
        }
    }
}

fn write_failure(w: &mut Writer, failure: &Failure) {
    w.begin_object();
    w.str_member("code", &failure.code);
    w.str_member("message", &failure.message);
    w.end_object();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_match_serde() {
        for name in StateName::ALL {
            let json = serde_json::to_value(name).unwrap();
            assert_eq!(json, serde_json::json!(name.as_str()));
        }
    }

    #[test]
    fn json_shapes() {
        let fx = [
            (Effect::WxLogin, r#"{"type":"wx_login"}"#),
            (
                Effect::StartTimer {
                    timer: 3,
                    delay_ms: 500,
                },
                r#"{"type":"start_timer","timer":3,"delay_ms":500}"#,
            ),
            (
                Effect::ResolveWaiters {
                    waiters: vec![1, 2],
                    result: WaiterResult::Ok { token: "t".into() },
                },
                r#"{"type":"resolve_waiters","waiters":[1,2],"result":{"ok":{"token":"t"}}}"#,
            ),
            (
                Effect::StateChanged(Snapshot {
                    state: StateName::RetryWaiting,
                    token_expires_at_ms: None,
                    verified: false,
                    attempt: 1,
                    last_error: Some(Failure::new("network_error", "down")),
                }),
                r#"{"type":"state_changed","state":"retry-waiting","token_expires_at_ms":null,"verified":false,"attempt":1,"last_error":{"code":"network_error","message":"down"}}"#,
            ),
            (
                Effect::WriteStorage {
                    key: "token".into(),
                    value: StorageValue::Text("t".into()),
                },
                r#"{"type":"write_storage","key":"token","value":"t"}"#,
            ),
            (
                Effect::WriteStorage {
                    key: "exp".into(),
                    value: StorageValue::Number(1_700_000_000_000),
                },
                r#"{"type":"write_storage","key":"exp","value":1700000000000}"#,
            ),
            (
                Effect::WriteStorage {
                    key: "logout_pending".into(),
                    value: StorageValue::Tokens(vec!["a".into(), "b\"".into()]),
                },
                r#"{"type":"write_storage","key":"logout_pending","value":["a","b\""]}"#,
            ),
            (
                Effect::TokenChanged {
                    token: Some("t".into()),
                    expires_at_ms: Some(5),
                },
                r#"{"type":"token_changed","token":"t","expires_at_ms":5}"#,
            ),
            (
                Effect::TokenChanged {
                    token: None,
                    expires_at_ms: None,
                },
                r#"{"type":"token_changed","token":null,"expires_at_ms":null}"#,
            ),
        ];
        for (effect, json) in fx {
            assert_eq!(serde_json::to_string(&effect).unwrap(), json);
            assert_eq!(
                effects_to_json(std::slice::from_ref(&effect)),
                ["[", json, "]"].concat()
            );
            assert_eq!(serde_json::from_str::<Effect>(json).unwrap(), effect);
        }
    }

    #[test]
    fn storage_values_as_text() {
        assert_eq!(StorageValue::Text("t".into()).to_text(), "t");
        assert_eq!(StorageValue::Number(42).to_text(), "42");
        assert_eq!(
            StorageValue::Tokens(vec!["a".into(), "b".into()]).to_text(),
            r#"["a","b"]"#
        );
        assert_eq!(StorageValue::Tokens(Vec::new()).to_text(), "[]");
    }
}
