//! The library's configuration: every setting of the login service in one plain struct with
//! the binary's defaults, checked once by [`Config::validate`] before anything is built, then
//! handed around read-only. The command line (flags and environment variables) belongs to the
//! binary (`cli`), which converts into this; a team embedding the login builds it in code:
//!
//! ```
//! use std::time::Duration;
//! use server::config::{Config, StoreUrl};
//!
//! let config = Config::dev()
//!     .with_session_store(StoreUrl::Memory)
//!     .with_token_ttl(Duration::from_secs(3600));
//! config.validate().expect("a dev configuration is valid");
//! ```

mod duration;
mod file;

/// Where the session store lives; parsed and printed (without its password) by the store.
pub use crate::store::StoreUrl;
pub use duration::{MaxAge, parse_duration, parse_max_age};
pub use file::{
    AppEntry, ConfigFile, OidcClientEntry, load as load_config_file, parse as parse_config_file,
};

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use crate::{
    client_ip::ClientKeying, data_keys::DataKeys, secret::Secret, webhooks::WebhookSecret,
};

/// A rule that spans several settings is broken; the message names the settings by their
/// environment variables, which is how operators know them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl ConfigError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Sessions cached per process by default: a few hundred bytes each, so a few megabytes.
pub const DEFAULT_SESSION_CACHE: usize = 65_536;

/// The least derived claims cap: a small budget still leaves room for a burst of logins.
const MIN_CLAIMS: usize = 1_000;

/// Loopback only: dev mode mints login codes for anyone who can reach it.
pub const DEFAULT_LISTEN_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 3000);

/// Connections one client (an IPv4 address, an IPv6 /64) may hold open at once. A login holds
/// a connection for a moment and an idle one is closed after `HEADER_TIMEOUT`, so even a
/// carrier-grade NAT address with hundreds of active users stays well under it; yet one
/// address can take no more than a twentieth of the default `MAX_CONNECTIONS`.
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: u32 = 500;

/// Where WeChat's server API is.
pub const DEFAULT_WECHAT_API_BASE: &str = "https://api.weixin.qq.com";

/// The SQLite file of a fresh checkout, relative to the working directory.
pub const DEFAULT_SQLITE_PATH: &str = "data/sessions.db";

