//! What the host tells the machine: user actions, answers to effects, and the passing of time.
//!
//! Events are plain data so the JS host can send them as JSON (`{"type":"…", …}`); the exact
//! shapes are documented, with examples, in the crate docs.

use serde::Serialize;

use crate::json_codec::{self, Json};

/// One input to [`Machine::handle`](crate::Machine::handle). Hosts speaking JSON go through
/// [`Event::from_json`]; the serde `Serialize` impl writes the same JSON.
///
/// Every event carries `now_ms`, the host's time when it happened: milliseconds on any clock the
/// host keeps monotonic enough for token lifetimes (`Date.now()` is what the mini-program has).
/// The machine never reads a clock itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The app started (`App.onLaunch`): read the stored token and verify or replace it.
    Launched { now_ms: u64 },
    /// Answer to `read_storage`. `value` is `null`/absent/`""` when there is nothing stored; a
    /// non-string value (the expiry, stored as a number, or an object some other code stored)
    /// is accepted as its JSON text.
    StorageRead {
        key: String,
        value: Option<String>,
        now_ms: u64,
    },
    /// A caller needs a valid token; it is answered by a `resolve_waiters` effect naming
    /// `waiter`, now or later, exactly once. Ids are the host's; keep them unique while pending.
    EnsureLogin { waiter: u32, now_ms: u64 },
    /// The user asked to log in: always a fresh `wx.login` + `POST /login`, even when logged in,
    /// unless one is already under way (then this joins it).
    LoginRequested { now_ms: u64 },
    /// Answer to `wx_login`.
    WxLoginSucceeded { code: String, now_ms: u64 },
    /// Answer to `wx_login` when it failed (`fail` callback).
    WxLoginFailed { err_msg: String, now_ms: u64 },
    /// Answer to `http_request` when the server answered, whatever the status.
    HttpResponse {
        request: u32,
        status: u16,
        /// The raw body text. A host whose HTTP API already parsed the JSON may pass the parsed
        /// value; it is turned back into text.
        body: String,
        /// `Retry-After` in seconds, when the answer had one.
        retry_after_s: Option<u32>,
        now_ms: u64,
    },
    /// Answer to `http_request` when no HTTP answer came (network down, timeout, abort).
    HttpFailed {
        request: u32,
        err_msg: String,
        now_ms: u64,
    },
    /// A `start_timer` ran out. Firing a timer the machine no longer cares about is harmless,
    /// so the host never needs to cancel timers.
    TimerFired { timer: u32, now_ms: u64 },
    /// A business API call of the app got `401`: the token is no good, log in again. `token` is
    /// the bearer that call used; with it, 401s of calls made with an already replaced token are
    /// ignored instead of starting yet another login.
    ApiUnauthorized { token: Option<String>, now_ms: u64 },
    /// The user logs out: forget the token here and tell the server.
    LogoutRequested { now_ms: u64 },
    /// The server confirmed that the session of `token` is over, and the user is to be logged
    /// out here: the host ended every session of the account (`DELETE /me/sessions`) or the
    /// account itself (`DELETE /me`) with that token. Logged out as with `logout_requested`,
    /// but `token` is not sent to `POST /logout`: the server no longer knows it.
    SessionEnded { token: String, now_ms: u64 },
    /// Drop the token locally without telling the server (e.g. the user cleared data).
    ForgetToken { now_ms: u64 },
}

