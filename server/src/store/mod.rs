//! Session stores: where a login lives between requests, keyed by the token's hash.
//!
//! Handlers talk to `dyn SessionStore` and never know which backend runs. Every backend obeys
//! the same contract, checked by one shared test suite (`store::contract_tests`):
//! - keys are [`TokenHash`]es, never raw tokens;
//! - `get` treats an expired session as absent, so expiry holds even before the stores that
//!   keep expired sessions (those implementing [`ExpiredDeletion`]) delete them;
//! - `remove` is idempotent and takes effect for every reader at once;
//! - a session comes back as it went in, its appid and sealed session_key included: stores
//!   never see a session_key in the clear (see `data_keys.rs`).
//!
//! The stores sit under `wechat` and everything HTTP, and use only the modules below them
//! (`time`, `token`, `data_keys`, `metrics`): each backend takes what it needs as options of
//! its own ([`StoreOptions`]), not the server's configuration, so the stores can be reasoned
//! about, and tested, apart from the rest of the server.

mod access_tokens;
mod accounts;
mod claims;
mod expiry;
mod logins;
mod memory;
mod memory_accounts;
mod options;
#[cfg(feature = "redis-store")]
mod redis;
mod session_cache;
mod sqlite;
mod tickets;
mod url;
mod users;

pub use access_tokens::{LocalSharedTokens, SharedToken, SharedTokens};
#[cfg(any(test, feature = "contract-tests"))]
pub use accounts::contract_tests as account_contract_tests;
pub use accounts::{
    Account, AccountEvent, AccountStore, Creation, Identity, LinkedIdentity, LoginIdentity,
    OUTBOX_CAP, Outbox, OutboxEntry, PhoneBinding, Resolution, UserId,
};
#[cfg(any(test, feature = "contract-tests"))]
pub use claims::contract_tests as claim_contract_tests;
pub use claims::{
    ClaimKey, ClaimState, ClaimStore, DEFAULT_MAX_CLAIMS, LocalClaims, Outcome, Refusal,
};
pub use expiry::{ExpiredDeletion, spawn_expiry_deletion};
#[cfg(any(test, feature = "contract-tests"))]
pub use logins::contract_tests as login_contract_tests;
pub use logins::{LoginWrites, Settlement, Started, admitted};
pub use memory::MemoryStore;
pub use options::{LegacyImport, RedisOptions, SqliteOptions, StoreOptions};
#[cfg(feature = "redis-store")]
pub use redis::{CacheStats, INVALIDATION_LEASE, RedisStore};
pub use session_cache::SessionCache;
pub use sqlite::SqliteStore;
#[cfg(any(test, feature = "contract-tests"))]
pub use tickets::contract_tests as ticket_contract_tests;
pub use tickets::{Listener, LocalTickets, TicketSignals, TicketStore, Versioned};
pub use url::StoreUrl;
#[cfg(any(test, feature = "contract-tests"))]
pub use users::contract_tests as user_contract_tests;
pub use users::{KEY_HISTORY, Phone, UserRecord, UserStore};

use std::{fmt, num::NonZeroUsize, sync::Arc};

use async_trait::async_trait;

use crate::{data_keys::SealedSessionKey, token::TokenHash};

/// What the server remembers about one login. Serialisable for stores that keep it as a
/// document (Redis); the fields added with accounts have defaults, so documents written
/// before them still read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Session {
    /// The account the session belongs to; [`UserId::UNKNOWN`] for a session stored before
    /// accounts existed and not yet adopted (see [`AccountStore::adopt_legacy_users`]).
    #[serde(default = "unknown_user")]
    pub user_id: UserId,
    #[serde(default)]
    pub kind: SessionKind,
    /// The mini-program the login was for: a token is valid for its own app only, even where
    /// several apps share one store.
    pub appid: String,
    pub openid: String,
    pub unionid: Option<String>,
    /// WeChat's key for this user's encrypted open data, sealed under the data key (see
    /// `data_keys.rs`): a leaked store does not yield it. Server-side only: WeChat forbids
    /// sending it to the client.
    pub session_key: SealedSessionKey,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; the session is gone from this instant on.
    pub expires_at: i64,
    /// The client's address at login, for its owner's session list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// What the client logged in on (its own word, or its `User-Agent`), for the same list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

