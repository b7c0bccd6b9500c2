//! Open web-login event streams: what each costs the server in resident memory, and what
//! `/checklogin` still serves beside ten thousand of them.
//!
//! A browser showing the login code holds one ticket and one `GET /web-login/{id}/events`
//! stream until the person confirms; a busy site has thousands open at once, nearly all idle.
//! The bench makes that crowd: it creates the tickets as browsers do (`POST /web-login`,
//! keeping each ticket's cookie), opens every stream on a connection of its own and reads its
//! first `status` event, so each is live and registered, then reads the server's resident
//! memory and loads `/checklogin` beside them with the same wrk run as without.
//!
//! The server's defaults are for service, not for one client holding ten thousand tickets, so
//! the bench raises the limits that would refuse it and names them in the report
//! ([`SseStreams::raised`]). The streams' client is plain tokio sockets writing HTTP/1.1 by
//! hand: ten thousand idle connections need no HTTP library, and nothing of the client's
//! shows in the server's memory.

use std::{path::Path, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    task::JoinSet,
};

use crate::{Result, client, cpus::CpuPlan, processes, throughput, wrk};

/// Tickets created, and streams opened, at once.
const CONCURRENCY: usize = 64;
/// The most a stream's answer head and first event take before the bench calls it stuck.
const FIRST_EVENT_BYTES: usize = 4096;

/// What [`measure`] found.
#[derive(Debug, Clone)]
pub struct SseStreams {
    pub streams: u64,
    /// Resident memory (KiB): before any ticket, with the tickets made, with every stream
    /// open, and after the `/checklogin` run beside them.
    pub idle_rss_kib: u64,
    pub tickets_rss_kib: u64,
    pub streams_rss_kib: u64,
    pub after_load_rss_kib: u64,
    /// `/checklogin` on the same server before the tickets, and beside the open streams.
    pub alone: wrk::Sample,
    pub beside: wrk::Sample,
    /// Streams still open after the run beside them (each read back before it is closed).
    pub still_open: u64,
    /// The settings raised for the crowd, as `NAME=value`.
    pub raised: Vec<String>,
}

impl SseStreams {
    /// Bytes resident per open stream, its ticket included: the figure a site sizes by.
    pub fn bytes_per_stream(&self) -> f64 {
        per(self.streams_rss_kib, self.idle_rss_kib, self.streams)
    }

    /// Bytes resident per stream on top of its ticket: the connection and the stream alone.
    pub fn bytes_per_stream_alone(&self) -> f64 {
        per(self.streams_rss_kib, self.tickets_rss_kib, self.streams)
    }
}

fn per(after_kib: u64, before_kib: u64, n: u64) -> f64 {
    after_kib.saturating_sub(before_kib) as f64 * 1024.0 / n.max(1) as f64
}

/// The settings that would otherwise refuse `streams` tickets from one client at loopback
/// speed, or expire them during the run.
fn raised(streams: u64) -> Vec<(&'static str, String)> {
    vec![
        // The streams, wrk's connections and the bench's own requests.
        ("MAX_CONNECTIONS", (streams + 1_000).to_string()),
        ("MAX_CONNECTIONS_PER_CLIENT", "0".to_owned()),
        ("WEB_LOGIN_MAX_TICKETS", streams.to_string()),
        ("WEB_LOGIN_MAX_TICKETS_PER_CLIENT", streams.to_string()),
        ("WEB_LOGIN_RATE_PER_MINUTE", "0".to_owned()),
        // Longer than the whole measurement, so no ticket ends and closes its stream.
        ("WEB_LOGIN_TTL", "30m".to_owned()),
    ]
}

