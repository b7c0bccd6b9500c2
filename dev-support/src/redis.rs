//! `redis-server` processes of the caller's own: one server, or a cluster of three masters,
//! loopback only, each killed on drop. Redis cannot listen on port 0 and say which port it
//! got, so each gets one that was free a moment ago and moves to another if that was taken.

use std::{
    ffi::{OsStr, OsString},
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{Result, TempDir, free_port};

/// Ports tried before giving up; each try fails only when another process took the port
/// between our probe and Redis's bind.
const ATTEMPTS: usize = 10;
/// How long a node may take to answer `PING`.
const START_LIMIT: Duration = Duration::from_secs(10);

/// One `redis-server` on a loopback port; killed on drop.
#[derive(Debug)]
pub struct Redis {
    pub port: u16,
    /// The program with any arguments before Redis's own: `redis-server`, or a wrapper such
    /// as `taskset --cpu-list 1 redis-server`.
    program: Vec<OsString>,
    args: Vec<OsString>,
    child: Option<Child>,
}

impl Redis {
    /// Starts `redis-server` with `args` (after `--bind`, `--port`, before
    /// `--protected-mode yes --daemonize no`) and waits until it answers `PING`.
    pub fn start(args: &[impl AsRef<OsStr>]) -> Result<Self> {
        Self::start_with(&Command::new("redis-server"), args)
    }

    /// [`Redis::start`] with `program` as the command (its program and arguments are
    /// used; its environment and folder are not).
    pub fn start_with(program: &Command, args: &[impl AsRef<OsStr>]) -> Result<Self> {
        let program: Vec<OsString> = std::iter::once(program.get_program())
            .chain(program.get_args())
            .map(OsStr::to_owned)
            .collect();
        let args: Vec<OsString> = args.iter().map(|a| a.as_ref().to_owned()).collect();
        for _ in 0..ATTEMPTS {
            let port = free_port().map_err(|e| format!("no free loopback port: {e}"))?;
            if let Some(child) = launch(&program, port, &args)? {
                return Ok(Self {
                    port,
                    program,
                    args,
                    child: Some(child),
                });
            }
        }
        Err(format!(
            "redis-server exited at once on {ATTEMPTS} free ports in turn"
        ))
    }

    /// `redis://127.0.0.1:PORT/0`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// See [`query`].
    pub fn query(&self, command: &str) -> Option<String> {
        query(self.port, command)
    }

    /// Its process id (`redis-server` itself: a wrapper such as `taskset` execs it); 0 once
    /// stopped.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Kills the server, as a crash would: nothing is saved beyond what it wrote already.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Starts it again with the same arguments on the same port, which it must get.
    pub fn restart(&mut self) -> Result {
        self.stop();
        self.child = Some(
            launch(&self.program, self.port, &self.args)?.ok_or_else(|| {
                format!("redis-server could not take its port {} again", self.port)
            })?,
        );
        Ok(())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts `program` on loopback `port` with `args` and waits until it answers `PING`; `None`
/// when it exited first, as it does at once when the port was taken since we picked it.
fn launch(program: &[OsString], port: u16, args: &[OsString]) -> Result<Option<Child>> {
    let (first, rest) = program.split_first().ok_or("no program to run")?;
    let mut child = Command::new(first)
        .args(rest)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(args)
        .args(["--protected-mode", "yes", "--daemonize", "no"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start {} ({e}): install Debian's redis-server (`cargo xtask deps` does)",
                first.to_string_lossy()
            )
        })?;
    let deadline = Instant::now() + START_LIMIT;
    while query(port, "PING").as_deref() != Some("PONG") {
        if child.try_wait().ok().flatten().is_some() {
            return Ok(None);
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            return Err(format!(
                "redis-server did not answer PING on port {port} within {START_LIMIT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Some(child))
}

/// Sends one inline command to the Redis on loopback `port` and reads its answer: a status,
/// an integer or a bulk string, as text. `None` when nothing listens, or for an error or any
/// other kind of answer.
pub fn query(port: u16, command: &str) -> Option<String> {
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

/// A Redis Cluster of the caller's own: three masters on loopback, no replicas, nothing on
/// disk but each node's cluster state file, in a temporary folder. Killed on drop.
#[derive(Debug)]
pub struct RedisCluster {
    /// The masters' client ports.
    pub ports: Vec<u16>,
    nodes: Vec<Redis>,
    /// Declared last: dropped after the nodes that write into it.
    _dir: TempDir,
}

impl RedisCluster {
    /// Starts the nodes, joins them with `redis-cli --cluster create` and waits until every
    /// node reports `cluster_state:ok`.
    pub fn start() -> Result<Self> {
        let dir = TempDir::new("redis-cluster")?;
        let program = [OsString::from("redis-server")];
        let mut nodes = Vec::new();
        let mut attempts = 0;
        while nodes.len() < 3 {
            attempts += 1;
            if attempts > 3 * ATTEMPTS {
                return Err("redis-server nodes kept exiting at once on free ports".into());
            }
            // The cluster bus gets a free port of its own: the default, port + 10000, may be
            // taken or past 65535.
            let ports = free_port().and_then(|port| Ok((port, free_port()?)));
            let (port, bus) = ports.map_err(|e| format!("no free loopback port: {e}"))?;
            let state = dir.join(format!("nodes-{port}.conf"));
            let args = [
                OsStr::new("--cluster-enabled"),
                OsStr::new("yes"),
                OsStr::new("--cluster-port"),
                OsStr::new(&bus.to_string()),
                OsStr::new("--cluster-config-file"),
                state.as_os_str(),
                OsStr::new("--dir"),
                dir.as_os_str(),
                OsStr::new("--save"),
                OsStr::new(""),
                OsStr::new("--appendonly"),
                OsStr::new("no"),
            ]
            .map(OsStr::to_owned);
            // Either port may have been taken in between: then pick two others.
            if let Some(child) = launch(&program, port, &args)? {
                nodes.push(Redis {
                    port,
                    program: program.to_vec(),
                    args: args.to_vec(),
                    child: Some(child),
                });
            }
        }
        let cluster = Self {
            ports: nodes.iter().map(|n| n.port).collect(),
            nodes,
            _dir: dir,
        };
        cluster.create()?;
        Ok(cluster)
    }

    fn create(&self) -> Result {
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(self.ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .status()
            .map_err(|e| {
                format!(
                    "cannot run redis-cli ({e}): install Debian's redis-tools \
                     (`cargo xtask deps` does)"
                )
            })?;
        if !status.success() {
            return Err(format!("redis-cli --cluster create: {status}"));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.ports.iter().all(|&p| {
            query(p, "CLUSTER INFO").is_some_and(|info| info.contains("cluster_state:ok"))
        }) {
            if Instant::now() > deadline {
                return Err("the cluster did not reach cluster_state:ok within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// A `redis+cluster://` URL (the server's `SESSION_STORE`) naming the nodes at `seeds`
    /// (indexes into [`RedisCluster::ports`]), in that order.
    pub fn url(&self, seeds: &[usize]) -> String {
        let hosts: Vec<String> = seeds
            .iter()
            .map(|&i| format!("127.0.0.1:{}", self.ports[i]))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// Every node as a `redis://` URL, as a cluster client takes its seeds.
    pub fn seeds(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// How many keys each node holds, in the order of [`RedisCluster::ports`]; `None` for a
    /// node that does not answer.
    pub fn key_counts(&self) -> Vec<Option<u64>> {
        self.nodes
            .iter()
            .map(|node| node.query("DBSIZE").and_then(|n| n.parse().ok()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_keeps_its_port_and_its_data_across_a_restart() {
        let dir = TempDir::new("dev-support-redis").unwrap();
        let args = [
            OsStr::new("--dir"),
            dir.as_os_str(),
            OsStr::new("--appendonly"),
            OsStr::new("yes"),
            OsStr::new("--appendfsync"),
            OsStr::new("always"),
        ];
        let mut redis = Redis::start(&args).unwrap();
        assert_eq!(redis.query("SET k v").as_deref(), Some("OK"));
        let port = redis.port;
        redis.restart().unwrap();
        assert_eq!(redis.port, port);
        assert_eq!(redis.query("GET k").as_deref(), Some("v"));
        redis.stop();
        assert_eq!(query(port, "PING"), None);
    }
}
