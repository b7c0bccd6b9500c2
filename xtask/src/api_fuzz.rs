//! The API fuzzer step: schemathesis (from PyPI, pinned in `tests/api_fuzz/requirements.txt`)
//! against a dev-mode server started here, checked against the server's own `/openapi.json`.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{Result, install, run};

/// Examples per operation; with four operations and three phases this is a few thousand
/// requests, about a minute on the 2-core CI machine.
const MAX_EXAMPLES: &str = "800";

pub fn run() -> Result {
    let root = run::root();
    let python = venv(&root)?;
    let server = DevServer::start(&run::build_server()?)?;
    let base = format!("http://{}", server.addr);
    run::status(
        Command::new(&python)
            .arg(root.join("tests/api_fuzz/run.py"))
            .args([base.as_str(), MAX_EXAMPLES])
            .current_dir(&root),
    )
}

/// A virtualenv in `target/` with the pinned requirements; reused while they are unchanged.
fn venv(root: &Path) -> Result<PathBuf> {
    let dir = root.join("target/api-fuzz-venv");
    let python = dir.join("bin/python");
    let requirements = root.join("tests/api_fuzz/requirements.txt");
    let stamp = dir.join("requirements.installed");
    let wanted = std::fs::read_to_string(&requirements)
        .map_err(|e| format!("cannot read {}: {e}", requirements.display()))?;
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&wanted) {
        return Ok(python);
    }
    let has_venv = run::output(Command::new("python3").args(["-c", "import venv, ensurepip"]));
    if has_venv.is_none() {
        install::apt(&[("/usr/share/doc/python3-venv", "python3-venv")])?;
    }
    run::status(Command::new("python3").args(["-m", "venv"]).arg(&dir))?;
    run::status(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements),
    )?;
    std::fs::write(&stamp, wanted).map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    Ok(python)
}

/// The server binary in dev mode on a free loopback port, killed on drop.
struct DevServer {
    addr: SocketAddr,
    child: Child,
}

impl DevServer {
    fn start(binary: &Path) -> Result<Self> {
        // Port 0: the child binds a free port itself and its log says which, so no port is
        // guessed and none can be taken in between.
        let mut child = Command::new(binary)
            .env_remove("WECHAT_APPID")
            .env_remove("WECHAT_SECRET")
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("SESSION_STORE", "memory")
            // The fuzzer is one client sending thousands of logins: limiting it would only
            // test the limiter.
            .env("LOGIN_RATE_PER_MINUTE", "0")
            .env("UPSTREAM_RATE_PER_SECOND", "0")
            .env("RUST_LOG", "warn,server::cli=info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let addr = match bound_address(&mut child, Duration::from_secs(20)) {
            Some(addr) => addr,
            None => {
                child.kill().ok();
                child.wait().ok();
                return Err("the server did not say where it listens within 20 s".into());
            }
        };
        let server = Self { addr, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !server.healthy() {
            if Instant::now() > deadline {
                return Err("the server did not answer /healthz within 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    fn healthy(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)) else {
            return false;
        };
        let request = format!(
            "GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        let mut answer = String::new();
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok();
        stream.write_all(request.as_bytes()).is_ok()
            && stream.read_to_string(&mut answer).is_ok()
            && answer.starts_with("HTTP/1.1 200")
    }
}

/// Reads the child's log until its "listening" line and returns the address in it; the whole
/// log goes on to our stderr.
fn bound_address(child: &mut Child, limit: Duration) -> Option<SocketAddr> {
    let stderr = child.stderr.take()?;
    let (found, address) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr)
            .lines()
            .map_while(std::io::Result::ok)
        {
            eprintln!("{line}");
            let addr = line
                .split_whitespace()
                .find_map(|word| word.strip_prefix("addr="))
                .and_then(|a| a.parse::<SocketAddr>().ok());
            if let (true, Some(addr)) = (line.contains("listening"), addr) {
                // Only the first is awaited; later sends find the receiver gone.
                found.send(addr).ok();
            }
        }
    });
    address.recv_timeout(limit).ok()
}

impl Drop for DevServer {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}