/// Configuration of one login service. Each field is documented, with its environment
/// variable, in `docs/configuration.md`; the defaults are [`Config::dev`]'s. Fields may be read
/// and assigned; new ones will come, so build it from [`Config::dev`] rather than a literal.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// `LISTEN_ADDR`.
    pub listen_addr: SocketAddr,
    /// `WECHAT_APPID`; with [`Config::wechat_secret`], the one mini-program served.
    pub wechat_appid: Option<String>,
    /// `CONFIG_FILE`: several mini-programs instead of the AppID and secret.
    pub config_file: Option<ConfigFile>,
    /// `DEV_MODE`: dev mode on a non-loopback address.
    pub dev_anywhere: bool,
    /// `WECHAT_SECRET`.
    pub wechat_secret: Option<Secret>,
    /// `WECHAT_API_BASE`.
    pub wechat_api_base: String,
    /// `SESSION_STORE`.
    pub session_store: StoreUrl,
    /// `TOKEN_TTL`: absolute, counted from login.
    pub token_ttl: Duration,
    /// `WECHAT_CONNECT_TIMEOUT`.
    pub wechat_connect_timeout: Duration,
    /// `WECHAT_TIMEOUT`: one whole code2Session call.
    pub wechat_timeout: Duration,
    /// `WECHAT_BUSY_RETRIES`.
    pub wechat_busy_retries: u32,
    /// `SIM_CODE_TTL`: the dev simulator's code life.
    pub sim_code_ttl: Duration,
    /// `STORE_TIMEOUT`: one call to a networked store.
    pub store_timeout: Duration,
    /// `SESSION_CACHE`: sessions kept in this process (`0`: none).
    pub session_cache: usize,
    /// `LOGIN_RATE_PER_MINUTE` (`0`: no limit).
    pub login_rate_per_minute: u32,
    /// `LOGIN_RATE_BURST`.
    pub login_rate_burst: u32,
    /// `LOGIN_RATE_MAX_CLIENTS`.
    pub login_rate_max_clients: u32,
    /// `UPSTREAM_RATE_PER_SECOND` (`0`: no limit).
    pub upstream_rate_per_second: u32,
    /// `MAX_CLAIMS` (`0`: derived, see [`Config::claims_cap`]).
    pub max_claims: usize,
    /// `TRUSTED_PROXIES`.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `TRUSTED_PROXY_HEADER`.
    pub trusted_proxy_header: Option<axum::http::HeaderName>,
    /// `BREAKER_THRESHOLD`.
    pub breaker_threshold: u32,
    /// `BREAKER_COOLDOWN`.
    pub breaker_cooldown: Duration,
    /// `HARNESS_DIR`: the browser harness served in dev mode.
    pub harness_dir: PathBuf,
    /// `CODE_REPLAY_WINDOW`.
    pub code_replay_window: Duration,
    /// `HEADER_TIMEOUT`.
    pub header_timeout: Duration,
    /// `BODY_TIMEOUT`: a request's whole body, counted from its headers.
    pub body_timeout: Duration,
    /// `REQUEST_TIMEOUT`.
    pub request_timeout: Duration,
    /// `MAX_CONNECTIONS`.
    pub max_connections: u32,
    /// `MAX_CONNECTIONS_PER_CLIENT` (`0`: no cap per client).
    pub max_connections_per_client: u32,
    /// `CLIENT_IPV6_PREFIX`: how many leading bits of an IPv6 address name one client.
    pub client_ipv6_prefix: u8,
    /// `SHUTDOWN_TIMEOUT`.
    pub shutdown_timeout: Duration,
    /// `OPEN_DATA_MAX_AGE`.
    pub open_data_max_age: MaxAge,
    /// `DECRYPT_FAILURES_PER_MINUTE` (`0`: no limit).
    pub decrypt_failures_per_minute: u32,
    /// `PURGE_INTERVAL`.
    pub purge_interval: Duration,
    /// `DATA_KEY`: one key.
    pub data_key: Option<DataKeys>,
    /// `DATA_KEYS`: several, the first sealing; instead of `DATA_KEY`.
    pub data_keys: Option<DataKeys>,
    /// `REDIS_KEY_PREFIX`.
    pub redis_key_prefix: String,
    /// `METRICS_ADDR`: unset, no metrics are kept.
    pub metrics_addr: Option<SocketAddr>,
    /// `SIGNUP`.
    pub signup: SignupPolicy,
    /// `SIGNUP_MAX_RISK_RANK` (`None`: no risk check).
    pub signup_max_risk_rank: Option<u8>,
    /// `WEBHOOK_URL` (`None`: no webhooks; events are dropped).
    pub webhook_url: Option<reqwest::Url>,
    /// `WEBHOOK_SECRET`.
    pub webhook_secret: Option<WebhookSecret>,
    /// `WEBHOOK_RETRY_BASE`.
    pub webhook_retry_base: Duration,
    /// `PUBLIC_URL`: where browsers reach the server (`None`: the listen address in dev mode).
    pub public_url: Option<url::Url>,
    /// `WEB_ORIGINS`: the origins a cookie-authenticated change may come from (empty: the
    /// origin of [`Config::public_url`]).
    pub web_origins: Vec<String>,
    /// `WEB_LOGIN_TTL`.
    pub web_login_ttl: Duration,
    /// `WEB_LOGIN_PAGE`.
    pub web_login_page: String,
    /// `WEB_LOGIN_ENV_VERSION`.
    pub web_login_env_version: String,
    /// `WEB_LOGIN_RATE_PER_MINUTE` (`0`: no limit).
    pub web_login_rate_per_minute: u32,
    /// `WEB_LOGIN_RATE_BURST`.
    pub web_login_rate_burst: u32,
    /// `WEB_LOGIN_MAX_TICKETS_PER_CLIENT`.
    pub web_login_max_tickets_per_client: u32,
    /// `WEB_LOGIN_MAX_TICKETS`.
    pub web_login_max_tickets: usize,
    /// `OIDC_ISSUER`: turns the OpenID Connect provider on.
    pub oidc_issuer: Option<url::Url>,
    /// `OIDC_SIGNING_KEYS`: PEM files, the first signing.
    pub oidc_signing_keys: Vec<PathBuf>,
    /// `OIDC_CODE_TTL`.
    pub oidc_code_ttl: Duration,
}

/// The longest life RFC 6749 allows an authorization code.
const MAX_OIDC_CODE_TTL: Duration = Duration::from_secs(600);

/// The mini-program page a web-login code opens by default.
pub const DEFAULT_WEB_LOGIN_PAGE: &str = "pages/web-login/confirm";
/// The versions of a mini-program a code can open, as WeChat names them.
pub const ENV_VERSIONS: [&str; 3] = ["release", "trial", "develop"];

/// Whether people without an account may get one at their first login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignupPolicy {
    #[default]
    Open,
    /// Only people who already have an account log in.
    Closed,
}

impl std::str::FromStr for SignupPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "open" => Ok(SignupPolicy::Open),
            "closed" => Ok(SignupPolicy::Closed),
            other => Err(format!(
                "{other:?} is not a sign-up policy: use open or closed"
            )),
        }
    }
}

/// The highest risk rank WeChat gives.
pub const MAX_RISK_RANK: u8 = 4;

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