fn unknown_user() -> UserId {
    UserId::UNKNOWN
}

/// How a session was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    /// A `POST /login` from a mini-program: it has an app, an openid and a session_key.
    #[default]
    Miniprogram,
    /// A browser's, made by a web login the person confirmed in the mini-program: an account
    /// only, with no app, openid or session_key of its own.
    Web,
    /// An OpenID Connect access token: for one client (kept where a mini-program session
    /// keeps its app) and for `/oauth/userinfo` only.
    Oidc,
}

impl SessionKind {
    /// The name the API and the stores use.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Miniprogram => "miniprogram",
            SessionKind::Web => "web",
            SessionKind::Oidc => "oidc",
        }
    }

    /// The kind [`SessionKind::as_str`] names.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "miniprogram" => Some(SessionKind::Miniprogram),
            "web" => Some(SessionKind::Web),
            "oidc" => Some(SessionKind::Oidc),
            _ => None,
        }
    }
}

impl Session {
    /// A browser's session of the account `user_id`. The fields only a mini-program session
    /// has stay empty, so every store keeps both kinds in one shape.
    pub fn web(
        user_id: UserId,
        created_at: i64,
        expires_at: i64,
        ip: Option<String>,
        device: Option<String>,
    ) -> Self {
        Self {
            user_id,
            kind: SessionKind::Web,
            appid: String::new(),
            openid: String::new(),
            unionid: None,
            session_key: SealedSessionKey::from_bytes(Vec::new()),
            created_at,
            expires_at,
            ip,
            device,
        }
    }
}

/// Why a store operation failed. Callers answer 503 for all of them: the store, not the
/// request, is at fault, and the client should retry rather than log in again.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    #[error("session store data is corrupt: {0}")]
    Corrupt(String),
    /// The claims table of this process holds its most codes, every one in the middle of its
    /// exchange: a flood of logins, not a broken store, so it is told apart.
    #[error("{0} login codes are being exchanged at once, the most this process holds")]
    ClaimsFull(usize),
}

impl StoreError {
    /// The `kind` label of the store-errors metric.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Corrupt(_) => "corrupt",
            StoreError::ClaimsFull(_) => "claims_full",
        }
    }
}

#[async_trait]
pub trait SessionStore: Send + Sync + fmt::Debug {
    /// Saves a new session under `key`, replacing any session stored there.
    async fn insert(&self, key: TokenHash, session: Session) -> Result<(), StoreError>;

    /// The session under `key`, or `None` when there is none or it expired before `now`.
    /// Shared rather than owned: a cache answers `/checklogin` with a reference count, not a
    /// copy of every string in the session.
    async fn get(&self, key: TokenHash, now: i64) -> Result<Option<Arc<Session>>, StoreError>;

    /// Deletes the session under `key`; `true` when one was there. Deleting twice is fine.
    async fn remove(&self, key: TokenHash) -> Result<bool, StoreError>;

    /// The live sessions of the account `user_id` at `now`, in no particular order.
    async fn of_account(
        &self,
        user_id: UserId,
        now: i64,
    ) -> Result<Vec<(TokenHash, Arc<Session>)>, StoreError>;

    /// Deletes every session of `keys`, as [`SessionStore::remove`] would one by one; the
    /// number that were there. Stores that can do it in fewer round trips, or wait once for
    /// every instance to see it, say so by overriding.
    async fn remove_many(&self, keys: &[TokenHash]) -> Result<usize, StoreError> {
        let mut removed = 0;
        for key in keys {
            removed += usize::from(self.remove(*key).await?);
        }
        Ok(removed)
    }

    /// Ends every session of the account `user_id`, expired ones included, as
    /// [`SessionStore::remove_many`] does: every cache and instance sees it. The number that
    /// were there.
    async fn remove_account(&self, user_id: UserId) -> Result<usize, StoreError> {
        let keys: Vec<TokenHash> = self
            .of_account(user_id, i64::MIN)
            .await?
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        self.remove_many(&keys).await
    }
}

