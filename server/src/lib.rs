//! The developer server of the WeChat mini-program login flow.
//!
//! The mini-program calls `wx.login()` for a one-time code and posts it to `/login`; this
//! server exchanges it at WeChat's `auth.code2Session` for the user's `openid` and
//! `session_key`, keeps those, and answers with its own token, which the mini-program caches
//! and checks at `/checklogin` on every launch.
//!
//! # Layout
//! - [`cli`]: the binary's entry point.
//! - [`config`]: every setting, parsed once from flags and environment.
//! - [`http`]: routes, extractors, request logging; one module per endpoint.
//! - [`auth`]: the login rules, free of HTTP.
//! - [`token`]: where tokens are generated and hashed.
//! - [`store`]: the `SessionStore` trait and its SQLite and memory backends.
//! - [`wechat`]: the code2Session client and the WeChat simulator.
//! - [`rate_limit`]: per-client limits on `POST /login`.
//! - [`error`]: the one error type, and the one place HTTP statuses are chosen.
//! - [`state`]: what handlers share.

pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod http;
pub mod rate_limit;
pub mod state;
pub mod store;
pub mod token;
pub mod wechat;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use tokio::net::TcpListener;

use crate::{
    config::{Config, Secret},
    rate_limit::RateLimiter,
    state::AppState,
    store::{StoreError, Stores},
    wechat::{WechatClient, WechatError, client::ClientOptions, simulator::Simulator},
};

/// The AppID the built-in simulator answers to in dev mode.
pub const DEV_APPID: &str = "wxdevsimulator00";

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
    Config(String),
}

/// A server bound to its port and ready to run.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    state: AppState,
}

impl Server {
    /// Binds `config.listen_addr` and prepares everything else.
    pub async fn bind(config: Config) -> Result<Self, StartError> {
        let addr = config.listen_addr;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        Self::with_listener(listener, config).await
    }

    /// Prepares a server on a listener the caller already bound (tests bind port 0).
    pub async fn with_listener(listener: TcpListener, config: Config) -> Result<Self, StartError> {
        let stores = Stores::open(&config.session_store, config.store_timeout).await?;
        Self::with_stores(listener, config, stores)
    }

    /// Like [`Server::with_listener`] with stores the caller provides.
    pub fn with_stores(
        listener: TcpListener,
        config: Config,
        stores: Stores,
    ) -> Result<Self, StartError> {
        let local = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen_addr,
            source,
        })?;
        let options = ClientOptions {
            connect_timeout: config.wechat_connect_timeout,
            timeout: config.wechat_timeout,
            busy_retries: config.wechat_busy_retries,
            backoff: Duration::from_millis(200),
            breaker_threshold: config.breaker_threshold,
            breaker_cooldown: config.breaker_cooldown,
        };
        let (wechat, simulator) = match (&config.wechat_appid, &config.wechat_secret) {
            (Some(appid), Some(secret)) => (
                WechatClient::new(
                    &config.wechat_api_base,
                    appid.clone(),
                    secret.clone(),
                    options,
                )?,
                None,
            ),
            (Some(_), None) => {
                return Err(StartError::Config(
                    "WECHAT_APPID is set but WECHAT_SECRET is not".into(),
                ));
            }
            (None, _) => {
                // Dev mode: a fresh secret per process proves the client sends it correctly,
                // and the simulator is reached over real HTTP on our own port.
                let secret = Secret::new(uuid::Uuid::new_v4().simple().to_string());
                let sim = Simulator::with_code_ttl(DEV_APPID, secret.expose(), config.sim_code_ttl);
                let base = format!("http://{}/sim", loopback_of(local));
                let client = WechatClient::new(&base, DEV_APPID.into(), secret, options)?;
                (client, Some(sim))
            }
        };
        let login_limiter = Arc::new(RateLimiter::new(
            config.login_rate_per_minute,
            config.login_rate_burst,
        ));
        Ok(Self {
            listener,
            state: AppState {
                config: Arc::new(config),
                stores,
                login_limiter,
                wechat,
                simulator,
            },
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then lets requests in flight finish.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let purge = tokio::spawn(purge_expired(self.state.clone()));
        let app = http::router(self.state);
        let served = axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        purge.abort();
        served
    }
}

/// A listener on `0.0.0.0` is reached from inside on loopback.
fn loopback_of(addr: SocketAddr) -> SocketAddr {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

/// Deletes expired sessions now and then. Reads already hide them; this keeps the store small.
async fn purge_expired(state: AppState) {
    let mut tick = tokio::time::interval(state.config.purge_interval);
    loop {
        tick.tick().await;
        match state.stores.sessions.purge_expired(store::unix_now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "expired sessions deleted"),
            Err(e) => tracing::warn!(error = %e, "purging expired sessions failed"),
        }
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
