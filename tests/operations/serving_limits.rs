//! The serving limits of a server facing the internet: slow or silent clients cannot hold
//! connections, requests have a deadline, connections have a cap, and a shutdown ends on time.

use std::{
    io::{Read, Write},
    net::Ipv4Addr,
    process::Command,
    sync::mpsc,
    time::{Duration, Instant},
};

use tokio::{io::AsyncWriteExt, net::TcpStream};
use workspace_tests::{
    ServerProcess, TestServer, assert_error,
    raw_tcp::{kept_alive_from, until_closed},
    wechat_config,
};

#[tokio::test]
async fn half_open_connections_are_closed_by_the_header_timeout_while_others_are_served() {
    // All from one address: no cap per client here, so that the header timeout alone is what
    // keeps the 501st connection served.
    let server = TestServer::start(&[
        "--header-timeout",
        "2s",
        "--max-connections-per-client",
        "0",
    ])
    .await;
    let started = Instant::now();
    let mut trickling = Vec::with_capacity(500);
    for _ in 0..500 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: login\r\nX-Slow: ")
            .await
            .unwrap();
        trickling.push(stream);
    }

    let asked = Instant::now();
    let health = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "a normal request waited {:?} behind 500 half-open connections",
        asked.elapsed()
    );

    // The server closes them on its own clock, so waiting for each in turn waits for all.
    let all_closed = async {
        for stream in &mut trickling {
            until_closed(stream).await;
        }
    };
    let deadline = Duration::from_secs(6).saturating_sub(started.elapsed());
    tokio::time::timeout(deadline, all_closed)
        .await
        .expect("all 500 half-open connections closed within 6 s of opening");
    server.stop().await;
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_by_the_header_timeout() {
    let server = TestServer::start(&["--header-timeout", "1s"]).await;
    let mut stream = kept_alive_from(Ipv4Addr::LOCALHOST, server.addr).await;
    // Kept alive, then silent: closed once the wait for the next request's headers runs out.
    let idle = Instant::now();
    tokio::time::timeout(Duration::from_secs(4), until_closed(&mut stream))
        .await
        .expect("an idle keep-alive connection is closed within 4 s");
    assert!(
        idle.elapsed() >= Duration::from_millis(500),
        "closed too early"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_request_past_its_deadline_gets_a_503_request_timeout() {
    // A WeChat that accepts connections and never answers: the login hangs.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", silent.local_addr().unwrap());
    let config = wechat_config(
        "wxsilent",
        "secret",
        &base,
        &["--request-timeout", "300ms", "--wechat-timeout", "10s"],
    );
    let server = TestServer::start_with(config, None).await;
    let asked = Instant::now();
    let response = server.post_login("0a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P").await;
    let retry_after = response.headers().contains_key("retry-after");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    assert_error(response, 503, shared::ErrorCode::RequestTimeout).await;
    assert!(retry_after);
    server.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_is_free() {
    let server = TestServer::start(&["--max-connections", "2", "--header-timeout", "60s"]).await;
    let first = TcpStream::connect(server.addr).await.unwrap();
    let second = TcpStream::connect(server.addr).await.unwrap();
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(700))
        .build()
        .unwrap();
    let refused = quick.get(server.url("/healthz")).send().await;
    assert!(
        refused.is_err_and(|e| e.is_timeout()),
        "a third connection must wait while two are held"
    );
    drop(first);
    let served = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200, "served once a slot is free");
    drop(second);
    server.stop().await;
}

const BINARY: &str = env!("CARGO_BIN_EXE_login-server");

/// Sends SIGTERM to `pid` with the system's `kill`, as a supervisor would.
fn sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// Waits for the process to exit, up to `limit`; how long it took.
fn exit_within(mut child: std::process::Child, limit: Duration) -> Duration {
    let started = Instant::now();
    let (done, exited) = mpsc::channel();
    std::thread::spawn(move || {
        let status = child.wait();
        done.send(status).ok();
    });
    let status = exited
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("still running {limit:?} after SIGTERM"))
        .unwrap();
    assert!(status.success(), "{status}");
    started.elapsed()
}

fn keep_alive_idle(addr: std::net::SocketAddr) -> std::net::TcpStream {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: login\r\n\r\n")
        .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    stream
}

#[tokio::test]
async fn sigterm_with_idle_keep_alive_connections_ends_the_process_at_once() {
    let process = ServerProcess::start(
        BINARY,
        &[
            ("SESSION_STORE", "memory"),
            ("HEADER_TIMEOUT", "60s"),
            ("SHUTDOWN_TIMEOUT", "20s"),
        ],
    )
    .await;
    let idle: Vec<_> = (0..5).map(|_| keep_alive_idle(process.addr)).collect();
    let child = process.into_child();
    sigterm(child.id());
    // Idle connections are closed at once by the graceful shutdown, long before its deadline.
    let took = exit_within(child, Duration::from_secs(5));
    assert!(took < Duration::from_secs(5));
    drop(idle);
}

#[tokio::test]
async fn sigterm_with_a_stuck_connection_ends_the_process_by_the_shutdown_deadline() {
    let process = ServerProcess::start(
        BINARY,
        &[
            ("SESSION_STORE", "memory"),
            ("HEADER_TIMEOUT", "60s"),
            ("SHUTDOWN_TIMEOUT", "2s"),
        ],
    )
    .await;
    // Half a header: not idle, so the graceful shutdown would wait for it for a minute.
    let mut stuck = std::net::TcpStream::connect(process.addr).unwrap();
    stuck
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: lo")
        .unwrap();
    // Answered only once the server accepted it, and connections are accepted in the order
    // they came: so the stuck one is the server's too when the signal arrives, rather than
    // still waiting in the backlog, to be reset with the listener.
    let _idle = keep_alive_idle(process.addr);
    let child = process.into_child();
    sigterm(child.id());
    let took = exit_within(child, Duration::from_secs(5));
    assert!(took >= Duration::from_millis(1500), "ended after {took:?}");
}
