//! The binary's command line: every setting as a flag and an environment variable, turned into
//! the library's [`Config`]. Also renders the settings reference, so the manual is generated
//! from the definitions it documents.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{CommandFactory, Parser};

use super::LogFormat;
use crate::{
    accounts::AccountRef,
    client_ip::ClientKeying,
    config::{
        self, Config, ConfigFile, DEFAULT_SESSION_CACHE, MaxAge, StoreUrl, parse_duration,
        parse_max_age,
    },
    data_keys::DataKeys,
    secret::Secret,
    webhooks::WebhookSecret,
};

/// The binary's settings: each flag has an environment variable of the same meaning, so the
/// binary runs the same under a shell, systemd or a container. The defaults are
/// [`Config::dev`]'s (a test holds them equal), and `docs/configuration.md` is generated from
/// these definitions.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "server",
    version,
    about = "WeChat mini-program login server",
    args_override_self = true
)]
pub struct Args {
    /// Address to listen on; loopback by default.
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
        value_parser = Quiet { var: "CONFIG_FILE", parse: config::load_config_file }
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

    /// `POST /login` clients whose allowance is tracked at once. A newcomer takes the place of
    /// a client whose allowance is full again; while none is, newcomers share one allowance
    /// (see docs/security.md for why, and how to size it). Bounds the limiter's memory.
    #[arg(
        long,
        env = "LOGIN_RATE_MAX_CLIENTS",
        default_value_t = crate::rate_limit::DEFAULT_MAX_CLIENTS,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub login_rate_max_clients: u32,

    /// code2Session calls this server makes per second and app at most, whoever asks (0: no
    /// limit). It keeps a flood of well-formed junk codes from spending the AppID's WeChat
    /// quota, which is per app. Clients whose codes WeChat refused lately may spend only its
    /// upper half, and others go first, waiting up to 2 s for a call when it is spent
    /// (docs/security.md).
    #[arg(long, env = "UPSTREAM_RATE_PER_SECOND", default_value_t = 200)]
    pub upstream_rate_per_second: u32,

    /// Login codes this process holds claims on at most (memory and SQLite stores; Redis
    /// holds its own): those being exchanged, and those whose outcome is kept for a retry.
    /// `0` derives it from the apps, `UPSTREAM_RATE_PER_SECOND` and how long a claim lives,
    /// twice over; with no budget, `0` means 200000. When it is full, refused codes make room
    /// first, and past that a login gets `503 logins_in_flight`.
    #[arg(long, env = "MAX_CLAIMS", default_value_t = 0)]
    pub max_claims: usize,

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

    /// Time a client has to send a request's whole body, counted from its headers, however
    /// the bytes trickle in; past it the client gets a 408 and the connection is closed.
    /// Bodies are at most 4 KiB, which any live client sends at once.
    #[arg(long, env = "BODY_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub body_timeout: Duration,

    /// Time one request may take from its headers to its answer; past it the client gets a
    /// 503. Above the slowest login WeChat's timeouts and busy retries allow.
    #[arg(long, env = "REQUEST_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Connections served at once; past it new ones wait in the kernel's queue. Each is an
    /// open file: the server raises its soft open-file limit to the hard one at start, and
    /// warns when even that is below this.
    #[arg(
        long,
        env = "MAX_CONNECTIONS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_connections: u32,

