//! Start-up configuration: every knob of the server in one struct, parsed once from flags and
//! environment variables, then handed around as read-only state.

use std::{fmt, net::SocketAddr, str::FromStr, time::Duration};

use clap::Parser;

use crate::{
    config_file::{AppEntry, ConfigFile},
    data_keys::DataKeys,
};

/// Configuration of one server process. Each flag has an environment variable of the same
/// meaning so the binary runs the same under a shell, systemd or a container.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "server",
    version,
    about = "WeChat mini-program login server",
    args_override_self = true
)]
pub struct Config {
    /// Address to listen on. The default is the seed's port, bound to loopback only.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:3000")]
    pub listen_addr: SocketAddr,

    /// The mini-program's AppID. Without it (and without a secret or a CONFIG_FILE) the
    /// server runs in dev mode against its built-in WeChat simulator.
    #[arg(long, env = "WECHAT_APPID")]
    pub wechat_appid: Option<String>,

    /// A TOML file naming several mini-programs (`[[apps]]` with `appid`, `secret` and an
    /// optional `api_base`), instead of WECHAT_APPID and WECHAT_SECRET. The first is the
    /// default of a `POST /login` that names no `appid`.
    #[arg(
        long = "config",
        env = "CONFIG_FILE",
        value_parser = Quiet { var: "CONFIG_FILE", parse: crate::config_file::load }
    )]
    pub config_file: Option<ConfigFile>,

    /// Allows dev mode on a non-loopback LISTEN_ADDR, for a phone on the LAN. Dev mode mints
    /// login codes for anyone who asks, so without this it listens on loopback only.
    #[arg(
        long = "dev",
        env = "DEV_MODE",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub dev_anywhere: bool,

    /// The mini-program's AppSecret. Never logged, never echoed.
    #[arg(long, env = "WECHAT_SECRET", hide_env_values = true)]
    pub wechat_secret: Option<Secret>,

    /// Base URL of WeChat's server API; tests and staging point this at a simulator.
    #[arg(
        long,
        env = "WECHAT_API_BASE",
        default_value = "https://api.weixin.qq.com"
    )]
    pub wechat_api_base: String,

    /// Where sessions live: `sqlite://PATH` (durable, the default), `redis://HOST:PORT/DB`
    /// (shared by many instances), `redis+cluster://HOST:PORT,HOST:PORT,…` (a Redis Cluster,
    /// named by some of its nodes) or `memory` (lost on exit).
    #[arg(
        long,
        env = "SESSION_STORE",
        default_value = "sqlite://data/sessions.db",
        value_parser = Quiet { var: "SESSION_STORE", parse: str::parse::<StoreUrl> }
    )]
    pub session_store: StoreUrl,

    /// How long a login token is accepted, counted from login (absolute, not sliding):
    /// plain seconds or a number with `s`, `m`, `h` or `d`.
    #[arg(long, env = "TOKEN_TTL", default_value = "7d", value_parser = parse_duration)]
    pub token_ttl: Duration,

    /// Time allowed to open a connection to WeChat.
    #[arg(long, env = "WECHAT_CONNECT_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub wechat_connect_timeout: Duration,

    /// Time allowed for one whole code2Session call, connection included.
    #[arg(long, env = "WECHAT_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub wechat_timeout: Duration,

    /// How many times a "system busy" (-1) answer from WeChat is retried before giving up.
    #[arg(long, env = "WECHAT_BUSY_RETRIES", default_value_t = 3)]
    pub wechat_busy_retries: u32,

    /// Life of the dev simulator's login codes (WeChat's is five minutes); tests shorten it.
    #[arg(long, env = "SIM_CODE_TTL", default_value = "5m", value_parser = parse_duration, hide = true)]
    pub sim_code_ttl: Duration,

    /// Deadline of one call to a networked session store (Redis).
    #[arg(long, env = "STORE_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    pub store_timeout: Duration,

    /// Live sessions kept in this process in front of SQLite or a single-node Redis, so that
    /// a check of a live token mostly skips the store (`0`: no cache). Bounded: unknown tokens
    /// never take a slot, and the least recently used session leaves when it is full (about
    /// 300 bytes each). Redis keeps it right across instances by its invalidation messages; a
    /// Redis Cluster store has none.
    #[arg(long, env = "SESSION_CACHE", default_value_t = DEFAULT_SESSION_CACHE)]
    pub session_cache: usize,

    /// `POST /login` requests allowed per client IP per minute, after the burst (0: no limit).
    #[arg(long, env = "LOGIN_RATE_PER_MINUTE", default_value_t = 60)]
    pub login_rate_per_minute: u32,

    /// `POST /login` requests one client IP may make at once before the rate applies.
    #[arg(long, env = "LOGIN_RATE_BURST", default_value_t = 20)]
    pub login_rate_burst: u32,

    /// `POST /login` clients whose allowance is tracked at once; past it, new clients share
    /// one allowance until idle ones are forgotten. Bounds the limiter's memory.
    #[arg(
        long,
        env = "LOGIN_RATE_MAX_CLIENTS",
        default_value_t = crate::rate_limit::DEFAULT_MAX_CLIENTS,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub login_rate_max_clients: u32,

    /// code2Session calls this server makes per second and app at most, whoever asks (0: no
    /// limit). It keeps a flood of well-formed junk codes from spending the AppID's WeChat
    /// quota, which is per app.
    #[arg(long, env = "UPSTREAM_RATE_PER_SECOND", default_value_t = 200)]
    pub upstream_rate_per_second: u32,

    /// Your reverse proxies, as comma-separated CIDRs or addresses (`127.0.0.1,10.0.0.0/8`).
    /// Only a peer in this list may name the client in `TRUSTED_PROXY_HEADER`.
    #[arg(
        long,
        env = "TRUSTED_PROXIES",
        value_delimiter = ',',
        value_parser = crate::client_ip::parse_network
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// The header in which `TRUSTED_PROXIES` name the client: `X-Forwarded-For` (the default
    /// when proxies are listed; read from the right, skipping your own hops) or `X-Real-IP`.
    #[arg(long, env = "TRUSTED_PROXY_HEADER")]
    pub trusted_proxy_header: Option<axum::http::HeaderName>,

    /// Consecutive WeChat failures (unreachable, timeout, busy) that open the circuit breaker.
    #[arg(long, env = "BREAKER_THRESHOLD", default_value_t = 5)]
    pub breaker_threshold: u32,

    /// How long an open breaker fails logins fast before letting one trial call through.
    #[arg(long, env = "BREAKER_COOLDOWN", default_value = "10s", value_parser = parse_duration)]
    pub breaker_cooldown: Duration,

    /// Folder of the built browser harness, served at `/harness/` in dev mode. The default is
    /// the build output in this source tree (`cargo xtask build` writes it).
    #[arg(long, env = "HARNESS_DIR", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../client-wasm/harness/dist"))]
    pub harness_dir: std::path::PathBuf,

    /// How long a repeated `POST /login` with the same code gets the token of the first one
    /// (a double tap, a retry after a lost answer). Later, and once that session has ended,
    /// the code is `code_used`.
    #[arg(long, env = "CODE_REPLAY_WINDOW", default_value = "30s", value_parser = parse_duration)]
    pub code_replay_window: Duration,

    /// Time a client has to send a request's headers, from the moment the server waits for
    /// them: on a new connection and between requests of a kept-alive one. It closes
    /// connections that trickle headers or sit idle.
    #[arg(long, env = "HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// Time one request may take from its headers to its answer; past it the client gets a
    /// 503. Above the slowest login WeChat's timeouts and busy retries allow.
    #[arg(long, env = "REQUEST_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Connections served at once; past it new ones wait in the kernel's queue. Keep it below
    /// the process's file-descriptor limit.
    #[arg(
        long,
        env = "MAX_CONNECTIONS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_connections: u32,

    /// After SIGTERM or Ctrl-C: how long requests in flight may finish before the
    /// connections left are dropped.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// How old open data may be, by its watermark, when `/wx/decrypt` opens it: a duration,
    /// or `0` to accept any age.
    #[arg(long, env = "OPEN_DATA_MAX_AGE", default_value = "1h", value_parser = parse_max_age)]
    pub open_data_max_age: MaxAge,

    /// How often expired sessions are deleted from the store.
    #[arg(long, env = "PURGE_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub purge_interval: Duration,

    /// The key that seals each session_key in the store: 32 random bytes in base64 (`openssl
    /// rand -base64 32`). Required with WECHAT_APPID; dev mode keeps a generated one beside its
    /// SQLite file. Never logged, never echoed.
    #[arg(
        long,
        env = "DATA_KEY",
        hide_env_values = true,
        value_parser = Quiet { var: "DATA_KEY", parse: parse_data_key }
    )]
    pub data_key: Option<DataKeys>,

    /// Instead of DATA_KEY, for rotation: comma-separated keys; the first seals new sessions,
    /// every one opens older ones. Setting both is refused.
    #[arg(
        long,
        env = "DATA_KEYS",
        hide_env_values = true,
        value_parser = Quiet { var: "DATA_KEYS", parse: parse_data_keys }
    )]
    pub data_keys: Option<DataKeys>,

    /// Put before every Redis key (for example `staging:`), for environments that share one
    /// Redis; keys also carry the AppID, so apps never see each other's sessions.
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = "")]
    pub redis_key_prefix: String,

    /// Where Prometheus scrapes the metrics (`GET /metrics`, text format). A listener of its
    /// own, so that the API's address need not expose them; unset, no metrics are kept.
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// The log's shape on stderr: `text` for people, or `json`, one object per line, for a
    /// log collector.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// The shapes the log can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One line per event for people reading a terminal or `journalctl`.
    #[default]
    Text,
    /// One JSON object per line, with the span fields (the request id) in it.
    Json,
}