impl Config {
    /// The binary's defaults: dev mode (no AppID, the built-in WeChat simulator), a SQLite file,
    /// loopback. Production sets an AppID and its secret (or a config file) and a data key.
    pub fn dev() -> Self {
        Self {
            listen_addr: DEFAULT_LISTEN_ADDR,
            wechat_appid: None,
            config_file: None,
            dev_anywhere: false,
            wechat_secret: None,
            wechat_api_base: DEFAULT_WECHAT_API_BASE.to_owned(),
            session_store: StoreUrl::Sqlite(DEFAULT_SQLITE_PATH.into()),
            token_ttl: secs(7 * 86_400),
            wechat_connect_timeout: secs(2),
            wechat_timeout: secs(5),
            wechat_busy_retries: 3,
            sim_code_ttl: secs(5 * 60),
            store_timeout: secs(1),
            session_cache: DEFAULT_SESSION_CACHE,
            login_rate_per_minute: 60,
            login_rate_burst: 20,
            login_rate_max_clients: crate::rate_limit::DEFAULT_MAX_CLIENTS,
            upstream_rate_per_second: 200,
            max_claims: 0,
            trusted_proxies: Vec::new(),
            trusted_proxy_header: None,
            breaker_threshold: 5,
            breaker_cooldown: secs(10),
            harness_dir: default_harness_dir(),
            code_replay_window: secs(30),
            header_timeout: secs(10),
            body_timeout: secs(5),
            request_timeout: secs(60),
            max_connections: 10_000,
            max_connections_per_client: DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
            client_ipv6_prefix: ClientKeying::DEFAULT_IPV6_PREFIX,
            shutdown_timeout: secs(30),
            open_data_max_age: MaxAge(Some(secs(3600))),
            decrypt_failures_per_minute: 10,
            purge_interval: secs(10 * 60),
            data_key: None,
            data_keys: None,
            redis_key_prefix: String::new(),
            metrics_addr: None,
            signup: SignupPolicy::Open,
            signup_max_risk_rank: None,
            webhook_url: None,
            webhook_secret: None,
            webhook_retry_base: secs(5),
            public_url: None,
            web_origins: Vec::new(),
            web_login_ttl: secs(120),
            web_login_page: DEFAULT_WEB_LOGIN_PAGE.to_owned(),
            web_login_env_version: "release".to_owned(),
            web_login_rate_per_minute: 10,
            web_login_rate_burst: 5,
            web_login_max_tickets_per_client: 10,
            web_login_max_tickets: 10_000,
            oidc_issuer: None,
            oidc_signing_keys: Vec::new(),
            oidc_code_ttl: secs(60),
        }
    }

    /// One mini-program, by its AppID and AppSecret: production, which also needs a data key.
    pub fn with_app(mut self, appid: impl Into<String>, secret: Secret) -> Self {
        self.wechat_appid = Some(appid.into());
        self.wechat_secret = Some(secret);
        self
    }

    /// Several mini-programs, as a config file lists them.
    pub fn with_config_file(mut self, file: ConfigFile) -> Self {
        self.config_file = Some(file);
        self
    }

    /// The keys that seal each session_key at rest; the first seals.
    pub fn with_data_keys(mut self, keys: DataKeys) -> Self {
        self.data_keys = Some(keys);
        self
    }

    /// Account events posted to `url`, signed with `secret`.
    pub fn with_webhook(mut self, url: reqwest::Url, secret: WebhookSecret) -> Self {
        self.webhook_url = Some(url);
        self.webhook_secret = Some(secret);
        self
    }

    /// Prometheus metrics on a listener of their own.
    pub fn with_metrics_addr(mut self, addr: SocketAddr) -> Self {
        self.metrics_addr = Some(addr);
        self
    }

    /// Reverse proxies whose forwarding header names the client, and that header
    /// (`X-Forwarded-For` when `None`).
    pub fn with_trusted_proxies(
        mut self,
        proxies: Vec<ipnet::IpNet>,
        header: Option<axum::http::HeaderName>,
    ) -> Self {
        self.trusted_proxies = proxies;
        self.trusted_proxy_header = header;
        self
    }
}

/// `with_…` setters for the plain fields, one per field.
macro_rules! setters {
    ($($setter:ident($field:ident: $ty:ty);)*) => {
        impl Config {
            $(
                #[doc = concat!("Sets `", stringify!($field), "`.")]
                pub fn $setter(mut self, value: $ty) -> Self {
                    self.$field = value;
                    self
                }
            )*
        }
    };
}

