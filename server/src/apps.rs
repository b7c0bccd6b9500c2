//! The mini-programs one server serves, each with its own WeChat client (credentials, circuit
//! breaker, call budget) and its own access token. WeChat's quotas, failures and tokens are
//! per AppID, so one app's trouble never spends or trips another's.

use std::sync::Arc;

use crate::wechat::{WechatClient, access_token::AccessTokens};

/// One mini-program.
#[derive(Debug, Clone)]
pub struct App {
    pub wechat: WechatClient,
    pub access_tokens: AccessTokens,
}

impl App {
    pub fn appid(&self) -> &str {
        self.wechat.appid()
    }
}

/// Every app, the default first. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Apps(Arc<[App]>);

impl Apps {
    /// `None` for an empty list: a server serves at least one app.
    pub fn new(apps: Vec<App>) -> Option<Self> {
        (!apps.is_empty()).then(|| Self(apps.into()))
    }

    /// The app of a login that names none.
    pub fn default_app(&self) -> &App {
        &self.0[0]
    }

    /// The app `appid` names, if this server serves it. A linear scan: a server serves a
    /// handful of apps, and comparing a few short strings beats hashing one.
    pub fn get(&self, appid: &str) -> Option<&App> {
        self.0.iter().find(|app| app.appid() == appid)
    }

    /// The app of a login request: the one it names, or the default.
    pub fn for_login(&self, appid: Option<&str>) -> Option<&App> {
        match appid {
            Some(appid) => self.get(appid),
            None => Some(self.default_app()),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &App> {
        self.0.iter()
    }
}
