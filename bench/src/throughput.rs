//! Throughput and latency: every scenario (an endpoint of a target) loaded by wrk for a few
//! seconds, all of them once per round, for several rounds.
//!
//! Why rounds: the machine is shared, and whatever disturbs it (another build, the CPU's
//! clock) drifts over minutes. Running scenario A three times and then B three times would
//! give that drift to one of them; interleaving gives it to all alike, and the median per
//! scenario drops the round it hit hardest. The order within a round also turns by one place
//! each round, so no scenario always comes first after a warm-up or last before a stop.
//!
//! Each round starts everything afresh (the servers, their stores, Redis, the baselines), so a
//! round is a full repetition and no store carries the previous round's logins. The servers
//! run the dev-mode simulator (that is where `/login` codes come from) with the login and
//! upstream limits off: one client sending thousands of logins a second is what the bench
//! does, not an attack.

use std::{collections::HashMap, path::Path, time::Duration};

use crate::{
    Result, client,
    cpu_time::{self, Meter, PerLogin},
    cpus::CpuPlan,
    processes::{self, Redis, Service},
    stats,
    wrk::{Sample, Wrk},
};

/// Where the login server keeps its sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Store {
    Memory,
    Sqlite,
    Redis,
}

impl Store {
    pub const ALL: [Store; 3] = [Store::Memory, Store::Sqlite, Store::Redis];

    pub fn label(self) -> &'static str {
        match self {
            Store::Memory => "memory",
            Store::Sqlite => "SQLite",
            Store::Redis => "Redis",
        }
    }
}

/// What is loaded: the login server on one store, or one of the baselines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// `baseline-axum`: axum answering a constant, the limit.
    Baseline,
    /// The original article's express server, reimplemented (`bench/express-baseline`).
    Express,
    Server(Store),
}