impl Event {
    /// Reads an event from the host's JSON. The error says what is wrong, for the host's log.
    pub fn from_json(text: &str) -> Result<Event, String> {
        let json = json_codec::parse(text).map_err(|e| message("not JSON: ", e))?;
        if !matches!(json, Json::Obj(_)) {
            return Err("not a JSON object".to_owned());
        }
        let kind = json
            .get("type")
            .and_then(Json::as_str)
            .ok_or_else(|| "missing string field `type`".to_owned())?;
        let f = Fields(&json);
        Ok(match kind {
            "launched" => Event::Launched {
                now_ms: f.u64("now_ms")?,
            },
            "storage_read" => Event::StorageRead {
                key: f.string("key")?,
                value: f.text("value"),
                now_ms: f.u64("now_ms")?,
            },
            "ensure_login" => Event::EnsureLogin {
                waiter: f.u32("waiter")?,
                now_ms: f.u64("now_ms")?,
            },
            "login_requested" => Event::LoginRequested {
                now_ms: f.u64("now_ms")?,
            },
            "wx_login_succeeded" => Event::WxLoginSucceeded {
                code: f.string("code")?,
                now_ms: f.u64("now_ms")?,
            },
            "wx_login_failed" => Event::WxLoginFailed {
                err_msg: f.opt_string("err_msg")?.unwrap_or_default(),
                now_ms: f.u64("now_ms")?,
            },
            "http_response" => Event::HttpResponse {
                request: f.u32("request")?,
                status: u16::try_from(f.u64("status")?)
                    .map_err(|_| "field `status` is out of range".to_owned())?,
                body: f.text("body").unwrap_or_default(),
                retry_after_s: f.opt_u32("retry_after_s")?,
                now_ms: f.u64("now_ms")?,
            },
            "http_failed" => Event::HttpFailed {
                request: f.u32("request")?,
                err_msg: f.opt_string("err_msg")?.unwrap_or_default(),
                now_ms: f.u64("now_ms")?,
            },
            "timer_fired" => Event::TimerFired {
                timer: f.u32("timer")?,
                now_ms: f.u64("now_ms")?,
            },
            "api_unauthorized" => Event::ApiUnauthorized {
                token: f.opt_string("token")?,
                now_ms: f.u64("now_ms")?,
            },
            "logout_requested" => Event::LogoutRequested {
                now_ms: f.u64("now_ms")?,
            },
            "session_ended" => Event::SessionEnded {
                token: f.string("token")?,
                now_ms: f.u64("now_ms")?,
            },
            "forget_token" => Event::ForgetToken {
                now_ms: f.u64("now_ms")?,
            },
            other => {
                let mut m = message("unknown event type ", "");
                json_codec::write_string(&mut m, other);
                return Err(m);
            }
        })
    }
}

/// Typed access to an event object's fields, with errors naming the field.
struct Fields<'j, 'a>(&'j Json<'a>);

impl Fields<'_, '_> {
    fn opt_u64(&self, name: &str) -> Result<Option<u64>, String> {
        self.0
            .get(name)
            .map(|v| {
                v.as_u64()
                    .ok_or_else(|| field_error(name, "an unsigned integer"))
            })
            .transpose()
    }

    fn u64(&self, name: &str) -> Result<u64, String> {
        self.opt_u64(name)?
            .ok_or_else(|| field_error(name, "present"))
    }

    fn opt_u32(&self, name: &str) -> Result<Option<u32>, String> {
        self.opt_u64(name)?
            .map(|n| u32::try_from(n).map_err(|_| field_error(name, "a 32-bit unsigned integer")))
            .transpose()
    }

    fn u32(&self, name: &str) -> Result<u32, String> {
        self.opt_u32(name)?
            .ok_or_else(|| field_error(name, "present"))
    }

    fn opt_string(&self, name: &str) -> Result<Option<String>, String> {
        self.0
            .get(name)
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| field_error(name, "a string"))
            })
            .transpose()
    }

    fn string(&self, name: &str) -> Result<String, String> {
        self.opt_string(name)?
            .ok_or_else(|| field_error(name, "present"))
    }

    /// A string's contents, or any other value's JSON text; `None` for null or absent.
    fn text(&self, name: &str) -> Option<String> {
        let member = self.0.member(name)?;
        match &member.value {
            Json::Null => None,
            Json::Str(s) => Some(s.clone().into_owned()),
            Json::Bool(_) | Json::Num(_) | Json::Arr(_) | Json::Obj(_) => {
                Some(member.raw.to_owned())
            }
        }
    }
}

fn message(a: &str, b: &str) -> String {
    let mut m = String::with_capacity(a.len() + b.len());
    m.push_str(a);
    m.push_str(b);
    m
}

fn field_error(name: &str, must_be: &str) -> String {
    let mut m = message("field `", name);
    m.push_str("` must be ");
    m.push_str(must_be);
    m
}

