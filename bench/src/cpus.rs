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
//! Redis is a program of its own in every deployment, on a host or at least a core of its
//! own. With three CPUs or more it gets the last one alone, so that the Redis store's server
//! has the same cores as the others' and Redis's work per login is not taken from them. With
//! two, there is no core to spare: Redis shares the servers' CPU, and the report says so.
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
    /// The servers' CPUs again when there are only two.
    redis: Vec<usize>,
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
                .map(
                    |Cpus {
                         load,
                         targets,
                         redis,
                     }|
                     -> Result<Split> {
                        Ok(Split {
                            taskset: find_program("taskset").ok_or(
                                "taskset is not on PATH: install util-linux (apt-get install \
                             util-linux)",
                            )?,
                            load,
                            targets,
                            redis,
                        })
                    },
                )
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

    /// `redis-server`, to run on Redis's CPU.
    pub fn redis(&self) -> Command {
        self.command("redis-server".as_ref(), |s| &s.redis)
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
            Some(split) if split.redis == split.targets => format!(
                "wrk pinned to CPU {}, every measured program (servers, baselines, Redis) to \
                 CPU {}, so that no target competes with the load generator for a core",
                list(&split.load),
                list(&split.targets)
            ),
            Some(split) => format!(
                "wrk pinned to CPU {}, the servers and baselines to CPU {}, Redis to CPU {}, \
                 so that no target competes with the load generator or with Redis for a core",
                list(&split.load),
                list(&split.targets),
                list(&split.redis)
            ),
            None => "one CPU, shared by wrk and the measured program".to_owned(),
        }
    }

    /// Where Redis ran, for the paragraph on CPU per login.
    pub fn describe_redis(&self) -> String {
        match &self.split {
            Some(split) if split.redis == split.targets => format!(
                "Redis ran on the servers' CPU ({}), there being no third CPU to give it: its \
                 work per login came out of the core the Redis store's server had, as the \
                 SQLite writer's does.",
                list(&split.redis)
            ),
            Some(split) => format!(
                "Redis ran on a CPU of its own ({}), as it would on a host of its own.",
                list(&split.redis)
            ),
            None => "Redis, the server and wrk shared the one CPU.".to_owned(),
        }
    }
}

/// Which CPUs do what.
#[derive(Debug, PartialEq)]
struct Cpus {
    load: Vec<usize>,
    targets: Vec<usize>,
    redis: Vec<usize>,
}

/// The first CPU for the load, the last for Redis when there are three or more, the rest for
/// the targets; `None` when there is just one.
fn plan(mut cpus: Vec<usize>) -> Option<Cpus> {
    cpus.sort_unstable();
    cpus.dedup();
    if cpus.len() < 2 {
        return None;
    }
    let mut targets = cpus.split_off(1);
    let redis = if targets.len() >= 2 {
        targets.split_off(targets.len() - 1)
    } else {
        targets.clone()
    };
    Some(Cpus {
        load: cpus,
        targets,
        redis,
    })
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
    fn the_load_gets_the_first_cpu_redis_the_last_of_three_and_the_targets_the_rest() {
        let cpus = |load: &[usize], targets: &[usize], redis: &[usize]| {
            Some(Cpus {
                load: load.to_vec(),
                targets: targets.to_vec(),
                redis: redis.to_vec(),
            })
        };
        // Two: Redis shares the targets' CPU.
        assert_eq!(plan(vec![0, 1]), cpus(&[0], &[1], &[1]));
        assert_eq!(plan(vec![3, 1, 2]), cpus(&[1], &[2], &[3]));
        assert_eq!(plan(vec![0, 1, 2, 3]), cpus(&[0], &[1, 2], &[3]));
        assert_eq!(plan(vec![4]), None);
        assert_eq!(plan(vec![4, 4]), None);
    }
}
