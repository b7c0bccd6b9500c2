//! The login service's shared handle: configuration, the stores, the WeChat client, the login
//! rate limiter. Built from a [`Config`] with no socket, so a team's own app, a test and the
//! standalone server all build it the same way.

use std::{sync::Arc, time::Duration};

use crate::{
    StartError,
    client_ip::TrustedProxies,
    config::{Config, Secret},
    rate_limit::ClientLimiter,
    store::{Stores, unix_now},
    wechat::{WechatClient, client::ClientOptions, simulator::Simulator},
};

/// The AppID the built-in simulator answers to in dev mode.
pub const DEV_APPID: &str = "wxdevsimulator00";

/// Cloned per request; every field is a cheap handle. A team's app that keeps state of its own
/// implements `FromRef<TheirState> for LoginState`, and the login routes and
/// [`AuthUser`](crate::AuthUser) find it there.
#[derive(Debug, Clone)]
pub struct LoginState {
    pub config: Arc<Config>,
    /// Trait objects rather than type parameters: the backend is picked at run time from
    /// `SESSION_STORE`, and one dynamic call per request is noise next to its I/O.
    pub stores: Stores,
    /// Per-client limit on `POST /login`.
    pub login_limiter: Arc<ClientLimiter>,
    /// Whose word on the client's address is taken.
    pub proxies: Arc<TrustedProxies>,
    pub wechat: WechatClient,
    /// Present in dev mode only, where it is also served at `/sim`.
    pub simulator: Option<Simulator>,
}

impl LoginState {
    /// Opens the stores the configuration names, then [`LoginState::new`].
    pub async fn open(config: Config) -> Result<Self, StartError> {
        // Before anything is created on disk or over the network.
        config.validate().map_err(StartError::Config)?;
        let stores = Stores::open(&config.session_store, config.store_timeout).await?;
        Self::new(config, stores)
    }

    /// The login service over stores the caller opened. Dev mode (no AppID) gets the built-in
    /// simulator, called in-process, with a fresh secret per process so that the client is
    /// still seen to send it correctly.
    pub fn new(config: Config, stores: Stores) -> Result<Self, StartError> {
        config.validate().map_err(StartError::Config)?;
        let options = ClientOptions {
            connect_timeout: config.wechat_connect_timeout,
            timeout: config.wechat_timeout,
            busy_retries: config.wechat_busy_retries,
            backoff: Duration::from_millis(200),
            breaker_threshold: config.breaker_threshold,
            breaker_cooldown: config.breaker_cooldown,
            rate_per_second: config.upstream_rate_per_second,
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
            (None, None) => {
                let secret = Secret::new(uuid::Uuid::new_v4().simple().to_string());
                let sim = Simulator::with_code_ttl(DEV_APPID, secret.expose(), config.sim_code_ttl);
                let client = WechatClient::simulated(&sim, secret, options);
                (client, Some(sim))
            }
            // Config::validate has refused these already; a caller that skipped it still
            // gets an error, not dev mode.
            (Some(_), None) | (None, Some(_)) => {
                return Err(StartError::Config(
                    "set both WECHAT_APPID and WECHAT_SECRET, or neither for dev mode".into(),
                ));
            }
        };
        let login_limiter = Arc::new(ClientLimiter::new(
            config.login_rate_per_minute,
            config.login_rate_burst,
            config.login_rate_max_clients,
        ));
        let proxies = Arc::new(config.trusted_proxies());
        Ok(Self {
            config: Arc::new(config),
            stores,
            login_limiter,
            proxies,
            wechat,
            simulator,
        })
    }

    /// The mini-program whose users this service logs in.
    pub fn appid(&self) -> &str {
        self.wechat.appid()
    }

    /// Starts deleting expired sessions now and then, until the guard drops. Reads already hide
    /// expired sessions; this keeps the store small. Stores that expire by themselves (Redis)
    /// need no purge, and get none.
    pub fn spawn_purge(&self) -> PurgeGuard {
        let state = self.clone();
        PurgeGuard(tokio::spawn(async move {
            if !state.stores.sessions.needs_purge() {
                return;
            }
            let mut tick = tokio::time::interval(state.config.purge_interval);
            loop {
                tick.tick().await;
                match state.stores.sessions.purge_expired(unix_now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(purged = n, "expired sessions deleted"),
                    Err(e) => tracing::warn!(error = %e, "purging expired sessions failed"),
                }
            }
        }))
    }
}

/// Stops the purge task of [`LoginState::spawn_purge`] when dropped.
#[derive(Debug)]
pub struct PurgeGuard(tokio::task::JoinHandle<()>);

impl Drop for PurgeGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}
