//! The mini-program client's login logic — get a token, verify it, keep it, replace it — as a
//! sans-IO state machine, for native tests and for WebAssembly.
//!
//! The machine does no I/O, reads no clock and never sleeps (the str0m pattern): the host
//! (the mini-program's `app.js`, a leptos harness, a test) feeds it [`Event`]s and carries out
//! the [`Effect`]s it returns — storage, `wx.login`, HTTP, timers — then feeds the answers back
//! as further events. Time comes in with the events (`now_ms`).
//!
//! # Layout
//! - [`machine`]: the states and every transition; the rules it guarantees are listed there.
//! - [`event`] / [`effect`]: the inputs and outputs. `Event::from_json` reads the host's JSON,
//!   [`effects_to_json`] writes the answer; both types also derive serde `Serialize` (and
//!   `Effect` `Deserialize`) for Rust hosts, with identical JSON (tested).
//! - `codec`: the small JSON reader/writer used instead of serde_json, which alone would push
//!   the wasm module past its 64 KiB budget.
//! - `wire`: the server's answers read into `shared`'s wire types.
//! - `failure`: what waiters see when something went wrong, and which HTTP errors are worth
//!   retrying.
//! - `storage`: the stored form of the token (and the old app's bare string).
//! - `backoff`: retry delays.
//! - `config`: the tuning knobs.
//! - [`json`]: the JSON-string API, what the wasm build exports (`wasm`, only on wasm32).
//!
//! # Host contract
//! Carry out effects in order. Answer every `read_storage` with one `storage_read`, every
//! `wx_login` with one `wx_login_succeeded` or `wx_login_failed`, every `http_request` with one
//! `http_response` or `http_failed` (same `request` id), every `start_timer` with one
//! `timer_fired` (late or superfluous answers are ignored, so timers never need cancelling).
//! Then every `ensure_login` gets exactly one `resolve_waiters` naming it.
//!
//! # Behaviour in brief
//! - `launched` reads storage. A stored token that is unexpired is verified with
//!   `GET /checklogin`; no token, or an expired one, goes straight to `wx.login` + `POST /login`
//!   (never a check with an empty token).
//! - `ensure_login` answers at once when a usable token is held (unexpired by
//!   `expiry_margin_ms`); otherwise it waits for the login or check under way, starting one if
//!   needed. All waiters share that one login. In `failed` or `logged-out` it starts afresh; before
//!   `launched` it launches.
//! - `login_requested` forces a fresh login with a full attempt budget, even when logged in or
//!   backing off; if `wx.login`/`POST /login` is already in flight it joins that instead.
//! - Each code goes into exactly one `POST /login`. `invalid_code`/`code_used` → a new code at
//!   once. Transient failures (no HTTP answer, 429, 5xx, transient error codes, `wx.login`
//!   failing) → a new round after 500 ms, 1 s, 2 s, … capped at `max_backoff_ms`, or after
//!   `Retry-After` when that is longer (longer than `max_backoff_ms` → give up). Permanent
//!   errors (`high_risk_user`, …) or `max_attempts` rounds → `failed`, and every waiter gets the
//!   error.
//! - `checklogin` answering `is_login: false` or 401 → drop the token, log in. Any other outcome
//!   of the check (network, 503, junk) keeps the unexpired token and trusts it unverified
//!   (`verified: false`): an outage does not log users out, and a real rejection still surfaces
//!   as `api_unauthorized`.
//! - `api_unauthorized` drops the held token and logs in once; a 401 for a token issued for a
//!   previous 401 less than `relogin_guard_ms` ago → `failed` (`unauthorized`) instead of a loop.
//! - `logout_requested`: remove storage, `POST /logout` with the token (fire and forget), state
//!   `logged-out`, waiters get `logged_out`. `forget_token`: remove storage only. Neither is
//!   sticky: a later `ensure_login` logs in again.
//!
//! # JSON formats
//! Every event and effect is an object whose `type` names it. Ids (`waiter`, `request`,
//! `timer`) are unsigned 32-bit integers, times are integer milliseconds.
//!
//! Config (all fields optional, unknown ones rejected; these are the defaults):
//! ```json
//! {"max_attempts":5,"base_backoff_ms":500,"max_backoff_ms":30000,"storage_key":"token",
//!  "expiry_margin_ms":60000,"relogin_guard_ms":60000}
//! ```
//!
//! Events (host → machine):
//! ```json
//! {"type":"launched","now_ms":1700000000000}
//! {"type":"storage_read","key":"token","value":"{\"token\":\"t1\",\"expires_at_ms\":1700600000000}","now_ms":1700000000000}
//! {"type":"storage_read","key":"token","value":"old-bare-token","now_ms":1700000000000}
//! {"type":"storage_read","key":"token","value":null,"now_ms":1700000000000}
//! {"type":"ensure_login","waiter":7,"now_ms":1700000000000}
//! {"type":"login_requested"}
//! {"type":"wx_login_succeeded","code":"081abcDEF"}
//! {"type":"wx_login_failed","err_msg":"login:fail timeout"}
//! {"type":"http_response","request":2,"status":200,"body":"{\"token\":\"t2\",\"expires_in\":604800}","retry_after_s":null,"now_ms":1700000000500}
//! {"type":"http_response","request":2,"status":503,"body":"{\"error\":{\"code\":\"upstream_unavailable\",\"message\":\"busy\"}}","retry_after_s":2,"now_ms":1700000000500}
//! {"type":"http_failed","request":2,"err_msg":"request:fail timeout"}
//! {"type":"timer_fired","timer":3}
//! {"type":"api_unauthorized","token":"t2","now_ms":1700000009000}
//! {"type":"logout_requested"}
//! {"type":"forget_token"}
//! ```
//! `storage_read.value`: `null`, absent and `""` all mean nothing stored; a non-string value is
//! taken as its JSON text. `http_response.body` is the raw text (`""` for 204); an already
//! parsed JSON value is accepted too. `retry_after_s` and `api_unauthorized.token` are optional.
//!
//! Effects (machine → host), returned as a JSON array:
//! ```json
//! {"type":"read_storage","key":"token"}
//! {"type":"write_storage","key":"token","value":"{\"token\":\"t2\",\"expires_at_ms\":1700604800500}"}
//! {"type":"remove_storage","key":"token"}
//! {"type":"wx_login"}
//! {"type":"http_request","request":1,"method":"GET","path":"/checklogin","bearer":"t1","body":null}
//! {"type":"http_request","request":2,"method":"POST","path":"/login","bearer":null,"body":"{\"code\":\"081abcDEF\"}"}
//! {"type":"http_request","request":4,"method":"POST","path":"/logout","bearer":"t2","body":null}
//! {"type":"start_timer","timer":3,"delay_ms":2000}
//! {"type":"state_changed","state":"retry-waiting","token_expires_at_ms":null,"verified":false,"attempt":1,"last_error":{"code":"upstream_unavailable","message":"busy"}}
//! {"type":"resolve_waiters","waiters":[7,8],"result":{"ok":{"token":"t2"}}}
//! {"type":"resolve_waiters","waiters":[7],"result":{"err":{"code":"high_risk_user","message":"..."}}}
//! ```
//! `http_request.path` is relative to the server base URL; send `Authorization: Bearer
//! <bearer>` when `bearer` is not null and `Content-Type: application/json` when `body` is not
//! null. `state_changed` comes at most once per event, as the last effect; `state` is one of
//! `unknown`, `reading-storage`, `checking`, `getting-code`, `exchanging-code`, `logged-in`,
//! `retry-waiting`, `failed`, `logged-out`. Error codes are the server's (`shared::ErrorCode`,
//! snake_case) or the client's own: `network_error`, `wx_login_failed`, `bad_response`,
//! `logged_out`, `unauthorized`.
//!
//! # WebAssembly API
//! On wasm32 the crate exports one class (see `wasm.rs`):
//! ```js
//! const client = new Client('{"max_attempts":5}'); // throws a string on a bad config
//! const effects = JSON.parse(client.handle(JSON.stringify({type: 'launched', now_ms: Date.now()})));
//! client.state();    // "reading-storage"
//! client.snapshot(); // '{"state":"reading-storage",...}'
//! ```
//! `handle` throws a string (`invalid event: …`) on malformed event JSON; nothing the host sends
//! can make the module panic.
//!
//! Build note: compile with `RUSTFLAGS=-Ctarget-feature=-reference-types`. With reference types
//! on (rustc's default), wasm-bindgen emits an externref table that Debian's `wasm-opt` 108
//! breaks (`Table.set(): Argument 1 is invalid` at load), and older mini-program runtimes may
//! lack the feature anyway. The module is about 48 KiB after `wasm-opt -Oz`.

pub mod effect;
pub mod event;
pub mod json;
pub mod machine;

mod backoff;
mod codec;
mod config;
mod failure;
mod storage;
mod wire;

#[cfg(target_arch = "wasm32")]
mod wasm;

pub use config::Config;
pub use effect::{Effect, Method, Snapshot, StateName, WaiterResult, effects_to_json};
pub use event::Event;
pub use failure::{Failure, codes};
pub use json::JsonClient;
pub use machine::Machine;
pub use storage::{StoredToken, decode as decode_stored_token, encode as encode_stored_token};
