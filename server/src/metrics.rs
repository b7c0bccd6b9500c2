//! Prometheus metrics: their names, the recorder and its listener on `METRICS_ADDR`, and the
//! few calls the rest of the server makes to count what it does.
//!
//! Every label value is a `&'static str` from a fixed set (outcome kinds, WeChat errcodes the
//! client knows, the configured AppIDs), never anything a user sent: a label per user would
//! grow the exposition without bound and could carry a token into it.
//!
//! Without `METRICS_ADDR` no recorder is installed and every call here goes to `metrics`'s
//! no-op recorder. `/checklogin` counts through [`CheckCounters`], handles registered once
//! when the [`LoginState`](crate::LoginState) is built, so the hot path does one atomic add
//! and no registry lookup; so install the recorder before building the state.

use std::{net::SocketAddr, time::Duration};

use axum::http::header::CONTENT_TYPE;

use ::metrics::{Counter, Gauge, Unit, counter, describe_counter, describe_gauge, gauge};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};

/// `POST /login` answers, by `outcome` (the error table's label in `http/error.rs`, or `ok`).
pub const LOGINS: &str = "wxlogin_logins_total";
/// code2Session calls made to WeChat (each busy retry is a call), by `errcode`.
pub const CODE2SESSION_CALLS: &str = "wxlogin_code2session_calls_total";
/// How long each code2Session call took, by `errcode`.
pub const CODE2SESSION_SECONDS: &str = "wxlogin_code2session_duration_seconds";
/// Token checks, by `via` (`checklogin`, `auth_user`) and `answer`.
pub const CHECKS: &str = "wxlogin_checks_total";
/// Requests and purges that failed because the session store did, by `kind`.
pub const STORE_ERRORS: &str = "wxlogin_store_errors_total";
/// Error answers of every route, by `error` (the error table's label in `http/error.rs`): the
/// count behind the error log, whose lines are rate-bounded.
pub const ERRORS: &str = "wxlogin_errors_total";
/// Requests refused by a rate limit, by `limit` (`login`, `upstream`, `decrypt_failures`);
/// `upstream` refusals also by the client's `standing` (`good`, `suspect`).
pub const RATE_LIMITED: &str = "wxlogin_rate_limited_total";
/// Connections the server closed to protect itself, by `reason`: `per_client_cap` (over
/// `MAX_CONNECTIONS_PER_CLIENT`, closed as accepted), `body_timeout` (a body unfinished at
/// `BODY_TIMEOUT`), `header_too_large` (a head past 16 KiB).
pub const CONNECTIONS_CLOSED: &str = "wxlogin_connections_closed_total";
/// Each app's circuit breaker towards WeChat, by `appid`: 0 closed, 1 open, 2 half-open.
pub const BREAKER_STATE: &str = "wxlogin_breaker_state";
/// Webhook attempts and events, by `outcome`: `delivered`, `retried` (an attempt that failed
/// and will be retried), `dead` (given up after the retry period, or dropped from a full
/// outbox) and `discarded` (no `WEBHOOK_URL`: nobody to tell).
pub const WEBHOOKS: &str = "wxlogin_webhooks_total";
/// Accounts created, by `how`: `signup` (a first login) or `adopted` (a user from before
/// accounts, at their first request).
pub const ACCOUNTS_CREATED: &str = "wxlogin_accounts_created_total";
/// Sign-ups that were not a plain yes, by `outcome`: refused (`closed`, `risk_rejected`), or
/// let through unchecked because the risk check failed (`risk_check_failed`).
pub const SIGNUPS: &str = "wxlogin_signups_total";
/// Web-login statuses sent to browsers, by status; and how long after its change each left
/// (`…_delay_seconds`): a confirmation made through another instance shows here.
pub const WEB_LOGIN_STATUSES: &str = "wxlogin_web_login_statuses_total";
pub const WEB_LOGIN_STATUS_DELAY: &str = "wxlogin_web_login_status_delay_seconds";
/// Commits of the SQLite store's writer, by `outcome` (`durable`, `failed`), and the writes
/// they held: their ratio is the mean batch, how many writes shared each sync to disk.
pub const SQLITE_COMMITS: &str = "wxlogin_sqlite_commits_total";
pub const SQLITE_COMMITTED_WRITES: &str = "wxlogin_sqlite_committed_writes_total";
/// Always 1; its `version` label says which build is running.
pub const BUILD_INFO: &str = "wxlogin_build_info";

