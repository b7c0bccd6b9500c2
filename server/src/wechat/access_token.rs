//! One app's `access_token`, the credential of WeChat's server-to-server APIs (phone numbers
//! and the like), shared by everything in the process that needs it.
//!
//! WeChat hands out one valid token per app at a time: whoever fetches a new one invalidates the
//! old one for everybody (errcode 40001). So the token is fetched once per expiry however many
//! requests need it at that moment (a single flight behind one lock), cached until shortly
//! before it expires, and refetched only when WeChat rejects the one we hold, and then once.
//! When several instances share a store, the lock and the cache live there too
//! ([`SharedTokens`]), so the instances agree on one token instead of taking turns breaking
//! each other's.

use std::{
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;

use super::WechatError;
use crate::{
    secret::Secret,
    store::{SharedToken, SharedTokens, StoreError},
    time::unix_now,
};

/// How long before WeChat's expiry a cached token counts as expired, so that a request never
/// starts with a token that dies on the way.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(300);

/// A token and the unix second it expires at, by WeChat's `expires_in` on our clock.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub value: Secret,
    pub expires_at: i64,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl AccessToken {
    /// Usable for a request starting at `now`: not within [`EXPIRY_MARGIN`] of its expiry.
    fn fresh_at(&self, now: i64) -> bool {
        now + EXPIRY_MARGIN.as_secs() as i64 <= self.expires_at
    }
}

impl From<SharedToken> for AccessToken {
    fn from(token: SharedToken) -> Self {
        Self {
            value: Secret::new(token.value),
            expires_at: token.expires_at,
        }
    }
}

impl From<&AccessToken> for SharedToken {
    fn from(token: &AccessToken) -> Self {
        Self {
            value: token.value.expose().to_owned(),
            expires_at: token.expires_at,
        }
    }
}

/// Where tokens come from: WeChat's `stable_token`, or a fake in tests.
#[async_trait]
pub trait TokenSource: Send + Sync + fmt::Debug {
    /// A token with its lifetime. `force_refresh` asks WeChat for a new one even though the
    /// current one has not expired (after a 40001).
    async fn fetch(&self, force_refresh: bool) -> Result<(Secret, Duration), WechatError>;
}

/// What the manager knows of why it is asked for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// 40001: WeChat does not (any longer) accept the token.
    Invalid,
    /// 42001: the token expired.
    Expired,
}

/// The access token of one app. Cheap to clone; clones share the cache and the flight.
#[derive(Debug, Clone)]
pub struct AccessTokens {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    appid: String,
    source: Arc<dyn TokenSource>,
    shared: Option<Arc<dyn SharedTokens>>,
    cached: Mutex<Option<AccessToken>>,
    /// The single flight: held by whoever is fetching; everybody else waits on it and then
    /// finds the new token in the cache.
    flight: tokio::sync::Mutex<()>,
}

/// How long one instance may hold the shared refresh lock: above a token call's deadline.
const SHARED_LEASE: Duration = Duration::from_secs(15);
/// How often an instance waiting on another's refresh looks at the shared cache.
const SHARED_POLL: Duration = Duration::from_millis(50);

