//! Serving connections: HTTP/1.1 over TCP with the limits a server facing the internet needs.
//!
//! `axum::serve` gives hyper no timer, so it cannot bound the time a client takes to send its
//! headers: a client that opens thousands of connections and trickles half a header holds
//! them all forever. Here hyper's own header-read timeout runs on every connection (new or kept
//! alive), a head is at most [`HEAD_LIMIT`], each body has a deadline of its own and each
//! request another, the number of connections has a cap and so has each client's share of
//! them, and a shutdown has a deadline after which the connections left are dropped.
//!
//! The caps are sized for connections that are held open as well as for short ones: a
//! person's few long-lived streams fit under the per-client cap many times over, while an
//! attacker's, from one address, can never take more than that cap of everyone's slots.
//!
//! HTTP/1.1 only: mini-programs reach the server through WeChat's HTTPS stack or a TLS proxy,
//! which speak HTTP/1.1 upstream, and h2c would need protocol sniffing before any timeout runs.

use std::{
    collections::HashMap,
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use axum::{
    Router,
    extract::{ConnectInfo, Request},
    response::{IntoResponse, Response},
};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore, task::JoinSet};
use tower::ServiceExt;

use crate::{
    client_ip::{ClientKey, ClientKeying, TrustedProxies},
    config::Config,
    http::{self, ApiError, DeadlineBody, LoginState},
    metrics,
    state::StartError,
};

/// The largest request head (request line and headers) read, and so the most a connection's
/// read buffer holds: room for a few KiB of cookies, while a thousand stalled heads cost
/// only a few tens of MiB. Past it the client gets a 431 and the connection is closed.
pub const HEAD_LIMIT: usize = 16 * 1024;

/// The serving limits, from the configuration.
#[derive(Debug, Clone, Copy)]
struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: u32,
    pub shutdown_timeout: Duration,
}

impl From<&Config> for Limits {
    fn from(c: &Config) -> Self {
        Self {
            header_timeout: c.header_timeout,
            body_timeout: c.body_timeout,
            request_timeout: c.request_timeout,
            max_connections: c.max_connections,
            shutdown_timeout: c.shutdown_timeout,
        }
    }
}

/// The connections each client holds open, for `MAX_CONNECTIONS_PER_CLIENT`. One short lock
/// per accepted connection and one when it ends; the table holds only clients with an open
/// connection, so the global cap bounds it.
#[derive(Debug)]
struct PerClient {
    cap: u32,
    proxies: TrustedProxies,
    keying: ClientKeying,
    open: Mutex<HashMap<ClientKey, u32>>,
}

