//! CPU time a measured process spends during a run, per request served.
//!
//! A rate says how many logins a core gave; it does not say where that core went. A login on
//! Redis costs the server its share and Redis its own, and on a machine where both run on the
//! same core each takes from the other. The CPU time each process used during the run, divided
//! by the logins it served, separates the two, and shows what a login costs wherever Redis
//! runs.
//!
//! Read from `/proc/PID/stat` (user and system time of every thread the process has had,
//! exited ones included), in clock ticks (`getconf CLK_TCK`, 100 on Linux): a 4-second run
//! of a busy process is some hundreds of ticks, so the figure is good to about 1 %.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use crate::Result;

/// How many clock ticks make a second, as `/proc` counts them.
#[derive(Debug, Clone, Copy)]
pub struct Ticks {
    per_second: u64,
}

impl Ticks {
    pub fn detect() -> Result<Self> {
        let out = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .map_err(|e| format!("cannot run getconf (libc-bin): {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let per_second = text
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|&t| t > 0)
            .ok_or_else(|| format!("getconf CLK_TCK answered {:?}", text.trim()))?;
        Ok(Self { per_second })
    }

    /// The CPU time process `pid` has used so far.
    pub fn used(self, pid: u32) -> Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_err(|e| format!("cannot read /proc/{pid}/stat: {e}"))?;
        let ticks = user_and_system(&stat)
            .ok_or_else(|| format!("cannot read the CPU times in /proc/{pid}/stat"))?;
        Ok(Duration::from_secs_f64(
            ticks as f64 / self.per_second as f64,
        ))
    }
}

/// `utime + stime` of a `/proc/PID/stat` line. The command name (field 2) is in parentheses
/// and may hold spaces, so fields are counted from its closing parenthesis: `utime` and
/// `stime` are the 12th and 13th after it.
fn user_and_system(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let user = fields.next()?.parse::<u64>().ok()?;
    let system = fields.next()?.parse::<u64>().ok()?;
    Some(user + system)
}

/// CPU per login of one `/login` run, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerLogin {
    /// The login server, every thread (the SQLite writer's included).
    pub server_us: f64,
    /// `redis-server`, for the Redis store; `None` for the others.
    pub redis_us: Option<f64>,
    /// The share of a CPU the server used over the run: near 1, the run was bound by the
    /// server's CPU; well under it, the server waited (on a disk, say) with nothing to do.
    pub server_busy: f64,
}

impl PerLogin {
    pub fn total_us(&self) -> f64 {
        self.server_us + self.redis_us.unwrap_or(0.0)
    }
}

/// Reads the CPU time of the server (and Redis, when given) before a run and again after it.
#[derive(Debug)]
pub struct Meter {
    ticks: Ticks,
    started: Instant,
    server: (u32, Duration),
    redis: Option<(u32, Duration)>,
}

impl Meter {
    pub fn start(ticks: Ticks, server: u32, redis: Option<u32>) -> Result<Self> {
        Ok(Self {
            ticks,
            started: Instant::now(),
            server: (server, ticks.used(server)?),
            redis: match redis {
                Some(pid) => Some((pid, ticks.used(pid)?)),
                None => None,
            },
        })
    }

    /// The CPU used since [`Meter::start`], per one of `logins`.
    pub fn per_login(&self, logins: u64) -> Result<PerLogin> {
        if logins == 0 {
            return Err("no login succeeded in the run: there is no CPU per login".into());
        }
        let wall = self.started.elapsed();
        let spent = |(pid, before): (u32, Duration)| -> Result<Duration> {
            Ok(self.ticks.used(pid)?.saturating_sub(before))
        };
        let per = |cpu: Duration| cpu.as_secs_f64() * 1e6 / logins as f64;
        let server = spent(self.server)?;
        Ok(PerLogin {
            server_us: per(server),
            redis_us: self.redis.map(spent).transpose()?.map(per),
            server_busy: share(server, wall),
        })
    }
}

/// `cpu` as a share of `wall`: 1 is one CPU busy throughout.
fn share(cpu: Duration, wall: Duration) -> f64 {
    if wall.is_zero() {
        return 0.0;
    }
    cpu.as_secs_f64() / wall.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_user_and_system_time_past_a_name_with_spaces_and_parentheses() {
        // Fields after the name: state ppid pgrp session tty tpgid flags minflt cminflt
        // majflt cmajflt utime stime ...
        let stat = "4242 (tokio (rt) worker) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 37 0 0 20";
        assert_eq!(user_and_system(stat), Some(287));
        assert_eq!(user_and_system("4242 (x) S 1 2"), None);
        assert_eq!(user_and_system("no parenthesis at all"), None);
    }

    #[test]
    fn this_process_uses_cpu_that_the_meter_sees() {
        let ticks = Ticks::detect().unwrap();
        let me = std::process::id();
        let meter = Meter::start(ticks, me, Some(me)).unwrap();
        // Spin until the kernel has counted at least two ticks of this thread.
        let start = ticks.used(me).unwrap();
        let mut x = 0u64;
        while ticks.used(me).unwrap() < start + Duration::from_millis(20) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let per = meter.per_login(10).unwrap();
        // At least 20 ms over 10 logins: 2,000 µs each, for the server and "Redis" alike.
        assert!(per.server_us >= 2_000.0, "{per:?}");
        assert_eq!(per.redis_us.map(|r| r >= 2_000.0), Some(true), "{per:?}");
        assert!(per.total_us() >= 4_000.0, "{per:?}");
        assert!(per.server_busy > 0.0, "{per:?}");
        assert!(meter.per_login(0).is_err());
    }

    #[test]
    fn a_share_is_cpu_time_over_wall_time() {
        let ms = Duration::from_millis;
        assert_eq!(share(ms(930), ms(1_000)), 0.93);
        assert_eq!(share(ms(3_000), ms(2_000)), 1.5, "threads on two CPUs");
        assert_eq!(share(ms(5), Duration::ZERO), 0.0);
    }
}