/// The stores one server uses: sessions, claims on login codes, what is kept per user,
/// accounts and their outbox.
#[derive(Debug, Clone)]
pub struct Stores {
    pub sessions: Arc<dyn SessionStore>,
    pub claims: Arc<dyn ClaimStore>,
    pub users: Arc<dyn UserStore>,
    pub accounts: Arc<dyn AccountStore>,
    pub outbox: Arc<dyn Outbox>,
    /// Where instances sharing this store share the app's access token (Redis); `None` for
    /// stores one process owns, whose token lives in that process.
    pub tokens: Option<Arc<dyn SharedTokens>>,
    /// What deletes the expired sessions of a store that keeps them until told to (see
    /// [`spawn_expiry_deletion`]); `None` where nothing needs deleting: Redis expires its keys
    /// by itself.
    pub expiry: Option<Arc<dyn ExpiredDeletion>>,
    /// Web-login tickets: in this process for stores one process owns, shared through Redis.
    pub tickets: Arc<dyn TicketStore>,
    /// A login's writes as one step, where the store can make them one (SQLite, Redis);
    /// `None` makes them one by one through the stores above.
    pub logins: Option<Arc<dyn LoginWrites>>,
}

impl Stores {
    /// Sessions in `sessions`, code claims and users kept in this process: for tests that
    /// bring a session store of their own. Nothing deletes its expired sessions; set
    /// [`Stores::expiry`] for that.
    pub fn local(sessions: Arc<dyn SessionStore>) -> Self {
        let memory = Arc::new(MemoryStore::default());
        Self {
            sessions,
            claims: Arc::new(LocalClaims::default()),
            users: memory.clone(),
            accounts: memory.clone(),
            outbox: memory,
            tokens: None,
            expiry: None,
            tickets: Arc::new(LocalTickets::default()),
            logins: None,
        }
    }

    /// Sessions and users in `store`, code claims in this process: right for every backend
    /// that one process owns.
    pub fn single<S>(store: Arc<S>) -> Self
    where
        S: SessionStore + UserStore + AccountStore + Outbox + ExpiredDeletion + 'static,
    {
        Self {
            sessions: store.clone(),
            claims: Arc::new(LocalClaims::default()),
            users: store.clone(),
            accounts: store.clone(),
            outbox: store.clone(),
            tokens: None,
            expiry: Some(store),
            tickets: Arc::new(LocalTickets::default()),
            logins: None,
        }
    }

    /// Opens the stores `url` names, each backend with its own part of `options`.
    pub async fn open(url: &StoreUrl, options: &StoreOptions) -> Result<Self, StoreError> {
        let local_claims = || Arc::new(LocalClaims::with_cap(options.max_claims));
        Ok(match url {
            StoreUrl::Memory => Self {
                claims: local_claims(),
                ..Self::single(Arc::new(MemoryStore::default()))
            },
            StoreUrl::Sqlite(path) => {
                let sqlite = Arc::new(SqliteStore::open(path, &options.sqlite)?);
                let mut stores = Self::single(sqlite.clone());
                stores.claims = local_claims();
                stores.logins = Some(sqlite.clone());
                if let Some(capacity) = NonZeroUsize::new(options.session_cache) {
                    let cache = Arc::new(SessionCache::new(sqlite.clone(), capacity));
                    watch_other_writers(&sqlite, &cache);
                    stores.sessions = cache.clone();
                    stores.expiry = Some(cache);
                }
                stores
            }
            #[cfg(feature = "redis-store")]
            StoreUrl::Redis(url) => {
                let store = RedisStore::connect(url, &options.redis).await?;
                Self::redis(Arc::new(
                    store.with_session_cache(options.session_cache).await?,
                ))
            }
            #[cfg(feature = "redis-store")]
            StoreUrl::RedisCluster(seeds) => Self::redis(Arc::new(
                RedisStore::connect_cluster(seeds, &options.redis).await?,
            )),
            #[cfg(not(feature = "redis-store"))]
            StoreUrl::Redis(_) | StoreUrl::RedisCluster(_) => {
                return Err(StoreError::Unavailable(
                    "this build has no Redis support: build with the `redis-store` feature".into(),
                ));
            }
        })
    }