impl AccessTokens {
    pub fn new(
        appid: impl Into<String>,
        source: Arc<dyn TokenSource>,
        shared: Option<Arc<dyn SharedTokens>>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                appid: appid.into(),
                source,
                shared,
                cached: Mutex::new(None),
                flight: tokio::sync::Mutex::new(()),
            }),
        }
    }

    fn cached(&self) -> Option<AccessToken> {
        self.inner
            .cached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn remember(&self, token: &AccessToken) {
        *self.inner.cached.lock().unwrap_or_else(|e| e.into_inner()) = Some(token.clone());
    }

    /// A token good for a request starting now.
    pub async fn current(&self) -> Result<AccessToken, WechatError> {
        if let Some(token) = self.cached().filter(|t| t.fresh_at(unix_now())) {
            return Ok(token);
        }
        self.refresh(None).await
    }

    /// A token other than `rejected`, which WeChat just refused. Many requests may report the
    /// same rejected token at once; only the first refetches.
    pub async fn replace(
        &self,
        rejected: &AccessToken,
        why: Rejection,
    ) -> Result<AccessToken, WechatError> {
        if why == Rejection::Invalid && rejected.fresh_at(unix_now()) {
            // Reported once per rejected token: the others find it replaced below.
            if self.cached().as_ref() == Some(rejected) {
                tracing::warn!(
                    appid = %self.inner.appid,
                    "WeChat rejected an access_token that our clock says is still valid (40001): \
                     something else fetched a new token for this AppID and invalidated ours. \
                     Let this server be the only one that fetches it."
                );
            }
        }
        self.refresh(Some(rejected)).await
    }

    /// The single flight. `rejected`: the token that must not come back.
    async fn refresh(&self, rejected: Option<&AccessToken>) -> Result<AccessToken, WechatError> {
        let _flight = self.inner.flight.lock().await;
        let usable = |t: &AccessToken| t.fresh_at(unix_now()) && Some(t) != rejected;
        // Whoever held the flight before us may have fetched what we need.
        if let Some(token) = self.cached().filter(usable) {
            return Ok(token);
        }
        let token = match &self.inner.shared {
            None => self.fetch(rejected.is_some()).await?,
            Some(shared) => {
                self.refresh_shared(shared.as_ref(), &usable, rejected.is_some())
                    .await?
            }
        };
        self.remember(&token);
        Ok(token)
    }

    async fn refresh_shared(
        &self,
        shared: &dyn SharedTokens,
        usable: &(dyn Fn(&AccessToken) -> bool + Sync),
        force: bool,
    ) -> Result<AccessToken, WechatError> {
        let appid = &self.inner.appid;
        let deadline = tokio::time::Instant::now() + SHARED_LEASE + Duration::from_secs(1);
        loop {
            if let Some(token) = shared
                .get(appid)
                .await
                .map_err(store_trouble)?
                .map(AccessToken::from)
                .filter(usable)
            {
                return Ok(token);
            }
            if shared
                .try_lock(appid, SHARED_LEASE)
                .await
                .map_err(store_trouble)?
            {
                // Another instance may have refreshed and unlocked between our read and our
                // lock: its token is the one to use, and fetching again would invalidate it.
                let theirs = shared
                    .get(appid)
                    .await
                    .map(|t| t.map(AccessToken::from).filter(usable));
                if let Ok(Some(token)) = theirs {
                    if let Err(e) = shared.unlock(appid).await {
                        tracing::warn!(error = %e, "could not release the access_token lock");
                    }
                    return Ok(token);
                }
                let fetched = self.fetch(force).await;
                let stored = match &fetched {
                    Ok(token) => shared.put(appid, &token.into()).await,
                    Err(_) => Ok(()),
                };
                if let Err(e) = shared.unlock(appid).await {
                    tracing::warn!(error = %e, "could not release the access_token lock");
                }
                if let Err(e) = stored {
                    tracing::warn!(error = %e, "could not share the new access_token");
                }
                return fetched;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(WechatError::Timeout);
            }
            tokio::time::sleep(SHARED_POLL).await;
        }
    }

    async fn fetch(&self, force: bool) -> Result<AccessToken, WechatError> {
        let (value, lifetime) = self.inner.source.fetch(force).await?;
        tracing::info!(appid = %self.inner.appid, expires_in = lifetime.as_secs(), force, "access_token fetched");
        Ok(AccessToken {
            value,
            expires_at: unix_now().saturating_add(lifetime.as_secs() as i64),
        })
    }

    /// Runs `call` with the current token; when WeChat rejects the token (40001, 42001), gets
    /// another and runs it once more.
    pub async fn with_token<T, F, Fut>(&self, mut call: F) -> Result<T, WechatError>
    where
        F: FnMut(AccessToken) -> Fut,
        Fut: Future<Output = Result<T, TokenCallError>>,
    {
        let token = self.current().await?;
        match call(token.clone()).await {
            Ok(value) => Ok(value),
            Err(TokenCallError::Rejected(why)) => {
                let token = self.replace(&token, why).await?;
                match call(token).await {
                    Ok(value) => Ok(value),
                    Err(TokenCallError::Rejected(_)) => Err(WechatError::Other {
                        errcode: 40001,
                        errmsg: "a freshly fetched access_token was rejected too".into(),
                    }),
                    Err(TokenCallError::Other(e)) => Err(e),
                }
            }
            Err(TokenCallError::Other(e)) => Err(e),
        }
    }
}

