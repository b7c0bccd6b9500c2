//! The processes a bench run owns: login servers, the two baselines and Redis, each on a
//! loopback port, each stopped when its handle drops. Nothing here touches a process the bench
//! did not start.
//!
//! HTTP services bind `127.0.0.1:0` themselves and log `listening addr=…` (the login server,
//! the axum baseline and the express seed all do), so no port is guessed and none can be taken
//! in between. Redis cannot report a port it chose, so it gets one that was free a moment ago.

use std::{
    collections::VecDeque,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use crate::{Result, cpus::CpuPlan};

/// How long a process may take to say where it listens and to answer its health check.
const START_LIMIT: Duration = Duration::from_secs(20);
/// Lines of a process's log kept for the message when it fails.
const LOG_TAIL: usize = 20;

/// An HTTP service the bench started.
#[derive(Debug)]
pub struct Service {
    pub name: String,
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`
    base: String,
    child: Option<Child>,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Service {
    /// Starts `cmd`, waits for its `listening addr=` line, then for `GET ready_path` to answer
    /// 200. Its output is kept (the last lines) for error messages, not shown: the servers run
    /// at `warn`, and a warning under load would only interleave with the table.
    pub fn start(name: &str, mut cmd: Command, ready_path: &str) -> Result<Self> {
        let shown = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {name} ({shown}): {e}"))?;
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (found, bound) = mpsc::channel();
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let tail = log.clone();
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                if let Some(addr) = listening_addr(&line)
                    && let Some(found) = found.take()
                {
                    found.send(addr).ok();
                }
                let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
                if tail.len() == LOG_TAIL {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        });
        let mut service = Self {
            name: name.to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            base: String::new(),
            child: Some(child),
            log,
        };
        service.addr = bound
            .recv_timeout(START_LIMIT)
            .map_err(|_| service.failure("did not say where it listens"))?;
        service.base = format!("http://{}", service.addr);
        let deadline = Instant::now() + START_LIMIT;
        while get_status(service.addr, ready_path) != Some(200) {
            if let Some(child) = service.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(service.failure(&format!("exited with {status}")).into());
            }
            if Instant::now() > deadline {
                return Err(service
                    .failure(&format!("did not answer {ready_path}"))
                    .into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(service)
    }

    /// `http://127.0.0.1:PORT`, to which paths are appended.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The process's resident memory and its peak, in KiB (`VmRSS`, `VmHWM`).
    pub fn memory_kib(&self) -> Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let field = |name: &str| -> Result<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("no {name} in /proc/{}/status", self.pid()).into())
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// Asks the process to stop (SIGTERM, as an operator would, so the SQLite server closes its
    /// file cleanly) and waits for it; kills it after 10 s.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // std can only SIGKILL; `kill` sends the polite signal to this one PID.
        let asked = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        while asked && Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().ok();
        child.wait().ok();
    }

    fn failure(&self, what: &str) -> String {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let tail: Vec<&str> = log.iter().map(String::as_str).collect();
        format!(
            "{} {what}; its last output:\n{}",
            self.name,
            tail.join("\n")
        )
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

/// The address in a `listening … addr=127.0.0.1:PORT …` log line.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    if !line.contains("listening") {
        return None;
    }
    line.split_whitespace()
        .find_map(|word| word.strip_prefix("addr="))
        .and_then(|a| a.parse().ok())
}

/// The status of a `GET path` on a fresh connection, or `None` without an answer: enough for a
/// readiness check, with no HTTP client needed.
fn get_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// A `redis-server` of the bench's own: loopback only, its data in `dir`.
#[derive(Debug)]
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
}

impl Redis {
    /// `durable`: an append-only file synced at every write (`appendfsync always`), the
    /// durability the SQLite store has with `synchronous=FULL`, so their login figures compare
    /// like with like. Without it, nothing is written to disk (for the memory measurement).
    pub fn start(dir: &Path, durable: bool, cpus: &CpuPlan) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        for _ in 0..5 {
            let port = free_port()?;
            let mut cmd = cpus.target("redis-server");
            cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .arg("--dir")
                .arg(dir)
                .args(["--save", "", "--protected-mode", "yes", "--daemonize", "no"]);
            if durable {
                cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
            } else {
                cmd.args(["--appendonly", "no"]);
            }
            let child = cmd
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start redis-server: {e}"))?;
            let mut redis = Self {
                port,
                child: Some(child),
            };
            let deadline = Instant::now() + START_LIMIT;
            while Instant::now() < deadline {
                if redis.pings() {
                    return Ok(redis);
                }
                // The port was taken between our probe and its bind: it exits; try another.
                if let Some(child) = redis.child.as_mut()
                    && let Ok(Some(_)) = child.try_wait()
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Err("redis-server did not come up".into())
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn pings(&self) -> bool {
        redis::Client::open(self.url())
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(1)))
            .and_then(|mut conn| redis::cmd("PING").query::<String>(&mut conn))
            .is_ok()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A fresh empty folder under the system's temp folder, removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("{label}-{}-{nanos:x}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_address_in_the_servers_listening_lines() {
        let server = "2026-01-01T00:00:00Z  INFO server::cli: listening addr=127.0.0.1:41234 \
                      store=memory data_key=ab12";
        assert_eq!(
            listening_addr(server),
            Some("127.0.0.1:41234".parse().unwrap())
        );
        assert_eq!(
            listening_addr("listening addr=127.0.0.1:9"),
            Some("127.0.0.1:9".parse().unwrap())
        );
        assert_eq!(listening_addr("WARN DEV MODE: addr=127.0.0.1:1"), None);
    }
}
