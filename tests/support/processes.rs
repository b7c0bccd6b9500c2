//! Child processes the tests own: server instances and a Redis server, each on a free
//! loopback port, each killed when its handle drops. Nothing here touches a Redis or server
//! the test did not start.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Condvar, Mutex},
    time::{Duration, Instant},
};

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A `redis-server` of our own: loopback only, a temporary data folder, AOF on.
#[derive(Debug)]
pub struct RedisServer {
    pub port: u16,
    dir: crate::ScratchDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one; panics with a hint when `redis-server` is not installed.
    pub fn start() -> Self {
        let dir = crate::temp_dir("redis");
        let mut redis = Self {
            port: free_port(),
            dir,
            child: None,
        };
        redis.spawn(true);
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Every key and its value, as a dump or a replica would see them: a string as it is, a
    /// list as its items joined by newlines.
    pub async fn dump(&self) -> Vec<(String, Vec<u8>)> {
        let client = redis::Client::open(self.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query_async(&mut conn)
            .await
            .unwrap();
        let mut entries = Vec::new();
        for key in keys {
            let kind: String = redis::cmd("TYPE")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            let value: Vec<u8> = match kind.as_str() {
                "string" => redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .unwrap(),
                "list" => redis::cmd("LRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query_async::<Vec<Vec<u8>>>(&mut conn)
                    .await
                    .unwrap()
                    .join(&b'\n'),
                other => panic!("{key} holds a {other}, which the stores never write"),
            };
            entries.push((key, value));
        }
        entries
    }

    /// Its data folder, where the AOF files are: for tests that read what Redis put on disk.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `may_move`: the port may change (first start); a restart must keep it.
    fn spawn(&mut self, may_move: bool) {
        let persistence = [
            "--dir",
            path_str(&self.dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
        ];
        loop {
            match spawn_redis(self.port, &persistence) {
                Some(child) => {
                    self.child = Some(child);
                    return;
                }
                None if may_move => self.port = free_port(),
                None => panic!("redis-server could not take its port {} again", self.port),
            }
        }
    }

    /// Kills the server (as a crash would: no final save beyond what AOF already wrote).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Starts it again on the same port and data folder.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn(false);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// Starts `redis-server` on loopback `port` with `args` and waits until it answers `PING`;
/// `None` when it exited first, as it does at once when the port was taken since we picked it
/// (it cannot listen on port 0 and say which port it got).
fn spawn_redis(port: u16, args: &[&str]) -> Option<Child> {
    let mut child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(args)
        .args(["--protected-mode", "yes", "--daemonize", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start redis-server ({e}); `cargo xtask test` installs it \
                 (Debian package redis-server)"
            )
        });
    let deadline = Instant::now() + Duration::from_secs(10);
    while redis_query(port, "PING").as_deref() != Some("PONG") {
        if child.try_wait().ok().flatten().is_some() {
            return None;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            panic!("redis-server did not come up on {port}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(child)
}

/// Sends one inline command to the Redis on loopback `port` and reads its answer: a status,
/// an integer or a bulk string, as text. `None` when nothing listens, or for an error or any
/// other kind of answer.
pub fn redis_query(port: u16, command: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(format!("{command}\r\n").as_bytes()).ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let line = line.trim_end();
    match line.split_at_checked(1)? {
        ("+" | ":", value) => Some(value.to_owned()),
        ("$", len) => {
            let mut body = vec![0; len.parse::<usize>().ok()? + 2];
            reader.read_exact(&mut body).ok()?;
            body.truncate(body.len() - 2);
            String::from_utf8(body).ok()
        }
        _ => None,
    }
}

/// A Redis Cluster of our own: three masters on loopback, no replicas, nothing on disk but
/// each node's cluster state file, in a temporary folder. Killed on drop.
#[derive(Debug)]
pub struct RedisCluster {
    /// The masters' client ports.
    pub ports: Vec<u16>,
    dir: crate::ScratchDir,
    nodes: Vec<Child>,
}

impl RedisCluster {
    /// Starts the nodes, joins them with `redis-cli --cluster create` and waits until every
    /// node reports `cluster_state:ok`.
    pub fn start() -> Self {
        let mut cluster = Self {
            ports: Vec::new(),
            dir: crate::temp_dir("redis-cluster"),
            nodes: Vec::new(),
        };
        while cluster.nodes.len() < 3 {
            // The cluster bus gets a free port of its own: the default, port + 10000, may be
            // taken or past 65535.
            let (port, bus) = (free_port(), free_port());
            let state = cluster.dir.join(format!("nodes-{port}.conf"));
            let bus = bus.to_string();
            let args = [
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                &bus,
                "--cluster-config-file",
                path_str(&state),
                "--dir",
                path_str(&cluster.dir),
                "--save",
                "",
                "--appendonly",
                "no",
            ];
            // Either port may have been taken in between: then pick two others.
            if let Some(node) = spawn_redis(port, &args) {
                cluster.ports.push(port);
                cluster.nodes.push(node);
            }
        }
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(cluster.ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run redis-cli ({e}): Debian package redis-tools"));
        assert!(status.success(), "redis-cli --cluster create: {status}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cluster.ports.iter().all(|&p| {
            redis_query(p, "CLUSTER INFO").is_some_and(|info| info.contains("cluster_state:ok"))
        }) {
            assert!(
                Instant::now() < deadline,
                "the cluster did not become ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    /// `SESSION_STORE` naming the nodes at `seeds` (indexes into [`RedisCluster::ports`]), in
    /// that order.
    pub fn url(&self, seeds: &[usize]) -> String {
        let hosts: Vec<String> = seeds
            .iter()
            .map(|&i| format!("127.0.0.1:{}", self.ports[i]))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// Every node as a `redis://` URL, as `RedisStore::connect_cluster` takes them.
    pub fn seeds(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// How many keys each node holds, in the order of [`RedisCluster::ports`].
    pub fn key_counts(&self) -> Vec<u64> {
        self.ports
            .iter()
            .map(|&p| {
                redis_query(p, "DBSIZE")
                    .and_then(|n| n.parse().ok())
                    .expect("DBSIZE")
            })
            .collect()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill().ok();
            node.wait().ok();
        }
    }
}

/// A server binary running as its own process on a free loopback port.
#[derive(Debug)]
pub struct ServerProcess {
    pub addr: SocketAddr,
    /// `None` once handed out by [`ServerProcess::into_child`].
    child: Option<Child>,
    /// What it wrote to stderr, when that is a pipe of ours.
    log: Arc<LogLines>,
}

impl ServerProcess {
    /// Starts `binary` with `env` on `127.0.0.1:0` and waits until `/healthz` answers. The
    /// child binds the port itself and its log says which, so no port is guessed and none can
    /// be taken in between. Its stderr is a pipe: no terminal, so no colour.
    pub async fn start(binary: &str, env: &[(&str, &str)]) -> Self {
        let mut child = command(binary, env)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        let log = Arc::new(LogLines::default());
        let addr = bound_address(&mut child, &log, Duration::from_secs(15))
            .unwrap_or_else(|| panic!("{binary} did not say where it listens"));
        let process = Self {
            addr,
            child: Some(child),
            log,
        };
        process.until_healthy(binary).await
    }

    /// Starts `binary` with `env` and its stderr written to `log_file`, as a service manager
    /// that logs to a file would, and waits until `/healthz` answers. The log cannot be read
    /// as it is written, so the port is a free one picked here rather than the child's own.
    pub async fn start_logging_to(binary: &str, env: &[(&str, &str)], log_file: &Path) -> Self {
        let file = std::fs::File::create(log_file).expect("create the log file");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let listen = addr.to_string();
        let child = command(binary, env)
            .env("LISTEN_ADDR", &listen)
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        let process = Self {
            addr,
            child: Some(child),
            log: Arc::default(),
        };
        process.until_healthy(binary).await
    }

    /// The lines the process writes to stderr (started by [`ServerProcess::start`]).
    pub fn log(&self) -> Arc<LogLines> {
        self.log.clone()
    }

    async fn until_healthy(mut self, binary: &str) -> Self {
        let process = &mut self;
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let child = process.child.as_mut().expect("held");
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{binary} exited at start-up with {status}");
            }
            let health = http.get(process.url("/healthz")).send().await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return self;
            }
            assert!(Instant::now() < deadline, "{binary} did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `binary` in production mode for `upstream`'s app, its sessions in `store`
    /// (`SESSION_STORE`), with no login or upstream rate limit, plus `extra` variables.
    pub async fn for_app(
        binary: &str,
        upstream: &crate::Upstream,
        store: &str,
        extra: &[(&str, &str)],
    ) -> Self {
        let mut env = vec![
            ("WECHAT_APPID", upstream.sim.appid()),
            ("WECHAT_SECRET", upstream.sim.secret()),
            ("WECHAT_API_BASE", &upstream.base),
            ("DATA_KEY", crate::DATA_KEY),
            ("SESSION_STORE", store),
            ("LOGIN_RATE_PER_MINUTE", "0"),
            ("UPSTREAM_RATE_PER_SECOND", "0"),
        ];
        env.extend_from_slice(extra);
        Self::start(binary, &env).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `POST /login` with `code`; the raw response.
    pub async fn login(&self, http: &reqwest::Client, code: &str) -> reqwest::Response {
        http.post(self.url("/login"))
            .json(&serde_json::json!({ "code": code }))
            .send()
            .await
            .unwrap()
    }

    /// `GET /checklogin` with a bearer token; the raw response.
    pub async fn check(&self, http: &reqwest::Client, token: &str) -> reqwest::Response {
        http.get(self.url("/checklogin"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// `POST /logout` with a bearer token; the raw response.
    pub async fn logout(&self, http: &reqwest::Client, token: &str) -> reqwest::Response {
        http.post(self.url("/logout"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// A token of `upstream`'s app, from a fresh login of `user`; panics unless it succeeds.
    pub async fn token(
        &self,
        http: &reqwest::Client,
        upstream: &crate::Upstream,
        user: &str,
    ) -> String {
        let response = self.login(http, &upstream.sim.issue_code(user)).await;
        assert_eq!(response.status(), 200);
        let body = response.json::<shared::LoginResponse>().await.unwrap();
        body.token
    }

    /// `GET /checklogin`'s `is_login`, after asserting a 200.
    pub async fn is_login(&self, http: &reqwest::Client, token: &str) -> bool {
        crate::is_login(http.get(self.url("/checklogin")).bearer_auth(token)).await
    }

    /// The process itself, no longer killed on drop: for tests that end it their own way.
    pub fn into_child(mut self) -> Child {
        self.child.take().expect("the child is held until now")
    }
}

/// `binary` with nothing of our environment but `env`, on a port of its choosing, logging
/// what the tests need.
fn command(binary: &str, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "warn,server::cli=info")
        .envs(env.iter().copied())
        .stdout(Stdio::null());
    command
}

/// The lines a child process wrote to stderr, kept as they arrive, so that a test can wait
/// for the line an action of its causes.
#[derive(Debug, Default)]
pub struct LogLines {
    lines: Mutex<Vec<String>>,
    added: Condvar,
}

impl LogLines {
    fn push(&self, line: String) {
        self.lines.lock().unwrap().push(line);
        self.added.notify_all();
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The first line that satisfies `wanted`, waiting for it up to `limit`.
    pub fn wait_for(&self, limit: Duration, wanted: impl Fn(&str) -> bool) -> Option<String> {
        let lines = self.lines.lock().unwrap();
        let (lines, _) = self
            .added
            .wait_timeout_while(lines, limit, |lines| !lines.iter().any(|l| wanted(l)))
            .unwrap();
        lines.iter().find(|l| wanted(l)).cloned()
    }
}

/// Reads the child's log into `log` until its "listening" line and returns the address in
/// it; every line also goes on to our stderr, where a failing test shows it.
fn bound_address(child: &mut Child, log: &Arc<LogLines>, limit: Duration) -> Option<SocketAddr> {
    let stderr = child.stderr.take()?;
    let (found, address) = std::sync::mpsc::channel();
    let log = log.clone();
    std::thread::spawn(move || {
        let mut found = Some(found);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            if let Some(addr) = listening_address(&line)
                && let Some(found) = found.take()
            {
                found.send(addr).ok();
            }
            log.push(line);
        }
    });
    address.recv_timeout(limit).ok()
}

/// The address in the server's "listening" line, in either log format: `addr=…` in text,
/// `"fields":{"addr":…}` in JSON.
fn listening_address(line: &str) -> Option<SocketAddr> {
    if !line.contains("listening") {
        return None;
    }
    let addr = match serde_json::from_str::<serde_json::Value>(line) {
        Ok(json) => json["fields"]["addr"].as_str()?.to_owned(),
        Err(_) => line
            .split_whitespace()
            .find_map(|word| word.strip_prefix("addr="))?
            .to_owned(),
    };
    addr.parse().ok()
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}