/// How a call that uses the access token failed.
#[derive(Debug)]
pub enum TokenCallError {
    /// The token was refused; another may work.
    Rejected(Rejection),
    Other(WechatError),
}

fn store_trouble(e: StoreError) -> WechatError {
    WechatError::Unreachable(format!("shared access_token store: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LocalSharedTokens;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Hands out `t1`, `t2`, … each lasting `lifetime`, after a short pause so that concurrent
    /// callers really overlap.
    #[derive(Debug)]
    struct Counting {
        fetched: AtomicU32,
        lifetime: Duration,
    }

    impl Counting {
        fn new(lifetime: Duration) -> Arc<Self> {
            Arc::new(Self {
                fetched: AtomicU32::new(0),
                lifetime,
            })
        }
    }

    #[async_trait]
    impl TokenSource for Counting {
        async fn fetch(&self, _force: bool) -> Result<(Secret, Duration), WechatError> {
            tokio::task::yield_now().await;
            let n = self.fetched.fetch_add(1, Ordering::SeqCst) + 1;
            Ok((Secret::new(format!("t{n}")), self.lifetime))
        }
    }

    async fn all<T>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
        let mut out = Vec::new();
        for task in tasks {
            out.push(task.await.unwrap());
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_cause_one_fetch_and_share_its_token() {
        let source = Counting::new(Duration::from_secs(7200));
        let tokens = AccessTokens::new("wxA", source.clone(), None);
        let tasks = (0..32)
            .map(|_| {
                let tokens = tokens.clone();
                tokio::spawn(async move { tokens.current().await.unwrap().value })
            })
            .collect();
        let got = all(tasks).await;
        assert_eq!(source.fetched.load(Ordering::SeqCst), 1);
        assert!(got.iter().all(|t| t.expose() == "t1"));
        // Cached: no more fetches.
        tokens.current().await.unwrap();
        assert_eq!(source.fetched.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_token_within_the_margin_of_its_expiry_is_replaced_before_use() {
        // Tokens that are born inside the margin are never served from the cache.
        let source = Counting::new(EXPIRY_MARGIN - Duration::from_secs(1));
        let tokens = AccessTokens::new("wxA", source.clone(), None);
        assert_eq!(tokens.current().await.unwrap().value.expose(), "t1");
        assert_eq!(tokens.current().await.unwrap().value.expose(), "t2");
        // One second beyond the margin: served from the cache now.
        let source = Counting::new(EXPIRY_MARGIN + Duration::from_secs(60));
        let tokens = AccessTokens::new("wxA", source.clone(), None);
        tokens.current().await.unwrap();
        tokens.current().await.unwrap();
        assert_eq!(source.fetched.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rejected_token_is_replaced_once_however_many_report_it() {
        let source = Counting::new(Duration::from_secs(7200));
        let tokens = AccessTokens::new("wxA", source.clone(), None);
        let t1 = tokens.current().await.unwrap();
        let tasks = (0..16)
            .map(|_| {
                let (tokens, t1) = (tokens.clone(), t1.clone());
                tokio::spawn(
                    async move { tokens.replace(&t1, Rejection::Invalid).await.unwrap().value },
                )
            })
            .collect();
        let got = all(tasks).await;
        assert_eq!(source.fetched.load(Ordering::SeqCst), 2);
        assert!(got.iter().all(|t| t.expose() == "t2"));
    }

    #[tokio::test]
    async fn a_call_rejected_for_its_token_is_retried_once_with_a_new_one() {
        let source = Counting::new(Duration::from_secs(7200));
        let tokens = AccessTokens::new("wxA", source.clone(), None);
        let used = Mutex::new(Vec::new());
        let result = tokens
            .with_token(|token| {
                used.lock().unwrap().push(token.value.expose().to_owned());
                async move {
                    if token.value.expose() == "t1" {
                        Err(TokenCallError::Rejected(Rejection::Expired))
                    } else {
                        Ok(token.value.expose().to_owned())
                    }
                }
            })
            .await
            .unwrap();
        assert_eq!(result, "t2");
        assert_eq!(*used.lock().unwrap(), ["t1", "t2"]);
        // Rejected every time: one retry, then a clear error, not a loop.
        let calls = AtomicU32::new(0);
        let err = tokens
            .with_token(|_| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>(TokenCallError::Rejected(Rejection::Invalid)) }
            })
            .await
            .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(err.to_string().contains("40001"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn instances_sharing_a_store_fetch_one_token_between_them() {
        let source = Counting::new(Duration::from_secs(7200));
        let shared: Arc<dyn SharedTokens> = Arc::new(LocalSharedTokens::default());
        // Two instances: separate managers (caches, flights) over one shared store.
        let a = AccessTokens::new("wxA", source.clone(), Some(shared.clone()));
        let b = AccessTokens::new("wxA", source.clone(), Some(shared.clone()));
        let tasks = (0..32)
            .map(|n| {
                let tokens = if n % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move { tokens.current().await.unwrap().value })
            })
            .collect();
        let got = all(tasks).await;
        assert_eq!(source.fetched.load(Ordering::SeqCst), 1);
        assert!(got.iter().all(|t| t.expose() == "t1"));
        // One instance's replacement is the other's too.
        let t1 = a.current().await.unwrap();
        let t2 = a.replace(&t1, Rejection::Invalid).await.unwrap();
        assert_eq!(b.replace(&t1, Rejection::Invalid).await.unwrap(), t2);
        assert_eq!(source.fetched.load(Ordering::SeqCst), 2);
    }

    /// A shared store whose first read, by the instance under test, is held until the test
    /// lets it go: that instance sees no token, then another instance fetches and unlocks.
    #[derive(Debug, Default)]
    struct HeldFirstRead {
        store: LocalSharedTokens,
        reads: AtomicU32,
        read_done: tokio::sync::Notify,
        release: tokio::sync::Notify,
    }

    #[async_trait]
    impl SharedTokens for HeldFirstRead {
        async fn get(&self, appid: &str) -> Result<Option<SharedToken>, StoreError> {
            let read = self.store.get(appid).await;
            if self.reads.fetch_add(1, Ordering::SeqCst) == 0 {
                self.read_done.notify_one();
                self.release.notified().await;
            }
            read
        }
        async fn put(&self, appid: &str, token: &SharedToken) -> Result<(), StoreError> {
            self.store.put(appid, token).await
        }
        async fn try_lock(&self, appid: &str, lease: Duration) -> Result<bool, StoreError> {
            self.store.try_lock(appid, lease).await
        }
        async fn unlock(&self, appid: &str) -> Result<(), StoreError> {
            self.store.unlock(appid).await
        }
    }

    #[tokio::test]
    async fn an_instance_that_wins_the_lock_after_another_refreshed_uses_that_token() {
        let source = Counting::new(Duration::from_secs(7200));
        let held = Arc::new(HeldFirstRead::default());
        let a = AccessTokens::new("wxA", source.clone(), Some(held.clone()));
        let b = AccessTokens::new("wxA", source.clone(), Some(held.clone()));
        // A reads the shared cache (empty) and is held there...
        let late = tokio::spawn(async move { a.current().await.unwrap().value });
        held.read_done.notified().await;
        // ...while B fetches, shares and unlocks.
        let fresh = b.current().await.unwrap().value;
        held.release.notify_one();
        // A now wins the free lock, but must not fetch again.
        assert_eq!(late.await.unwrap(), fresh);
        assert_eq!(source.fetched.load(Ordering::SeqCst), 1);
    }
}