setters! {
    with_listen_addr(listen_addr: SocketAddr);
    with_dev_anywhere(dev_anywhere: bool);
    with_wechat_api_base(wechat_api_base: String);
    with_session_store(session_store: StoreUrl);
    with_token_ttl(token_ttl: Duration);
    with_wechat_connect_timeout(wechat_connect_timeout: Duration);
    with_wechat_timeout(wechat_timeout: Duration);
    with_wechat_busy_retries(wechat_busy_retries: u32);
    with_sim_code_ttl(sim_code_ttl: Duration);
    with_store_timeout(store_timeout: Duration);
    with_session_cache(session_cache: usize);
    with_login_rate_per_minute(login_rate_per_minute: u32);
    with_login_rate_burst(login_rate_burst: u32);
    with_login_rate_max_clients(login_rate_max_clients: u32);
    with_upstream_rate_per_second(upstream_rate_per_second: u32);
    with_max_claims(max_claims: usize);
    with_breaker_threshold(breaker_threshold: u32);
    with_breaker_cooldown(breaker_cooldown: Duration);
    with_harness_dir(harness_dir: PathBuf);
    with_code_replay_window(code_replay_window: Duration);
    with_header_timeout(header_timeout: Duration);
    with_body_timeout(body_timeout: Duration);
    with_request_timeout(request_timeout: Duration);
    with_max_connections(max_connections: u32);
    with_max_connections_per_client(max_connections_per_client: u32);
    with_client_ipv6_prefix(client_ipv6_prefix: u8);
    with_shutdown_timeout(shutdown_timeout: Duration);
    with_open_data_max_age(open_data_max_age: MaxAge);
    with_decrypt_failures_per_minute(decrypt_failures_per_minute: u32);
    with_purge_interval(purge_interval: Duration);
    with_redis_key_prefix(redis_key_prefix: String);
    with_signup(signup: SignupPolicy);
    with_signup_max_risk_rank(signup_max_risk_rank: Option<u8>);
    with_webhook_retry_base(webhook_retry_base: Duration);
    with_public_url(public_url: Option<url::Url>);
    with_web_origins(web_origins: Vec<String>);
    with_web_login_ttl(web_login_ttl: Duration);
    with_web_login_page(web_login_page: String);
    with_web_login_env_version(web_login_env_version: String);
    with_web_login_rate_per_minute(web_login_rate_per_minute: u32);
    with_web_login_rate_burst(web_login_rate_burst: u32);
    with_web_login_max_tickets_per_client(web_login_max_tickets_per_client: u32);
    with_web_login_max_tickets(web_login_max_tickets: usize);
    with_oidc_issuer(oidc_issuer: Option<url::Url>);
    with_oidc_signing_keys(oidc_signing_keys: Vec<PathBuf>);
    with_oidc_code_ttl(oidc_code_ttl: Duration);
}

impl Default for Config {
    fn default() -> Self {
        Self::dev()
    }
}

/// The build output of the browser harness in this source tree (`cargo xtask build` writes
/// it); only dev mode serves it.
pub fn default_harness_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../client-wasm/harness/dist"
    ))
}

impl Config {
    /// Dev mode is chosen by the absence of all WeChat credentials, so a fresh checkout runs
    /// with no set-up while a deployment that set any cannot fall into it by accident.
    pub fn dev_mode(&self) -> bool {
        self.wechat_appid.is_none() && self.wechat_secret.is_none() && !self.file_lists_apps()
    }

    /// Whether `CONFIG_FILE` names the apps (it may list only OpenID Connect clients).
    fn file_lists_apps(&self) -> bool {
        self.config_file
            .as_ref()
            .is_some_and(|f| !f.apps.is_empty())
    }

    /// The OpenID Connect clients of `CONFIG_FILE`.
    pub fn oidc_clients(&self) -> &[OidcClientEntry] {
        self.config_file
            .as_ref()
            .map_or(&[], |f| f.oidc_clients.as_slice())
    }

    /// The mini-programs to serve, the default first: the CONFIG_FILE's, or the one of
    /// WECHAT_APPID and WECHAT_SECRET. Empty in dev mode.
    pub fn apps(&self) -> Vec<AppEntry> {
        if let Some(file) = self.config_file.as_ref().filter(|f| !f.apps.is_empty()) {
            return file.apps.clone();
        }
        match (&self.wechat_appid, &self.wechat_secret) {
            (Some(appid), Some(secret)) => vec![AppEntry {
                appid: appid.clone(),
                secret: secret.clone(),
                api_base: None,
            }],
            _ => Vec::new(),
        }
    }

    /// Claims on login codes one process holds at most: `MAX_CLAIMS`, or when it is `0`, what
    /// the budget lets in. Each app's claims are at most its budget's calls over a claim's
    /// longest life: the wait for a call, the exchange's lease, then the outcome kept for the
    /// replay window. Twice that leaves room for a burst; with no budget nothing bounds it,
    /// and the default cap holds.
    pub fn claims_cap(&self) -> usize {
        if self.max_claims > 0 {
            return self.max_claims;
        }
        if self.upstream_rate_per_second == 0 {
            return crate::store::DEFAULT_MAX_CLAIMS;
        }
        let lease =
            crate::login::Rules::exchange_lease(self.wechat_timeout, self.wechat_busy_retries);
        let life = crate::upstream_budget::MAX_WAIT + lease + self.code_replay_window;
        let per_app = u128::from(self.upstream_rate_per_second) * life.as_millis() / 1000;
        let apps = self.apps().len().max(1) as u128;
        usize::try_from(2 * apps * per_app)
            .unwrap_or(usize::MAX)
            .max(MIN_CLAIMS)
    }

