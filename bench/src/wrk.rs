//! The load generator: wrk, one thread and a fixed number of keep-alive connections, for a
//! fixed time, against one loopback URL.
//!
//! wrk rather than a Rust client: it is written in C around one epoll loop and needs far less
//! CPU per request than the server it loads, so on a 2-core machine the server, not the
//! client, is what runs out (the bench's earlier reqwest client was slower than the server it
//! measured). One thread leaves the other core to the server. Results come from a Lua `done`
//! hook as one JSON line (`wrk/report.lua`) rather than from wrk's text.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use serde::Deserialize;

use crate::{Result, cpus::CpuPlan};

const REPORT_LUA: &str = include_str!("../wrk/report.lua");
const LOGIN_LUA: &str = include_str!("../wrk/login.lua");
const TOKENS_LUA: &str = include_str!("../wrk/tokens.lua");

/// One wrk run's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub requests: u64,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Non-2xx/3xx answers.
    pub status_errors: u64,
    /// Connect, read and write errors and timeouts.
    pub socket_errors: u64,
    /// Requests the login script wrote (`None` for GET runs).
    pub sent: Option<u64>,
}

impl Sample {
    /// Successful answers per second: a fast refusal is not a login (or a check) served.
    pub fn per_second(&self) -> f64 {
        self.requests.saturating_sub(self.status_errors) as f64 / self.seconds
    }

    pub fn errors(&self) -> u64 {
        self.status_errors + self.socket_errors
    }
}

/// What `wrk/report.lua` prints.
#[derive(Debug, Deserialize)]
struct Report {
    requests: u64,
    duration_us: u64,
    connect: u64,
    read: u64,
    write: u64,
    status: u64,
    timeout: u64,
    p50_us: u64,
    p99_us: u64,
    sent: i64,
}

/// wrk with the bench's scripts written out and its settings fixed.
#[derive(Debug)]
pub struct Wrk {
    report_script: PathBuf,
    login_script: PathBuf,
    tokens_script: PathBuf,
    pub connections: u32,
    /// For `/login` runs, which need more requests in flight to keep a durable store busy.
    pub login_connections: u32,
    cpus: CpuPlan,
}

impl Wrk {
    /// Writes the scripts into `dir`.
    pub fn new(
        dir: &Path,
        connections: u32,
        login_connections: u32,
        cpus: &CpuPlan,
    ) -> Result<Self> {
        let report_script = dir.join("report.lua");
        let login_script = dir.join("login.lua");
        let tokens_script = dir.join("tokens.lua");
        std::fs::write(&report_script, REPORT_LUA)?;
        std::fs::write(&login_script, format!("{LOGIN_LUA}\n{REPORT_LUA}"))?;
        std::fs::write(&tokens_script, format!("{TOKENS_LUA}\n{REPORT_LUA}"))?;
        Ok(Self {
            report_script,
            login_script,
            tokens_script,
            connections,
            login_connections,
            cpus: cpus.clone(),
        })
    }

    /// `GET url` for `duration`, with `Authorization: Bearer <token>` when given: the same
    /// request every time, so wrk sends it from a buffer without calling Lua.
    pub fn get(&self, url: &str, bearer: Option<&str>, duration: Duration) -> Result<Sample> {
        let mut cmd = self.command(&self.report_script, self.connections, duration);
        if let Some(token) = bearer {
            cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
        }
        run(cmd.arg(url))
    }

    /// `POST /login` at `base`, each request with the next code of `codes` (one per line).
    pub fn login(&self, base: &str, codes: &Path, duration: Duration) -> Result<Sample> {
        let mut cmd = self.command(&self.login_script, self.login_connections, duration);
        cmd.arg(format!("{base}/login")).arg("--").arg(codes);
        run(&mut cmd)
    }

    /// `GET /checklogin` at `base`, each request with a token picked at random from `tokens`
    /// (one per line).
    pub fn checklogin_spread(
        &self,
        base: &str,
        tokens: &Path,
        duration: Duration,
    ) -> Result<Sample> {
        let mut cmd = self.command(&self.tokens_script, self.connections, duration);
        cmd.arg(format!("{base}/checklogin")).arg("--").arg(tokens);
        run(&mut cmd)
    }

    fn command(&self, script: &Path, connections: u32, duration: Duration) -> Command {
        let mut cmd = self.cpus.load("wrk");
        cmd.args(["--threads", "1"])
            .args(["--connections", &connections.to_string()])
            .args(["--duration", &format!("{}s", duration.as_secs().max(1))])
            .args(["--timeout", "5s"])
            .arg("--script")
            .arg(script);
        cmd
    }
}

fn run(cmd: &mut Command) -> Result<Sample> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run wrk ({shown}): {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{shown} exited with {}: {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    parse(&stdout).ok_or_else(|| format!("no BENCH line in wrk's output:\n{stdout}").into())
}

/// The figures in wrk's output, from the line `report.lua` writes.
fn parse(stdout: &str) -> Option<Sample> {
    let json = stdout.lines().find_map(|l| l.strip_prefix("BENCH "))?;
    let r: Report = serde_json::from_str(json).ok()?;
    Some(Sample {
        requests: r.requests,
        seconds: r.duration_us as f64 / 1e6,
        p50_ms: r.p50_us as f64 / 1e3,
        p99_ms: r.p99_us as f64 / 1e3,
        status_errors: r.status,
        socket_errors: r.connect + r.read + r.write + r.timeout,
        sent: u64::try_from(r.sent).ok(),
    })
}

/// `wrk --version`'s first words (`wrk debian/4.1.0-3+b2`).
pub fn version() -> String {
    // wrk prints its version and then its usage, and exits 1.
    Command::new("wrk")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.split(" [").next().unwrap_or(l).trim().to_owned())
        })
        .unwrap_or_else(|| "wrk (version unknown)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_report_line_among_wrks_text() {
        let out = "Running 4s test @ http://127.0.0.1:1/healthz\n  1 threads and 32 connections\n\
                   BENCH {\"requests\":80000,\"duration_us\":4000000,\"connect\":0,\"read\":1,\
                   \"write\":0,\"status\":2,\"timeout\":0,\"p50_us\":350,\"p99_us\":1250,\
                   \"sent\":-1}\n";
        let s = parse(out).unwrap();
        // 80,000 answers, 2 of them refusals: successes per second.
        assert_eq!(s.per_second(), 19_999.5);
        assert_eq!((s.p50_ms, s.p99_ms), (0.35, 1.25));
        assert_eq!((s.status_errors, s.socket_errors, s.errors()), (2, 1, 3));
        assert_eq!(s.sent, None);
        assert!(parse("Requests/sec: 1000").is_none());
    }
}