/// Buckets of the code2Session latency histogram, in seconds: WeChat usually answers in tens
/// of milliseconds, and `WECHAT_TIMEOUT` (5 s by default) bounds the slowest.
const CODE2SESSION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets of the web-login status delay, in seconds: a second is the promise.
const WEB_LOGIN_DELAY_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// The recorder or its listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot install the metrics recorder: {0}")]
    Recorder(#[from] BuildError),
    #[error("cannot serve metrics on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The text exposition format's media type, as Prometheus asks for it.
const EXPOSITION_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How often the recorder's histograms are compacted; the exporter's own listener does it
/// this often too.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Installs the process-wide Prometheus recorder and serves its text exposition at
/// `GET /metrics` on `addr`. Every other path is a 404: a scraper pointed at the wrong path
/// should fail loudly, and the listener should not look like the API to anyone probing it.
/// Must run inside the Tokio runtime, which serves it.
pub fn install(addr: SocketAddr) -> Result<(), MetricsError> {
    let listen = |source| MetricsError::Listen { addr, source };
    // Bound here, so that a taken port fails the start rather than a background task.
    let listener = std::net::TcpListener::bind(addr).map_err(listen)?;
    listener.set_nonblocking(true).map_err(listen)?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(listen)?;
    let handle = PrometheusBuilder::new()
        // Without buckets the exporter renders a summary, which cannot be aggregated across
        // instances.
        .set_buckets_for_metric(
            Matcher::Full(CODE2SESSION_SECONDS.to_owned()),
            CODE2SESSION_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(WEB_LOGIN_STATUS_DELAY.to_owned()),
            WEB_LOGIN_DELAY_BUCKETS,
        )?
        .install_recorder()?;
    describe();
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);

    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_EVERY);
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            std::future::ready(([(CONTENT_TYPE, EXPOSITION_TYPE)], handle.render()))
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(())
}

/// The `# HELP` lines.
fn describe() {
    describe_counter!(LOGINS, "POST /login answers, by outcome");
    describe_counter!(
        CODE2SESSION_CALLS,
        "code2Session calls made to WeChat, busy retries included, by errcode"
    );
    ::metrics::describe_histogram!(
        CODE2SESSION_SECONDS,
        Unit::Seconds,
        "Duration of each code2Session call, by errcode"
    );
    describe_counter!(
        CHECKS,
        "Token checks by /checklogin (via=checklogin) and AuthUser, which /auth uses \
         (via=auth_user), by answer"
    );
    describe_counter!(
        STORE_ERRORS,
        "Requests and purges that failed because the session store did, by kind"
    );
    describe_counter!(
        ERRORS,
        "Error answers of every route, by error (the label of the error table)"
    );
    describe_counter!(RATE_LIMITED, "Requests refused by a rate limit, by limit");
    describe_counter!(
        CONNECTIONS_CLOSED,
        "Connections closed to protect the server, by reason (per_client_cap, body_timeout, \
         header_too_large)"
    );
    describe_gauge!(
        BREAKER_STATE,
        "Circuit breaker towards WeChat per app: 0 closed, 1 open, 2 half-open"
    );
    describe_counter!(
        WEBHOOKS,
        "Webhook attempts and events, by outcome (delivered, retried, dead, discarded)"
    );
    describe_counter!(
        ACCOUNTS_CREATED,
        "Accounts created, by how (signup, adopted from before accounts)"
    );
    describe_counter!(
        SIGNUPS,
        "Sign-up decisions other than a plain yes, by outcome (closed, risk_rejected, \
         risk_check_failed)"
    );
    describe_counter!(
        WEB_LOGIN_STATUSES,
        "Web-login ticket statuses sent to browsers, by status"
    );
    ::metrics::describe_histogram!(
        WEB_LOGIN_STATUS_DELAY,
        Unit::Seconds,
        "Time from a web-login ticket's change to its status leaving for the browser"
    );
    describe_counter!(
        SQLITE_COMMITS,
        "Commits of the SQLite store's group-commit writer, by outcome"
    );
    describe_counter!(
        SQLITE_COMMITTED_WRITES,
        "Writes the SQLite store committed; divided by the commits, the mean batch"
    );
    describe_gauge!(BUILD_INFO, "Always 1; the version label names the build");
}

/// One commit of the SQLite writer, of `writes` writes.
pub fn sqlite_commit(writes: usize, durable: bool) {
    let outcome = if durable { "durable" } else { "failed" };
    counter!(SQLITE_COMMITS, "outcome" => outcome).increment(1);
    if durable {
        counter!(SQLITE_COMMITTED_WRITES).increment(writes as u64);
    }
}

