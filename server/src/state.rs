//! The login service's shared handle: configuration, the stores, the apps with their WeChat
//! clients, the login rate limiter. Built from a [`Config`] with no socket, so a team's own app, a test and the
//! standalone server all build it the same way.

use std::{sync::Arc, time::Duration};

use crate::{
    StartError,
    apps::{App, Apps},
    client_ip::TrustedProxies,
    config::{Config, Secret, StoreUrl},
    data_keys::DataKeys,
    metrics::CheckCounters,
    rate_limit::ClientLimiter,
    store::{
        LegacyImport, RedisOptions, SqliteOptions, StoreOptions, Stores, spawn_expiry_deletion,
    },
    wechat::{
        WechatClient, access_token::AccessTokens, client::ClientOptions, simulator::Simulator,
    },
};

/// The AppID the built-in simulator answers to in dev mode.
pub const DEV_APPID: &str = "wxdevsimulator00";

/// A team's app that keeps state of its own implements `FromRef<TheirState> for LoginState`,
/// and the login routes and [`AuthUser`](crate::AuthUser) find it there. Reads as its
/// [`Parts`].
///
/// One `Arc` around all the parts: axum clones the state for every request (once for the
/// route, once for the `State` extractor), and on a server whose workers share it a clone per
/// part is an atomic increment per part on a cache line the other cores keep taking away, a
/// few percent of `/checklogin`'s whole cost.
#[derive(Debug, Clone)]
pub struct LoginState(Arc<Parts>);

impl std::ops::Deref for LoginState {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

/// What a [`LoginState`] holds.
#[derive(Debug)]
pub struct Parts {
    pub config: Arc<Config>,
    /// Trait objects rather than type parameters: the backend is picked at run time from
    /// `SESSION_STORE`, and one dynamic call per request is noise next to its I/O.
    pub stores: Stores,
    /// Per-client limit on `POST /login`.
    pub login_limiter: Arc<ClientLimiter>,
    /// Whose word on the client's address is taken.
    pub proxies: Arc<TrustedProxies>,
    /// The mini-programs served, each with its WeChat client and access token (shared by the
    /// instances of a Redis store).
    pub apps: Apps,
    /// Present in dev mode only, where it is also served at `/sim`.
    pub simulator: Option<Simulator>,
    /// Seal each session_key before it is stored, and open it for code that needs it.
    pub data_keys: DataKeys,
    /// Handles of the token-check counters, registered once: `/checklogin` is the hot path.
    pub check_counters: CheckCounters,
}

impl LoginState {
    /// Opens the stores the configuration names, then [`LoginState::new`]. With `METRICS_ADDR`
    /// set it also installs the process's metrics recorder and its listener, so call it once
    /// per process.
    pub async fn open(config: Config) -> Result<Self, StartError> {
        // Before anything is created on disk or over the network.
        config.validate().map_err(StartError::Config)?;
        // Before any counter is registered, or its handle would count into the void.
        if let Some(addr) = config.metrics_addr {
            crate::metrics::install(addr)?;
        }
        let data_keys = data_keys(&config)?;
        let appid = config
            .apps()
            .first()
            .map_or_else(|| DEV_APPID.to_owned(), |app| app.appid.clone());
        let options = StoreOptions {
            session_cache: config.session_cache,
            sqlite: SqliteOptions {
                legacy: LegacyImport {
                    appid: appid.clone(),
                    data_keys: data_keys.clone(),
                },
            },
            redis: RedisOptions {
                appid,
                key_prefix: config.redis_key_prefix.clone(),
                data_keys: data_keys.clone(),
                timeout: config.store_timeout,
            },
        };
        let stores = Stores::open(&config.session_store, &options).await?;
        Self::build(config, stores, data_keys)
    }

    /// The login service over stores the caller opened. Dev mode (no AppID) gets the built-in
    /// simulator, called in-process, with a fresh secret per process so that the client is
    /// still seen to send it correctly.
    pub fn new(config: Config, stores: Stores) -> Result<Self, StartError> {
        config.validate().map_err(StartError::Config)?;
        let data_keys = data_keys(&config)?;
        Self::build(config, stores, data_keys)
    }

