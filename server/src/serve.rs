//! Serving connections: HTTP/1.1 over TCP with the limits a server facing the internet needs.
//!
//! `axum::serve` gives hyper no timer, so it cannot bound the time a client takes to send its
//! headers: a client that opens thousands of connections and trickles half a header holds
//! them all forever. Here hyper's own header-read timeout runs on every connection (new or kept
//! alive), each request has a deadline, the number of connections has a cap, and a shutdown
//! has a deadline after which the connections left are dropped.
//!
//! HTTP/1.1 only: mini-programs reach the server through WeChat's HTTPS stack or a TLS proxy,
//! which speak HTTP/1.1 upstream, and h2c would need protocol sniffing before any timeout runs.

use std::{convert::Infallible, future::Future, net::SocketAddr, sync::Arc, time::Duration};

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
    config::Config,
    http::{self, ApiError, LoginState},
    state::StartError,
};

/// The serving limits, from the configuration.
#[derive(Debug, Clone, Copy)]
struct Limits {
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: u32,
    pub shutdown_timeout: Duration,
}

impl From<&Config> for Limits {
    fn from(c: &Config) -> Self {
        Self {
            header_timeout: c.header_timeout,
            request_timeout: c.request_timeout,
            max_connections: c.max_connections,
            shutdown_timeout: c.shutdown_timeout,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets requests in flight finish
/// for up to `SHUTDOWN_TIMEOUT` and drops what is left. Handlers see each connection's peer as
/// `ConnectInfo<SocketAddr>` (the login rate limit keys on it). The limits come from `config`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = Limits::from(config);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
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
        let service = TowerToHyperService::new(per_request(app.clone(), peer, limits));
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        connections.spawn(async move {
            let _slot = slot;
            if let Err(e) = connection.await {
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

/// Each request of a connection: its peer attached, its deadline enforced.
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
        let answer = app.clone().oneshot(request.map(axum::body::Body::new));
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
        let config = self.state.config.clone();
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
