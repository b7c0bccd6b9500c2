//! What every handler shares: configuration, the stores, the WeChat client, the login
//! rate limiter.

use std::sync::Arc;

use crate::{
    config::Config, rate_limit::RateLimiter, store::Stores, wechat::WechatClient,
    wechat::simulator::Simulator,
};

/// Cloned per request; every field is a cheap handle.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    /// Trait objects rather than type parameters: the backend is picked at run time from
    /// `SESSION_STORE`, and one dynamic call per request is noise next to its I/O.
    pub stores: Stores,
    /// Per-client-IP limit on `POST /login`.
    pub login_limiter: Arc<RateLimiter>,
    pub wechat: WechatClient,
    /// Present in dev mode only, where it is also served at `/sim`.
    pub simulator: Option<Simulator>,
}
