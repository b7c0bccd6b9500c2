//! A program that binds `127.0.0.1:0` itself and logs `listening addr=…` (the login server,
//! the bench's axum baseline and express baseline): started, its address read from its log, its
//! readiness awaited. No port is guessed, so none can be taken in between.

use std::{
    collections::VecDeque,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Condvar, Mutex, mpsc},
    time::{Duration, Instant},
};

use crate::Result;

/// How a [`Service`]'s log is handled.
#[derive(Debug, Clone)]
pub struct Options {
    /// Every line also goes to our stderr: where a failing test or a CI log shows it. The
    /// bench turns it off, as a warning under load would only interleave with its table.
    pub echo: bool,
    /// How many of the latest lines are kept for [`Service::log`] and failure messages;
    /// `None` keeps them all. A long run under load wants a bound.
    pub keep: Option<usize>,
    /// How long the process may take to say where it listens, and again to be ready.
    pub limit: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            echo: true,
            keep: None,
            limit: Duration::from_secs(20),
        }
    }
}

/// A child process listening on a loopback address it chose; killed on drop.
#[derive(Debug)]
pub struct Service {
    name: String,
    addr: SocketAddr,
    /// `http://ADDR`, kept so that callers can borrow it.
    base: String,
    /// `None` once handed out by [`Service::into_child`] or stopped.
    child: Option<Child>,
    log: Arc<LogLines>,
}