    /// Connections one client, an IPv4 address or an IPv6 /64, may hold open at once; past
    /// it a new one is closed at once (0: no cap per client). It keeps one address from
    /// taking every slot of `MAX_CONNECTIONS`, while the default leaves room for the hundreds
    /// of users a carrier-grade NAT puts behind one address. Peers in `TRUSTED_PROXIES` are
    /// exempt: there, limit per client at the proxy.
    #[arg(
        long,
        env = "MAX_CONNECTIONS_PER_CLIENT",
        default_value_t = config::DEFAULT_MAX_CONNECTIONS_PER_CLIENT
    )]
    pub max_connections_per_client: u32,

    /// How many leading bits of an IPv6 address name one client, for the per-client login
    /// limit, connection cap and WeChat budget standing alike. 64, one subscriber's block, is
    /// right until an attacker rotates through a whole /48 or /32: key by that prefix then,
    /// and the subscribers inside it share one allowance.
    #[arg(
        long,
        env = "CLIENT_IPV6_PREFIX",
        default_value_t = ClientKeying::DEFAULT_IPV6_PREFIX,
        value_parser = clap::value_parser!(u8).range(
            i64::from(ClientKeying::WIDEST_IPV6_PREFIX)..=i64::from(ClientKeying::DEFAULT_IPV6_PREFIX)
        )
    )]
    pub client_ipv6_prefix: u8,

    /// After SIGTERM or Ctrl-C: how long requests in flight may finish before the
    /// connections left are dropped.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// How old open data may be, by its watermark, when `/wx/decrypt` opens it: a duration,
    /// or `0` to accept any age.
    #[arg(long, env = "OPEN_DATA_MAX_AGE", default_value = "1h", value_parser = parse_max_age)]
    pub open_data_max_age: MaxAge,

    /// `/wx/decrypt` attempts per user (app and openid) and minute that may fail, at once or
    /// refilled over the minute; past it the user gets 429 with `Retry-After`, and nothing is
    /// decrypted (0: no limit). Attempts that succeed do not count.
    #[arg(long, env = "DECRYPT_FAILURES_PER_MINUTE", default_value_t = 10)]
    pub decrypt_failures_per_minute: u32,

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

    /// Who may get an account at their first login: `open` (anyone) or `closed` (only
    /// people who have one already; others get 403 signup_closed, and WeChat is asked nothing
    /// beyond code2Session).
    #[arg(long, env = "SIGNUP", default_value = "open", value_parser = ["open", "closed"])]
    pub signup: String,

    /// At sign-up, ask WeChat's getuserriskrank and refuse an account (403 risk_rejected) to
    /// people ranked above this, 0 (safest) to 4. Unset: no risk check. When WeChat cannot
    /// answer, sign-up goes on and wxlogin_signups_total{outcome="risk_check_failed"} counts it.
    #[arg(long, env = "SIGNUP_MAX_RISK_RANK", value_parser = clap::value_parser!(u8).range(0..=4))]
    pub signup_max_risk_rank: Option<u8>,

    /// Where account events (account.created, .linked, .merged, .deleted, .disabled, .enabled)
    /// are POSTed, signed per Standard Webhooks. Unset: no webhooks, and events are dropped.
    #[arg(long, env = "WEBHOOK_URL")]
    pub webhook_url: Option<reqwest::Url>,

    /// The webhook signing secret, `whsec_` and 24 to 64 random bytes in base64 (`echo
    /// whsec_$(openssl rand -base64 32)`). Required with WEBHOOK_URL. Never logged, never echoed.
    #[arg(
        long,
        env = "WEBHOOK_SECRET",
        hide_env_values = true,
        value_parser = Quiet { var: "WEBHOOK_SECRET", parse: WebhookSecret::parse }
    )]
    pub webhook_secret: Option<WebhookSecret>,

    /// The wait after a webhook's first failed attempt; doubled after each further one, at
    /// most an hour, for three days.
    #[arg(long, env = "WEBHOOK_RETRY_BASE", default_value = "5s", value_parser = parse_duration)]
    pub webhook_retry_base: Duration,

    /// Where browsers reach this server, scheme and host (`https://example.com`), as they see
    /// it behind any proxy. Unset: in dev mode the listen address; in production the web
    /// login takes only same-origin requests (see WEB_ORIGINS).
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<url::Url>,

    /// Comma-separated origins (`https://example.com`) a cookie-authenticated request that
    /// changes something may come from, besides a browser's own `Sec-Fetch-Site:
    /// same-origin`. Others get 403 csrf. Unset: the origin of PUBLIC_URL.
    #[arg(long, env = "WEB_ORIGINS", value_delimiter = ',')]
    pub web_origins: Vec<String>,

    /// How long a web-login ticket (the code on the website) waits to be scanned and
    /// confirmed.
    #[arg(long, env = "WEB_LOGIN_TTL", default_value = "120s", value_parser = parse_duration)]
    pub web_login_ttl: Duration,

    /// The mini-program page a web-login code opens, without a leading slash; it gets the
    /// ticket id as its `scene`.
    #[arg(long, env = "WEB_LOGIN_PAGE", default_value = crate::config::DEFAULT_WEB_LOGIN_PAGE)]
    pub web_login_page: String,

    /// Which version of the mini-program a web-login code opens: `release`, `trial` or
    /// `develop` (the last two skip WeChat's check that the page is published).
    #[arg(long, env = "WEB_LOGIN_ENV_VERSION", default_value = "release", value_parser = ["release", "trial", "develop"])]
    pub web_login_env_version: String,

    /// Web-login tickets one client (IP address) may ask for per minute, on average; `0`
    /// for no limit.
    #[arg(long, env = "WEB_LOGIN_RATE_PER_MINUTE", default_value_t = 10)]
    pub web_login_rate_per_minute: u32,

    /// Web-login tickets one client may ask for in a burst.
    #[arg(long, env = "WEB_LOGIN_RATE_BURST", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub web_login_rate_burst: u32,

    /// Live web-login tickets one client may hold at once; past it, 429 too_many_tickets.
    #[arg(long, env = "WEB_LOGIN_MAX_TICKETS_PER_CLIENT", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub web_login_max_tickets_per_client: u32,

    /// Live web-login tickets one instance holds at most, from every client.
    #[arg(long, env = "WEB_LOGIN_MAX_TICKETS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub web_login_max_tickets: u64,

    /// The public base URL relying parties reach this server at (`https://login.example.com`):
    /// turns the OpenID Connect provider on, and is the `iss` of every ID token. Its clients are
    /// the `[[oidc.clients]]` of CONFIG_FILE.
    #[arg(long, env = "OIDC_ISSUER")]
    pub oidc_issuer: Option<url::Url>,

    /// Comma-separated PEM files of the keys that sign ID tokens (RSA for RS256, or P-256 for
    /// ES256); the first signs, the others stay published for a rotation. Dev mode makes one
    /// beside the data key when unset.
    #[arg(long, env = "OIDC_SIGNING_KEYS", value_delimiter = ',')]
    pub oidc_signing_keys: Vec<std::path::PathBuf>,

    /// How long an authorization code waits for the relying party to redeem it; at most 10m.
    #[arg(long, env = "OIDC_CODE_TTL", default_value = "60s", value_parser = parse_duration)]
    pub oidc_code_ttl: Duration,

    /// The log's shape on stderr: `text` for people, or `json`, one object per line, for a
    /// log collector.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// An operator's command instead of serving; see `server accounts --help`.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What the binary can do besides serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Look up, disable, enable or delete an account, on the configured SESSION_STORE. A
    /// running server sees the change within a second.
    Accounts {
        #[command(subcommand)]
        action: AccountsAction,
    },
}

