//! The measuring half of `cargo xtask bench`. xtask installs the tools (wrk, Redis, Node, the
//! express baseline's packages), builds the release binaries and the WASM module, and runs this
//! with their paths; this measures everything in one run, prints the table, and writes
//! `bench/results/latest.md` and `bench/results/latest.svg`; it writes nothing else.
//!
//! Everything runs on loopback and is bounded in time: every server binds 127.0.0.1, every
//! load lasts a fixed number of seconds, every process the bench starts is stopped at the end.
//!
//! # Layout
//! One module per measurement:
//! - [`throughput`]: req/s and latency of `/healthz`, `/checklogin` and `/login` per store,
//!   and of `/checklogin` on the two baselines (the axum limit, `src/bin/baseline-axum.rs`,
//!   and the original article's express server, `bench/express-baseline/`), in interleaved rounds.
//! - [`checklogin_scale`]: `/checklogin` over ten million SQLite sessions read at random,
//!   against ten thousand.
//! - [`footprint`]: bytes per session on disk (SQLite) and in memory (Redis), the server's
//!   RSS with a million sessions, and bytes per account and per session at a million
//!   accounts.
//! - [`sse_streams`]: resident memory per open web-login event stream, and `/checklogin`
//!   beside ten thousand of them.
//! - [`wasm_size`]: the shipped client module, raw, gzip and brotli.
//! - [`launch`]: mini-program launch to a usable token, in the tests' strict runtime.
//!
//! And what they share: [`wrk`] (the load generator), [`cpus`] (which CPUs it and the targets
//! get), [`cpu_time`] (CPU per login of the server and Redis), [`processes`] (servers and Redis the
//! bench owns), [`client`] (codes, logins, token checks), [`stats`] (medians, formats),
//! [`machine`], [`report`] (tables, acceptance lines) and [`svg`] (the chart).

mod checklogin_scale;
mod client;
mod cpu_time;
mod cpus;
mod footprint;
mod launch;
mod machine;
mod processes;
mod report;
mod sse_streams;
mod stats;
mod svg;
mod throughput;
mod wasm_size;
mod wrk;

