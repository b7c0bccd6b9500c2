//! Which CPUs the load generator gets and which the measured programs get.
//!
//! When wrk and the servers share every core, a server with a worker per core (tokio's default,
//! like most Rust servers) has its workers preempted by wrk and by each other, while a
//! single-threaded server (Node) loses nothing: the figures would measure the scheduler's
//! contention more than the servers. So wrk runs on the first CPU this process may use and
//! every target (the login servers, both baselines, Redis) on the others, each target alone
//! during its runs. Runtimes that size themselves by `available_parallelism` (tokio) see only
//! the targets' CPUs. With a single CPU there is nothing to split, and the report says so.
//!
//! Pinning is `taskset` (util-linux, on every Debian): it sets the affinity and then execs the
//! program, so the process the bench holds is the program itself.

use std::{path::PathBuf, process::Command};

use crate::Result;

#[derive(Debug, Clone)]
pub struct CpuPlan {
    /// `None` on a machine with a single CPU.
    split: Option<Split>,
}

#[derive(Debug, Clone)]
struct Split {
    taskset: PathBuf,
    load: Vec<usize>,
    targets: Vec<usize>,
}

impl CpuPlan {
    /// The CPUs this process may run on, the first for wrk and the rest for the targets.
    pub fn detect() -> Result<Self> {
        let status = std::fs::read_to_string("/proc/self/status")?;
        let allowed = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .ok_or("/proc/self/status has no Cpus_allowed_list")?;
        let cpus = parse_list(allowed.trim())
            .ok_or_else(|| format!("cannot read the CPU list {allowed:?}"))?;
        Ok(Self {
            split: plan(cpus)
                .map(|(load, targets)| -> Result<Split> {
                    Ok(Split {
                    taskset: find_program("taskset").ok_or(
                        "taskset is not on PATH: install util-linux (apt-get install util-linux)",
                    )?,
                    load,
                    targets,
                })
                })
                .transpose()?,
        })
    }

    /// `program`, to run on the load generator's CPUs.
    pub fn load(&self, program: &str) -> Command {
        self.command(program.as_ref(), |s| &s.load)
    }

    /// `program`, to run on the targets' CPUs.
    pub fn target(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        self.command(program.as_ref(), |s| &s.targets)
    }

    fn command(&self, program: &std::ffi::OsStr, cpus: fn(&Split) -> &Vec<usize>) -> Command {
        match &self.split {
            Some(split) => {
                let mut cmd = Command::new(&split.taskset);
                cmd.arg("--cpu-list").arg(list(cpus(split))).arg(program);
                cmd
            }
            None => Command::new(program),
        }
    }

    /// For the report's method paragraph.
    pub fn describe(&self) -> String {
        match &self.split {
            Some(split) => format!(
                "wrk pinned to CPU {}, every measured program (servers, baselines, Redis) to \
                 CPU {}, so that no target competes with the load generator for a core",
                list(&split.load),
                list(&split.targets)
            ),
            None => "one CPU, shared by wrk and the measured program".to_owned(),
        }
    }
}

/// The first CPU for the load, the rest for the targets; `None` when there is just one.
fn plan(mut cpus: Vec<usize>) -> Option<(Vec<usize>, Vec<usize>)> {
    cpus.sort_unstable();
    cpus.dedup();
    if cpus.len() < 2 {
        return None;
    }
    let targets = cpus.split_off(1);
    Some((cpus, targets))
}

/// The kernel's list form: `0-3,6,8-9`.
fn parse_list(text: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in text.split(',') {
        match part.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (first.parse::<usize>().ok()?, last.parse::<usize>().ok()?);
                if first > last {
                    return None;
                }
                cpus.extend(first..=last);
            }
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
}

fn list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// `program`'s path on `PATH`: the targets run with a cleared environment, so `taskset` is
/// found here, once, not through their `PATH`.
fn find_program(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kernels_cpu_lists() {
        assert_eq!(parse_list("0"), Some(vec![0]));
        assert_eq!(parse_list("0-1"), Some(vec![0, 1]));
        assert_eq!(parse_list("0-2,5,7-8"), Some(vec![0, 1, 2, 5, 7, 8]));
        for bad in ["", "a", "3-1", "0-", "1,,2"] {
            assert_eq!(parse_list(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_load_gets_the_first_cpu_and_the_targets_the_rest() {
        assert_eq!(plan(vec![0, 1]), Some((vec![0], vec![1])));
        assert_eq!(plan(vec![3, 1, 2]), Some((vec![1], vec![2, 3])));
        assert_eq!(plan(vec![4]), None);
        assert_eq!(plan(vec![4, 4]), None);
    }
}
