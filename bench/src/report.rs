//! Turning the measurements into what people read: the tables (printed, and in
//! `bench/results/latest.md`), the acceptance ratios, and the bar chart
//! (`bench/results/latest.svg`).

use std::{fmt::Write as _, time::Duration};

use crate::{
    checklogin_scale::AtScale,
    footprint::{accounts::AccountsFootprint, redis::RedisFootprint, sqlite::SqliteFootprint},
    launch::LaunchTimes,
    machine::Machine,
    sse_streams::SseStreams,
    stats::{self, bytes, thousands, times},
    svg,
    throughput::{Endpoint, Measured, Store, Target},
    wasm_size::WasmSize,
    wrk::Sample,
};

/// How the throughput runs were made, for the method line.
#[derive(Debug, Clone)]
pub struct Settings {
    pub rounds: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub connections: u32,
    /// wrk's connections for the `/login` runs.
    pub login_connections: u32,
    /// How the CPUs were split between wrk and the targets ([`crate::cpus`]).
    pub cpus: String,
    /// Where Redis ran, in a sentence.
    pub redis_cpus: String,
}

/// Everything one `cargo xtask bench` measured.
#[derive(Debug)]
pub struct Report {
    pub machine: Machine,
    pub settings: Settings,
    pub measured: Vec<Measured>,
    pub sqlite: SqliteFootprint,
    pub redis: RedisFootprint,
    pub wasm: WasmSize,
    pub launch: LaunchTimes,
    /// `/checklogin` over a small SQLite file and a very large one, read at random.
    pub scale: Vec<AtScale>,
    /// Ten thousand open web-login streams (unless the run skipped them).
    pub streams: Option<SseStreams>,
    /// Per account and per session at a million accounts: SQLite, then Redis.
    pub accounts: Option<[AccountsFootprint; 2]>,
    /// The measuring, builds not included.
    pub elapsed: Duration,
}

/// One of the acceptance figures and whether it holds: most are ratios wanted at least so
/// high; a size per item is wanted at most so large.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub what: String,
    pub measured: f64,
    pub wanted: f64,
    pub bound: Bound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// A ratio, at least `wanted`.
    AtLeastTimes,
    /// Bytes, at most `wanted`.
    AtMostBytes,
}

impl Check {
    fn at_least(what: impl Into<String>, measured: f64, wanted: f64) -> Self {
        Check {
            what: what.into(),
            measured,
            wanted,
            bound: Bound::AtLeastTimes,
        }
    }

    /// NaN, a figure not measured, holds neither way.
    pub fn holds(&self) -> bool {
        match self.bound {
            Bound::AtLeastTimes => self.measured >= self.wanted,
            Bound::AtMostBytes => self.measured <= self.wanted,
        }
    }

    pub fn line(&self) -> String {
        let (show, sign): (fn(f64) -> String, _) = match self.bound {
            Bound::AtLeastTimes => (times, "≥"),
            Bound::AtMostBytes => (bytes, "≤"),
        };
        format!(
            "{} {}: {} (wanted {sign} {})",
            if self.holds() { "PASS" } else { "FAIL" },
            self.what,
            show(self.measured),
            show(self.wanted)
        )
    }
}

impl Report {
    fn find(&self, target: Target, endpoint: Endpoint) -> Option<&Measured> {
        self.measured
            .iter()
            .find(|m| m.scenario.target == target && m.scenario.endpoint == endpoint)
    }

    fn rps(&self, target: Target, endpoint: Endpoint) -> f64 {
        self.find(target, endpoint)
            .map_or(f64::NAN, Measured::median_rps)
    }

    /// The limit every GET figure is compared with.
    fn baseline_rps(&self) -> f64 {
        self.rps(Target::Baseline, Endpoint::CheckLogin)
    }