/// `server accounts …`. Each names the account by its user_id, or by `appid:openid`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AccountsAction {
    /// Print the account, its identities and its live sessions.
    Show { account: AccountRef },
    /// End the account's sessions and refuse its logins (403 account_disabled).
    Disable { account: AccountRef },
    /// Let the account log in again.
    Enable { account: AccountRef },
    /// Erase the account and everything kept about the person, as its owner's deletion does.
    Delete { account: AccountRef },
}

impl From<Args> for Config {
    fn from(args: Args) -> Self {
        let mut config = Config::dev();
        let Args {
            listen_addr,
            wechat_appid,
            config_file,
            dev_anywhere,
            wechat_secret,
            wechat_api_base,
            session_store,
            token_ttl,
            wechat_connect_timeout,
            wechat_timeout,
            wechat_busy_retries,
            sim_code_ttl,
            store_timeout,
            session_cache,
            login_rate_per_minute,
            login_rate_burst,
            login_rate_max_clients,
            upstream_rate_per_second,
            max_claims,
            trusted_proxies,
            trusted_proxy_header,
            breaker_threshold,
            breaker_cooldown,
            harness_dir,
            code_replay_window,
            header_timeout,
            body_timeout,
            request_timeout,
            max_connections,
            max_connections_per_client,
            client_ipv6_prefix,
            shutdown_timeout,
            open_data_max_age,
            decrypt_failures_per_minute,
            purge_interval,
            data_key,
            data_keys,
            redis_key_prefix,
            metrics_addr,
            signup,
            signup_max_risk_rank,
            webhook_url,
            webhook_secret,
            webhook_retry_base,
            public_url,
            web_origins,
            web_login_ttl,
            web_login_page,
            web_login_env_version,
            web_login_rate_per_minute,
            web_login_rate_burst,
            web_login_max_tickets_per_client,
            web_login_max_tickets,
            oidc_issuer,
            oidc_signing_keys,
            oidc_code_ttl,
            log_format,
            command,
        } = args;
        let _ = (log_format, command); // the binary's, not the service's
        config.listen_addr = listen_addr;
        config.wechat_appid = wechat_appid;
        config.config_file = config_file;
        config.dev_anywhere = dev_anywhere;
        config.wechat_secret = wechat_secret;
        config.wechat_api_base = wechat_api_base;
        config.session_store = session_store;
        config.token_ttl = token_ttl;
        config.wechat_connect_timeout = wechat_connect_timeout;
        config.wechat_timeout = wechat_timeout;
        config.wechat_busy_retries = wechat_busy_retries;
        config.sim_code_ttl = sim_code_ttl;
        config.store_timeout = store_timeout;
        config.session_cache = session_cache;
        config.login_rate_per_minute = login_rate_per_minute;
        config.login_rate_burst = login_rate_burst;
        config.login_rate_max_clients = login_rate_max_clients;
        config.upstream_rate_per_second = upstream_rate_per_second;
        config.max_claims = max_claims;
        config.trusted_proxies = trusted_proxies;
        config.trusted_proxy_header = trusted_proxy_header;
        config.breaker_threshold = breaker_threshold;
        config.breaker_cooldown = breaker_cooldown;
        config.harness_dir = harness_dir;
        config.code_replay_window = code_replay_window;
        config.header_timeout = header_timeout;
        config.body_timeout = body_timeout;
        config.request_timeout = request_timeout;
        config.max_connections = max_connections;
        config.max_connections_per_client = max_connections_per_client;
        config.client_ipv6_prefix = client_ipv6_prefix;
        config.shutdown_timeout = shutdown_timeout;
        config.open_data_max_age = open_data_max_age;
        config.decrypt_failures_per_minute = decrypt_failures_per_minute;
        config.purge_interval = purge_interval;
        config.data_key = data_key;
        config.data_keys = data_keys;
        config.redis_key_prefix = redis_key_prefix;
        config.metrics_addr = metrics_addr;
        config.signup = signup.parse().unwrap_or_default();
        config.signup_max_risk_rank = signup_max_risk_rank;
        config.webhook_url = webhook_url;
        config.webhook_secret = webhook_secret;
        config.webhook_retry_base = webhook_retry_base;
        config.public_url = public_url;
        config.web_origins = web_origins;
        config.web_login_ttl = web_login_ttl;
        config.web_login_page = web_login_page;
        config.web_login_env_version = web_login_env_version;
        config.web_login_rate_per_minute = web_login_rate_per_minute;
        config.web_login_rate_burst = web_login_rate_burst;
        config.web_login_max_tickets_per_client = web_login_max_tickets_per_client;
        config.web_login_max_tickets = usize::try_from(web_login_max_tickets).unwrap_or(usize::MAX);
        config.oidc_issuer = oidc_issuer;
        config.oidc_signing_keys = oidc_signing_keys;
        config.oidc_code_ttl = oidc_code_ttl;
        config
    }
}