impl Target {
    pub fn label(self) -> &'static str {
        match self {
            Target::Baseline => "axum baseline",
            Target::Express => "express baseline",
            Target::Server(store) => store.label(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Healthz,
    CheckLogin,
    Login,
}

impl Endpoint {
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Healthz => "GET /healthz",
            Endpoint::CheckLogin => "GET /checklogin",
            Endpoint::Login => "POST /login",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scenario {
    pub target: Target,
    pub endpoint: Endpoint,
}

/// Every scenario, in the order the report lists them: `/checklogin` on the two baselines and
/// each store, `/healthz` on each store, `/login` on each store.
pub fn scenarios() -> Vec<Scenario> {
    let servers = Store::ALL.map(Target::Server);
    let checklogin = [Target::Baseline, Target::Express]
        .into_iter()
        .chain(servers);
    let on = |endpoint| move |target| Scenario { target, endpoint };
    checklogin
        .map(on(Endpoint::CheckLogin))
        .chain(servers.map(on(Endpoint::Healthz)))
        .chain(servers.map(on(Endpoint::Login)))
        .collect()
}

/// One scenario's runs, one sample per round.
#[derive(Debug, Clone)]
pub struct Measured {
    pub scenario: Scenario,
    pub samples: Vec<Sample>,
    /// For `/login`, the CPU each round's run cost per login; empty for the GETs.
    pub cpu: Vec<PerLogin>,
}

impl Measured {
    pub fn median_rps(&self) -> f64 {
        stats::median(
            &self
                .samples
                .iter()
                .map(Sample::per_second)
                .collect::<Vec<_>>(),
        )
    }

    pub fn median_p50_ms(&self) -> f64 {
        stats::median(&self.samples.iter().map(|s| s.p50_ms).collect::<Vec<_>>())
    }

    pub fn median_p99_ms(&self) -> f64 {
        stats::median(&self.samples.iter().map(|s| s.p99_ms).collect::<Vec<_>>())
    }

    /// How far the fastest round is above the slowest: `0.25` for 25 %.
    pub fn spread(&self) -> f64 {
        let rates = self.samples.iter().map(Sample::per_second);
        let (min, max) = rates.fold((f64::INFINITY, 0.0_f64), |(lo, hi), r| {
            (lo.min(r), hi.max(r))
        });
        stats::ratio(max, min) - 1.0
    }

    pub fn errors(&self) -> u64 {
        self.samples.iter().map(Sample::errors).sum()
    }

    /// The median CPU per login over the rounds (server, Redis), `None` for a GET scenario.
    pub fn median_cpu(&self) -> Option<PerLogin> {
        if self.cpu.is_empty() {
            return None;
        }
        let server: Vec<f64> = self.cpu.iter().map(|c| c.server_us).collect();
        let redis: Vec<f64> = self.cpu.iter().filter_map(|c| c.redis_us).collect();
        let busy: Vec<f64> = self.cpu.iter().map(|c| c.server_busy).collect();
        Some(PerLogin {
            server_us: stats::median(&server),
            redis_us: (!redis.is_empty()).then(|| stats::median(&redis)),
            server_busy: stats::median(&busy),
        })
    }
}

/// What the rounds need: the programs to start and how long to load each.
#[derive(Debug)]
pub struct Setup<'a> {
    pub server: &'a Path,
    pub baseline: &'a Path,
    pub express_dir: &'a Path,
    pub cpus: &'a CpuPlan,
    pub rounds: usize,
    pub duration: Duration,
    /// Load before the first measured run of each process, discarded: V8 compiles express's
    /// hot code only after it has run for a while, and every process's allocator and
    /// connection pools settle in the first moments.
    pub warmup: Duration,
}

/// Codes per second of `/login` assumed before a store's first run; later runs mint for the
/// fastest rate that store has shown, with room to spare. Too few codes cost a rerun, too many
/// cost minting time (some tens of thousands of codes a second).
const FIRST_LOGIN_RATE_GUESS: f64 = 40_000.0;
/// The servers' cap on codes held in the claim table (`MAX_CLAIMS`), raised so that no store
/// refuses a login of the bench; the report names it.
pub const MAX_CLAIMS: &str = "4000000";
/// Codes minted beyond the expected need.
const CODE_MARGIN: f64 = 1.5;

/// Runs every round and returns the samples of each scenario, in [`scenarios`] order.
pub async fn run(
    setup: &Setup<'_>,
    wrk: &Wrk,
    http: &reqwest::Client,
    work: &Path,
) -> Result<Vec<Measured>> {
    let all = scenarios();
    let ticks = cpu_time::Ticks::detect()?;
    let mut samples: HashMap<Scenario, Vec<Sample>> = HashMap::new();
    let mut cpu: HashMap<Scenario, Vec<PerLogin>> = HashMap::new();
    // The fastest `/login` rate each store has shown, to mint for.
    let mut login_rates: HashMap<Store, f64> = HashMap::new();
    for round in 0..setup.rounds {
        let dir = work.join(format!("round-{}", round + 1));
        let running = Running::start(setup, &dir, http).await?;
        for target in running.targets() {
            let (base, token) = running.endpoint(target);
            wrk.get(&format!("{base}/checklogin"), Some(token), setup.warmup)?;
        }

        let (mut gets, mut logins): (Vec<Scenario>, Vec<Scenario>) =
            all.iter().partition(|s| s.endpoint != Endpoint::Login);
        // Logins last: their writes (a growing SQLite file, Redis's AOF) must not sit under
        // the reads. Each group turns by one place per round.
        let (g, l) = (gets.len(), logins.len());
        gets.rotate_left(round % g);
        logins.rotate_left(round % l);
        for scenario in gets.into_iter().chain(logins) {
            let (base, token) = running.endpoint(scenario.target);
            let sample = match scenario.endpoint {
                Endpoint::Healthz => wrk.get(&format!("{base}/healthz"), None, setup.duration)?,
                Endpoint::CheckLogin => {
                    let sample =
                        wrk.get(&format!("{base}/checklogin"), Some(token), setup.duration)?;
                    client::expect_logged_in(http, base, token).await?;
                    sample
                }
                Endpoint::Login => {
                    let Target::Server(store) = scenario.target else {
                        unreachable!("only the login server is measured at /login")
                    };
                    let guess = login_rates
                        .get(&store)
                        .copied()
                        .unwrap_or(FIRST_LOGIN_RATE_GUESS);
                    let label = format!("r{}-{}", round + 1, store.label());
                    let (server_pid, redis_pid) = running.pids(store);
                    let target = LoginTarget {
                        base,
                        label: &label,
                        dir: &dir,
                        meter: || Meter::start(ticks, server_pid, redis_pid),
                    };
                    let (sample, per_login) =
                        login_run(wrk, http, &target, guess, setup.duration).await?;
                    let fastest = login_rates.entry(store).or_insert(0.0);
                    *fastest = fastest.max(sample.per_second());
                    cpu.entry(scenario).or_default().push(per_login);
                    sample
                }
            };
            eprintln!(
                "    round {}/{}  {:<16} {:<14} {:>9} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms{}",
                round + 1,
                setup.rounds,
                scenario.endpoint.label(),
                scenario.target.label(),
                stats::thousands(sample.per_second()),
                sample.p50_ms,
                sample.p99_ms,
                match sample.errors() {
                    0 => String::new(),
                    n => format!("  ({n} errors)"),
                }
            );
            samples.entry(scenario).or_default().push(sample);
        }
        running.stop();
        std::fs::remove_dir_all(&dir).ok();
    }
    Ok(all
        .into_iter()
        .map(|scenario| Measured {
            scenario,
            samples: samples.remove(&scenario).unwrap_or_default(),
            cpu: cpu.remove(&scenario).unwrap_or_default(),
        })
        .collect())
}

/// The server a `/login` run loads, and where its codes go.
struct LoginTarget<'a, M> {
    base: &'a str,
    /// Names the run's codes at the simulator (round and store).
    label: &'a str,
    /// The round's folder, for the codes file.
    dir: &'a Path,
    /// Starts the CPU reading: called just before the load, after the minting.
    meter: M,
}

/// One `/login` run with codes freshly minted for `guess` logins a second. When they ran out,
/// the guess is raised and the run repeated: a run that ran out measured failures at its end,
/// not logins.
async fn login_run(
    wrk: &Wrk,
    http: &reqwest::Client,
    target: &LoginTarget<'_, impl Fn() -> Result<Meter>>,
    mut guess: f64,
    duration: Duration,
) -> Result<(Sample, PerLogin)> {
    let LoginTarget {
        base,
        label,
        dir,
        meter,
    } = target;
    for attempt in 1..=3 {
        let n = (guess * duration.as_secs_f64() * CODE_MARGIN).ceil() as usize + 1_000;
        let codes = client::mint_codes(http, base, &format!("{label}-{attempt}"), n).await?;
        let file = dir.join("codes.txt");
        std::fs::write(&file, codes.join("\n") + "\n")?;
        let reading = meter()?;
        let sample = wrk.login(base, &file, duration)?;
        let logins = sample.requests.saturating_sub(sample.status_errors);
        if sample.sent.unwrap_or(0) <= n as u64 {
            return Ok((sample, reading.per_login(logins)?));
        }
        eprintln!(
            "    {label}: the {n} codes ran out ({} requests sent, {} failed); minting more and \
             running again",
            sample.sent.unwrap_or(0),
            sample.status_errors
        );
        guess *= 2.5;
    }
    Err(format!("{label}: ran out of login codes three times").into())
}

/// The processes of one round and a live token for each.
struct Running {
    baseline: Service,
    express: Service,
    servers: Vec<(Store, Service)>,
    tokens: HashMap<Target, String>,
    redis: Redis,
}

impl Running {
    async fn start(setup: &Setup<'_>, dir: &Path, http: &reqwest::Client) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let redis = processes::start_redis(&dir.join("redis"), true, setup.cpus)?;
        let mut servers = Vec::new();
        for store in Store::ALL {
            let url = match store {
                Store::Memory => "memory".to_owned(),
                Store::Sqlite => format!("sqlite://{}", dir.join("sqlite/sessions.db").display()),
                Store::Redis => redis.url(),
            };
            servers.push((store, start_server(setup.server, &url, setup.cpus)?));
        }
        let mut baseline = setup.cpus.target(setup.baseline);
        baseline
            .env_clear()
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "warn");
        let baseline = processes::start_service("the axum baseline", baseline, "/healthz")?;
        let express = start_express(setup.express_dir, setup.cpus)?;

