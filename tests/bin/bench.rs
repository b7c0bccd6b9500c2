//! `cargo xtask bench`: throughput and latency of the hot endpoints on each session store,
//! measured in one run on this machine so the ratios between them mean something.
//!
//! Each scenario starts its own server on 127.0.0.1 (and its own Redis), runs a fixed number
//! of concurrent clients for a fixed time, and prints requests per second, p50 and p99.
//! Absolute numbers depend on the machine; the ratios are the result.

use std::time::{Duration, Instant};

use shared::LoginResponse;
use workspace_tests::{RedisServer, TestServer, config, temp_dir};

const CLIENTS: usize = 16;
const DURATION: Duration = Duration::from_secs(3);

struct Measured {
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Measured {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&mut self, p: f64) -> Duration {
        self.latencies.sort_unstable();
        let i = ((self.latencies.len() as f64 * p) as usize).min(self.latencies.len() - 1);
        self.latencies[i]
    }
}

/// Runs `CLIENTS` loops of `request` for `DURATION`; every request must succeed.
async fn load<F, Fut>(request: F) -> Measured
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0;
            while started.elapsed() < DURATION {
                let t = Instant::now();
                assert!(request(client * 1_000_000 + n).await, "a request failed");
                latencies.push(t.elapsed());
                n += 1;
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("client task"));
    }
    Measured {
        requests: latencies.len(),
        elapsed: started.elapsed(),
        latencies,
    }
}

async fn checklogin(server: &TestServer) -> Measured {
    let token = server.login().await.token;
    let (http, url) = (server.http.clone(), server.url("/checklogin"));
    load(move |_| {
        let (http, url, token) = (http.clone(), url.clone(), token.clone());
        async move {
            let r = http.get(&url).bearer_auth(&token).send().await.unwrap();
            r.status() == 200 && r.text().await.unwrap() == r#"{"is_login":true}"#
        }
    })
    .await
}

async fn login(server: &TestServer) -> Measured {
    let sim = server.state.simulator.clone().expect("dev mode");
    let (http, url) = (server.http.clone(), server.url("/login"));
    load(move |n| {
        let (http, url) = (http.clone(), url.clone());
        // A user per request keeps WeChat's per-user quota out of the measurement.
        let code = sim.issue_code(&format!("bench-{n}"));
        async move {
            let r = http
                .post(&url)
                .json(&serde_json::json!({ "code": code }))
                .send()
                .await
                .unwrap();
            r.status() == 200 && r.json::<LoginResponse>().await.is_ok()
        }
    })
    .await
}

fn report(name: &str, m: &mut Measured, baseline: f64) {
    println!(
        "{name:<28} {:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ratio {:>5.2}",
        m.per_second(),
        m.percentile(0.50).as_secs_f64() * 1e3,
        m.percentile(0.99).as_secs_f64() * 1e3,
        m.per_second() / baseline,
    );
}

#[tokio::main]
async fn main() {
    println!("{CLIENTS} concurrent clients, {DURATION:?} per scenario, loopback, this machine");
    let dir = temp_dir("bench");
    let sqlite = format!("sqlite://{}", dir.join("sessions.db").display());
    let redis = RedisServer::start();
    // The bench is one machine sending thousands of logins: it measures the stores, not the
    // limits.
    let no_limit = [
        "--login-rate-per-minute",
        "0",
        "--upstream-rate-per-second",
        "0",
    ];
    let stores = [
        ("memory", "memory".to_owned()),
        ("sqlite", sqlite),
        ("redis", redis.url()),
    ];

    for (scenario, run) in [("GET /checklogin", 0), ("POST /login", 1)] {
        println!("\n{scenario} (ratio: against the memory store)");
        let mut baseline = None;
        for (name, url) in &stores {
            let mut args = vec!["--session-store", url.as_str()];
            args.extend(no_limit);
            let server = TestServer::start_with(config(&args), None).await;
            let mut m = if run == 0 {
                checklogin(&server).await
            } else {
                login(&server).await
            };
            let base = *baseline.get_or_insert(m.per_second());
            report(name, &mut m, base);
            server.stop().await;
        }
    }
    std::fs::remove_dir_all(dir).ok();
}