impl Args {
    /// The service's configuration; the log format stays the binary's.
    pub fn into_config(self) -> Config {
        self.into()
    }
}

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

/// The settings reference in Markdown, one section per setting, from the flags' own
/// definitions: `cargo xtask docs` writes it to `docs/configuration.md`, and the test run fails
/// when that file differs, so the reference cannot drift from the code.
pub fn reference() -> String {
    let mut out = String::from(
        "# Configuration reference\n\n\
         <!-- Generated from server/src/cli/args.rs by `cargo xtask docs`; edit there. -->\n\n\
         Every setting of the server binary, as an environment variable and as a flag of the same \
         meaning. A team embedding the login in its own axum app sets the same fields on \
         `server::config::Config` instead (see [Embed in axum](embed-in-axum.md)). Durations \
         are written `250ms`, `90s`, `15m`, `12h` or `7d`.\n",
    );
    let command = Args::command();
    for arg in command.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if arg.is_hide_set() || matches!(long, "help" | "version") {
            continue;
        }
        let name = arg.get_env().map_or_else(
            || format!("--{long}"),
            |env| env.to_string_lossy().into_owned(),
        );
        out.push_str(&format!("\n## `{name}`\n\n"));
        let mut facts = vec![format!("Flag: `--{long}`")];
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|value| shown_default(&value.to_string_lossy()))
            .collect();
        if !defaults.is_empty() {
            facts.push(format!("default: `{}`", defaults.join(",")));
        }
        let values: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|value| !value.is_hide_set())
            .map(|value| format!("`{}`", value.get_name()))
            .collect();
        if !values.is_empty() && long != "dev" {
            facts.push(format!("one of {}", values.join(", ")));
        }
        out.push_str(&facts.join(" · "));
        out.push_str("\n\n");
        let help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(ToString::to_string);
        // clap drops a one-paragraph help's final full stop; the page is prose.
        let help = help.as_deref().unwrap_or("").trim();
        out.push_str(help);
        if !help.ends_with(['.', ')']) {
            out.push('.');
        }
        out.push('\n');
    }
    out
}

