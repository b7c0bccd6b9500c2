//! [`LoginState`]: what the login endpoints share. Built by `state.rs` from a `Config`; defined
//! here, beside the handlers that read it, so that the HTTP layer depends on nothing above it.

use std::sync::Arc;

use crate::{
    accounts::AccountService, client_ip::TrustedProxies, config::Config, http::csrf::CsrfPolicy,
    login::LoginService, metrics::CheckCounters, oidc::OidcService, rate_limit::ClientLimiter,
    web_login::WebLoginService, wechat::simulator::Simulator,
};

/// A team's app that keeps state of its own implements `FromRef<TheirState> for LoginState`,
/// and the login routes and [`AuthUser`](crate::AuthUser) find it there. Reads as its
/// [`Parts`].
///
/// One `Arc` around all the parts: axum clones the state for every request (once for the
/// route, once for the `State` extractor), and on a server whose workers share it a clone per
/// part is an atomic increment per part on a cache line the other cores keep taking away, a
/// few percent of `/checklogin`'s whole cost.
#[derive(Debug, Clone)]
pub struct LoginState(Arc<Parts>);

impl std::ops::Deref for LoginState {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

/// What a [`LoginState`] holds.
#[derive(Debug)]
pub struct Parts {
    pub config: Arc<Config>,
    /// The login rules, with the stores, apps and data keys they use.
    pub login: LoginService,
    /// What people and operators do with accounts: their sessions, deletion.
    pub accounts: AccountService,
    /// Per-client limit on `POST /login`.
    pub login_limiter: Arc<ClientLimiter>,
    /// Web login by mini-program code.
    pub web_login: WebLoginService,
    /// The OpenID Connect provider, when `OIDC_ISSUER` is set.
    pub oidc: Option<OidcService>,
    /// Per-client limit on `POST /web-login`.
    pub web_login_limiter: Arc<ClientLimiter>,
    /// Where a cookie-authenticated change may come from.
    pub csrf: CsrfPolicy,
    /// Turns `true` when the server shuts down: open event streams end at once rather than
    /// hold the shutdown until its deadline.
    pub streams: tokio::sync::watch::Sender<bool>,
    /// Whose word on the client's address is taken.
    pub proxies: Arc<TrustedProxies>,
    /// Present in dev mode only, where it is also served at `/sim`.
    pub simulator: Option<Simulator>,
    /// Handles of the token-check counters, registered once: `/checklogin` is the hot path.
    pub check_counters: CheckCounters,
}

impl From<Parts> for LoginState {
    fn from(parts: Parts) -> Self {
        Self(Arc::new(parts))
    }
}

impl LoginState {
    /// Ends every open event stream: the server is shutting down. A team's own app calls
    /// this when it begins its graceful shutdown.
    pub fn close_streams(&self) {
        self.streams.send_replace(true);
    }
}