    /// Everything in `redis`, the access token included: what instances sharing it share.
    #[cfg(feature = "redis-store")]
    pub fn redis(redis: Arc<RedisStore>) -> Self {
        Self {
            sessions: redis.clone(),
            claims: redis.clone(),
            users: redis.clone(),
            accounts: redis.clone(),
            outbox: redis.clone(),
            tickets: redis.clone(),
            logins: Some(redis.clone()),
            tokens: Some(redis),
            expiry: None,
        }
    }
}

/// How often a SQLite store's cache looks for another process's writes: a change an operator
/// makes from the command line is seen within this.
pub const FOREIGN_WRITE_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// Empties `cache` whenever another process writes to the SQLite file behind it (an
/// operator disabling an account, another server on the same file), so that no ended session
/// is served from it. Stops when the cache is dropped.
fn watch_other_writers(sqlite: &Arc<SqliteStore>, cache: &Arc<SessionCache<SqliteStore>>) {
    let (sqlite, cache) = (sqlite.clone(), Arc::downgrade(cache));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(FOREIGN_WRITE_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(cache) = cache.upgrade() else { return };
            match sqlite.changed_elsewhere().await {
                Ok(true) => cache.clear(),
                Ok(false) => {}
                // Unknown: assume the worst.
                Err(_) => cache.clear(),
            }
        }
    });
}

/// Sessions are stamped in unix seconds; re-exported for the stores' callers and tests.
pub use crate::time::unix_now;

/// The contract every backend must meet. Each backend's tests call [`contract_tests::run_all`];
/// the feature `contract-tests` exports it for backends tested outside this crate (Redis).
#[cfg(any(test, feature = "contract-tests"))]
pub mod contract_tests {
    use super::*;
    use crate::{
        data_keys::{DataKeys, SessionKey},
        token::Token,
    };

    /// The app the contract's sessions belong to; a store under test is scoped to it.
    pub const APPID: &str = "wxcontracttest01";

    /// Options for a SQLite store under test: files older than sealing are adopted for
    /// [`APPID`], under a fresh data key.
    pub fn sqlite_options() -> SqliteOptions {
        SqliteOptions {
            legacy: LegacyImport {
                appid: APPID.into(),
                data_keys: DataKeys::generate(),
            },
        }
    }

    /// Options for a Redis store under test: [`APPID`]'s keys without a prefix, a fresh data
    /// key, and a second for every call, which a Redis on loopback answers well within.
    pub fn redis_options() -> RedisOptions {
        RedisOptions {
            appid: APPID.into(),
            key_prefix: String::new(),
            data_keys: DataKeys::generate(),
            timeout: std::time::Duration::from_secs(1),
        }
    }

    /// Timestamps are relative to the real clock: networked stores expire keys by real time.
    pub fn session(openid: &str, expires_in: i64) -> Session {
        let now = unix_now();
        let key = SessionKey::new("c2Vzc2lvbi1rZXktMTIzNA==");
        Session {
            user_id: UserId::generate(),
            kind: SessionKind::Miniprogram,
            appid: APPID.into(),
            openid: openid.into(),
            unionid: None,
            session_key: DataKeys::generate().seal(&key, APPID, openid),
            created_at: now,
            expires_at: now + expires_in,
            ip: Some("203.0.113.7".into()),
            device: Some("iPhone 15 / iOS 18.1".into()),
        }
    }

    /// Panics on the first broken rule.
    pub async fn run_all(store: &dyn SessionStore) {
        insert_then_get_round_trips(store).await;
        expired_sessions_are_invisible(store).await;
        remove_is_idempotent(store).await;
        insert_replaces(store).await;
        an_accounts_sessions_are_listed_and_ended_together(store).await;
    }