/// A default as the reference shows it: paths inside this source tree relative to its root,
/// so the page is the same on every checkout.
fn shown_default(value: &str) -> String {
    let tree = concat!(env!("CARGO_MANIFEST_DIR"), "/../");
    value.strip_prefix(tree).unwrap_or(value).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the binary makes of a command line (without the program name's own defaults
    /// from the environment of this process being any different).
    fn try_config_from<'a>(args: impl IntoIterator<Item = &'a str>) -> Result<Config, clap::Error> {
        Args::try_parse_from(args).map(Config::from)
    }

    fn config_from<'a>(args: impl IntoIterator<Item = &'a str>) -> Config {
        try_config_from(args).unwrap()
    }

    #[test]
    fn no_flags_give_the_library_defaults() {
        let from_flags = config_from(["server"]);
        assert_eq!(format!("{from_flags:?}"), format!("{:?}", Config::dev()));
    }

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
        assert!(try_config_from(["server", "--purge-interval", "0"]).is_err());
    }

    #[test]
    fn dev_mode_needs_neither_credential_and_loopback_unless_allowed() {
        let parse = |args: &[&str]| config_from([&["server"], args].concat());
        assert!(parse(&[]).validate().map_err(|e| e.to_string()).is_ok());
        let err = parse(&["--wechat-secret", "s"])
            .validate()
            .map_err(|e| e.to_string())
            .unwrap_err();
        assert!(err.contains("WECHAT_APPID"), "{err}");
        assert!(!parse(&["--wechat-secret", "s"]).dev_mode());
        let err = parse(&["--wechat-appid", "wx1"])
            .validate()
            .map_err(|e| e.to_string())
            .unwrap_err();
        assert!(err.contains("WECHAT_SECRET"), "{err}");
        let err = parse(&["--listen-addr", "0.0.0.0:3000"])
            .validate()
            .map_err(|e| e.to_string())
            .unwrap_err();
        assert!(err.contains("DEV_MODE=1"), "{err}");
        assert!(
            parse(&["--listen-addr", "0.0.0.0:3000", "--dev"])
                .validate()
                .map_err(|e| e.to_string())
                .is_ok()
        );
        assert!(
            parse(&["--listen-addr", "[::1]:3000"])
                .validate()
                .map_err(|e| e.to_string())
                .is_ok()
        );
        let production = [&["--listen-addr", "0.0.0.0:3000"][..], &ONE_APP].concat();
        assert!(
            parse(&production)
                .validate()
                .map_err(|e| e.to_string())
                .is_ok()
        );
        let err = parse(&[&production[..], &["--dev"]].concat())
            .validate()
            .map_err(|e| e.to_string())
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
        let parse = |args: &[&str]| config_from([&["server"], args].concat());
        let wechat = ["--wechat-appid", "wx1", "--wechat-secret", "s"];
        let err = parse(&wechat)
            .validate()
            .map_err(|e| e.to_string())
            .unwrap_err();
        assert!(
            err.contains("DATA_KEY") && err.contains("openssl rand"),
            "{err}"
        );
        let c = parse(&[&wechat[..], &["--data-keys", &format!("{KEY},{KEY}")]].concat());
        assert!(c.validate().map_err(|e| e.to_string()).is_ok());
        assert!(c.configured_data_keys().is_some());
        let both = parse(&[&wechat[..], &["--data-key", KEY, "--data-keys", KEY]].concat());
        let err = both.validate().map_err(|e| e.to_string()).unwrap_err();
        assert!(err.contains("DATA_KEY and DATA_KEYS"), "{err}");
        // Dev mode needs none.
        assert!(parse(&[]).configured_data_keys().is_none());
        assert!(parse(&[]).validate().map_err(|e| e.to_string()).is_ok());
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
        let parse = |args: &[&str]| try_config_from([&["server"], args].concat());
        let c = parse(&["--config", path, "--data-key", KEY]).unwrap();
        assert!(c.validate().map_err(|e| e.to_string()).is_ok());
        assert!(!c.dev_mode());
        let apps: Vec<_> = c.apps().into_iter().map(|a| a.appid).collect();
        assert_eq!(apps, ["wxa", "wxb"]);
        // Without a data key it is production all the same.
        let err = parse(&["--config", path])
            .unwrap()
            .validate()
            .map_err(|e| e.to_string())
            .unwrap_err();
        assert!(err.contains("CONFIG_FILE is set but DATA_KEY"), "{err}");
        // One way of naming apps at a time.
        let both = parse(&["--config", path, "--wechat-appid", "wxc", "--data-key", KEY]);
        let err = both
            .unwrap()
            .validate()
            .map_err(|e| e.to_string())
            .unwrap_err();
        assert!(
            err.contains("CONFIG_FILE") && err.contains("WECHAT_APPID"),
            "{err}"
        );
        let dev = parse(&["--config", path, "--dev", "--data-key", KEY]);
        assert!(
            dev.unwrap()
                .validate()
                .map_err(|e| e.to_string())
                .unwrap_err()
                .contains("DEV_MODE")
        );
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
            let err = try_config_from([&["server"], &args[..]].concat())
                .unwrap_err()
                .to_string();
            assert!(err.contains(expect), "{err}");
            assert!(!err.contains(args[1]), "the key is echoed: {err}");
            assert!(!err.contains(&KEY[..12]), "the key is echoed: {err}");
        }
        let c = config_from(["server", "--data-key", KEY]);
        assert!(!format!("{c:?}").contains(&KEY[..12]));
    }

    #[test]
    fn the_open_data_age_limit_is_a_duration_or_zero_for_none() {
        assert_eq!(
            config_from(["server"]).open_data_max_age,
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
        let parse = |args: &[&str]| try_config_from([&["server"], args].concat());
        let c = parse(&["--trusted-proxies", "127.0.0.1,10.0.0.0/8"]).unwrap();
        assert_eq!(c.trusted_proxies.len(), 2);
        assert!(c.validate().map_err(|e| e.to_string()).is_ok());
        let err = parse(&["--trusted-proxies", "10.0.0.0/33"]).unwrap_err();
        assert!(err.to_string().contains("CIDR"), "{err}");
        let err = parse(&["--trusted-proxy-header", "X-Real-IP"])
            .unwrap()
            .validate()
            .map_err(|e| e.to_string())
            .unwrap_err();
        assert!(err.contains("TRUSTED_PROXIES"), "{err}");
        assert!(parse(&["--trusted-proxy-header", "bad header"]).is_err());
    }

    #[test]
    fn defaults_match_the_docs() {
        let c = config_from(["server"]);
        assert_eq!(c.listen_addr.to_string(), "127.0.0.1:3000");
        assert_eq!(c.session_store, StoreUrl::Sqlite("data/sessions.db".into()));
        assert_eq!(c.token_ttl, Duration::from_secs(7 * 86_400));
        assert!(c.dev_mode());
        assert_eq!(c.redis_key_prefix, "");
        assert_eq!(c.session_cache, DEFAULT_SESSION_CACHE);
        assert_eq!(c.metrics_addr, None, "no metrics unless asked for");
        assert_eq!(Args::parse_from(["server"]).log_format, LogFormat::Text);
    }

    #[test]
    fn metrics_and_log_format_are_checked_at_start() {
        let c = config_from(["server", "--metrics-addr", "127.0.0.1:9100"]);
        assert_eq!(c.metrics_addr, Some("127.0.0.1:9100".parse().unwrap()));
        c.validate().map_err(|e| e.to_string()).unwrap();
        let c = config_from(["server", "--metrics-addr", "127.0.0.1:3000"]);
        assert!(
            c.validate()
                .map_err(|e| e.to_string())
                .unwrap_err()
                .contains("METRICS_ADDR")
        );
        assert!(try_config_from(["server", "--metrics-addr", "localhost"]).is_err());
        let args = Args::parse_from(["server", "--log-format", "json"]);
        assert_eq!(args.log_format, LogFormat::Json);
        assert!(try_config_from(["server", "--log-format", "xml"]).is_err());
    }

    #[test]
    fn secrets_do_not_print() {
        let c = config_from(["server", "--wechat-secret", "hunter2"]);
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.wechat_secret.unwrap().expose(), "hunter2");
    }

    #[test]
    fn a_cluster_refuses_a_key_prefix_that_would_pin_every_key_to_one_node() {
        let parse = |prefix: &str| {
            let store = ["--session-store", "redis+cluster://h1:7000"];
            config_from([&["server"][..], &store, &["--redis-key-prefix", prefix]].concat())
        };
        let err = parse("{staging}:")
            .validate()
            .map_err(|e| e.to_string())
            .unwrap_err();
        assert!(err.contains("REDIS_KEY_PREFIX"), "{err}");
        assert!(
            parse("staging:")
                .validate()
                .map_err(|e| e.to_string())
                .is_ok()
        );
    }

    #[test]
    fn a_bad_store_url_names_the_variable_and_hides_the_password() {
        let err = try_config_from(["server", "--session-store", "redis+cluster://:hunter2@h1:x"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SESSION_STORE") && !err.contains("hunter2"),
            "{err}"
        );
    }
}
