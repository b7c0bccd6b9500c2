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
//!     format!("hello, {}", user.openid)
//! }
//!
//! # async fn run(config: server::config::Config) -> Result<(), Box<dyn std::error::Error>> {
//! let login = LoginState::open(config.clone()).await?;
//! let _purge = login.spawn_purge();
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
//! - [`cli`]: the binary's entry point.
//! - [`config`]: every setting, parsed once from flags and environment.
//! - [`config_file`]: `CONFIG_FILE`, the TOML list of mini-programs for a shared backend.
//! - [`apps`]: the mini-programs served, each with its WeChat client and access token.
//! - [`http`]: routes, extractors (including [`AuthUser`]), request logging, and the one error
//!   type that chooses HTTP statuses; one module per endpoint.
//! - [`auth`]: the login rules, free of HTTP, with their own error.
//! - [`token`]: where tokens are generated and hashed.
//! - [`data_keys`]: the keys that seal `session_key` at rest, and the sealed form.
//! - [`store`]: the `SessionStore` trait and its SQLite, memory and Redis (one node or a
//!   cluster) backends, and the Redis store's per-process session cache.
//! - [`wechat`]: the code2Session client and the WeChat simulator.
//! - [`rate_limit`]: per-client limits on `POST /login`, and the budget of WeChat calls.
//! - [`client_ip`]: who the client is, behind trusted proxies only.
//! - [`open_data`]: decrypting WeChat's `encryptedData` and checking `rawData` signatures.
//! - [`metrics`]: Prometheus metrics on `METRICS_ADDR`, and what counts them.
//! - [`serve`]: connections with header, request and shutdown deadlines and a cap.
//! - [`state`]: [`LoginState`], what handlers share, built from the configuration without a
//!   socket.

pub mod apps;
#[cfg(any(test, feature = "contract-tests"))]
pub mod captured_log;
#[cfg(feature = "cli")]
pub mod cli;
pub mod client_ip;
pub mod config;
pub mod data_keys;
pub mod http;
pub mod login;
pub mod metrics;
pub mod open_data;
pub mod rate_limit;
pub mod secret;
pub mod serve;
pub mod state;
pub mod store;
pub mod time;
pub mod token;
pub mod wechat;

pub use http::{ApiError, LoginState, routes};
pub use login::AuthUser;
pub use serve::serve;
pub use state::{DEV_APPID, PurgeGuard};

use std::{future::Future, net::SocketAddr};

use tokio::net::TcpListener;

use crate::{store::StoreError, wechat::WechatError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open the session store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot set up the WeChat client: {0}")]
    Wechat(#[from] WechatError),
    #[error("invalid configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot set up the data key: {0}")]
    DataKey(#[from] crate::data_keys::DataKeyError),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
}

/// The standalone login server: the login service on a bound listener.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    state: LoginState,
}

impl Server {
    /// Opens the configured stores and binds `config.listen_addr`.
    pub async fn bind(config: crate::config::Config) -> Result<Self, StartError> {
        let addr = config.listen_addr;
        let state = LoginState::open(config).await?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        Ok(Self::new(listener, state))
    }

    /// Serves `state` on a listener the caller already bound (tests bind port 0).
    pub fn new(listener: TcpListener, state: LoginState) -> Self {
        Self { listener, state }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> &LoginState {
        &self.state
    }

    /// Serves until `shutdown` completes, then lets requests in flight finish.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let _purge = self.state.spawn_purge();
        let config = self.state.config.clone();
        serve(self.listener, http::router(self.state), &config, shutdown).await
    }
}

/// Completes on Ctrl-C or SIGTERM, whichever comes first.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
