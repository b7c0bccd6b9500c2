//! What the figures were measured on: they mean little without the CPU, its cores, the kernel
//! and the versions of the programs on both ends of the load.

use std::process::Command;

#[derive(Debug, Clone)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory: String,
    pub kernel: String,
    /// UTC, `YYYY-MM-DD HH:MM`.
    pub date: String,
    /// `git describe`-like: the commit measured, with `-dirty` for uncommitted changes.
    pub commit: String,
    /// (program, version) of rustc, wrk, node, redis-server.
    pub versions: Vec<(&'static str, String)>,
}

impl Machine {
    pub fn read(wrk_version: String) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("unknown CPU".to_owned(), |(_, m)| m.trim().to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or("unknown".to_owned(), |kib| {
                format!("{:.0} GiB", kib / 1024.0 / 1024.0)
            });
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or("unknown".to_owned(), |k| format!("Linux {}", k.trim()));
        let dirty = command(&["git", "status", "--porcelain", "--untracked-files=no"])
            .is_some_and(|s| !s.trim().is_empty());
        let commit = command(&["git", "rev-parse", "--short", "HEAD"]).map_or_else(
            || "unknown".to_owned(),
            |c| format!("{}{}", c.trim(), if dirty { "-dirty" } else { "" }),
        );
        let first_line = |args: &[&str]| {
            command(args).map_or("not found".to_owned(), |v| {
                v.lines().next().unwrap_or("").trim().to_owned()
            })
        };
        let redis = first_line(&["redis-server", "--version"]);
        // "Redis server v=7.0.15 sha=… malloc=jemalloc-5.3.0 bits=64 build=…": the version.
        let redis = redis
            .split_whitespace()
            .find_map(|w| w.strip_prefix("v="))
            .map_or(redis.clone(), str::to_owned);
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory,
            kernel,
            date: command(&["date", "-u", "+%Y-%m-%d %H:%M UTC"])
                .map_or("unknown".to_owned(), |d| d.trim().to_owned()),
            commit,
            versions: vec![
                ("rustc", first_line(&["rustc", "--version"])),
                ("wrk", wrk_version),
                ("node", first_line(&["node", "--version"])),
                ("redis-server", redis),
            ],
        }
    }

    /// One line: `AMD EPYC, 2 cores, 24 GiB, Linux 6.1; rustc 1.95.0, wrk 4.1.0, …`.
    pub fn summary(&self) -> String {
        let versions: Vec<String> = self
            .versions
            .iter()
            .map(|(name, v)| {
                if v.starts_with(name) {
                    v.clone()
                } else {
                    format!("{name} {v}")
                }
            })
            .collect();
        format!(
            "{}, {} cores, {} RAM, {}; {}",
            self.cpu,
            self.cores,
            self.memory,
            self.kernel,
            versions.join(", ")
        )
    }
}

fn command(args: &[&str]) -> Option<String> {
    let out = Command::new(args[0]).args(&args[1..]).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}
