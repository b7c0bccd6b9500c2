//! What every handler shares: configuration, the session store, the WeChat client.

use std::sync::Arc;

use crate::{
    config::Config, store::SessionStore, wechat::WechatClient, wechat::simulator::Simulator,
};

/// Cloned per request; every field is a cheap handle.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    /// A trait object rather than a type parameter: the backend is picked at run time from
    /// `SESSION_STORE`, and one dynamic call per request is noise next to its I/O.
    pub store: Arc<dyn SessionStore>,
    pub wechat: WechatClient,
    /// Present in dev mode only, where it is also served at `/sim`.
    pub simulator: Option<Simulator>,
}