impl Service {
    /// Starts `cmd` (its stdin and stdout closed, its stderr a pipe of ours) and waits until
    /// its log says where it listens. `name` is how error messages call it.
    pub fn spawn(name: &str, mut cmd: Command, options: &Options) -> Result<Self> {
        let shown = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {name} ({shown}): {e}"))?;
        let log = Arc::new(LogLines::keeping(options.keep));
        let stderr = child.stderr.take().ok_or("the child has no stderr")?;
        let (found, bound) = mpsc::channel();
        let (lines, echo) = (log.clone(), options.echo);
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                if echo {
                    eprintln!("{line}");
                }
                if let Some(addr) = listening_address(&line)
                    && let Some(found) = found.take()
                {
                    found.send(addr).ok();
                }
                lines.push(line);
            }
        });
        let mut service = Self {
            name: name.to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            base: String::new(),
            child: Some(child),
            log,
        };
        match bound.recv_timeout(options.limit) {
            Ok(addr) => {
                service.addr = addr;
                service.base = format!("http://{addr}");
                Ok(service)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // Its stderr closed: it is exiting, if it has not yet.
                let deadline = Instant::now() + Duration::from_secs(2);
                let mut status = service.exited();
                while status.is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                    status = service.exited();
                }
                let why = status.map_or("closed its stderr".into(), |s| format!("exited with {s}"));
                Err(service.failure(&format!("{why} before saying where it listens")))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Err(service.failure(&format!(
                "did not say where it listens within {:?}",
                options.limit
            ))),
        }
    }

    /// [`Service::spawn`], then waits until `GET ready_path` answers 200.
    pub fn start(name: &str, cmd: Command, ready_path: &str, options: &Options) -> Result<Self> {
        let mut service = Self::spawn(name, cmd, options)?;
        service.wait_ready(ready_path, options.limit)?;
        Ok(service)
    }

    /// A child started elsewhere that listens on `addr` and whose log is not ours to read
    /// (written to a file, say): killed on drop like any other.
    pub fn adopt(name: &str, child: Child, addr: SocketAddr) -> Self {
        Self {
            name: name.to_owned(),
            addr,
            base: format!("http://{addr}"),
            child: Some(child),
            log: Arc::new(LogLines::default()),
        }
    }

    /// Waits until `GET path` answers 200; fails when the process exits or `limit` passes.
    pub fn wait_ready(&mut self, path: &str, limit: Duration) -> Result {
        let deadline = Instant::now() + limit;
        while http_status(self.addr, path) != Some(200) {
            if let Some(status) = self.exited() {
                return Err(self.failure(&format!("exited with {status}")));
            }
            if Instant::now() > deadline {
                return Err(self.failure(&format!("did not answer {path} within {limit:?}")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// How the process ended, if it has.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, to which paths are appended.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Its process id; 0 once the child is no longer held.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The lines the process wrote to stderr (none for an [adopted](Service::adopt) one).
    pub fn log(&self) -> Arc<LogLines> {
        self.log.clone()
    }

    /// The process's resident memory and its peak, in KiB (`VmRSS`, `VmHWM` of Linux's
    /// `/proc/PID/status`).
    pub fn memory_kib(&self) -> Result<(u64, u64)> {
        let file = format!("/proc/{}/status", self.pid());
        let status =
            std::fs::read_to_string(&file).map_err(|e| format!("cannot read {file}: {e}"))?;
        let field = |name: &str| -> Result<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("no {name} in {file}"))
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// Asks the process to stop (SIGTERM, as an operator would, so a server closes its store
    /// cleanly) and waits for it; kills it after 10 s.
    pub fn stop(mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // std can only SIGKILL; `kill` sends the polite signal to this one PID.
        let asked = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stderr(Stdio::null())
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

    /// The process itself, no longer killed on drop: for callers that end it their own way.
    pub fn into_child(mut self) -> Child {
        self.child.take().expect("the child is held until now")
    }

    /// "`name` `what`; its last output: …", for an error message.
    pub fn failure(&self, what: &str) -> String {
        format!(
            "{} {what}; its last output:\n{}",
            self.name,
            self.log.lines().join("\n")
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

/// The lines a child process wrote to stderr, kept as they arrive, so that a caller can wait
/// for the line an action of its causes.
#[derive(Debug, Default)]
pub struct LogLines {
    lines: Mutex<VecDeque<String>>,
    /// At most this many of the latest lines are kept.
    keep: Option<usize>,
    added: Condvar,
}

impl LogLines {
    fn keeping(keep: Option<usize>) -> Self {
        Self {
            keep,
            ..Self::default()
        }
    }

    fn push(&self, line: String) {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if self.keep.is_some_and(|keep| lines.len() >= keep) {
            lines.pop_front();
        }
        lines.push_back(line);
        self.added.notify_all();
    }

    /// Every line kept so far.
    pub fn lines(&self) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().cloned().collect()
    }

    /// The first kept line that satisfies `wanted`, waiting for it up to `limit`.
    pub fn wait_for(&self, limit: Duration, wanted: impl Fn(&str) -> bool) -> Option<String> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let (lines, _) = self
            .added
            .wait_timeout_while(lines, limit, |lines| !lines.iter().any(|l| wanted(l)))
            .unwrap_or_else(|e| e.into_inner());
        lines.iter().find(|l| wanted(l)).cloned()
    }
}

/// The address in a "listening" log line, in either of the server's log formats: `addr=…` in
/// text, `"addr":"…"` in JSON. `None` for any other line.
pub fn listening_address(line: &str) -> Option<SocketAddr> {
    if !line.contains("listening") {
        return None;
    }
    let text = line
        .split_whitespace()
        .find_map(|word| word.strip_prefix("addr="));
    let json = || {
        let (_, after) = line.split_once("\"addr\":")?;
        let quoted = after.trim_start().strip_prefix('"')?;
        quoted.split_once('"').map(|(addr, _)| addr)
    };
    text.or_else(json)?.parse().ok()
}

/// The status of a `GET path` on a fresh connection, or `None` without an answer: enough for
/// a readiness check, with no HTTP client needed.
pub fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    // "HTTP/1.1 200"
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(head.get(9..12)?).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_is_read_from_either_log_format() {
        let text = "2026-01-01T00:00:00Z  INFO server::cli: listening addr=127.0.0.1:41234 \
                    store=memory data_key=ab12";
        let json = r#"{"timestamp":"2026-01-01T00:00:00Z","level":"INFO","fields":{"message":"listening","addr":"127.0.0.1:41235","store":"memory"},"target":"server::cli"}"#;
        assert_eq!(
            listening_address(text),
            Some(([127, 0, 0, 1], 41234).into())
        );
        assert_eq!(
            listening_address(json),
            Some(([127, 0, 0, 1], 41235).into())
        );
        assert_eq!(
            listening_address("listening addr=127.0.0.1:9"),
            Some(([127, 0, 0, 1], 9).into())
        );
    }

    #[test]
    fn other_lines_have_no_address() {
        assert_eq!(listening_address("WARN DEV MODE: addr=127.0.0.1:1"), None);
        assert_eq!(listening_address("listening soon"), None);
        assert_eq!(
            listening_address(r#"{"fields":{"message":"listening"}}"#),
            None
        );
    }

    #[test]
    fn a_bounded_log_keeps_the_latest_lines() {
        let log = LogLines::keeping(Some(2));
        for line in ["a", "b", "c"] {
            log.push(line.to_owned());
        }
        assert_eq!(log.lines(), ["b", "c"]);
        assert_eq!(
            log.wait_for(Duration::ZERO, |l| l == "c").as_deref(),
            Some("c")
        );
        assert_eq!(log.wait_for(Duration::ZERO, |l| l == "a"), None);
    }

    #[test]
    fn a_service_is_found_by_its_listening_line_and_its_exit_is_reported() {
        // A shell stands in for a server: it announces an address, then exits.
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "echo 'INFO listening addr=127.0.0.1:1' >&2; echo bye >&2",
        ]);
        let options = Options {
            echo: false,
            ..Options::default()
        };
        let mut service = Service::spawn("sh", cmd, &options).unwrap();
        assert_eq!(service.addr(), SocketAddr::from(([127, 0, 0, 1], 1)));
        assert_eq!(service.url("/healthz"), "http://127.0.0.1:1/healthz");
        assert!(
            service
                .log()
                .wait_for(Duration::from_secs(5), |l| l == "bye")
                .is_some()
        );
        let failure = service
            .wait_ready("/healthz", Duration::from_secs(5))
            .unwrap_err();
        assert!(failure.starts_with("sh exited with"), "{failure}");
        assert!(failure.contains("bye"), "{failure}");
    }

    #[test]
    fn a_process_that_never_says_where_it_listens_fails_with_its_output() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo 'no address here' >&2"]);
        let options = Options {
            echo: false,
            limit: Duration::from_secs(5),
            ..Options::default()
        };
        let failure = Service::spawn("sh", cmd, &options).unwrap_err();
        assert!(
            failure.starts_with("sh exited with exit status: 0 before saying where it listens"),
            "{failure}"
        );
        assert!(failure.contains("no address here"), "{failure}");
    }
}