use std::{
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use clap::Parser;

/// A message for the person at the terminal; the bench has no caller that needs more.
pub type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Paths come from `cargo xtask bench`; the rest have the defaults of the published runs.
#[derive(Debug, Parser)]
#[command(
    name = "bench",
    about = "Run by `cargo xtask bench`: measure, print, write results"
)]
struct Args {
    /// The workspace root (results, the launch script and the runtime live there).
    #[arg(long)]
    root: PathBuf,
    /// The release login server.
    #[arg(long)]
    server: PathBuf,
    /// The release `baseline-axum`.
    #[arg(long)]
    baseline: PathBuf,
    /// The WASM module after wasm-opt, before compression.
    #[arg(long)]
    wasm_raw: PathBuf,
    /// The brotli-compressed module the mini-program ships.
    #[arg(long)]
    wasm_shipped: PathBuf,
    /// Rounds of every scenario. Five: the machine's cores are shared with other work, and
    /// the median of five shrugs off two disturbed rounds where that of three takes one.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Seconds of load per run.
    #[arg(long, default_value_t = 4)]
    seconds: u64,
    /// Seconds of discarded load before each round's runs, per process.
    #[arg(long, default_value_t = 1)]
    warmup_seconds: u64,
    #[arg(long, default_value_t = 32)]
    connections: u32,
    /// Connections for the `/login` runs. A durable store answers a batch of logins per
    /// flush to disk, so its rate is bounded by the logins in flight as much as by its CPU:
    /// at 32, the SQLite server sits idle for about a tenth of each run, every request
    /// waiting on one `fsync`. At 128 every store's server keeps its CPU busy, and the run
    /// measures what the server can do rather than what 32 clients ask of it; the report
    /// gives the share of its CPU each server used.
    #[arg(long, default_value_t = 128)]
    login_connections: u32,
    /// SQLite sessions for the size per session.
    #[arg(long, default_value_t = 1_000_000)]
    sqlite_sessions: u64,
    /// The SQLite store sizes `/checklogin` is measured at, smallest first (0 skips it).
    #[arg(long, value_delimiter = ',', default_values_t = [10_000u64, 10_000_000])]
    scale_sessions: Vec<u64>,
    /// Redis sessions for the memory per session.
    #[arg(long, default_value_t = 100_000)]
    redis_sessions: u64,
    /// Accounts (each with one session) for the footprint per account (0 skips it).
    #[arg(long, default_value_t = 1_000_000)]
    accounts: u64,
    /// Web-login event streams held open at once (0 skips the measurement).
    #[arg(long, default_value_t = 10_000)]
    sse_streams: u64,
    /// Launches of each kind (with and without a stored token) to take the median of.
    #[arg(long, default_value_t = 25)]
    launches: usize,
    /// Print the results without writing them into the repository (for trial runs).
    #[arg(long)]
    no_write: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result {
    let started = Instant::now();
    let work = processes::TempDir::new("bench")?;
    let cpus = cpus::CpuPlan::detect()?;
    let wrk = wrk::Wrk::new(work.path(), args.connections, args.login_connections, &cpus)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let settings = report::Settings {
        rounds: args.rounds,
        duration: Duration::from_secs(args.seconds),
        warmup: Duration::from_secs(args.warmup_seconds),
        connections: args.connections,
        login_connections: args.login_connections,
        cpus: cpus.describe(),
        redis_cpus: cpus.describe_redis(),
    };
    let machine = machine::Machine::read(wrk::version());
    eprintln!("    {}", machine.summary());

    let measured = job("throughput and latency", async {
        let setup = throughput::Setup {
            server: &args.server,
            baseline: &args.baseline,
            express_dir: &args.root.join("bench/express-baseline"),
            cpus: &cpus,
            rounds: args.rounds,
            duration: settings.duration,
            warmup: settings.warmup,
        };
        throughput::run(&setup, &wrk, &http, work.path()).await
    })
    .await?;
    let scale = job("/checklogin as the SQLite store grows", async {
        let sizes: Vec<u64> = args
            .scale_sessions
            .iter()
            .copied()
            .filter(|&n| n > 0)
            .collect();
        checklogin_scale::measure(
            &args.server,
            &cpus,
            &wrk,
            &http,
            &sizes,
            settings.warmup,
            settings.duration,
        )
        .await
    })
    .await?;
    let sqlite = job("SQLite: bytes per session, server RSS", async {
        footprint::sqlite::measure(
            &args.server,
            &cpus,
            &wrk,
            &http,
            args.sqlite_sessions,
            settings.duration,
        )
        .await
    })
    .await?;
    let redis = job("Redis: used_memory per session", async {
        footprint::redis::measure(args.redis_sessions, &cpus).await
    })
    .await?;
    let accounts = if args.accounts == 0 {
        None
    } else {
        let sqlite = job("SQLite: bytes per account and per session", async {
            footprint::accounts::sqlite(args.accounts).await
        })
        .await?;
        let redis = job("Redis: used_memory per account and per session", async {
            footprint::accounts::redis(args.accounts, &cpus).await
        })
        .await?;
        Some([sqlite, redis])
    };
    let streams = if args.sse_streams == 0 {
        None
    } else {
        Some(
            job("open web-login streams", async {
                sse_streams::measure(
                    &args.server,
                    &cpus,
                    &wrk,
                    &http,
                    args.sse_streams,
                    settings.warmup,
                    settings.duration,
                )
                .await
            })
            .await?,
        )
    };
    let wasm = job("WASM size", async {
        wasm_size::measure(&args.wasm_raw, &args.wasm_shipped)
    })
    .await?;
    let launch = job("mini-program launch", async {
        launch::measure(&args.root, &args.server, args.launches)
    })
    .await?;

    let report = report::Report {
        machine,
        settings,
        measured,
        sqlite,
        redis,
        wasm,
        launch,
        scale,
        streams,
        accounts,
        elapsed: started.elapsed(),
    };
    println!("\n{}", report.text());
    if !args.no_write {
        let results = args.root.join("bench/results");
        std::fs::create_dir_all(&results)?;
        std::fs::write(results.join("latest.md"), report.markdown())?;
        std::fs::write(results.join("latest.svg"), report.chart())?;
        println!("written: bench/results/latest.md, bench/results/latest.svg");
    }
    println!(
        "bench: {:.0} s of measuring",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs one measurement, saying what it is and how long it took.
async fn job<T>(name: &str, f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    eprintln!("\n  -> {name}");
    let started = Instant::now();
    let result = f.await;
    match &result {
        Ok(_) => eprintln!(
            "  -> {name}: done ({:.1}s)",
            started.elapsed().as_secs_f64()
        ),
        Err(e) => eprintln!("  -> {name}: FAILED: {e}"),
    }
    result
}