    /// Where browsers reach the server: `PUBLIC_URL`, or in dev mode the listen address.
    pub fn public_url(&self) -> Option<url::Url> {
        if let Some(url) = &self.public_url {
            return Some(url.clone());
        }
        if !self.dev_mode() {
            return None;
        }
        url::Url::parse(&format!("http://{}/", self.listen_addr)).ok()
    }

    /// The origins a cookie-authenticated change may come from: `WEB_ORIGINS`, or the origin
    /// of `PUBLIC_URL`; empty when neither is set (dev mode then takes its bound address).
    pub fn web_origins(&self) -> Vec<String> {
        if !self.web_origins.is_empty() {
            return self.web_origins.clone();
        }
        // Not `public_url()`: dev mode's default is the bound address, which the server
        // learns only once bound (tests bind port 0).
        self.public_url
            .iter()
            .map(|url| url.origin().ascii_serialization())
            .collect()
    }

    /// Which addresses count as one client. `validate` has refused a prefix out of range.
    pub fn client_keying(&self) -> ClientKeying {
        ClientKeying::new(self.client_ipv6_prefix).unwrap_or_default()
    }

    pub fn trusted_proxies(&self) -> crate::client_ip::TrustedProxies {
        if self.trusted_proxies.is_empty() {
            return crate::client_ip::TrustedProxies::default();
        }
        let header = self
            .trusted_proxy_header
            .clone()
            .unwrap_or(axum::http::HeaderName::from_static("x-forwarded-for"));
        crate::client_ip::TrustedProxies::new(self.trusted_proxies.clone(), Some(header))
    }