    /// The acceptance ratios, on the medians.
    pub fn checks(&self) -> Vec<Check> {
        let base = self.baseline_rps();
        let server = |store, endpoint| self.rps(Target::Server(store), endpoint);
        // `/healthz` touches no store, so the three servers run the same code for it: their
        // runs are pooled into one median, which the machine's noise moves less.
        let healthz: Vec<f64> = self
            .measured
            .iter()
            .filter(|m| m.scenario.endpoint == Endpoint::Healthz)
            .flat_map(|m| m.samples.iter().map(Sample::per_second))
            .collect();
        let mut checks = vec![Check::at_least(
            "/healthz (the three servers' runs pooled) ≥ 0.85× the axum baseline",
            stats::ratio(stats::median(&healthz), base),
            0.85,
        )];
        let sqlite = server(Store::Sqlite, Endpoint::CheckLogin);
        checks.push(Check::at_least(
            "/checklogin (SQLite) ≥ 0.6× the axum baseline",
            stats::ratio(sqlite, base),
            0.6,
        ));
        checks.push(Check::at_least(
            "/checklogin (SQLite) ≥ 8× the express baseline",
            stats::ratio(sqlite, self.rps(Target::Express, Endpoint::CheckLogin)),
            8.0,
        ));
        checks.push(Check::at_least(
            "/checklogin (Redis) ≥ 0.35× the axum baseline",
            stats::ratio(server(Store::Redis, Endpoint::CheckLogin), base),
            0.35,
        ));
        let memory_login = server(Store::Memory, Endpoint::Login);
        for store in [Store::Sqlite, Store::Redis] {
            checks.push(Check::at_least(
                format!("/login ({}) ≥ 0.5× the memory store's", store.label()),
                stats::ratio(server(store, Endpoint::Login), memory_login),
                0.5,
            ));
        }
        if let [small, .., large] = self.scale.as_slice() {
            checks.push(Check::at_least(
                format!(
                    "/checklogin at {} SQLite sessions ≥ 0.5× at {}",
                    thousands(large.sessions as f64),
                    thousands(small.sessions as f64)
                ),
                stats::ratio(large.sample.per_second(), small.sample.per_second()),
                0.5,
            ));
        }
        if let Some(streams) = &self.streams {
            checks.push(Check {
                what: format!(
                    "resident memory per open web-login stream (its ticket included, {} open)",
                    thousands(streams.streams as f64)
                ),
                measured: streams.bytes_per_stream(),
                wanted: 16.0 * 1024.0,
                bound: Bound::AtMostBytes,
            });
        }
        checks
    }

    /// `/checklogin` by store size.
    fn scale_section(&self) -> String {
        let mut rows = vec![vec![
            "Sessions".to_owned(),
            "File".to_owned(),
            "Tokens sampled".to_owned(),
            "Filled in".to_owned(),
            "req/s".to_owned(),
            "p50".to_owned(),
            "p99".to_owned(),
        ]];
        for run in &self.scale {
            rows.push(vec![
                thousands(run.sessions as f64),
                bytes(run.file_bytes as f64),
                thousands(run.sampled as f64),
                format!("{:.0} s", run.fill_seconds),
                thousands(run.sample.per_second()),
                format!("{:.2} ms", run.sample.p50_ms),
                format!("{:.2} ms", run.sample.p99_ms),
            ]);
        }
        format!(
            "{}\nEach file is filled through `SqliteStore::insert_many` (chunks of a million \
             sorted by key), then served by a fresh release server with its default session \
             cache of 65,536 sessions; wrk sends every check with a token picked at random from \
             the sample (`bench/wrk/tokens.lua`), the same script for each size, for {} s after \
             a {} s warm-up. Over the large file most checks miss the cache and read the \
             B-tree.\n",
            table(&rows, &[true, true, true, true, true, true, true]),
            self.settings.duration.as_secs(),
            self.settings.warmup.as_secs(),
        )
    }

    /// The method in one paragraph.
    fn method(&self) -> String {
        let s = &self.settings;
        format!(
            "wrk with 1 thread and {} keep-alive connections ({} for `/login`: a durable \
             store answers a batch of logins per flush to disk, and with fewer in flight its \
             server idles while each flush runs), {} s per run after a {} s \
             warm-up, on loopback; every scenario once per round, {} rounds interleaved, each \
             round with freshly started servers and stores; figures are the medians of the \
             rounds. Servers: release builds logging at `warn`, dev mode (`/login` exchanges \
             codes minted beforehand at the built-in WeChat simulator, one user per code), \
             login and upstream limits off, no webhook endpoint (a login's account is written, \
             its event discarded, not written). SQLite at \
             `synchronous=FULL`, Redis with `appendfsync always`: every login durable on both. \
             Of the machine's {} cores: {}.",
            s.connections,
            s.login_connections,
            s.duration.as_secs(),
            s.warmup.as_secs(),
            s.rounds,
            self.machine.cores,
            s.cpus
        )
    }

