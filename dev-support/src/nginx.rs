//! An nginx of the caller's own: one foreground process (so killing it leaves no workers
//! behind) with its prefix, configuration and logs in a temporary folder, on a free loopback
//! port, killed on drop.

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{Result, TempDir, free_port};

/// Ports tried before giving up; each try fails only when another process took the port
/// between our probe and nginx's bind.
const ATTEMPTS: usize = 5;
/// How long nginx may take to bind its port.
const START_LIMIT: Duration = Duration::from_secs(15);

#[derive(Debug)]
pub struct Nginx {
    pub port: u16,
    prefix: TempDir,
    child: Option<Child>,
}

impl Nginx {
    /// `nginx` from `PATH`, else Debian's `/usr/sbin/nginx` (root's `PATH` may lack
    /// `/usr/sbin`), checked to be built with each of `modules` (as `nginx -V` names them,
    /// e.g. `http_auth_request_module`).
    pub fn binary(modules: &[&str]) -> Result<PathBuf> {
        let on_path = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("nginx"))
                .find(|p| p.is_file())
        });
        let binary = on_path
            .or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| p.is_file()))
            .ok_or(
                "nginx is not installed: install Debian's nginx (`cargo xtask deps` does, as \
                 does `apt-get install nginx`)",
            )?;
        // `nginx -V` prints its build options on stderr.
        let version = Command::new(&binary)
            .arg("-V")
            .output()
            .map_err(|e| format!("cannot run {} -V: {e}", binary.display()))?;
        let options = String::from_utf8_lossy(&version.stderr);
        let missing: Vec<&str> = modules
            .iter()
            .copied()
            .filter(|m| !options.contains(m))
            .collect();
        if missing.is_empty() {
            Ok(binary)
        } else {
            Err(format!(
                "{} lacks {} (Debian's nginx has them):\n{options}",
                binary.display(),
                missing.join(", ")
            ))
        }
    }

    /// Starts `binary` with the configuration `conf` writes for a port, and returns once it
    /// accepts connections there. `conf` must make nginx listen on `127.0.0.1:PORT`; it is
    /// called again with another port when the first was taken in between.
    pub fn start(binary: &Path, conf: impl Fn(u16) -> String) -> Result<Self> {
        let prefix = TempDir::new("nginx")?;
        let logs = prefix.join("logs");
        std::fs::create_dir(&logs).map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
        let mut nginx = Self {
            port: 0,
            prefix,
            child: None,
        };
        for attempt in 1..=ATTEMPTS {
            nginx.port = free_port().map_err(|e| format!("no free loopback port: {e}"))?;
            let file = nginx.prefix.join("nginx.conf");
            std::fs::write(&file, conf(nginx.port))
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
            match nginx.spawn(binary, &file) {
                Ok(()) => return Ok(nginx),
                Err(log) if log.contains("Address already in use") && attempt < ATTEMPTS => {}
                Err(log) => return Err(format!("nginx did not start: {log}")),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Runs nginx in the foreground as one process and waits until it has bound its port.
    fn spawn(&mut self, binary: &Path, conf: &Path) -> Result {
        let pid_file = self.prefix.join("nginx.pid");
        let stderr_file = self.prefix.join("logs/stderr.log");
        std::fs::remove_file(&pid_file).ok();
        let globals = format!(
            "daemon off; master_process off; pid {}; error_log stderr;",
            pid_file.display()
        );
        // A file rather than a pipe: nobody has to drain it while the caller runs.
        let stderr = std::fs::File::create(&stderr_file)
            .map_err(|e| format!("cannot create {}: {e}", stderr_file.display()))?;
        let child = Command::new(binary)
            .arg("-p")
            .arg(self.prefix.path())
            .arg("-c")
            .arg(conf)
            .args(["-g", &globals])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let pid = child.id().to_string();
        let child = self.child.insert(child);

        let deadline = Instant::now() + START_LIMIT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Err(format!("exited with {status}:\n{}", self.log()));
            }
            // nginx writes its pid file only after it has bound every listen socket, so a
            // file with our child's pid means the port is ours, not some other process's.
            let bound = std::fs::read_to_string(&pid_file).is_ok_and(|p| p.trim() == pid);
            if bound && TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not listening after {START_LIMIT:?}:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// nginx's error output and access log, for failure messages.
    pub fn log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.prefix.join(name)).unwrap_or_default();
        format!(
            "--- error log\n{}--- access log\n{}",
            read("logs/stderr.log"),
            read("logs/access.log")
        )
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
        if std::thread::panicking() {
            eprintln!("nginx on port {}:\n{}", self.port, self.log());
        }
    }
}