    /// The rules that span several settings; each setting's own shape is checked as it is
    /// parsed. Called once at start-up by everything that builds the service.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check().map_err(ConfigError)
    }

    fn check(&self) -> Result<(), String> {
        // The command line refuses these as it parses; a Config built in code meets them here.
        for (name, value) in [
            ("LOGIN_RATE_MAX_CLIENTS", self.login_rate_max_clients),
            ("MAX_CONNECTIONS", self.max_connections),
        ] {
            if value == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        for (name, value) in [
            ("TOKEN_TTL", self.token_ttl),
            ("WECHAT_CONNECT_TIMEOUT", self.wechat_connect_timeout),
            ("WECHAT_TIMEOUT", self.wechat_timeout),
            ("SIM_CODE_TTL", self.sim_code_ttl),
            ("STORE_TIMEOUT", self.store_timeout),
            ("BREAKER_COOLDOWN", self.breaker_cooldown),
            ("CODE_REPLAY_WINDOW", self.code_replay_window),
            ("HEADER_TIMEOUT", self.header_timeout),
            ("BODY_TIMEOUT", self.body_timeout),
            ("REQUEST_TIMEOUT", self.request_timeout),
            ("SHUTDOWN_TIMEOUT", self.shutdown_timeout),
            ("PURGE_INTERVAL", self.purge_interval),
            ("WEBHOOK_RETRY_BASE", self.webhook_retry_base),
        ] {
            if value.is_zero() {
                return Err(format!("{name} must be longer than zero"));
            }
        }
        self.check_web_login()?;
        self.check_oidc()?;
        if self
            .signup_max_risk_rank
            .is_some_and(|rank| rank > MAX_RISK_RANK)
        {
            return Err(format!(
                "SIGNUP_MAX_RISK_RANK must be 0 to {MAX_RISK_RANK}, WeChat's ranks"
            ));
        }
        match (&self.webhook_url, &self.webhook_secret) {
            (Some(_), None) => {
                return Err(
                    "WEBHOOK_URL is set without WEBHOOK_SECRET: webhooks are always \
                            signed; set a whsec_ secret"
                        .into(),
                );
            }
            (None, Some(_)) => {
                return Err("WEBHOOK_SECRET is set without WEBHOOK_URL".into());
            }
            (Some(url), Some(_)) if !matches!(url.scheme(), "http" | "https") => {
                return Err(format!(
                    "WEBHOOK_URL must be an http or https URL, not {}:",
                    url.scheme()
                ));
            }
            _ => {}
        }
        if let Some(file) = self.config_file.as_ref().filter(|f| !f.apps.is_empty()) {
            if self.wechat_appid.is_some() || self.wechat_secret.is_some() {
                return Err(format!(
                    "CONFIG_FILE ({}) lists the apps, and WECHAT_APPID or WECHAT_SECRET is \
                     set too: name every app in the file, or use the variables alone for one",
                    file.path.display()
                ));
            }
            if self.dev_anywhere {
                return Err("DEV_MODE is set together with CONFIG_FILE: dev mode runs \
                            without WeChat credentials; unset one of them"
                    .into());
            }
        }
        match (&self.wechat_appid, &self.wechat_secret) {
            (Some(_), None) => {
                return Err(
                    "WECHAT_APPID is set but WECHAT_SECRET is not: set both for \
                            WeChat, or neither for dev mode"
                        .into(),
                );
            }
            (None, Some(_)) => {
                return Err(
                    "WECHAT_SECRET is set but WECHAT_APPID is not: set WECHAT_APPID \
                            too (dev mode starts only when neither is set)"
                        .into(),
                );
            }
            (Some(_), Some(_)) if self.dev_anywhere => {
                return Err("DEV_MODE is set together with WECHAT_APPID: dev mode runs \
                            without WeChat credentials; unset one of them"
                    .into());
            }
            _ => {}
        }
        if ClientKeying::new(self.client_ipv6_prefix).is_none() {
            return Err(format!(
                "CLIENT_IPV6_PREFIX is {}: it must be from {} to {} bits",
                self.client_ipv6_prefix,
                ClientKeying::WIDEST_IPV6_PREFIX,
                ClientKeying::DEFAULT_IPV6_PREFIX
            ));
        }
        if self.trusted_proxy_header.is_some() && self.trusted_proxies.is_empty() {
            return Err(
                "TRUSTED_PROXY_HEADER is set but TRUSTED_PROXIES is empty: list the \
                        addresses of your reverse proxies (e.g. TRUSTED_PROXIES=127.0.0.1), \
                        whose header alone is believed"
                    .into(),
            );
        }
        self.validate_data_keys()?;
        if matches!(self.session_store, StoreUrl::RedisCluster(_))
            && self.redis_key_prefix.contains(['{', '}'])
        {
            return Err(format!(
                "REDIS_KEY_PREFIX {:?} holds a brace: on a Redis Cluster a {{…}} in a key \
                 chooses its node, so every session would land on one node; use a prefix \
                 without braces",
                self.redis_key_prefix
            ));
        }
        if let Some(metrics) = self.metrics_addr
            && metrics.port() != 0
            && metrics == self.listen_addr
        {
            return Err(format!(
                "METRICS_ADDR is LISTEN_ADDR ({metrics}): the metrics need a listener of their \
                 own; pick another port"
            ));
        }
        if self.dev_mode() && !self.listen_addr.ip().is_loopback() && !self.dev_anywhere {
            return Err(format!(
                "dev mode serves a WeChat simulator that mints login codes for anyone, so it \
                 listens on loopback only; LISTEN_ADDR is {}. Set DEV_MODE=1 (--dev) to allow \
                 it, or set WECHAT_APPID and WECHAT_SECRET for production",
                self.listen_addr
            ));
        }
        Ok(())
    }
}

/// The web login's settings.
impl Config {
    fn check_web_login(&self) -> Result<(), String> {
        if self.web_login_ttl.is_zero() {
            return Err("WEB_LOGIN_TTL must be longer than zero".into());
        }
        if self.web_login_max_tickets_per_client == 0 || self.web_login_max_tickets == 0 {
            return Err(
                "WEB_LOGIN_MAX_TICKETS and WEB_LOGIN_MAX_TICKETS_PER_CLIENT must be at least 1"
                    .into(),
            );
        }
        let page = &self.web_login_page;
        if page.is_empty() || page.starts_with('/') || page.contains(['?', '#']) {
            return Err(format!(
                "WEB_LOGIN_PAGE {page:?} must be a page path of the mini-program without a                  leading slash or a query, such as {DEFAULT_WEB_LOGIN_PAGE}"
            ));
        }
        if !ENV_VERSIONS.contains(&self.web_login_env_version.as_str()) {
            return Err(format!(
                "WEB_LOGIN_ENV_VERSION {:?} must be one of release, trial or develop",
                self.web_login_env_version
            ));
        }
        if let Some(url) = &self.public_url
            && (!matches!(url.scheme(), "http" | "https") || url.host().is_none())
        {
            return Err(format!(
                "PUBLIC_URL {url} must be an http or https URL with a host"
            ));
        }
        for origin in &self.web_origins {
            if parse_origin(origin).is_none() {
                return Err(format!(
                    "WEB_ORIGINS holds {origin:?}, which is not an origin: write                      scheme://host[:port], with no path or trailing slash"
                ));
            }
        }
        Ok(())
    }
}