    /// How much the rounds disagreed, so a reader knows how far to trust a ratio.
    fn noise(&self) -> String {
        let widest = |login: bool| {
            self.measured
                .iter()
                .filter(|m| (m.scenario.endpoint == Endpoint::Login) == login)
                .map(Measured::spread)
                .filter(|s| s.is_finite())
                .fold(0.0, f64::max)
                * 100.0
        };
        let baseline = self
            .find(Target::Baseline, Endpoint::CheckLogin)
            .map_or(f64::NAN, Measured::spread);
        format!(
            "Noise: from its slowest round to its fastest, a GET scenario's rate moved by up to \
             {:.0} % in this run (the baseline's by {:.0} %), a `/login` scenario's by up to \
             {:.0} % (SQLite and Redis logins wait for fsync, on a disk shared with other \
             work). Other work may share the cores too, so a ratio near its threshold is not settled by \
             one run.",
            widest(false),
            baseline * 100.0,
            widest(true)
        )
    }

    fn throughput_table(&self) -> String {
        let base = self.baseline_rps();
        let mut rows = vec![vec![
            "Endpoint".to_owned(),
            "Target".to_owned(),
            "req/s".to_owned(),
            "req/s per round".to_owned(),
            "p50".to_owned(),
            "p99".to_owned(),
            "× baseline".to_owned(),
            "errors".to_owned(),
        ]];
        for m in &self.measured {
            let rounds: Vec<String> = m
                .samples
                .iter()
                .map(|s| format!("{:.1}k", s.per_second() / 1e3))
                .collect();
            let ratio = match m.scenario.endpoint {
                Endpoint::Login => "".to_owned(),
                _ => times(stats::ratio(m.median_rps(), base)),
            };
            rows.push(vec![
                format!("`{}`", m.scenario.endpoint.label()),
                target_label(m.scenario.target),
                thousands(m.median_rps()),
                rounds.join(" "),
                format!("{:.2} ms", m.median_p50_ms()),
                format!("{:.2} ms", m.median_p99_ms()),
                ratio,
                m.errors().to_string(),
            ]);
        }
        table(&rows, &[false, false, true, false, true, true, true, true])
    }

    /// CPU per login of each store, from the `/login` runs: where a login's time goes.
    fn login_cpu_table(&self) -> String {
        let memory = self
            .find(Target::Server(Store::Memory), Endpoint::Login)
            .and_then(Measured::median_cpu);
        let mut rows = vec![vec![
            "Store".to_owned(),
            "server".to_owned(),
            "redis-server".to_owned(),
            "both".to_owned(),
            "÷ memory's".to_owned(),
            "server's CPU in use".to_owned(),
        ]];
        for store in Store::ALL {
            let Some(cpu) = self
                .find(Target::Server(store), Endpoint::Login)
                .and_then(Measured::median_cpu)
            else {
                continue;
            };
            let us = |v: f64| format!("{v:.0} µs");
            rows.push(vec![
                store.label().to_owned(),
                us(cpu.server_us),
                cpu.redis_us.map_or_else(String::new, us),
                us(cpu.total_us()),
                memory.map_or_else(String::new, |m| {
                    times(stats::ratio(cpu.total_us(), m.total_us()))
                }),
                format!("{:.0} %", cpu.server_busy * 100.0),
            ]);
        }
        table(&rows, &[false, true, true, true, true, true])
    }

    /// What the CPU table says about the `/login` ratios.
    fn login_cpu_paragraph(&self) -> String {
        format!(
            "CPU time per successful login during the `/login` runs (medians of the rounds), \
             from `/proc/PID/stat`: the server's every thread (on SQLite, the writer \
             included) and, on Redis, `redis-server`'s own; and how much of its CPU the \
             server used over the run, where 100 % is one CPU busy throughout. {} A store's \
             `/login` rate is what is left of the same core: where its login costs more CPU, \
             or waits on a disk with the core idle, its rate falls by as much.",
            self.settings.redis_cpus
        )
    }

