//! The WeChat mini-program login, as a library to mount and as a server of its own.
//!
//! The mini-program calls `wx.login()` for a one-time code and posts it to `/login`; this
//! service exchanges it at WeChat's `auth.code2Session` for the user's `openid` and
//! `session_key`, keeps those, and answers with its own token, which the mini-program sends
//! on every later request to prove who the user is.
//!
//! # Use
//! In a team's axum app, build the service from a [`Config`](config::Config), merge its
//! [`routes`], and take [`AuthUser`] in any handler that needs the caller:
//! ```no_run
//! use axum::{Router, routing::get};
//! use server::{AuthUser, LoginState};
//!
//! async fn hello(user: AuthUser) -> String {
//!     format!("hello, {}", user.user_id)
//! }
//!
//! # async fn run(config: server::config::Config) -> Result<(), Box<dyn std::error::Error>> {
//! let login = LoginState::open(config.clone()).await?;
//! let _purge = login.spawn_purge();
//! let _background = login.spawn_background();
//! let app: Router = Router::new()
//!     .route("/api/hello", get(hello))
//!     .merge(server::routes(login.clone()))
//!     .with_state(login);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! server::serve(listener, app, &config, server::shutdown_signal()).await?;
//! # Ok(()) }
//! ```
//! Any other stack puts the standalone server behind its proxy and asks `GET /auth` on every
//! request (forward auth; see `deploy/nginx.conf`).
//!
//! # Layout
//! Listed bottom first: each module uses only modules listed before it, never one after it,
//! and `cargo xtask test` checks that it stays so.
//! - Bottom, depending on nothing here:
//!   - [`time`]: the unix clock sessions are stamped with;
//!   - [`secret`]: values that never print;
//!   - [`token`]: where tokens are generated and hashed;
//!   - [`data_keys`]: the keys that seal `session_key` at rest, and the sealed form;
//!   - [`open_data`]: decrypting WeChat's `encryptedData` and checking `rawData` signatures;
//!   - [`metrics`]: Prometheus metrics on `METRICS_ADDR`, and the calls that count;
//!   - [`log_throttle`]: log lines an attacker can cause, written at a bounded rate;
//!   - [`rate_limit`]: per-client limits on `POST /login`;
//!   - [`upstream_budget`]: each app's budget of WeChat calls, shared by client standing;
//!   - [`client_ip`]: who the client is, behind trusted proxies only.
//! - [`store`]: every store trait (sessions, code claims, users, shared access tokens) and
//!   their SQLite, memory and Redis backends.
//! - [`wechat`]: the WeChat API client, its access token, and the simulator.
//! - [`apps`]: the mini-programs served, each with its WeChat client and access token.
//! - [`login`]: the login service, free of HTTP, with its own error.
//! - [`config`]: every setting in one plain struct, validated once at start-up.
//! - [`http`]: routes, extractors (including [`AuthUser`]), the one error table, request
//!   logging, the OpenAPI document; one module per endpoint.
//! - Top: [`state`] builds the service from a [`Config`](config::Config), [`serve`] serves it
//!   with connection limits, and `cli` (feature `cli`) is the binary's command line.

pub mod accounts;
pub mod apps;
#[cfg(any(test, feature = "contract-tests"))]
pub mod captured_log;
#[cfg(feature = "cli")]
pub mod cli;
pub mod client_ip;
pub mod config;
pub mod data_keys;
pub mod http;
pub mod log_throttle;
pub mod login;
pub mod metrics;
pub mod oidc;
pub mod open_data;
pub mod rate_limit;
pub mod secret;
pub mod serve;
pub mod signing_keys;
pub mod state;
pub mod store;
pub mod time;
pub mod token;
pub mod upstream_budget;
pub mod web_login;
pub mod webhooks;
pub mod wechat;

pub use http::{ApiError, LoginState, routes};
pub use login::{AuthUser, MiniProgramUser};
pub use serve::{Server, serve, shutdown_signal};
pub use state::{BackgroundGuard, DEV_APPID, PurgeGuard, StartError};
pub use store::UserId;