impl Config {
    /// Dev mode is chosen by the absence of all WeChat credentials, so a fresh checkout runs
    /// with no set-up while a deployment that set any cannot fall into it by accident.
    pub fn dev_mode(&self) -> bool {
        self.wechat_appid.is_none() && self.wechat_secret.is_none() && self.config_file.is_none()
    }

    /// The mini-programs to serve, the default first: the CONFIG_FILE's, or the one of
    /// WECHAT_APPID and WECHAT_SECRET. Empty in dev mode.
    pub fn apps(&self) -> Vec<AppEntry> {
        if let Some(file) = &self.config_file {
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

    /// Whose forwarding header names the client, and which header that is.
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
    pub fn validate(&self) -> Result<(), String> {
        if let Some(file) = &self.config_file {
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
            let apps = if self.config_file.is_some() {
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

/// DATA_KEY: exactly one key.
fn parse_data_key(text: &str) -> Result<DataKeys, String> {
    if text.contains(',') {
        return Err("it holds one key; put several in DATA_KEYS instead".into());
    }
    parse_data_keys(text)
}

/// DATA_KEYS: one key or several, comma-separated.
fn parse_data_keys(text: &str) -> Result<DataKeys, String> {
    DataKeys::parse(text).map_err(|e| format!("{e} (the value is not shown)"))
}

/// Sessions cached per process by default: a few hundred bytes each, so a few megabytes.
pub const DEFAULT_SESSION_CACHE: usize = 65_536;

pub use crate::store::StoreUrl;

/// Parses a setting with an error of its own, which names the variable and shows only what
/// `parse` says: clap's usual error quotes the raw value, and these values hold passwords
/// (`SESSION_STORE`) or keys (`DATA_KEY`).
#[derive(Debug, Clone, Copy)]
struct Quiet<T> {
    var: &'static str,
    parse: fn(&str) -> Result<T, String>,
}

impl<T: Clone + Send + Sync + 'static> clap::builder::TypedValueParser for Quiet<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let invalid = |why: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid {}: {why}\n", self.var),
            )
            .with_cmd(cmd)
        };
        let text = value.to_str().ok_or_else(|| invalid("not UTF-8".into()))?;
        (self.parse)(text).map_err(invalid)
    }
}

/// A string that must never be printed: `Debug` and `Display` show a placeholder, so a config
/// dump or an error chain cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The only way to the value; grep for it to audit every use.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// An age limit that `0` turns off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxAge(pub Option<Duration>);

/// `0` (no limit) or a duration as [`parse_duration`] reads it.
pub fn parse_max_age(s: &str) -> Result<MaxAge, String> {
    if s.trim().trim_end_matches(|c: char| c.is_ascii_alphabetic()) == "0" {
        return Ok(MaxAge(None));
    }
    parse_duration(s).map(|d| MaxAge(Some(d)))
}

/// Parses `250ms`, `90`, `90s`, `15m`, `12h` or `7d`. Zero is refused: every duration here is
/// a timeout, a lifetime or an interval, and none of them means anything at zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 250ms, 90s, 15m, 12h or 7d"))?;
    if n == 0 {
        return Err(format!("{s:?}: the duration must be longer than zero"));
    }
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(format!(
                "unknown duration unit {other:?}: use ms, s, m, h or d"
            ));
        }
    };
    n.checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{s:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(
            parse_duration("7w")
                .unwrap_err()
                .contains("ms, s, m, h or d")
        );
        assert!(parse_duration("d").is_err());
        for zero in ["0", "0s", "0ms", "0d"] {
            assert!(parse_duration(zero).unwrap_err().contains("zero"), "{zero}");
        }
        assert!(Config::try_parse_from(["server", "--purge-interval", "0"]).is_err());
    }

    #[test]
    fn dev_mode_needs_neither_credential_and_loopback_unless_allowed() {
        let parse = |args: &[&str]| Config::parse_from([&["server"], args].concat());
        assert!(parse(&[]).validate().is_ok());
        let err = parse(&["--wechat-secret", "s"]).validate().unwrap_err();
        assert!(err.contains("WECHAT_APPID"), "{err}");
        assert!(!parse(&["--wechat-secret", "s"]).dev_mode());
        let err = parse(&["--wechat-appid", "wx1"]).validate().unwrap_err();
        assert!(err.contains("WECHAT_SECRET"), "{err}");
        let err = parse(&["--listen-addr", "0.0.0.0:3000"])
            .validate()
            .unwrap_err();
        assert!(err.contains("DEV_MODE=1"), "{err}");
        assert!(
            parse(&["--listen-addr", "0.0.0.0:3000", "--dev"])
                .validate()
                .is_ok()
        );
        assert!(parse(&["--listen-addr", "[::1]:3000"]).validate().is_ok());
        let production = [&["--listen-addr", "0.0.0.0:3000"][..], &ONE_APP].concat();
        assert!(parse(&production).validate().is_ok());
        let err = parse(&[&production[..], &["--dev"]].concat())
            .validate()
            .unwrap_err();
        assert!(err.contains("DEV_MODE"), "{err}");
    }

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    /// A complete one-app production configuration.
    const ONE_APP: [&str; 6] = [
        "--wechat-appid",
        "wx1",
        "--wechat-secret",
        "s",
        "--data-key",
        KEY,
    ];

    #[test]
    fn production_needs_a_data_key_and_one_way_of_giving_it() {
        let parse = |args: &[&str]| Config::parse_from([&["server"], args].concat());
        let wechat = ["--wechat-appid", "wx1", "--wechat-secret", "s"];
        let err = parse(&wechat).validate().unwrap_err();
        assert!(
            err.contains("DATA_KEY") && err.contains("openssl rand"),
            "{err}"
        );
        let c = parse(&[&wechat[..], &["--data-keys", &format!("{KEY},{KEY}")]].concat());
        assert!(c.validate().is_ok());
        assert!(c.configured_data_keys().is_some());
        let both = parse(&[&wechat[..], &["--data-key", KEY, "--data-keys", KEY]].concat());
        let err = both.validate().unwrap_err();
        assert!(err.contains("DATA_KEY and DATA_KEYS"), "{err}");
        // Dev mode needs none.
        assert!(parse(&[]).configured_data_keys().is_none());
        assert!(parse(&[]).validate().is_ok());
    }

    #[test]
    fn a_config_file_lists_the_apps_instead_of_the_variables() {
        let dir = std::env::temp_dir().join(format!("config-file-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("apps.toml");
        std::fs::write(
            &file,
            "[[apps]]\nappid = \"wxa\"\nsecret = \"sa\"\n\n\
             [[apps]]\nappid = \"wxb\"\nsecret = \"sb\"\napi_base = \"http://127.0.0.1:1\"\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let parse = |args: &[&str]| Config::try_parse_from([&["server"], args].concat());
        let c = parse(&["--config", path, "--data-key", KEY]).unwrap();
        assert!(c.validate().is_ok());
        assert!(!c.dev_mode());
        let apps: Vec<_> = c.apps().into_iter().map(|a| a.appid).collect();
        assert_eq!(apps, ["wxa", "wxb"]);
        // Without a data key it is production all the same.
        let err = parse(&["--config", path]).unwrap().validate().unwrap_err();
        assert!(err.contains("CONFIG_FILE is set but DATA_KEY"), "{err}");
        // One way of naming apps at a time.
        let both = parse(&["--config", path, "--wechat-appid", "wxc", "--data-key", KEY]);
        let err = both.unwrap().validate().unwrap_err();
        assert!(
            err.contains("CONFIG_FILE") && err.contains("WECHAT_APPID"),
            "{err}"
        );
        let dev = parse(&["--config", path, "--dev", "--data-key", KEY]);
        assert!(dev.unwrap().validate().unwrap_err().contains("DEV_MODE"));
        // A broken file stops the parse, naming the variable and the file.
        std::fs::write(&file, "[[apps]]\nappid = \"wxa\"\n").unwrap();
        let err = parse(&["--config", path]).unwrap_err().to_string();
        assert!(
            err.contains("invalid CONFIG_FILE") && err.contains("apps.toml"),
            "{err}"
        );
        // The variables alone are the one-app case.
        let one = parse(&ONE_APP);
        let apps = one.unwrap().apps();
        assert_eq!(apps.len(), 1);
        assert_eq!(
            (apps[0].appid.as_str(), apps[0].secret.expose()),
            ("wx1", "s")
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn malformed_data_keys_are_start_up_errors_that_never_echo_the_key() {
        let short = "c2hvcnQta2V5LW9mLTE2Yg=="; // 16 bytes
        for (args, expect) in [
            (["--data-key", "not base64 at all!"], "not base64"),
            (["--data-key", short], "16 bytes"),
            (["--data-keys", &format!("{KEY},{short}")], "key 2"),
            (["--data-key", &format!("{KEY},{KEY}")], "DATA_KEYS instead"),
        ] {
            let err = Config::try_parse_from([&["server"], &args[..]].concat())
                .unwrap_err()
                .to_string();
            assert!(err.contains(expect), "{err}");
            assert!(!err.contains(args[1]), "the key is echoed: {err}");
            assert!(!err.contains(&KEY[..12]), "the key is echoed: {err}");
        }
        let c = Config::parse_from(["server", "--data-key", KEY]);
        assert!(!format!("{c:?}").contains(&KEY[..12]));
    }

    #[test]
    fn the_open_data_age_limit_is_a_duration_or_zero_for_none() {
        assert_eq!(
            Config::parse_from(["server"]).open_data_max_age,
            MaxAge(Some(Duration::from_secs(3600)))
        );
        assert_eq!(parse_max_age("0").unwrap(), MaxAge(None));
        assert_eq!(parse_max_age("0s").unwrap(), MaxAge(None));
        assert_eq!(
            parse_max_age("90s").unwrap(),
            MaxAge(Some(Duration::from_secs(90)))
        );
        assert!(parse_max_age("soon").is_err());
    }

    #[test]
    fn proxies_are_cidrs_and_the_header_needs_them() {
        let parse = |args: &[&str]| Config::try_parse_from([&["server"], args].concat());
        let c = parse(&["--trusted-proxies", "127.0.0.1,10.0.0.0/8"]).unwrap();
        assert_eq!(c.trusted_proxies.len(), 2);
        assert!(c.validate().is_ok());
        let err = parse(&["--trusted-proxies", "10.0.0.0/33"]).unwrap_err();
        assert!(err.to_string().contains("CIDR"), "{err}");
        let err = parse(&["--trusted-proxy-header", "X-Real-IP"])
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.contains("TRUSTED_PROXIES"), "{err}");
        assert!(parse(&["--trusted-proxy-header", "bad header"]).is_err());
    }

    #[test]
    fn defaults_match_the_seed_and_the_docs() {
        let c = Config::parse_from(["server"]);
        assert_eq!(c.listen_addr.to_string(), "127.0.0.1:3000");
        assert_eq!(c.session_store, StoreUrl::Sqlite("data/sessions.db".into()));
        assert_eq!(c.token_ttl, Duration::from_secs(7 * 86_400));
        assert!(c.dev_mode());
        assert_eq!(c.redis_key_prefix, "");
        assert_eq!(c.session_cache, DEFAULT_SESSION_CACHE);
        assert_eq!(c.metrics_addr, None, "no metrics unless asked for");
        assert_eq!(c.log_format, LogFormat::Text);
    }

    #[test]
    fn metrics_and_log_format_are_checked_at_start() {
        let c = Config::parse_from(["server", "--metrics-addr", "127.0.0.1:9100"]);
        assert_eq!(c.metrics_addr, Some("127.0.0.1:9100".parse().unwrap()));
        c.validate().unwrap();
        let c = Config::parse_from(["server", "--metrics-addr", "127.0.0.1:3000"]);
        assert!(c.validate().unwrap_err().contains("METRICS_ADDR"));
        assert!(Config::try_parse_from(["server", "--metrics-addr", "localhost"]).is_err());
        let c = Config::parse_from(["server", "--log-format", "json"]);
        assert_eq!(c.log_format, LogFormat::Json);
        assert!(Config::try_parse_from(["server", "--log-format", "xml"]).is_err());
    }

    #[test]
    fn secrets_do_not_print() {
        let c = Config::parse_from(["server", "--wechat-secret", "hunter2"]);
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.wechat_secret.unwrap().expose(), "hunter2");
    }

    #[test]
    fn a_refused_store_url_names_its_variable_and_not_its_password() {
        let err =
            Config::try_parse_from(["server", "--session-store", "redis+cluster://:hunter2@h1:x"])
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("SESSION_STORE") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn a_cluster_refuses_a_key_prefix_that_would_pin_every_key_to_one_node() {
        let parse = |prefix: &str| {
            let store = ["--session-store", "redis+cluster://h1:7000"];
            Config::parse_from([&["server"][..], &store, &["--redis-key-prefix", prefix]].concat())
        };
        let err = parse("{staging}:").validate().unwrap_err();
        assert!(err.contains("REDIS_KEY_PREFIX"), "{err}");
        assert!(parse("staging:").validate().is_ok());
    }
}