/// Starts a server on a SQLite store of its own, measures `/checklogin` alone, opens
/// `streams` web-login streams, and measures again beside them.
pub async fn measure(
    binary: &Path,
    cpus: &CpuPlan,
    wrk: &wrk::Wrk,
    http: &reqwest::Client,
    streams: u64,
    warmup: Duration,
    duration: Duration,
) -> Result<SseStreams> {
    // This process holds every stream's socket.
    rlimit::increase_nofile_limit(u64::MAX)?;
    let dir = processes::TempDir::new("bench-sse")?;
    let store = format!("sqlite://{}", dir.path().join("sessions.db").display());
    let settings = raised(streams);
    let mut cmd = throughput::server_command(binary, &store, cpus);
    cmd.envs(settings.iter().map(|(name, value)| (name, value)));
    let server = processes::start_service("the login server (web-login streams)", cmd, "/healthz")?;
    let base = server.base().to_owned();
    let url = format!("{base}/checklogin");

    let token = client::server_token(http, &base).await?;
    wrk.get(&url, Some(&token), warmup)?;
    let alone = wrk.get(&url, Some(&token), duration)?;
    client::expect_logged_in(http, &base, &token).await?;
    let (idle_rss_kib, _) = server.memory_kib()?;

    let tickets = create_tickets(http, &base, streams as usize).await?;
    let (tickets_rss_kib, _) = server.memory_kib()?;
    let mut open = open_streams(server.addr(), tickets).await?;
    let (streams_rss_kib, _) = server.memory_kib()?;
    eprintln!(
        "    {streams} web-login streams open: {} KiB resident (was {idle_rss_kib} KiB)",
        streams_rss_kib
    );

    let beside = wrk.get(&url, Some(&token), duration)?;
    client::expect_logged_in(http, &base, &token).await?;
    let (after_load_rss_kib, _) = server.memory_kib()?;
    let still_open = count_open(&mut open).await;
    drop(open);
    server.stop();
    for (name, sample) in [("alone", &alone), ("beside the streams", &beside)] {
        if sample.errors() > 0 {
            return Err(format!("/checklogin {name}: {} errors", sample.errors()).into());
        }
    }
    Ok(SseStreams {
        streams,
        idle_rss_kib,
        tickets_rss_kib,
        streams_rss_kib,
        after_load_rss_kib,
        alone,
        beside,
        still_open,
        raised: settings
            .into_iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect(),
    })
}

/// A ticket as the browser holds it: its id and its cookie (`name=value`).
struct Ticket {
    id: String,
    cookie: String,
}

async fn create_tickets(http: &reqwest::Client, base: &str, n: usize) -> Result<Vec<Ticket>> {
    let mut made = Vec::with_capacity(n);
    let mut tasks = JoinSet::new();
    for i in 0..n {
        if tasks.len() == CONCURRENCY {
            made.push(tasks.join_next().await.expect("a task is running")??);
        }
        let (http, url) = (http.clone(), format!("{base}/web-login"));
        tasks.spawn(async move { create_ticket(&http, &url, i).await });
    }
    while let Some(done) = tasks.join_next().await {
        made.push(done??);
    }
    Ok(made)
}

async fn create_ticket(http: &reqwest::Client, url: &str, i: usize) -> Result<Ticket> {
    let response = http
        .post(url)
        // What a desktop browser sends: the ticket records a summary of it, as in service.
        .header(
            "User-Agent",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/131.0.0.0 Safari/537.36",
        )
        .send()
        .await?;
    let status = response.status();
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    let body: serde_json::Value = response.json().await?;
    match (status.as_u16(), cookie, body["id"].as_str()) {
        (201, Some(cookie), Some(id)) => Ok(Ticket {
            id: id.to_owned(),
            cookie,
        }),
        _ => Err(format!("ticket {i}: POST {url} answered {status} {body}").into()),
    }
}

/// Opens every ticket's event stream, each on a connection of its own, and reads its first
/// `status` event.
async fn open_streams(addr: std::net::SocketAddr, tickets: Vec<Ticket>) -> Result<Vec<TcpStream>> {
    let mut open = Vec::with_capacity(tickets.len());
    let mut tasks = JoinSet::new();
    for ticket in tickets {
        if tasks.len() == CONCURRENCY {
            open.push(tasks.join_next().await.expect("a task is running")??);
        }
        tasks.spawn(open_stream(addr, ticket));
    }
    while let Some(done) = tasks.join_next().await {
        open.push(done??);
    }
    Ok(open)
}

async fn open_stream(addr: std::net::SocketAddr, ticket: Ticket) -> Result<TcpStream> {
    let mut socket = TcpStream::connect(addr).await?;
    let request = format!(
        "GET /web-login/{}/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\
         Cookie: {}\r\n\r\n",
        ticket.id, ticket.cookie
    );
    socket.write_all(request.as_bytes()).await?;
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Err(format!("stream {} closed before its first event", ticket.id).into());
        }
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen);
        if !text.starts_with("HTTP/1.1 200") && text.contains("\r\n") {
            let line = text.lines().next().unwrap_or_default();
            return Err(format!("stream {}: {line}", ticket.id).into());
        }
        if text.contains("\"pending\"") {
            return Ok(socket);
        }
        if seen.len() > FIRST_EVENT_BYTES {
            return Err(format!("stream {}: no status event in {text}", ticket.id).into());
        }
    }
}

/// How many of the streams are still open: a closed one reads as end of file at once, an open
/// idle one has nothing to read (a keep-alive comment, if one came, also means open).
async fn count_open(streams: &mut [TcpStream]) -> u64 {
    let mut open = 0;
    let mut buf = [0u8; 256];
    for socket in streams {
        match socket.try_read(&mut buf) {
            Ok(0) => {}
            Ok(_) => open += 1,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => open += 1,
            Err(_) => {}
        }
    }
    open
}