/// An HTTP request's outcome, borrowed from an `HttpResponse` or `HttpFailed` event: the form
/// in which the machine hands an answer to whichever part of it sent the request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Answer<'a> {
    Response {
        status: u16,
        body: &'a str,
        retry_after_s: Option<u32>,
    },
    Failed {
        err_msg: &'a str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Event {
        Event::from_json(json).unwrap()
    }

    #[test]
    fn every_event_needs_its_time_and_extra_fields_are_ignored() {
        assert_eq!(
            parse(r#"{"type":"login_requested","now_ms":5,"extra":[1]}"#),
            Event::LoginRequested { now_ms: 5 }
        );
        for json in [
            r#"{"type":"launched"}"#,
            r#"{"type":"login_requested"}"#,
            r#"{"type":"logout_requested"}"#,
            r#"{"type":"forget_token"}"#,
            r#"{"type":"session_ended","token":"t"}"#,
            r#"{"type":"wx_login_failed"}"#,
            r#"{"type":"wx_login_succeeded","code":"c"}"#,
            r#"{"type":"http_failed","request":1}"#,
            r#"{"type":"timer_fired","timer":1}"#,
        ] {
            assert_eq!(
                Event::from_json(json).unwrap_err(),
                "field `now_ms` must be present",
                "{json}"
            );
        }
    }

    #[test]
    fn bodies_may_arrive_parsed() {
        let event = parse(
            r#"{"type":"http_response","request":1,"status":200,"body":{"is_login": true},"now_ms":0}"#,
        );
        let Event::HttpResponse { body, .. } = event else {
            panic!("wrong variant")
        };
        assert_eq!(body, r#"{"is_login": true}"#);
        let event = parse(r#"{"type":"http_response","request":1,"status":204,"now_ms":0}"#);
        assert!(
            matches!(event, Event::HttpResponse { body, retry_after_s: None, .. } if body.is_empty())
        );
    }

    #[test]
    fn storage_values_may_be_null_or_objects() {
        let event = parse(r#"{"type":"storage_read","key":"token","value":null,"now_ms":1}"#);
        assert!(matches!(event, Event::StorageRead { value: None, .. }));
        let event = parse(r#"{"type":"storage_read","key":"token","now_ms":1}"#);
        assert!(matches!(event, Event::StorageRead { value: None, .. }));
        // The expiry, as wx storage keeps it: a number.
        let event = parse(
            r#"{"type":"storage_read","key":"token_expires_at_ms","value":1700000000000,"now_ms":1}"#,
        );
        assert!(matches!(event, Event::StorageRead { value: Some(v), .. } if v == "1700000000000"));
        let event =
            parse(r#"{"type":"storage_read","key":"token","value":{"token":"t"},"now_ms":1}"#);
        assert!(
            matches!(event, Event::StorageRead { value: Some(v), .. } if v == r#"{"token":"t"}"#)
        );
    }

    #[test]
    fn bad_events_say_what_is_wrong() {
        let cases = [
            ("", "not JSON: unexpected end of JSON"),
            ("[]", "not a JSON object"),
            ("{}", "missing string field `type`"),
            (r#"{"type":"nope"}"#, r#"unknown event type "nope""#),
            (
                r#"{"type":"ensure_login","waiter":1}"#,
                "field `now_ms` must be present",
            ),
            (
                r#"{"type":"launched","now_ms":-1}"#,
                "field `now_ms` must be an unsigned integer",
            ),
            (
                r#"{"type":"launched","now_ms":1.5}"#,
                "field `now_ms` must be an unsigned integer",
            ),
            (
                r#"{"type":"timer_fired","timer":4294967296,"now_ms":0}"#,
                "field `timer` must be a 32-bit unsigned integer",
            ),
            (
                r#"{"type":"wx_login_succeeded","code":5,"now_ms":0}"#,
                "field `code` must be a string",
            ),
            (
                r#"{"type":"http_response","request":1,"status":70000,"now_ms":0}"#,
                "field `status` is out of range",
            ),
        ];
        for (json, error) in cases {
            assert_eq!(Event::from_json(json).unwrap_err(), error, "{json}");
        }
    }

    #[test]
    fn serde_output_reads_back() {
        let events = [
            Event::Launched { now_ms: 1 },
            Event::StorageRead {
                key: "k".into(),
                value: Some("{\"a\":1}".into()),
                now_ms: 2,
            },
            Event::StorageRead {
                key: "k".into(),
                value: None,
                now_ms: 2,
            },
            Event::EnsureLogin {
                waiter: 3,
                now_ms: 4,
            },
            Event::LoginRequested { now_ms: 9 },
            Event::WxLoginSucceeded {
                code: "c".into(),
                now_ms: 10,
            },
            Event::WxLoginFailed {
                err_msg: "e\n".into(),
                now_ms: 11,
            },
            Event::HttpResponse {
                request: 5,
                status: 503,
                body: "x".into(),
                retry_after_s: Some(2),
                now_ms: 6,
            },
            Event::HttpFailed {
                request: 7,
                err_msg: String::new(),
                now_ms: 12,
            },
            Event::TimerFired {
                timer: u32::MAX,
                now_ms: 13,
            },
            Event::ApiUnauthorized {
                token: Some("t".into()),
                now_ms: 8,
            },
            Event::ApiUnauthorized {
                token: None,
                now_ms: 8,
            },
            Event::LogoutRequested { now_ms: 14 },
            Event::SessionEnded {
                token: "t".into(),
                now_ms: 15,
            },
            Event::ForgetToken { now_ms: u64::MAX },
        ];
        for event in events {
            let json = serde_json::to_string(&event).unwrap();
            assert_eq!(parse(&json), event, "{json}");
        }
    }
}