    fn memory_table(&self) -> String {
        let (sq, rd) = (&self.sqlite, &self.redis);
        let rows = vec![
            vec![
                "Store".to_owned(),
                "Sessions".to_owned(),
                "Total".to_owned(),
                "Per session".to_owned(),
            ],
            vec![
                "SQLite, the file on disk".to_owned(),
                thousands(sq.sessions as f64),
                bytes(sq.file_bytes as f64),
                format!("{:.0} B", sq.bytes_per_session()),
            ],
            vec![
                "Redis, `used_memory`".to_owned(),
                thousands(rd.sessions as f64),
                bytes(rd.used_after.saturating_sub(rd.used_before) as f64),
                format!("{:.0} B", rd.bytes_per_session()),
            ],
        ];
        table(&rows, &[false, true, true, true])
    }

    /// The report's body, below latest.md's list of machine details.
    fn body(&self) -> String {
        let level = "##";
        let mut out = String::new();
        let sqlite_vs_express = stats::ratio(
            self.rps(Target::Server(Store::Sqlite), Endpoint::CheckLogin),
            self.rps(Target::Express, Endpoint::CheckLogin),
        );
        let _ = writeln!(out, "{level} Throughput and latency\n");
        let _ = writeln!(out, "{}\n", self.method());
        let _ = writeln!(out, "{}", self.throughput_table());
        let _ = writeln!(
            out,
            "`/checklogin` on SQLite ÷ the express baseline: **{}**. `/checklogin` sends a live \
             token as `Authorization: Bearer` to every target; `/login` has no baseline. \
             req/s counts successful answers only. Every server runs with `MAX_CLAIMS={}`: \
             each code stays claimed for its replay window, and the default cap would refuse \
             some of the memory store's logins, which would then not count.\n",
            times(sqlite_vs_express),
            crate::throughput::MAX_CLAIMS
        );
        let _ = writeln!(out, "{}\n", self.noise());
        let _ = writeln!(out, "![Requests per second](latest.svg)\n");
        let _ = writeln!(out, "{level} CPU per login\n");
        let _ = writeln!(out, "{}", self.login_cpu_table());
        let _ = writeln!(out, "{}\n", self.login_cpu_paragraph());
        let _ = writeln!(
            out,
            "{level} Acceptance ratios\n\n```text\n{}\n```\n",
            self.checks()
                .iter()
                .map(Check::line)
                .collect::<Vec<_>>()
                .join("\n")
        );
        if !self.scale.is_empty() {
            let _ = writeln!(out, "{level} `/checklogin` as the store grows\n");
            let _ = writeln!(out, "{}", self.scale_section());
        }
        if let Some(streams) = &self.streams {
            let _ = writeln!(out, "{level} Open web-login streams\n");
            let _ = writeln!(out, "{}", streams_section(streams));
        }
        let sq = &self.sqlite;
        let _ = writeln!(out, "{level} Memory per stored session\n");
        let _ = writeln!(out, "{}", self.memory_table());
        let _ = writeln!(
            out,
            "SQLite: {} sessions written through `SqliteStore::insert_many`, in random key \
             order as logins come ({:.0} s), then checkpointed; the server with that file \
             open has {} resident before any request and {} (peak {}) after serving \
             `/checklogin` from it for {} s ({} req/s). Redis: `used_memory` before and after \
             {} sessions written through `RedisStore::insert`, each of an account of its own, \
             so each with the account's session list (the most the list costs a session). \
             Sessions only: the per-user record and the account a login also writes are not \
             counted.\n",
            thousands(sq.sessions as f64),
            sq.fill_seconds,
            bytes(sq.idle_rss_kib as f64 * 1024.0),
            bytes(sq.serving_rss_kib as f64 * 1024.0),
            bytes(sq.serving_peak_kib as f64 * 1024.0),
            self.settings.duration.as_secs(),
            thousands(sq.served.per_second()),
            thousands(self.redis.sessions as f64),
        );
        if let Some(accounts) = &self.accounts {
            let _ = writeln!(out, "{level} Memory per account\n");
            let _ = writeln!(out, "{}", accounts_section(accounts));
        }
        let w = &self.wasm;
        let _ = writeln!(out, "{level} The shipped WASM module\n");
        let rows = vec![
            vec![
                "after wasm-opt".to_owned(),
                "gzip -9".to_owned(),
                "brotli (shipped)".to_owned(),
            ],
            vec![
                format!("{} B ({})", thousands(w.raw as f64), bytes(w.raw as f64)),
                format!("{} B ({})", thousands(w.gzip as f64), bytes(w.gzip as f64)),
                format!(
                    "{} B ({})",
                    thousands(w.brotli as f64),
                    bytes(w.brotli as f64)
                ),
            ],
        ];
        let _ = writeln!(out, "{}", table(&rows, &[true, true, true]));
        let l = &self.launch;
        let _ = writeln!(out, "{level} Launch to a usable token\n");
        let _ = writeln!(
            out,
            "The real `app.js` and WASM module in the strict mini-program runtime of the tests \
             (Node), against the release server on loopback; median of {} launches each, every \
             launch a fresh runtime that loads and compiles the module again.\n",
            l.cold_ms.len()
        );
        let rows = vec![
            vec![
                "No stored token (wx.login + POST /login)".to_owned(),
                "Stored token, usable".to_owned(),
                "Stored token, confirmed by /checklogin".to_owned(),
            ],
            vec![
                format!("{:.1} ms", l.cold()),
                format!("{:.1} ms", l.warm_ready()),
                format!("{:.1} ms", l.warm_verified()),
            ],
        ];
        let _ = writeln!(out, "{}", table(&rows, &[true, true, true]));
        out
    }

