//! An app's access token where several server instances share it. WeChat keeps one valid
//! token per app, and a fetch invalidates the one before, so instances sharing a store must
//! share the token too, and the lock that lets one of them refresh it (the rules are in
//! `wechat/access_token.rs`). This is the store's side: the cache and the lock.

use std::{
    collections::HashMap,
    fmt,
    sync::Mutex,
    time::{Duration, Instant},
};

use async_trait::async_trait;

use super::StoreError;

/// An app's access token as instances share it.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedToken {
    /// The token in the clear: whoever reads it calls WeChat's APIs as the app.
    pub value: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// The value stays out of logs and error chains.
impl fmt::Debug for SharedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A cache and a lock that several server instances share (Redis), keyed by appid.
#[async_trait]
pub trait SharedTokens: Send + Sync + fmt::Debug {
    async fn get(&self, appid: &str) -> Result<Option<SharedToken>, StoreError>;
    async fn put(&self, appid: &str, token: &SharedToken) -> Result<(), StoreError>;
    /// Takes the refresh lock for `lease`; `false` when another instance holds it.
    async fn try_lock(&self, appid: &str, lease: Duration) -> Result<bool, StoreError>;
    async fn unlock(&self, appid: &str) -> Result<(), StoreError>;
}

/// [`SharedTokens`] in one process's memory: what a test needs to play two instances that share
/// a store, and what the Redis backend must behave like.
#[derive(Debug, Default)]
pub struct LocalSharedTokens {
    apps: Mutex<HashMap<String, SharedSlot>>,
}

/// One app's shared token and the deadline of its refresh lock.
#[derive(Debug, Default)]
struct SharedSlot {
    token: Option<SharedToken>,
    locked_until: Option<Instant>,
}

impl LocalSharedTokens {
    fn apps(&self) -> std::sync::MutexGuard<'_, HashMap<String, SharedSlot>> {
        // Every critical section is one map operation: a poisoned lock holds a whole map.
        self.apps.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl SharedTokens for LocalSharedTokens {
    async fn get(&self, appid: &str) -> Result<Option<SharedToken>, StoreError> {
        Ok(self.apps().get(appid).and_then(|slot| slot.token.clone()))
    }

    async fn put(&self, appid: &str, token: &SharedToken) -> Result<(), StoreError> {
        self.apps().entry(appid.to_owned()).or_default().token = Some(token.clone());
        Ok(())
    }

    async fn try_lock(&self, appid: &str, lease: Duration) -> Result<bool, StoreError> {
        let mut apps = self.apps();
        let now = Instant::now();
        let lock = &mut apps.entry(appid.to_owned()).or_default().locked_until;
        if lock.is_some_and(|until| until > now) {
            return Ok(false);
        }
        *lock = Some(now + lease);
        Ok(true)
    }

    async fn unlock(&self, appid: &str) -> Result<(), StoreError> {
        if let Some(slot) = self.apps().get_mut(appid) {
            slot.locked_until = None;
        }
        Ok(())
    }
}