/// The OpenID Connect provider's settings.
impl Config {
    fn check_oidc(&self) -> Result<(), String> {
        // RFC 6749 §4.1.2 caps a code's life at ten minutes.
        if self.oidc_code_ttl.is_zero() || self.oidc_code_ttl > MAX_OIDC_CODE_TTL {
            return Err("OIDC_CODE_TTL must be longer than zero and at most 10m".into());
        }
        let clients = self.oidc_clients();
        let Some(issuer) = &self.oidc_issuer else {
            if !clients.is_empty() {
                return Err(
                    "CONFIG_FILE lists OpenID Connect clients but OIDC_ISSUER is not \
                            set: set it to the public base URL relying parties reach the \
                            server at"
                        .into(),
                );
            }
            if !self.oidc_signing_keys.is_empty() {
                return Err("OIDC_SIGNING_KEYS is set without OIDC_ISSUER".into());
            }
            return Ok(());
        };
        if !matches!(issuer.scheme(), "http" | "https")
            || issuer.host().is_none()
            || issuer.query().is_some()
            || issuer.fragment().is_some()
        {
            return Err(format!(
                "OIDC_ISSUER {issuer} must be an http(s) URL with a host and no query or fragment"
            ));
        }
        if !self.dev_mode() && self.oidc_signing_keys.is_empty() {
            return Err(
                "OIDC_ISSUER is set but OIDC_SIGNING_KEYS is not: production signs ID \
                        tokens with keys of yours. Make one with `openssl genpkey -algorithm \
                        RSA -pkeyopt rsa_keygen_bits:2048 -out oidc.pem` and set \
                        OIDC_SIGNING_KEYS=oidc.pem"
                    .into(),
            );
        }
        Ok(())
    }
}

/// `origin` as browsers send it in `Origin`, if it is one: `scheme://host[:port]`.
pub fn parse_origin(origin: &str) -> Option<String> {
    let url = url::Url::parse(origin).ok()?;
    let serialized = url.origin().ascii_serialization();
    (serialized == origin).then_some(serialized)
}

/// Data keys: the settings that give them, and which one wins.
impl Config {
    /// The configured data keys (DATA_KEYS or DATA_KEY), if any; dev mode may have none.
    pub fn configured_data_keys(&self) -> Option<&DataKeys> {
        self.data_keys.as_ref().or(self.data_key.as_ref())
    }