    /// `bench/results/latest.md`.
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut out = String::from(
            "# Benchmark results\n\nWritten by `cargo xtask bench`; run it again to replace \
             this file and the chart beside it.\n\n",
        );
        let _ = writeln!(out, "- Date: {}", m.date);
        let _ = writeln!(out, "- Commit: {}", m.commit);
        let _ = writeln!(out, "- CPU: {} ({} cores)", m.cpu, m.cores);
        let _ = writeln!(out, "- Memory: {}", m.memory);
        let _ = writeln!(out, "- Kernel: {}", m.kernel);
        for (name, version) in &m.versions {
            let _ = writeln!(out, "- {name}: {version}");
        }
        let _ = writeln!(
            out,
            "- Bench run time: {:.0} s (measuring only)\n",
            self.elapsed.as_secs_f64()
        );
        out.push_str(&self.body());
        out
    }

    /// `bench/results/latest.svg`: req/s of every scenario, grouped by endpoint.
    pub fn chart(&self) -> String {
        let base = self.baseline_rps();
        let bars: Vec<svg::Bar> = self
            .measured
            .iter()
            .map(|m| {
                let group = match m.scenario.endpoint {
                    Endpoint::Login => "POST /login (against the WeChat simulator)".to_owned(),
                    e => e.label().to_owned(),
                };
                let note = match m.scenario.endpoint {
                    Endpoint::Login => String::new(),
                    _ => format!("({} baseline)", times(stats::ratio(m.median_rps(), base))),
                };
                let rates = m.samples.iter().map(Sample::per_second);
                let range = rates.clone().reduce(f64::min).zip(rates.reduce(f64::max));
                svg::Bar {
                    group,
                    label: m.scenario.target.label().to_owned(),
                    value: m.median_rps(),
                    range,
                    note,
                    color: color(m.scenario.target),
                }
            })
            .collect();
        let s = &self.settings;
        svg::bar_chart(
            "Requests per second (bar: median of the rounds, whisker: slowest to fastest round)",
            &format!(
                "wrk, 1 thread, {} connections ({} for /login), {} s × {} rounds, loopback · {} · {}",
                s.connections,
                s.login_connections,
                s.duration.as_secs(),
                s.rounds,
                self.machine.cpu,
                self.machine.date
            ),
            &bars,
        )
    }

    /// What the terminal shows at the end.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}\n", self.machine.summary());
        let _ = writeln!(out, "{}", self.throughput_table());
        let _ = writeln!(out, "{}", self.login_cpu_table());
        for check in self.checks() {
            let _ = writeln!(out, "{}", check.line());
        }
        let _ = writeln!(out, "\n{}", self.memory_table());
        let _ = writeln!(
            out,
            "server RSS with {} SQLite sessions open: {} idle, {} serving (peak {})",
            thousands(self.sqlite.sessions as f64),
            bytes(self.sqlite.idle_rss_kib as f64 * 1024.0),
            bytes(self.sqlite.serving_rss_kib as f64 * 1024.0),
            bytes(self.sqlite.serving_peak_kib as f64 * 1024.0)
        );
        if let Some([sqlite, redis]) = &self.accounts {
            let _ = writeln!(
                out,
                "at {} accounts: SQLite {:.0} B per account, {:.0} B per session; Redis {:.0} B \
                 per account, {:.0} B per session",
                thousands(sqlite.accounts as f64),
                sqlite.per_account(),
                sqlite.per_session(),
                redis.per_account(),
                redis.per_session(),
            );
        }
        if let Some(s) = &self.streams {
            let _ = writeln!(
                out,
                "{} web-login streams open: {} per stream with its ticket ({} alone); \
                 /checklogin beside them {} req/s, {} of {} req/s without",
                thousands(s.streams as f64),
                bytes(s.bytes_per_stream()),
                bytes(s.bytes_per_stream_alone()),
                thousands(s.beside.per_second()),
                times(stats::ratio(s.beside.per_second(), s.alone.per_second())),
                thousands(s.alone.per_second()),
            );
        }
        let _ = writeln!(
            out,
            "wasm: {} raw, {} gzip, {} brotli (shipped)",
            bytes(self.wasm.raw as f64),
            bytes(self.wasm.gzip as f64),
            bytes(self.wasm.brotli as f64)
        );
        let _ = writeln!(
            out,
            "launch to a usable token: {:.1} ms without a stored token, {:.1} ms with one \
             ({:.1} ms until confirmed)",
            self.launch.cold(),
            self.launch.warm_ready(),
            self.launch.warm_verified()
        );
        out
    }
}