    fn build(config: Config, stores: Stores, data_keys: DataKeys) -> Result<Self, StartError> {
        let options = ClientOptions {
            connect_timeout: config.wechat_connect_timeout,
            timeout: config.wechat_timeout,
            busy_retries: config.wechat_busy_retries,
            backoff: Duration::from_millis(200),
            breaker_threshold: config.breaker_threshold,
            breaker_cooldown: config.breaker_cooldown,
            rate_per_second: config.upstream_rate_per_second,
        };
        let (clients, simulator) = wechat_clients(&config, &options)?;
        let login_limiter = Arc::new(ClientLimiter::new(
            config.login_rate_per_minute,
            config.login_rate_burst,
            config.login_rate_max_clients,
        ));
        let proxies = Arc::new(config.trusted_proxies());
        let apps = clients
            .into_iter()
            .map(|wechat| App {
                access_tokens: AccessTokens::new(
                    wechat.appid(),
                    Arc::new(wechat.clone()),
                    stores.tokens.clone(),
                ),
                wechat,
            })
            .collect();
        let apps =
            Apps::new(apps).ok_or_else(|| StartError::Config("no mini-program to serve".into()))?;
        Ok(Self(Arc::new(Parts {
            config: Arc::new(config),
            stores,
            login_limiter,
            proxies,
            apps,
            simulator,
            data_keys,
            check_counters: CheckCounters::register(),
        })))
    }

    /// The AppID of a login that names none: the first configured app.
    pub fn appid(&self) -> &str {
        self.apps.default_app().appid()
    }

    /// Starts deleting expired sessions now and then, until the guard drops. Reads already hide
    /// expired sessions; this keeps the store small. Stores that expire by themselves (Redis)
    /// need no purge, and get none.
    pub fn spawn_purge(&self) -> PurgeGuard {
        PurgeGuard(match self.stores.expiry.clone() {
            Some(expiry) => spawn_expiry_deletion(expiry, self.config.purge_interval),
            None => tokio::spawn(async {}),
        })
    }
}

/// One client per configured app, each with its own breaker and call budget; in dev mode
/// (no app configured) one client of the built-in simulator, called in-process, with a fresh
/// secret per process so that the client is still seen to send it correctly.
fn wechat_clients(
    config: &Config,
    options: &ClientOptions,
) -> Result<(Vec<WechatClient>, Option<Simulator>), StartError> {
    let apps = config.apps();
    if apps.is_empty() {
        if !config.dev_mode() {
            // Config::validate has refused this already; a caller that skipped it still
            // gets an error, not dev mode.
            return Err(StartError::Config(
                "set both WECHAT_APPID and WECHAT_SECRET, or neither for dev mode".into(),
            ));
        }
        let secret = Secret::new(uuid::Uuid::new_v4().simple().to_string());
        let sim = Simulator::with_code_ttl(DEV_APPID, secret.expose(), config.sim_code_ttl);
        let client = WechatClient::simulated(&sim, secret, options.clone());
        return Ok((vec![client], Some(sim)));
    }
    let clients = apps
        .into_iter()
        .map(|app| {
            let base = app.api_base.as_deref().unwrap_or(&config.wechat_api_base);
            WechatClient::new(base, app.appid, app.secret, options.clone())
        })
        .collect::<Result<_, _>>()?;
    Ok((clients, None))
}

/// The configured data keys; in dev mode without any, the key file beside the SQLite file
/// (created on first start), or for the other stores a key of this process alone.
fn data_keys(config: &Config) -> Result<DataKeys, StartError> {
    if let Some(keys) = config.configured_data_keys() {
        return Ok(keys.clone());
    }
    if !config.dev_mode() {
        // Config::validate has refused this already; a caller that skipped it still gets an
        // error, not a key nobody else has.
        return Err(StartError::Config(
            "set DATA_KEY: production seals each session_key under a key of yours".into(),
        ));
    }
    Ok(match &config.session_store {
        StoreUrl::Sqlite(path) => DataKeys::load_or_create(&dev_key_file(path))?,
        StoreUrl::Memory | StoreUrl::Redis(_) | StoreUrl::RedisCluster(_) => DataKeys::generate(),
    })
}

/// Where dev mode keeps its data key: `data_key` in the SQLite file's folder.
fn dev_key_file(database: &std::path::Path) -> std::path::PathBuf {
    database
        .parent()
        .unwrap_or(std::path::Path::new(""))
        .join("data_key")
}

/// Stops the purge task of [`LoginState::spawn_purge`] when dropped.
#[derive(Debug)]
pub struct PurgeGuard(tokio::task::JoinHandle<()>);

impl Drop for PurgeGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}
