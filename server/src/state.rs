//! Building the service from a [`Config`]: the stores it names, the apps with their WeChat
//! clients, the login rules, the rate limiter, all assembled into the [`LoginState`] the routes
//! share. No socket, so a team's own app, a test and the standalone server build it the same
//! way. The one place that knows every part.

use std::{sync::Arc, time::Duration};

use crate::{
    accounts::AccountService,
    apps::{App, Apps},
    config::{Config, ConfigError, SignupPolicy, StoreUrl},
    data_keys::DataKeys,
    http::{LoginState, Parts, csrf::CsrfPolicy},
    login::{LoginService, Rules, Signup},
    metrics::CheckCounters,
    oidc::{Client, OidcService},
    rate_limit::ClientLimiter,
    secret::Secret,
    signing_keys::SigningKeys,
    store::{
        LegacyImport, RedisOptions, SqliteOptions, StoreOptions, Stores, spawn_expiry_deletion,
    },
    web_login::{self, WebLoginService},
    webhooks::{Deliverer, Endpoint},
    wechat::{
        WechatClient, access_token::AccessTokens, client::ClientOptions, simulator::Simulator,
    },
};

/// Why the service could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open the session store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("cannot set up the WeChat client: {0}")]
    Wechat(#[from] crate::wechat::WechatError),
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("cannot set up the data key: {0}")]
    DataKey(#[from] crate::data_keys::DataKeyError),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    #[error("cannot use the OpenID Connect signing keys: {0}")]
    SigningKeys(#[from] crate::signing_keys::SigningKeyError),
}

/// The AppID the built-in simulator answers to in dev mode.
pub const DEV_APPID: &str = "wxdevsimulator00";

/// Inherent methods of a type the HTTP layer defines: they build its parts, and only this
/// module, at the top, may reach every one of them.
impl LoginState {
    /// Opens the stores the configuration names, then [`LoginState::new`]. With `METRICS_ADDR`
    /// set it also installs the process's metrics recorder and its listener, so call it once
    /// per process.
    pub async fn open(config: Config) -> Result<Self, StartError> {
        // Before anything is created on disk or over the network.
        config.validate()?;
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
            max_claims: config.claims_cap(),
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
        config.validate()?;
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
        let apps = Apps::new(apps)
            .ok_or_else(|| StartError::Config(ConfigError::new("no mini-program to serve")))?;
        let rules = Rules {
            token_ttl: config.token_ttl,
            code_replay_window: config.code_replay_window,
            exchange_lease: Rules::exchange_lease(
                config.wechat_timeout,
                config.wechat_busy_retries,
            ),
            open_data_max_age: config.open_data_max_age.0,
            decrypt_failures_per_minute: config.decrypt_failures_per_minute,
            signup: Signup {
                open: config.signup == SignupPolicy::Open,
                max_risk_rank: config.signup_max_risk_rank,
            },
        };
        let login = LoginService::new(rules, stores.clone(), apps.clone(), data_keys);
        let web_login = WebLoginService::new(
            web_login::Rules {
                ttl: config.web_login_ttl,
                token_ttl: config.token_ttl,
                page: config.web_login_page.clone(),
                env_version: config.web_login_env_version.clone(),
                max_tickets_per_client: config.web_login_max_tickets_per_client,
                max_tickets: config.web_login_max_tickets,
            },
            &stores,
            apps,
            login.standings().clone(),
        );
        let web_login_limiter = Arc::new(ClientLimiter::new(
            config.web_login_rate_per_minute,
            config.web_login_rate_burst,
            config.login_rate_max_clients,
        ));
        let csrf = CsrfPolicy::new(config.web_origins());
        let oidc = oidc_provider(&config, &stores)?;
        Ok(LoginState::from(Parts {
            config: Arc::new(config),
            accounts: AccountService::new(stores),
            login,
            login_limiter,
            web_login,
            oidc,
            web_login_limiter,
            csrf,
            streams: tokio::sync::watch::channel(false).0,
            proxies,
            simulator,
            check_counters: CheckCounters::register(),
        }))
    }

    /// The AppID of a login that names none: the first configured app.
    pub fn appid(&self) -> &str {
        self.login.apps().default_app().appid()
    }

    /// Starts delivering the account events of the outbox to `WEBHOOK_URL` (or dropping them,
    /// without one), and giving users from before accounts their account, until the guard
    /// drops.
    pub fn spawn_background(&self) -> BackgroundGuard {
        let stores = self.login.stores();
        let endpoint = match (&self.config.webhook_url, &self.config.webhook_secret) {
            (Some(url), Some(secret)) => Some(Endpoint {
                url: url.clone(),
                secret: secret.clone(),
                retry_base: self.config.webhook_retry_base,
            }),
            _ => None,
        };
        let webhooks = Deliverer::new(stores.outbox.clone(), endpoint).spawn();
        let accounts = stores.accounts.clone();
        let adoption = tokio::spawn(async move {
            let mut adopted = 0;
            loop {
                match accounts
                    .adopt_legacy_users(crate::time::unix_now(), 500)
                    .await
                {
                    Ok(0) => break,
                    Ok(n) => adopted += n,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not give existing users their accounts; retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    }
                }
            }
            if adopted > 0 {
                tracing::info!(
                    users = adopted,
                    "users from before accounts have their accounts"
                );
            }
        });
        BackgroundGuard(vec![webhooks, adoption])
    }

    /// Starts deleting expired sessions now and then, until the guard drops. Reads already hide
    /// expired sessions; this keeps the store small. Stores that expire by themselves (Redis)
    /// need no purge, and get none.
    pub fn spawn_purge(&self) -> PurgeGuard {
        PurgeGuard(match self.login.stores().expiry.clone() {
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
            return Err(StartError::Config(ConfigError::new(
                "set both WECHAT_APPID and WECHAT_SECRET, or neither for dev mode",
            )));
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

/// The OpenID Connect provider, when `OIDC_ISSUER` is set: the configured clients, and the
/// configured keys (dev mode without any: a key beside the SQLite file, made on first
/// start, or for the other stores a key of this process alone).
fn oidc_provider(config: &Config, stores: &Stores) -> Result<Option<OidcService>, StartError> {
    let Some(issuer) = &config.oidc_issuer else {
        return Ok(None);
    };
    let keys = if !config.oidc_signing_keys.is_empty() {
        SigningKeys::load(&config.oidc_signing_keys)?
    } else {
        match &config.session_store {
            StoreUrl::Sqlite(path) => SigningKeys::load_or_create(
                &dev_key_file(path).with_file_name("oidc_signing_key.pem"),
            )?,
            StoreUrl::Memory | StoreUrl::Redis(_) | StoreUrl::RedisCluster(_) => {
                SigningKeys::generate()?
            }
        }
    };
    let clients = config
        .oidc_clients()
        .iter()
        .map(|c| Client {
            id: c.client_id.clone(),
            name: c.name.clone(),
            secret: c.client_secret.clone(),
            redirect_uris: c.redirect_uris.clone(),
            post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
        })
        .collect();
    // The issuer as the operator wrote it, without the slash `Url` adds to a bare host:
    // relying parties compare `iss` with it byte for byte.
    let issuer = issuer.as_str().trim_end_matches('/').to_owned();
    Ok(Some(OidcService::new(
        issuer,
        clients,
        keys,
        config.oidc_code_ttl,
        stores,
    )))
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
        return Err(StartError::Config(ConfigError::new(
            "set DATA_KEY: production seals each session_key under a key of yours",
        )));
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

/// Stops the tasks of [`LoginState::spawn_background`] when dropped.
#[derive(Debug)]
pub struct BackgroundGuard(Vec<tokio::task::JoinHandle<()>>);

impl Drop for BackgroundGuard {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
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