    /// One way to give the keys, and production must give them: a server that generated its
    /// own would seal sessions no other instance, and no restart elsewhere, could open.
    fn validate_data_keys(&self) -> Result<(), String> {
        if self.data_key.is_some() && self.data_keys.is_some() {
            return Err(
                "DATA_KEY and DATA_KEYS are both set: use DATA_KEYS alone for several \
                        keys (its first key seals), or DATA_KEY alone for one"
                    .into(),
            );
        }
        if !self.dev_mode() && self.configured_data_keys().is_none() {
            let apps = if self.file_lists_apps() {
                "CONFIG_FILE"
            } else {
                "WECHAT_APPID"
            };
            return Err(format!(
                "{apps} is set but DATA_KEY is not: production seals each session_key \
                 under a key of yours. Make one with `openssl rand -base64 32` and set \
                 DATA_KEY (or DATA_KEYS)"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn key() -> DataKeys {
        DataKeys::parse(KEY).unwrap()
    }

    #[test]
    fn the_defaults_are_a_valid_dev_configuration() {
        let c = Config::dev();
        assert!(c.dev_mode());
        c.validate().unwrap();
        assert_eq!(c.listen_addr.to_string(), "127.0.0.1:3000");
        assert_eq!(c.session_store, StoreUrl::Sqlite("data/sessions.db".into()));
    }

    #[test]
    fn built_in_code_production_needs_a_data_key_and_loopback_dev_mode_stays_on_loopback() {
        let app = Config::dev().with_app("wx1", Secret::new("s"));
        assert!(!app.dev_mode());
        let err = app.validate().unwrap_err().to_string();
        assert!(err.contains("DATA_KEY"), "{err}");
        app.clone().with_data_keys(key()).validate().unwrap();
        let open: SocketAddr = "0.0.0.0:3000".parse().unwrap();
        let err = Config::dev().with_listen_addr(open).validate().unwrap_err();
        assert!(err.to_string().contains("DEV_MODE=1"), "{err}");
        Config::dev()
            .with_listen_addr(open)
            .with_dev_anywhere(true)
            .validate()
            .unwrap();
    }

    #[test]
    fn values_the_command_line_refuses_are_refused_in_code_too() {
        let err = Config::dev()
            .with_max_connections(0)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("MAX_CONNECTIONS"), "{err}");
        let err = Config::dev()
            .with_token_ttl(Duration::ZERO)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("TOKEN_TTL"), "{err}");
    }

    #[test]
    fn an_ipv6_client_prefix_outside_32_to_64_bits_is_refused() {
        for bits in [0, 31, 65, 128] {
            let err = Config::dev().with_client_ipv6_prefix(bits).validate();
            assert!(
                err.is_err_and(|e| e.to_string().contains("CLIENT_IPV6_PREFIX")),
                "{bits}"
            );
        }
        for bits in [32, 48, 64] {
            let c = Config::dev().with_client_ipv6_prefix(bits);
            assert!(c.validate().is_ok(), "{bits}");
            assert_eq!(c.client_keying().ipv6_prefix(), bits);
        }
    }

    #[test]
    fn web_login_settings_are_checked_with_a_clear_message() {
        for (config, name) in [
            (
                Config::dev().with_web_login_page("/pages/a".into()),
                "WEB_LOGIN_PAGE",
            ),
            (
                Config::dev().with_web_login_page("pages/a?x=1".into()),
                "WEB_LOGIN_PAGE",
            ),
            (
                Config::dev().with_web_login_env_version("beta".into()),
                "WEB_LOGIN_ENV_VERSION",
            ),
            (
                Config::dev().with_web_login_ttl(Duration::ZERO),
                "WEB_LOGIN_TTL",
            ),
            (
                Config::dev().with_web_origins(vec!["https://shop.example/".into()]),
                "WEB_ORIGINS",
            ),
            (
                Config::dev().with_public_url(Some(url::Url::parse("ftp://x.example").unwrap())),
                "PUBLIC_URL",
            ),
        ] {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn the_origins_come_from_web_origins_or_the_public_url() {
        let public = url::Url::parse("https://shop.example/login/").unwrap();
        let c = Config::dev().with_public_url(Some(public));
        assert_eq!(c.web_origins(), ["https://shop.example"]);
        let c = c.with_web_origins(vec![
            "https://a.example".into(),
            "http://localhost:8080".into(),
        ]);
        c.validate().unwrap();
        assert_eq!(
            c.web_origins(),
            ["https://a.example", "http://localhost:8080"]
        );
        assert!(
            Config::dev().web_origins().is_empty(),
            "dev mode learns its bound address"
        );
        assert_eq!(
            Config::dev().public_url().unwrap().as_str(),
            "http://127.0.0.1:3000/"
        );
    }

    #[test]
    fn an_authorization_code_lives_at_most_the_ten_minutes_rfc_6749_allows() {
        let issuer = url::Url::parse("http://127.0.0.1:3000").unwrap();
        let with_ttl = |ttl| {
            Config::dev()
                .with_oidc_issuer(Some(issuer.clone()))
                .with_oidc_code_ttl(ttl)
                .validate()
        };
        with_ttl(secs(600)).unwrap();
        for ttl in [Duration::ZERO, secs(601)] {
            let err = with_ttl(ttl).unwrap_err().to_string();
            assert!(err.contains("OIDC_CODE_TTL"), "{ttl:?}: {err}");
        }
    }

    #[test]
    fn a_file_of_oidc_clients_alone_keeps_dev_mode_or_the_appid() {
        let file = file::parse(
            std::path::Path::new("clients.toml"),
            "[[oidc.clients]]\nclient_id = \"c\"\nname = \"C\"\nredirect_uris = [\"https://a/cb\"]",
        )
        .unwrap();
        let issuer = Some(url::Url::parse("http://127.0.0.1:3000").unwrap());
        let dev = Config::dev().with_config_file(file.clone());
        assert!(dev.dev_mode(), "the file names no app");
        let err = dev.validate().unwrap_err().to_string();
        assert!(err.contains("OIDC_ISSUER"), "{err}");
        dev.clone()
            .with_oidc_issuer(issuer.clone())
            .validate()
            .unwrap();
        assert_eq!(dev.oidc_clients().len(), 1);

        let production = Config::dev()
            .with_app("wx1", Secret::new("s"))
            .with_data_keys(key())
            .with_config_file(file)
            .with_oidc_issuer(issuer);
        assert!(!production.dev_mode());
        assert_eq!(production.apps()[0].appid, "wx1");
        let err = production.validate().unwrap_err().to_string();
        assert!(
            err.contains("OIDC_SIGNING_KEYS"),
            "production brings its keys: {err}"
        );
        production
            .with_oidc_signing_keys(vec!["oidc.pem".into()])
            .validate()
            .unwrap();
    }

    #[test]
    fn setters_set_their_field_and_nothing_else() {
        let c = Config::dev()
            .with_session_store(StoreUrl::Memory)
            .with_token_ttl(secs(60))
            .with_redis_key_prefix("staging:".into());
        assert_eq!(c.session_store, StoreUrl::Memory);
        assert_eq!(c.token_ttl, secs(60));
        assert_eq!(c.redis_key_prefix, "staging:");
        assert_eq!(c.wechat_timeout, Config::dev().wechat_timeout);
    }
}
