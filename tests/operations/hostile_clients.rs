//! Clients that hold connections on purpose: bodies that never finish, heads far past any real
//! one, and one address opening more connections than its share. The server binary runs as a
//! process of its own, so the clients here cannot slow it down by sharing its runtime, and its
//! memory is its own to measure.

use std::{
    net::{Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};

use tokio::{io::AsyncWriteExt, net::TcpStream, task::JoinSet};
use workspace_tests::{
    ServerProcess, free_port,
    prometheus::Exposition,
    raw_tcp::{connect_from, kept_alive_from, until_closed},
};

const BINARY: &str = env!("CARGO_BIN_EXE_login-server");

/// The most a head may be, as the server documents it.
const HEAD_LIMIT: usize = 16 * 1024;

/// A thousand sockets and more need more open files than some systems give a process at first.
fn raise_open_file_limit(needed: u64) {
    let limit = rlimit::increase_nofile_limit(u64::MAX).expect("the open-file limit");
    assert!(
        limit >= needed,
        "this test needs {needed} open files and the hard limit is {limit}"
    );
}

/// One `GET /healthz` on a connection of its own from `source`; how long it took to answer.
async fn health_from(source: Ipv4Addr, server: SocketAddr) -> Result<Duration, String> {
    let asked = Instant::now();
    let mut stream = connect_from(source, server)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: login\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| format!("write: {e}"))?;
    let answer = until_closed(&mut stream).await;
    if answer.starts_with(b"HTTP/1.1 200") {
        Ok(asked.elapsed())
    } else {
        Err(format!("answered {:?}", String::from_utf8_lossy(&answer)))
    }
}

fn closed_for(metrics: &Exposition, reason: &str) -> f64 {
    metrics
        .value("wxlogin_connections_closed_total", &[("reason", reason)])
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_from_one_address_leave_others_served_and_are_closed_by_the_deadline() {
    const STALLED: usize = 1_100;
    const BODY_TIMEOUT: Duration = Duration::from_secs(2);
    raise_open_file_limit(STALLED as u64 + 200);
    let server = ServerProcess::start(
        BINARY,
        &[
            ("SESSION_STORE", "memory"),
            ("MAX_CONNECTIONS", "1000"),
            ("MAX_CONNECTIONS_PER_CLIENT", "100"),
            ("BODY_TIMEOUT", "2s"),
        ],
    )
    .await;
    let addr = server.addr;

    // Another address asks for /healthz over and over while the attack runs.
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let probe = tokio::spawn(async move {
        let mut took = Vec::new();
        loop {
            let answered = tokio::time::timeout(
                Duration::from_secs(1),
                health_from(Ipv4Addr::new(127, 0, 0, 3), addr),
            )
            .await;
            match answered {
                Ok(Ok(elapsed)) => took.push(elapsed),
                Ok(Err(e)) => panic!("/healthz from 127.0.0.3 failed after {took:?}: {e}"),
                Err(_) => panic!("/healthz from 127.0.0.3 unanswered within 1 s"),
            }
            if stopped.try_recv().is_ok() {
                return took;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });

    // Headers, then one byte of a 4,000-byte body, and nothing more.
    let head = b"POST /login HTTP/1.1\r\nHost: login\r\nContent-Type: application/json\r\n\
                 Content-Length: 4000\r\n\r\n{";
    let mut stalled = Vec::with_capacity(STALLED);
    for _ in 0..STALLED {
        let mut stream = connect_from(Ipv4Addr::new(127, 0, 0, 2), addr)
            .await
            .expect("connect from 127.0.0.2");
        // A connection over the cap may be closed before this is written: that is its answer.
        let _ = stream.write_all(head).await;
        stalled.push((Instant::now(), stream));
    }

    // Each one closed within the deadline and a second of its start; the server closes them on
    // its own clock, so waiting for each in turn waits for all.
    let mut timed_out = 0;
    for (started, stream) in &mut stalled {
        let by = tokio::time::Instant::from_std(*started + BODY_TIMEOUT + Duration::from_secs(1));
        let answer = tokio::time::timeout_at(by, until_closed(stream))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "a stalled connection was still open {:?} after its start",
                    started.elapsed()
                )
            });
        if answer.starts_with(b"HTTP/1.1 408") {
            let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
            assert!(text.contains("connection: close"), "{text}");
            assert!(text.contains("\"request_timeout\""), "{text}");
            timed_out += 1;
        } else {
            assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
        }
    }
    // Those let in (the cap's worth at least) waited out the deadline; the rest were closed
    // as they were accepted.
    assert!(
        (100..STALLED).contains(&timed_out),
        "{timed_out} connections got a 408"
    );

    stop.send(()).unwrap();
    let took = probe.await.unwrap();
    assert!(took.len() >= 3, "only {} probes answered", took.len());
    eprintln!(
        "{STALLED} stalled bodies, {timed_out} answered 408; /healthz answered {} times, slowest {:?}",
        took.len(),
        took.iter().max().unwrap()
    );
}