/// The target as the table names it.
/// Per account and per session, on both stores.
fn accounts_section(stores: &[AccountsFootprint; 2]) -> String {
    let mut rows = vec![vec![
        "Store".to_owned(),
        "Accounts".to_owned(),
        "Per account".to_owned(),
        "Per session".to_owned(),
        "Outbox (apart)".to_owned(),
        "Filled in".to_owned(),
    ]];
    for (label, f) in ["SQLite, the file's B-trees", "Redis, `used_memory`"]
        .iter()
        .zip(stores)
    {
        rows.push(vec![
            (*label).to_owned(),
            thousands(f.accounts as f64),
            format!("{:.0} B", f.per_account()),
            format!("{:.0} B", f.per_session()),
            bytes(f.outbox_bytes as f64),
            format!("{:.0} s", f.fill_seconds),
        ]);
    }
    format!(
        "{}\nEach person is made as a first login makes them, through the store's own code, \
         with an openid and a unionid (two identities): on SQLite the login's one write \
         (`LoginWrites::resolve_and_start`), on Redis `AccountStore::resolve`, \
         `UserStore::add_session_key`, then `SessionStore::insert` under the account. Per \
         account: the account, its identities and the key history; per session: the session \
         with its indexes. SQLite's figures are the `dbstat` sizes of those B-trees after a \
         checkpoint; Redis's are `used_memory` read after the accounts and again after the \
         sessions. Each login also queues an `account.created` event: the outbox is capped \
         and drains as webhooks go out, so it is shown apart.\n",
        table(&rows, &[false, true, true, true, true, true]),
    )
}

