//! Child processes the tests own: server instances, a Redis server or cluster and nginx,
//! each on a loopback port, each killed when its handle drops; started by `dev-support`,
//! which the bench and xtask share, and wrapped here in the panicking, async form a test
//! wants. Nothing here touches a Redis or server the test did not start.

use std::{
    ffi::OsStr,
    net::SocketAddr,
    path::Path,
    process::{Child, Command},
    sync::Arc,
    time::{Duration, Instant},
};

pub use dev_support::{LogLines, Nginx, redis_query};

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    dev_support::free_port().expect("a free loopback port")
}

/// A `redis-server` of our own: loopback only, a temporary data folder, AOF on.
#[derive(Debug)]
pub struct RedisServer {
    pub port: u16,
    redis: dev_support::Redis,
    /// Declared last: removed after the server that writes into it has stopped.
    dir: crate::ScratchDir,
}

impl RedisServer {
    /// Starts one; panics with a hint when `redis-server` is not installed.
    pub fn start() -> Self {
        let dir = crate::temp_dir("redis");
        let args = [
            OsStr::new("--dir"),
            dir.as_os_str(),
            OsStr::new("--appendonly"),
            OsStr::new("yes"),
            // Every write still reaches the append-only file (the OS's cache) before Redis
            // answers, so a SIGKILLed Redis restarts with it; only a machine crash could lose
            // it. An fsync per write made calls on a loaded test machine outlive the store
            // timeout, and tests failed with 503s that said nothing about the code.
            OsStr::new("--appendfsync"),
            OsStr::new("no"),
            OsStr::new("--save"),
            OsStr::new(""),
        ];
        let redis = dev_support::Redis::start(&args).unwrap_or_else(|e| panic!("{e}"));
        Self {
            port: redis.port,
            redis,
            dir,
        }
    }

    pub fn url(&self) -> String {
        self.redis.url()
    }

    /// Every key and its value, as a dump or a replica would see them: a string as it is, a
    /// list, set or sorted set as its members joined by newlines, a hash as its fields and
    /// values, each on a line of its own.
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
                "hash" => redis::cmd("HGETALL")
                    .arg(&key)
                    .query_async::<Vec<Vec<u8>>>(&mut conn)
                    .await
                    .unwrap()
                    .join(&b'\n'),
                "set" => redis::cmd("SMEMBERS")
                    .arg(&key)
                    .query_async::<Vec<Vec<u8>>>(&mut conn)
                    .await
                    .unwrap()
                    .join(&b'\n'),
                "zset" => redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query_async::<Vec<Vec<u8>>>(&mut conn)
                    .await
                    .unwrap()
                    .join(&b'\n'),
                // Expired or deleted since KEYS listed it.
                "none" => continue,
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

    /// Kills the server (as a crash would: no final save beyond what AOF already wrote).
    pub fn stop(&mut self) {
        self.redis.stop();
    }

    /// Starts it again on the same port and data folder.
    pub fn restart(&mut self) {
        self.redis.restart().unwrap_or_else(|e| panic!("{e}"));
    }
}

/// A Redis Cluster of our own: three masters on loopback, no replicas, nothing on disk but
/// each node's cluster state file, in a temporary folder. Killed on drop.
#[derive(Debug)]
pub struct RedisCluster {
    /// The masters' client ports.
    pub ports: Vec<u16>,
    cluster: dev_support::RedisCluster,
}

impl RedisCluster {
    /// Starts the nodes, joins them with `redis-cli --cluster create` and waits until every
    /// node reports `cluster_state:ok`.
    pub fn start() -> Self {
        let cluster = dev_support::RedisCluster::start().unwrap_or_else(|e| panic!("{e}"));
        Self {
            ports: cluster.ports.clone(),
            cluster,
        }
    }

    /// `SESSION_STORE` naming the nodes at `seeds` (indexes into [`RedisCluster::ports`]), in
    /// that order.
    pub fn url(&self, seeds: &[usize]) -> String {
        self.cluster.url(seeds)
    }

    /// Every node as a `redis://` URL, as `RedisStore::connect_cluster` takes them.
    pub fn seeds(&self) -> Vec<String> {
        self.cluster.seeds()
    }

    /// How many keys each node holds, in the order of [`RedisCluster::ports`].
    pub fn key_counts(&self) -> Vec<u64> {
        let counts = self.cluster.key_counts();
        counts.into_iter().map(|n| n.expect("DBSIZE")).collect()
    }
}

/// A server binary running as its own process on a free loopback port.
#[derive(Debug)]
pub struct ServerProcess {
    pub addr: SocketAddr,
    service: dev_support::Service,
}

impl ServerProcess {
    /// Starts `binary` with `env` on `127.0.0.1:0` and waits until `/healthz` answers. The
    /// child binds the port itself and its log says which, so no port is guessed and none can
    /// be taken in between. Its stderr is a pipe: no terminal, so no colour. Every line of it
    /// also goes to our stderr, where a failing test shows it.
    pub async fn start(binary: &str, env: &[(&str, &str)]) -> Self {
        let options = dev_support::Options {
            limit: Duration::from_secs(15),
            ..dev_support::Options::default()
        };
        let service = dev_support::Service::spawn(binary, command(binary, env), &options)
            .unwrap_or_else(|e| panic!("{e}"));
        Self::until_healthy(service).await
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
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        Self::until_healthy(dev_support::Service::adopt(binary, child, addr)).await
    }

    /// The lines the process writes to stderr (started by [`ServerProcess::start`]).
    pub fn log(&self) -> Arc<LogLines> {
        self.service.log()
    }

    /// Waits without blocking the test's runtime: the WeChat simulator and any in-process
    /// server of the test run on it.
    async fn until_healthy(mut service: dev_support::Service) -> Self {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = service.exited() {
                panic!(
                    "{}",
                    service.failure(&format!("exited at start-up with {status}"))
                );
            }
            let health = http.get(service.url("/healthz")).send().await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return Self {
                    addr: service.addr(),
                    service,
                };
            }
            assert!(
                Instant::now() < deadline,
                "{}",
                service.failure("did not come up")
            );
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
        self.service.url(path)
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

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.service.pid()
    }

    /// Its resident memory now and at its peak, in KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        self.service.memory_kib().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The process itself, no longer killed on drop: for tests that end it their own way.
    pub fn into_child(self) -> Child {
        self.service.into_child()
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
        .envs(env.iter().copied());
    command
}