        let mut tokens = HashMap::new();
        for (store, server) in &servers {
            let base = server.base();
            tokens.insert(
                Target::Server(*store),
                client::server_token(http, base).await?,
            );
        }
        // The baseline answers `true` to anything; it still gets a token of the real shape, so
        // every target is sent the same request.
        tokens.insert(
            Target::Baseline,
            server::token::Token::generate().into_string(),
        );
        let express_token = client::login(http, express.base(), "bench").await?;
        tokens.insert(Target::Express, express_token);
        let running = Self {
            baseline,
            express,
            servers,
            tokens,
            redis,
        };
        for target in running.targets() {
            let (base, token) = running.endpoint(target);
            client::expect_logged_in(http, base, token).await?;
        }
        Ok(running)
    }

    /// The process ids of `store`'s server and, for Redis, of `redis-server`.
    fn pids(&self, store: Store) -> (u32, Option<u32>) {
        let server = self
            .servers
            .iter()
            .find(|(s, _)| *s == store)
            .map_or(0, |(_, service)| service.pid());
        (server, (store == Store::Redis).then(|| self.redis.pid()))
    }

    fn targets(&self) -> Vec<Target> {
        let mut targets = vec![Target::Baseline, Target::Express];
        targets.extend(self.servers.iter().map(|(store, _)| Target::Server(*store)));
        targets
    }