    async fn an_accounts_sessions_are_listed_and_ended_together(store: &dyn SessionStore) {
        let owner = UserId::generate();
        let mut keys = Vec::new();
        for n in 0..3 {
            let key = Token::generate().hash();
            let mut s = session(&format!("o-mine-{n}"), 3600);
            s.user_id = owner;
            store.insert(key, s).await.unwrap();
            keys.push(key);
        }
        let expired = Token::generate().hash();
        let mut s = session("o-mine-old", 60);
        s.user_id = owner;
        let old_expiry = s.expires_at;
        store.insert(expired, s).await.unwrap();
        let other = Token::generate().hash();
        store.insert(other, session("o-other", 3600)).await.unwrap();

        let mut listed: Vec<_> = store
            .of_account(owner, old_expiry)
            .await
            .unwrap()
            .into_iter()
            .map(|(k, s)| {
                assert_eq!(s.user_id, owner);
                k
            })
            .collect();
        listed.sort_by_key(|k| *k.as_bytes());
        let mut expected = keys.clone();
        expected.sort_by_key(|k| *k.as_bytes());
        assert_eq!(listed, expected, "live sessions of the account only");

        assert_eq!(store.remove_many(&keys[..2]).await.unwrap(), 2);
        assert_eq!(
            store.remove_many(&keys[..2]).await.unwrap(),
            0,
            "idempotent"
        );
        let left = store.of_account(owner, old_expiry).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].0, keys[2]);
        assert!(
            store.get(other, 0).await.unwrap().is_some(),
            "others untouched"
        );
        assert_eq!(store.get(keys[0], 0).await.unwrap(), None);
    }

    async fn insert_then_get_round_trips(store: &dyn SessionStore) {
        let key = Token::generate().hash();
        let mut s = session("o-round-trip", 3600);
        s.unionid = Some("u-1".into());
        store.insert(key, s.clone()).await.unwrap();
        // Every field comes back as it went in, the sealed session_key byte for byte.
        assert_eq!(store.get(key, unix_now()).await.unwrap(), Some(Arc::new(s)));
        let other = Token::generate().hash();
        assert_eq!(store.get(other, unix_now()).await.unwrap(), None);
    }

    async fn expired_sessions_are_invisible(store: &dyn SessionStore) {
        let old = Token::generate().hash();
        let live = Token::generate().hash();
        let s = session("o-old", 60);
        let expires_at = s.expires_at;
        store.insert(old, s).await.unwrap();
        store.insert(live, session("o-live", 3600)).await.unwrap();
        assert!(store.get(old, expires_at - 1).await.unwrap().is_some());
        assert_eq!(
            store.get(old, expires_at).await.unwrap(),
            None,
            "expiry is exclusive"
        );
        assert!(store.get(live, expires_at).await.unwrap().is_some());
    }

    /// For stores that keep expired sessions until told to delete them: the expired row is
    /// gone for good, not merely hidden, and the live one stays.
    pub async fn deletes_expired_sessions<S>(store: &S)
    where
        S: SessionStore + ExpiredDeletion + ?Sized,
    {
        let old = Token::generate().hash();
        let live = Token::generate().hash();
        let s = session("o-purged", 60);
        let expires_at = s.expires_at;
        store.insert(old, s).await.unwrap();
        store.insert(live, session("o-kept", 3600)).await.unwrap();
        assert!(store.delete_expired(expires_at).await.unwrap() >= 1);
        assert_eq!(store.get(old, 0).await.unwrap(), None, "purged for good");
        assert!(
            store.get(live, expires_at).await.unwrap().is_some(),
            "purging keeps live sessions"
        );
    }

    async fn remove_is_idempotent(store: &dyn SessionStore) {
        let key = Token::generate().hash();
        store.insert(key, session("o-rm", 3600)).await.unwrap();
        assert!(store.remove(key).await.unwrap());
        assert!(!store.remove(key).await.unwrap());
        assert_eq!(store.get(key, 0).await.unwrap(), None);
    }

    async fn insert_replaces(store: &dyn SessionStore) {
        let key = Token::generate().hash();
        store.insert(key, session("o-first", 3600)).await.unwrap();
        store.insert(key, session("o-second", 3600)).await.unwrap();
        assert_eq!(store.get(key, 0).await.unwrap().unwrap().openid, "o-second");
    }
}