/// A request whose head carries a header of `size` bytes.
fn head_with_header_of(size: usize) -> Vec<u8> {
    let mut head = b"GET /healthz HTTP/1.1\r\nHost: login\r\nX-Padding: ".to_vec();
    head.resize(head.len() + size, b'a');
    head.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    head
}

#[tokio::test]
async fn a_head_past_16_kib_is_never_served_and_one_below_it_is() {
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let server = ServerProcess::start(
        BINARY,
        &[
            ("SESSION_STORE", "memory"),
            ("METRICS_ADDR", &metrics.to_string()),
        ],
    )
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(&head_with_header_of(HEAD_LIMIT - 1024))
        .await
        .unwrap();
    let answer = until_closed(&mut stream).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "a 15 KiB head is served: {:?}",
        String::from_utf8_lossy(&answer[..answer.len().min(100)])
    );

    let sizes = [HEAD_LIMIT + 1024, 64 * 1024, 300 * 1024];
    for size in sizes {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        // The server may close while this is still being written: the other allowed answer.
        let _ = stream.write_all(&head_with_header_of(size)).await;
        let answer = tokio::time::timeout(Duration::from_secs(5), until_closed(&mut stream))
            .await
            .expect("closed within 5 s");
        assert!(
            answer.is_empty() || answer.starts_with(b"HTTP/1.1 431"),
            "a {size}-byte header got {:?}",
            String::from_utf8_lossy(&answer[..answer.len().min(100)])
        );
    }
    // Counted as each connection's task ends, which may be just after the client saw it close.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let counted = closed_for(&Exposition::scrape(metrics).await, "header_too_large");
        if counted == sizes.len() as f64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{counted} counted as header_too_large"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_half_sent_64_kib_heads_cost_less_than_64_mib() {
    const HEADS: usize = 1_000;
    raise_open_file_limit(HEADS as u64 + 200);
    let server = ServerProcess::start(BINARY, &[("SESSION_STORE", "memory")]).await;
    let (before, _) = server.memory_kib();

    // Half of a 64 KiB header from each of a thousand addresses, none ever finished. (Opened
    // all at once, some overflow the kernel's accept queue and are reset before the server
    // sees them; those cost it nothing either.)
    let half = head_with_header_of(64 * 1024);
    let half = half[..32 * 1024].to_vec();
    let mut sending = JoinSet::new();
    for n in 0..HEADS {
        let source = Ipv4Addr::new(127, 1, (n / 250) as u8, (n % 250) as u8 + 1);
        let (addr, half) = (server.addr, half.clone());
        sending.spawn(async move {
            let mut stream = connect_from(source, addr).await.expect("connect");
            let _ = stream.write_all(&half).await;
            // Well before HEADER_TIMEOUT (10 s), which would close it anyway.
            tokio::time::timeout(Duration::from_secs(5), until_closed(&mut stream))
                .await
                .is_ok()
        });
    }
    let mut closed = 0;
    while let Some(done) = sending.join_next().await {
        closed += usize::from(done.unwrap());
    }
    assert_eq!(
        closed, HEADS,
        "every oversized head is closed by the server"
    );

    let (_, peak) = server.memory_kib();
    let grew = peak.saturating_sub(before);
    eprintln!("{HEADS} half-sent 64 KiB heads: resident {before} KiB before, peak {peak} KiB");
    assert!(grew < 64 * 1024, "resident memory grew by {grew} KiB");
}

#[tokio::test]
async fn one_address_gets_its_cap_a_trusted_proxy_and_other_addresses_are_unaffected() {
    const CAP: usize = 3;
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let server = ServerProcess::start(
        BINARY,
        &[
            ("SESSION_STORE", "memory"),
            ("MAX_CONNECTIONS_PER_CLIENT", "3"),
            ("TRUSTED_PROXIES", "127.0.0.4"),
            ("HEADER_TIMEOUT", "60s"),
            ("METRICS_ADDR", &metrics.to_string()),
        ],
    )
    .await;
    let addr = server.addr;
    let client = Ipv4Addr::new(127, 0, 0, 2);

    let mut held = Vec::new();
    for _ in 0..CAP {
        held.push(kept_alive_from(client, addr).await);
    }
    // One more from the same address is closed unanswered.
    let refused = health_from(client, addr).await;
    assert!(refused.is_err(), "the connection past the cap was served");

    // Others are unaffected, and a proxy carries many clients on as many connections as it
    // needs.
    health_from(Ipv4Addr::new(127, 0, 0, 5), addr)
        .await
        .expect("another address is served");
    let mut through_proxy = Vec::new();
    for _ in 0..CAP * 3 {
        through_proxy.push(kept_alive_from(Ipv4Addr::new(127, 0, 0, 4), addr).await);
    }

    // Once one of the address's connections closes, it may open another.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    while health_from(client, addr).await.is_err() {
        assert!(Instant::now() < deadline, "no place freed within 5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refusals = closed_for(&Exposition::scrape(metrics).await, "per_client_cap");
    assert!(refusals >= 1.0, "{refusals}");
}