/// The streams' table and how they were made.
fn streams_section(s: &SseStreams) -> String {
    let kib = |k: u64| bytes(k as f64 * 1024.0);
    let rows = vec![
        vec![
            "Server state".to_owned(),
            "Resident".to_owned(),
            "`/checklogin` req/s".to_owned(),
            "p50".to_owned(),
            "p99".to_owned(),
        ],
        vec![
            "no ticket".to_owned(),
            kib(s.idle_rss_kib),
            thousands(s.alone.per_second()),
            format!("{:.2} ms", s.alone.p50_ms),
            format!("{:.2} ms", s.alone.p99_ms),
        ],
        vec![
            format!("{} tickets, no stream", thousands(s.streams as f64)),
            kib(s.tickets_rss_kib),
            String::new(),
            String::new(),
            String::new(),
        ],
        vec![
            format!("{} streams open", thousands(s.streams as f64)),
            kib(s.streams_rss_kib),
            thousands(s.beside.per_second()),
            format!("{:.2} ms", s.beside.p50_ms),
            format!("{:.2} ms", s.beside.p99_ms),
        ],
    ];
    format!(
        "{}\nPer open stream: **{}** resident with its ticket, {} for the connection and \
         stream alone. `/checklogin` beside the open streams: {} of its rate without them; \
         {} of {} streams still open after that run, {} resident. One release server on a \
         SQLite store; each ticket made by `POST /web-login` with a desktop browser's \
         User-Agent, each stream a connection of its own (`GET /web-login/{{id}}/events` with \
         the ticket's cookie) read up to its first `pending` event. Raised for the run, as a \
         site expecting this crowd would: {}.\n",
        table(&rows, &[false, true, true, true, true]),
        bytes(s.bytes_per_stream()),
        bytes(s.bytes_per_stream_alone()),
        times(stats::ratio(s.beside.per_second(), s.alone.per_second())),
        thousands(s.still_open as f64),
        thousands(s.streams as f64),
        kib(s.after_load_rss_kib),
        s.raised
            .iter()
            .map(|r| format!("`{r}`"))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

fn target_label(target: Target) -> String {
    match target {
        Target::Baseline => "axum baseline (static JSON: the limit)".into(),
        Target::Express => "express baseline (Node)".into(),
        Target::Server(store) => format!("server, {} store", store.label()),
    }
}

fn color(target: Target) -> &'static str {
    match target {
        Target::Baseline => "#8c8c8c",
        Target::Express => "#e8a33d",
        Target::Server(Store::Memory) => "#4e79a7",
        Target::Server(Store::Sqlite) => "#59a14f",
        Target::Server(Store::Redis) => "#e15759",
    }
}

/// A Markdown table with padded columns, so it reads as well in a terminal as rendered.
/// `right[i]`: column `i` is right-aligned (numbers).
pub fn table(rows: &[Vec<String>], right: &[bool]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
                .max(3)
        })
        .collect();
    let line = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
    let pad = |text: &str, c: usize| {
        let fill = " ".repeat(widths[c] - text.chars().count());
        if right.get(c).copied().unwrap_or(false) {
            format!("{fill}{text}")
        } else {
            format!("{text}{fill}")
        }
    };
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        out += &line((0..columns).map(|c| pad(&row[c], c)).collect());
        if i == 0 {
            out += &line(
                (0..columns)
                    .map(|c| {
                        let dashes = "-".repeat(widths[c] - 1);
                        if right.get(c).copied().unwrap_or(false) {
                            format!("{dashes}:")
                        } else {
                            format!("{dashes}-")
                        }
                    })
                    .collect(),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_pads_its_columns_and_aligns_numbers_right() {
        let rows = vec![
            vec!["name".to_owned(), "req/s".to_owned()],
            vec!["SQLite".to_owned(), "1,234".to_owned()],
        ];
        assert_eq!(
            table(&rows, &[false, true]),
            "| name   | req/s |\n| ------ | ----: |\n| SQLite | 1,234 |\n"
        );
    }

    #[test]
    fn a_check_passes_at_its_threshold_and_fails_below_or_unmeasured() {
        let check = |measured| Check::at_least("x", measured, 0.6);
        assert!(check(0.6).holds());
        assert_eq!(check(0.61).line(), "PASS x: 0.61× (wanted ≥ 0.60×)");
        assert!(!check(0.59).holds());
        assert!(!check(f64::NAN).holds(), "no measurement is no pass");
        let size = |measured| Check {
            what: "y".into(),
            measured,
            wanted: 16384.0,
            bound: Bound::AtMostBytes,
        };
        assert!(size(16384.0).holds());
        assert_eq!(size(2048.0).line(), "PASS y: 2.0 KiB (wanted ≤ 16.0 KiB)");
        assert!(!size(16385.0).holds());
        assert!(!size(f64::NAN).holds(), "no measurement is no pass");
    }
}