    /// The base URL (`http://127.0.0.1:PORT`) and the token of `target`.
    fn endpoint(&self, target: Target) -> (&str, &str) {
        let service = match target {
            Target::Baseline => &self.baseline,
            Target::Express => &self.express,
            Target::Server(store) => self
                .servers
                .iter()
                .find(|(s, _)| *s == store)
                .map(|(_, service)| service)
                .expect("every store has a server"),
        };
        (service.base(), &self.tokens[&target])
    }

    fn stop(self) {
        self.baseline.stop();
        self.express.stop();
        for (_, server) in self.servers {
            server.stop();
        }
    }
}

/// The login server on the store at `url`, as the bench runs every server: dev mode (the
/// simulator mints the codes), loopback, `warn` logging, no login or upstream limits.
pub fn start_server(binary: &Path, store_url: &str, cpus: &CpuPlan) -> Result<Service> {
    let cmd = server_command(binary, store_url, cpus);
    processes::start_service(&format!("the login server ({store_url})"), cmd, "/healthz")
}

/// The login server's command line as every measurement starts it: on the targets' CPUs, on
/// `store_url`, logging at `warn`, with the login limits off and the claim cap raised.
pub fn server_command(binary: &Path, store_url: &str, cpus: &CpuPlan) -> std::process::Command {
    let mut cmd = cpus.target(binary);
    cmd.env_clear()
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("SESSION_STORE", store_url)
        // `warn` for everything but the start-up line that says where the server listens.
        .env("RUST_LOG", "warn,server::cli=info")
        .env("NO_COLOR", "1")
        .env("LOGIN_RATE_PER_MINUTE", "0")
        .env("UPSTREAM_RATE_PER_SECOND", "0")
        // Every code stays claimed for its replay window: at tens of thousands of logins a
        // second the default cap would refuse some, and a refusal is not a login measured.
        .env("MAX_CLAIMS", MAX_CLAIMS);
    cmd
}

/// The express baseline under Node, as deployed: `NODE_ENV=production`.
fn start_express(dir: &Path, cpus: &CpuPlan) -> Result<Service> {
    let mut cmd = cpus.target("node");
    cmd.arg("server.js")
        .current_dir(dir)
        .env_clear()
        .env("PORT", "0")
        .env("NODE_ENV", "production");
    // The seed has no health check; its `/checklogin` without a token answers 200.
    processes::start_service("the express baseline", cmd, "/checklogin")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_spread_over_the_rounds() {
        let sample = |requests, p99_ms| Sample {
            requests,
            seconds: 1.0,
            p50_ms: 0.5,
            p99_ms,
            status_errors: 0,
            socket_errors: 0,
            sent: None,
        };
        let m = Measured {
            scenario: scenarios()[0],
            samples: vec![sample(100, 3.0), sample(125, 1.0), sample(110, 2.0)],
            cpu: Vec::new(),
        };
        assert_eq!(m.median_rps(), 110.0);
        assert_eq!(m.median_p99_ms(), 2.0);
        assert_eq!(m.spread(), 0.25);
        assert_eq!(m.errors(), 0);
        assert_eq!(m.median_cpu(), None);
        let per = |server_us, redis_us, server_busy| PerLogin {
            server_us,
            redis_us,
            server_busy,
        };
        let logins = Measured {
            cpu: vec![
                per(40.0, Some(60.0), 0.97),
                per(50.0, Some(40.0), 0.91),
                per(45.0, Some(50.0), 0.99),
            ],
            ..m
        };
        assert_eq!(logins.median_cpu(), Some(per(45.0, Some(50.0), 0.97)));
    }

    #[test]
    fn every_scenario_once_checklogin_first_then_healthz_then_login() {
        let all = scenarios();
        let labels: Vec<String> = all
            .iter()
            .map(|s| format!("{} {}", s.endpoint.label(), s.target.label()))
            .collect();
        assert_eq!(
            labels,
            [
                "GET /checklogin axum baseline",
                "GET /checklogin express baseline",
                "GET /checklogin memory",
                "GET /checklogin SQLite",
                "GET /checklogin Redis",
                "GET /healthz memory",
                "GET /healthz SQLite",
                "GET /healthz Redis",
                "POST /login memory",
                "POST /login SQLite",
                "POST /login Redis",
            ]
        );
    }
}
