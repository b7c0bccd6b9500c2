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
//! - `json_codec`: the small JSON reader/writer used instead of serde_json, which alone would push
//!   the wasm module past its 64 KiB budget.
//! - `wire`: the server's answers read into `shared`'s wire types.
//! - `failure`: what waiters see when something went wrong, and which HTTP errors are worth
//!   retrying.
//! - `storage`: how the token is kept in storage (two keys), the older forms still read, and
//!   the pending logouts (a third key).
//! - `revoke`: logouts kept and sent again until the server confirms them.
//! - `backoff`: retry delays.
//! - `ids`: the request and timer ids, one source for the machine and the revokes.
//! - `config`: the tuning knobs.
//! - [`json_client`]: the JSON-string API, what the wasm build exports (`wasm`, only on wasm32).
//!
//! # Host contract
//! Carry out effects in order. Answer every `read_storage` with one `storage_read`, every
//! `wx_login` with one `wx_login_succeeded` or `wx_login_failed`, every `http_request` with one
//! `http_response` or `http_failed` (same `request` id), every `start_timer` with one
//! `timer_fired` (late or superfluous answers are ignored, so timers never need cancelling).
//! Every event carries `now_ms`, the host's clock when it happened. Then every `ensure_login`
//! gets exactly one `resolve_waiters` naming it. Keep the current token from `token_changed`
//! only (it is never in `state_changed`, so snapshots can be logged).
//!
//! # Behaviour in brief
//! - `launched` reads storage: the bare token under `storage_key`, its expiry (a number of
//!   ms) under `expiry_storage_key` and the pending logouts under `logout_storage_key`, one
//!   `read_storage` each. A stored token that is unexpired
//!   is held at once (`token_changed`, state `checking`) and verified with `GET /checklogin` in
//!   the background; no token, or an expired one, goes straight to `wx.login` + `POST /login`
//!   (never a check with an empty token). Older stored forms (JSON text under `storage_key`)
//!   are read and rewritten in the current form.
//! - `ensure_login` answers at once when a usable token is held (unexpired by
//!   `expiry_margin_ms`), also while it is being checked; otherwise it waits for the storage
//!   read or login under way, starting a login if needed. All waiters share that one login. In
//!   `failed` or `logged-out` it starts afresh; before `launched` it launches.
//! - `login_requested` forces a fresh login with a full attempt budget, even when logged in or
//!   backing off; if `wx.login`/`POST /login` is already in flight it joins that instead.
//! - Each code goes into exactly one `POST /login`. `invalid_code`/`code_used` → a new code at
//!   once. Transient failures (no HTTP answer, 429, 5xx, transient error codes, `wx.login`
//!   failing) → a new round after 500 ms, 1 s, 2 s, … capped at `max_backoff_ms`, or after
//!   `Retry-After` when that is longer (longer than `max_backoff_ms` → give up). Permanent
//!   errors (`high_risk_user`, …) or `max_attempts` rounds → `failed`, and every waiter gets the
//!   error.
//! - `checklogin` answering `is_login: false` or 401 → drop the token, log in (in the
//!   background: the host hears of the new token through `token_changed`). Any other outcome
//!   of the check (network, 503, junk) keeps the unexpired token and trusts it unverified
//!   (`verified: false`): an outage does not log users out, and a real rejection still surfaces
//!   as `api_unauthorized`.
//! - `api_unauthorized` with the held token (or none named) drops it and logs in once; 401s of
//!   calls made with a token no longer held are ignored, so concurrent 401s cause one login. A
//!   401 for a token issued for a previous 401 less than `relogin_guard_ms` ago does not log in
//!   again: the token is kept, marked refused (`last_error` code `unauthorized`), so a server
//!   that rejects whatever it issues costs at most one login per `relogin_guard_ms`.
//! - `logout_requested`: logged out on the device at once (the token's keys removed, state
//!   `logged-out`, waiters get `logged_out`), and the token is revoked on the server: it is
//!   added to the pending logouts in storage (an array under `logout_storage_key`, at most
//!   8, the oldest dropped past that) *before* `POST /logout` goes out, and removed only when
//!   the server answers 2xx or 401. No answer, 5xx, 429 or another 4xx keep it: sent again
//!   after `base_backoff_ms`, doubling up to `max_backoff_ms` (never given up), at once after
//!   a login or check the server answered with success or another logout, and at the next
//!   launch. One `POST /logout` is in flight at a time, oldest token first; it never carries
//!   the token held now, and a stored token that is pending its logout is not held again. A
//!   pending logout holds up nothing: a new login goes ahead beside it. `forget_token`: remove
//!   the token's keys only. Neither is sticky: a later `ensure_login` logs in again.
//! - `session_ended`: the host has had the server end the session of `token` itself (every
//!   session of the account, `DELETE /me/sessions`, or the account, `DELETE /me`) and tells
//!   the machine only once the server confirmed it. Logged out as by `logout_requested`,
//!   without a `POST /logout` for that token (the server no longer knows it); a token held
//!   by then that is another one is revoked as usual.
//! - `device` (config): sent with every login, cut to `shared::MAX_DEVICE_CHARS` characters,
//!   so that the account's session list can name the device; empty sends none.
//!
//! # JSON formats
//! Every event and effect is an object whose `type` names it. Ids (`waiter`, `request`,
//! `timer`) are unsigned 32-bit integers, times are integer milliseconds.
//!
//! Config (all fields optional, unknown ones rejected; these are the defaults):
//! ```json
//! {"max_attempts":5,"base_backoff_ms":500,"max_backoff_ms":30000,"storage_key":"token",
//!  "expiry_storage_key":"token_expires_at_ms","logout_storage_key":"logout_pending",
//!  "expiry_margin_ms":60000,"relogin_guard_ms":60000}
//! ```
//!
//! Events (host → machine):
//! ```json
//! {"type":"launched","now_ms":1700000000000}
//! {"type":"storage_read","key":"token","value":"t1","now_ms":1700000000000}
//! {"type":"storage_read","key":"token_expires_at_ms","value":"1700600000000","now_ms":1700000000000}
//! {"type":"storage_read","key":"token_expires_at_ms","value":null,"now_ms":1700000000000}
//! {"type":"storage_read","key":"token","value":"{\"token\":\"t1\",\"expires_at_ms\":1700600000000}","now_ms":1700000000000}
//! {"type":"ensure_login","waiter":7,"now_ms":1700000000000}
//! {"type":"login_requested","now_ms":1700000000000}
//! {"type":"wx_login_succeeded","code":"081abcDEF","now_ms":1700000000100}
//! {"type":"wx_login_failed","err_msg":"login:fail timeout","now_ms":1700000000100}
//! {"type":"http_response","request":2,"status":200,"body":"{\"token\":\"t2\",\"expires_in\":604800}","retry_after_s":null,"now_ms":1700000000500}
//! {"type":"http_response","request":2,"status":503,"body":"{\"error\":{\"code\":\"upstream_unavailable\",\"message\":\"busy\"}}","retry_after_s":2,"now_ms":1700000000500}
//! {"type":"http_failed","request":2,"err_msg":"request:fail timeout","now_ms":1700000000500}
//! {"type":"timer_fired","timer":3,"now_ms":1700000002500}
//! {"type":"api_unauthorized","token":"t2","now_ms":1700000009000}
//! {"type":"logout_requested","now_ms":1700000010000}
//! {"type":"session_ended","token":"t2","now_ms":1700000010000}
//! {"type":"forget_token","now_ms":1700000010000}
//! ```
//! `storage_read.value`: `null`, absent and `""` all mean nothing stored; a non-string value
//! (the expiry as wx storage keeps it, a number; an object some other code stored) is taken as
//! its JSON text, so `1700600000000` and `"1700600000000"` read alike. `http_response.body` is
//! the raw text (`""` for 204); an already parsed JSON value is accepted too. `retry_after_s`
//! and `api_unauthorized.token` are optional.
//!
//! Effects (machine → host), returned as a JSON array:
//! ```json
//! {"type":"read_storage","key":"token"}
//! {"type":"read_storage","key":"token_expires_at_ms"}
//! {"type":"read_storage","key":"logout_pending"}
//! {"type":"write_storage","key":"token","value":"t2"}
//! {"type":"write_storage","key":"token_expires_at_ms","value":1700604800500}
//! {"type":"write_storage","key":"logout_pending","value":["t1","t2"]}
//! {"type":"remove_storage","key":"token"}
//! {"type":"remove_storage","key":"token_expires_at_ms"}
//! {"type":"remove_storage","key":"logout_pending"}
//! {"type":"wx_login"}
//! {"type":"http_request","request":1,"method":"GET","path":"/checklogin","bearer":"t1","body":null}
//! {"type":"http_request","request":2,"method":"POST","path":"/login","bearer":null,"body":"{\"code\":\"081abcDEF\"}"}
//! {"type":"http_request","request":2,"method":"POST","path":"/login","bearer":null,"body":"{\"code\":\"081abcDEF\",\"device\":\"iPhone 15 / iOS 18.1\"}"}
//! {"type":"http_request","request":4,"method":"POST","path":"/logout","bearer":"t2","body":null}
//! {"type":"start_timer","timer":3,"delay_ms":2000}
//! {"type":"token_changed","token":"t2","expires_at_ms":1700604800500}
//! {"type":"token_changed","token":null,"expires_at_ms":null}
//! {"type":"state_changed","state":"retry-waiting","token_expires_at_ms":null,"verified":false,"attempt":1,"last_error":{"code":"upstream_unavailable","message":"busy"}}
//! {"type":"resolve_waiters","waiters":[7,8],"result":{"ok":{"token":"t2"}}}
//! {"type":"resolve_waiters","waiters":[7],"result":{"err":{"code":"high_risk_user","message":"..."}}}
//! ```
//! `write_storage.value` is a JSON value, the token a string, the expiry a number and the
//! pending logouts an array of strings: store it as is (`wx.setStorageSync(key, value)`; a
//! string-only storage keeps the number's digits and the array's JSON text), and hand it back
//! as is in `storage_read`.
//! `http_request.path` is relative to the server base URL; send `Authorization: Bearer
//! <bearer>` when `bearer` is not null and `Content-Type: application/json` when `body` is not
//! null. `token_changed` comes whenever the held token changes (read from storage and
//! accepted, a fresh login, dropped on a 401/`false`/expiry, logout, forget, a forced login),
//! at most once per event, just before `state_changed`; `token` is `null` when none is held.
//! `state_changed` comes at most once per event, as the last effect; `state` is one of
//! `unknown`, `reading-storage`, `checking`, `getting-code`, `exchanging-code`, `logged-in`,
//! `retry-waiting`, `failed`, `logged-out`. Error codes are the server's (`shared::ErrorCode`,
//! snake_case) or the client's own: `network_error`, `wx_login_failed`, `bad_response`,
//! `logged_out`, `unauthorized` (hosts' request helpers use it too, for an API that refused the
//! fresh token as well).
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
//! lack the feature anyway. The module is about 55 KiB after `wasm-opt -Oz`.

pub mod effect;
pub mod event;
pub mod json_client;
pub mod machine;

mod backoff;
mod config;
mod failure;
mod ids;
mod json_codec;
mod revoke;
mod storage;
mod wire;

#[cfg(target_arch = "wasm32")]
mod wasm;

pub use config::Config;
pub use effect::{
    Effect, Method, Snapshot, StateName, StorageValue, WaiterResult, effects_to_json,
};
pub use event::Event;
pub use failure::{Failure, codes};
pub use json_client::JsonClient;
pub use machine::Machine;
pub use revoke::MAX_PENDING_LOGOUTS;
pub use storage::StoredToken;