impl PerClient {
    /// `cap == 0`: no cap per client.
    fn new(cap: u32, proxies: TrustedProxies, keying: ClientKeying) -> Arc<Self> {
        Arc::new(Self {
            cap,
            proxies,
            keying,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A place for one more connection from `peer`, held until the guard drops; `None` when
    /// `peer` holds its cap already. A proxy of ours carries many clients on its connections,
    /// so it is not counted.
    fn admit(self: &Arc<Self>, peer: std::net::IpAddr) -> Option<ClientSlot> {
        if self.cap == 0 || self.proxies.is_proxy(peer) {
            return Some(ClientSlot(None));
        }
        let key = self.keying.key(peer);
        let mut open = self.lock();
        let held = open.entry(key).or_insert(0);
        if *held >= self.cap {
            return None;
        }
        *held += 1;
        Some(ClientSlot(Some((self.clone(), key))))
    }

    /// Connections counted for `peer` now.
    #[cfg(test)]
    fn held(&self, peer: std::net::IpAddr) -> u32 {
        self.lock()
            .get(&self.keying.key(peer))
            .copied()
            .unwrap_or(0)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ClientKey, u32>> {
        // The counts stay right whatever panicked while the lock was held: each change is one
        // statement.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One connection's place in its client's count; `None` for a connection not counted.
#[derive(Debug)]
struct ClientSlot(Option<(Arc<PerClient>, ClientKey)>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let Some((table, key)) = &self.0 else {
            return;
        };
        let mut open = table.lock();
        if let Some(held) = open.get_mut(key) {
            *held -= 1;
            if *held == 0 {
                open.remove(key);
            }
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets requests in flight finish
/// for up to `SHUTDOWN_TIMEOUT` and drops what is left. Handlers see each connection's peer as
/// `ConnectInfo<SocketAddr>` (the login rate limit keys on it). The limits come from `config`.
/// A connection over its client's cap is closed as soon as it is accepted.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = Limits::from(config);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(HEAD_LIMIT)
        .max_buf_size(HEAD_LIMIT);
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    let per_client = PerClient::new(
        config.max_connections_per_client,
        config.trusted_proxies(),
        config.client_keying(),
    );
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Finished connections leave the set as we go, so it holds live ones only.
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors or a connection reset before accept: the
                    // listener is fine, but retrying at once would spin.
                    crate::log_throttle::throttled!(warn, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(client_slot) = per_client.admit(peer.ip()) else {
            metrics::connection_closed("per_client_cap");
            tracing::debug!(%peer, "connection closed: the client holds its cap already");
            continue;
        };
        let service = TowerToHyperService::new(per_request(app.clone(), peer, limits));
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        connections.spawn(async move {
            let _slots = (slot, client_slot);
            if let Err(e) = connection.await {
                if e.is_parse_too_large() {
                    metrics::connection_closed("header_too_large");
                }
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            left = connections.len(),
            "shutdown deadline passed; dropping the connections left"
        );
    }
    connections.shutdown().await;
    Ok(())
}

/// Each request of a connection: its peer attached, its body's deadline and its own enforced.
fn per_request(
    app: Router,
    peer: SocketAddr,
    limits: Limits,
) -> impl tower::Service<
    Request<Incoming>,
    Response = Response,
    Error = Infallible,
    Future = impl Future<Output = Result<Response, Infallible>> + Send,
> + Clone {
    tower::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        // Counted from now, when hyper has read the head.
        let deadline = tokio::time::Instant::now() + limits.body_timeout;
        let request = request.map(|body| axum::body::Body::new(DeadlineBody::new(body, deadline)));
        let answer = app.clone().oneshot(request);
        async move {
            match tokio::time::timeout(limits.request_timeout, answer).await {
                Ok(answered) => answered,
                Err(_) => {
                    // Answered outside the routes, whose layer reports their own errors.
                    let mut response = ApiError::RequestTimeout.into_response();
                    http::report(&mut response);
                    Ok(response)
                }
            }
        }
    })
}

/// The standalone login server: the login service on a bound listener.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    state: LoginState,
}

impl Server {
    /// Opens the configured stores and binds `config.listen_addr`.
    pub async fn bind(config: Config) -> Result<Self, StartError> {
        let addr = config.listen_addr;
        let state = LoginState::open(config).await?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        Ok(Self::new(listener, state))
    }

    /// Serves `state` on a listener the caller already bound (tests bind port 0).
    pub fn new(listener: TcpListener, state: LoginState) -> Self {
        if let Ok(addr) = listener.local_addr() {
            state.csrf.learn_bound_port(addr);
        }
        Self { listener, state }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> &LoginState {
        &self.state
    }

    /// Serves until `shutdown` completes, then lets requests in flight finish.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let _purge = self.state.spawn_purge();
        let _background = self.state.spawn_background();
        let config = self.state.config.clone();
        let state = self.state.clone();
        let shutdown = async move {
            shutdown.await;
            state.close_streams();
        };
        serve(self.listener, http::router(self.state), &config, shutdown).await
    }
}

/// Completes on Ctrl-C or SIGTERM, whichever comes first.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_client_gets_its_cap_and_a_place_back_when_one_closes() {
        let table = PerClient::new(2, TrustedProxies::default(), ClientKeying::default());
        let first = table.admit(ip("192.0.2.1")).expect("under the cap");
        let _second = table.admit(ip("192.0.2.1")).expect("at the cap");
        assert!(table.admit(ip("192.0.2.1")).is_none(), "over the cap");
        assert!(table.admit(ip("192.0.2.2")).is_some(), "another client");
        drop(first);
        assert_eq!(table.held(ip("192.0.2.1")), 1);
        assert!(table.admit(ip("192.0.2.1")).is_some(), "a place was freed");
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64_and_mapped_ipv4_is_that_ipv4() {
        let table = PerClient::new(1, TrustedProxies::default(), ClientKeying::default());
        let _v6 = table.admit(ip("2001:db8:1:2::1")).unwrap();
        assert!(table.admit(ip("2001:db8:1:2:ffff::9")).is_none());
        assert!(table.admit(ip("2001:db8:1:3::1")).is_some());
        let _v4 = table.admit(ip("::ffff:192.0.2.7")).unwrap();
        assert!(table.admit(ip("192.0.2.7")).is_none());
    }

    #[test]
    fn the_table_forgets_clients_with_nothing_open() {
        let table = PerClient::new(3, TrustedProxies::default(), ClientKeying::default());
        let slots: Vec<_> = (0..100u32)
            .map(|n| table.admit(IpAddr::from(n.to_be_bytes())).unwrap())
            .collect();
        assert_eq!(table.lock().len(), 100);
        drop(slots);
        assert!(table.lock().is_empty());
    }

    #[test]
    fn proxies_and_a_zero_cap_are_not_counted() {
        let proxies = TrustedProxies::new(
            vec![crate::client_ip::parse_network("10.0.0.0/8").unwrap()],
            Some(axum::http::HeaderName::from_static("x-forwarded-for")),
        );
        let table = PerClient::new(1, proxies, ClientKeying::default());
        let held: Vec<_> = (0..10)
            .map(|_| table.admit(ip("10.0.0.1")).unwrap())
            .collect();
        assert_eq!(table.held(ip("10.0.0.1")), 0);
        drop(held);
        let off = PerClient::new(0, TrustedProxies::default(), ClientKeying::default());
        let held: Vec<_> = (0..10)
            .map(|_| off.admit(ip("192.0.2.1")).unwrap())
            .collect();
        assert!(off.lock().is_empty());
        drop(held);
    }
}