/// A web-login `status` sent, `delay_ms` after the change it tells of.
pub fn web_login_status_sent(status: &'static str, delay_ms: i64) {
    ::metrics::counter!(WEB_LOGIN_STATUSES, "status" => status).increment(1);
    ::metrics::histogram!(WEB_LOGIN_STATUS_DELAY).record(delay_ms.max(0) as f64 / 1000.0);
}

/// One `POST /login` answered with `outcome`.
pub fn login(outcome: &'static str) {
    counter!(LOGINS, "outcome" => outcome).increment(1);
}

/// One code2Session call that ended with `errcode` after `took`.
pub fn code2session(errcode: &'static str, took: Duration) {
    counter!(CODE2SESSION_CALLS, "errcode" => errcode).increment(1);
    ::metrics::histogram!(CODE2SESSION_SECONDS, "errcode" => errcode).record(took.as_secs_f64());
}

/// One error answered, stated as `label` by the error table.
pub fn error_answer(label: &'static str) {
    counter!(ERRORS, "error" => label).increment(1);
}

/// A request or a purge failed because the store did, in the way `kind` names.
pub fn store_error(kind: &'static str) {
    counter!(STORE_ERRORS, "kind" => kind).increment(1);
}

/// A request refused by `limit`: `login` (per client); the budget counts through [`over_budget`].
pub fn rate_limited(limit: &'static str) {
    counter!(RATE_LIMITED, "limit" => limit).increment(1);
}

/// A code2Session call refused by its app's budget, for a client of `standing`: refusals of
/// `good` ones mean real users are turned away.
pub fn over_budget(standing: &'static str) {
    counter!(RATE_LIMITED, "limit" => "upstream", "standing" => standing).increment(1);
}

/// A connection closed to protect the server, for `reason`.
pub fn connection_closed(reason: &'static str) {
    counter!(CONNECTIONS_CLOSED, "reason" => reason).increment(1);
}

/// One webhook attempt or event ended with `outcome`.
pub fn webhook(outcome: &'static str) {
    counter!(WEBHOOKS, "outcome" => outcome).increment(1);
}

/// An event left the outbox undelivered: its retries ran out, or a full outbox dropped it.
pub fn webhook_dead() {
    webhook("dead");
}

/// An account was made, `how`: at `signup`, or `adopted` from before accounts.
pub fn account_created(how: &'static str) {
    counter!(ACCOUNTS_CREATED, "how" => how).increment(1);
}

/// A sign-up ended in `outcome`: `closed`, `risk_rejected`, or went on after a
/// `risk_check_failed`.
pub fn signup(outcome: &'static str) {
    counter!(SIGNUPS, "outcome" => outcome).increment(1);
}

/// The breaker gauge of the app `appid`, registered once per client.
pub fn breaker_gauge(appid: &str) -> Gauge {
    gauge!(BREAKER_STATE, "appid" => appid.to_owned())
}

/// The check counters, registered once, one handle per `via` and answer.
#[derive(Debug, Clone)]
pub struct CheckCounters {
    pub checklogin: CheckAnswers,
    pub auth_user: CheckAnswers,
}

impl CheckCounters {
    /// Registers every handle with the recorder installed now (the no-op one if none is).
    pub fn register() -> Self {
        Self {
            checklogin: CheckAnswers::register("checklogin"),
            auth_user: CheckAnswers::register("auth_user"),
        }
    }
}

/// The answers one way of checking a token can give.
#[derive(Debug, Clone)]
pub struct CheckAnswers {
    logged_in: Counter,
    not_logged_in: Counter,
    store_unavailable: Counter,
    error: Counter,
}

impl CheckAnswers {
    fn register(via: &'static str) -> Self {
        let answer = |answer: &'static str| counter!(CHECKS, "via" => via, "answer" => answer);
        Self {
            logged_in: answer("logged_in"),
            not_logged_in: answer("not_logged_in"),
            store_unavailable: answer("store_unavailable"),
            error: answer("error"),
        }
    }

    /// Counts the answer of one check.
    pub fn count(&self, answer: CheckAnswer) {
        let counter = match answer {
            CheckAnswer::LoggedIn => &self.logged_in,
            CheckAnswer::NotLoggedIn => &self.not_logged_in,
            CheckAnswer::StoreUnavailable => &self.store_unavailable,
            CheckAnswer::Error => &self.error,
        };
        counter.increment(1);
    }
}

/// What one check of a token came to: whether it was live, or why nobody knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckAnswer {
    LoggedIn,
    NotLoggedIn,
    StoreUnavailable,
    Error,
}
