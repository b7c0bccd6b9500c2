//! What a person costs a store at a million accounts: the account itself (its row, its
//! identities, the key history of its mini-program user) and its session, each apart, on
//! SQLite (bytes in the file) and on Redis (`used_memory`).
//!
//! Every account is made as a first login makes it, through the store's own code, with an
//! openid and a unionid (an app bound to an Open Platform account, so two identities): on
//! SQLite `LoginWrites::resolve_and_start`, the login's one write; on Redis
//! `AccountStore::resolve` and `UserStore::add_session_key`, then `SessionStore::insert` with
//! the account's id. Each resolve also queues an `account.created` event; the outbox is
//! capped and drains as webhooks are delivered (or dropped without a receiver), so it is
//! reported on its own and counted in neither figure.
//!
//! SQLite splits its file by B-tree with the `dbstat` table, so one fill gives both figures.
//! Redis has no such split: `used_memory` is read once the accounts and their key histories
//! are written and again after the sessions.

use std::sync::Arc;

use rusqlite::Connection;
use server::{
    DEV_APPID, UserId,
    data_keys::{DataKeys, SessionKey},
    store::{
        AccountStore, ClaimKey, Creation, LegacyImport, LoginIdentity, LoginWrites, Outcome,
        RedisStore, Session, SessionStore, Settlement, SqliteOptions, SqliteStore, StoreError,
        UserStore, unix_now,
    },
    token::{SealedToken, Token, TokenHash, TokenShape},
    wechat::simulator::Simulator,
};

use crate::{Result, cpus::CpuPlan, processes::TempDir};

/// Logins in flight: enough to fill the SQLite writer's batches and Redis's pipeline.
const CONCURRENCY: u64 = 256;

/// One store's figures at `accounts` accounts, in bytes.
#[derive(Debug, Clone)]
pub struct AccountsFootprint {
    pub accounts: u64,
    pub account_bytes: u64,
    pub session_bytes: u64,
    /// The outbox's share, apart from both.
    pub outbox_bytes: u64,
    pub fill_seconds: f64,
}

impl AccountsFootprint {
    pub fn per_account(&self) -> f64 {
        self.account_bytes as f64 / self.accounts as f64
    }

    pub fn per_session(&self) -> f64 {
        self.session_bytes as f64 / self.accounts as f64
    }
}

/// The B-trees of each part of the SQLite file.
const ACCOUNT_TREES: [&str; 4] = ["accounts", "identities", "identities_user_id", "users"];
const SESSION_TREES: [&str; 3] = ["sessions", "sessions_expires_at", "sessions_user_id"];
const OUTBOX_TREES: [&str; 2] = ["outbox", "outbox_due_at"];

pub async fn sqlite(accounts: u64) -> Result<AccountsFootprint> {
    let dir = TempDir::new("bench-accounts-sqlite")?;
    let path = dir.path().join("sessions.db");
    let keys = DataKeys::generate();
    let options = SqliteOptions {
        legacy: LegacyImport {
            appid: DEV_APPID.to_owned(),
            data_keys: keys.clone(),
        },
    };
    let store = SqliteStore::open(&path, &options)?;
    let started = std::time::Instant::now();
    sqlite_logins(&store, &keys, accounts).await?;
    let fill_seconds = started.elapsed().as_secs_f64();
    drop(store);
    let conn = Connection::open(&path)?;
    super::sqlite::checkpoint_whole(&conn)?;
    let trees = |names: &[&str]| -> Result<u64> {
        let mut total = 0;
        for name in names {
            let bytes: i64 = conn.query_row(
                "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = ?1",
                [name],
                |row| row.get(0),
            )?;
            if bytes == 0 && !name.starts_with("outbox") {
                return Err(format!("the SQLite file has no B-tree {name}").into());
            }
            total += bytes as u64;
        }
        Ok(total)
    };
    Ok(AccountsFootprint {
        accounts,
        account_bytes: trees(&ACCOUNT_TREES)?,
        session_bytes: trees(&SESSION_TREES)?,
        outbox_bytes: trees(&OUTBOX_TREES)?,
        fill_seconds,
    })
}

pub async fn redis(accounts: u64, cpus: &CpuPlan) -> Result<AccountsFootprint> {
    let mut empty = super::redis::EmptyRedis::start(cpus).await?;
    let (store, keys) = (empty.store.clone(), empty.keys.clone());
    let before = super::redis::used_memory(&mut empty.conn).await?;
    let started = std::time::Instant::now();
    redis_accounts(&store, &keys, accounts).await?;
    let outbox_bytes = outbox_memory(&mut empty.conn).await?;
    let with_accounts = super::redis::used_memory(&mut empty.conn).await?;
    redis_sessions(&store, &keys, accounts).await?;
    let with_sessions = super::redis::used_memory(&mut empty.conn).await?;
    Ok(AccountsFootprint {
        accounts,
        account_bytes: with_accounts
            .saturating_sub(before)
            .saturating_sub(outbox_bytes),
        session_bytes: with_sessions.saturating_sub(with_accounts),
        outbox_bytes,
        fill_seconds: started.elapsed().as_secs_f64(),
    })
}

/// What the outbox's keys take (`MEMORY USAGE … SAMPLES 0`: every element counted).
async fn outbox_memory(conn: &mut redis::aio::MultiplexedConnection) -> Result<u64> {
    // SCAN in steps rather than KEYS: one KEYS over millions of keys outlasts the
    // connection's response timeout.
    let mut names = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("*outbox*")
            .arg("COUNT")
            .arg(10_000)
            .query_async(conn)
            .await?;
        names.extend(found);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    if names.is_empty() {
        return Err("Redis holds no outbox after a million accounts were made".into());
    }
    let mut total = 0;
    for name in names {
        let bytes: u64 = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(&name)
            .arg("SAMPLES")
            .arg(0)
            .query_async(conn)
            .await?;
        total += bytes;
    }
    Ok(total)
}

/// Runs `each` for every person `i` below `people`, [`CONCURRENCY`] at a time, each call with
/// its own handles to the store, the data keys and the simulator.
async fn for_each_person<S, F, Fut>(store: &S, keys: &DataKeys, people: u64, each: F) -> Result
where
    S: Clone + Send + Sync + 'static,
    F: Fn(S, DataKeys, Arc<Simulator>, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = std::result::Result<(), StoreError>> + Send,
{
    let sim = Arc::new(super::simulator());
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..CONCURRENCY {
        let (each, store, keys, sim) = (each.clone(), store.clone(), keys.clone(), sim.clone());
        tasks.spawn(async move {
            for i in (lane..people).step_by(CONCURRENCY as usize) {
                each(store.clone(), keys.clone(), sim.clone(), i).await?;
            }
            Ok::<_, StoreError>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// Person `i` as WeChat names them to the dev app: an openid and a unionid.
fn person(sim: &Simulator, i: u64) -> (String, String) {
    let user = format!("person-{i}");
    (sim.openid_for(&user), sim.unionid_for(&user))
}

fn login<'a>(openid: &'a str, unionid: &'a str) -> LoginIdentity<'a> {
    LoginIdentity {
        appid: DEV_APPID,
        openid,
        unionid: Some(unionid),
    }
}

/// A session of person `i`, of the shape a login stores.
fn session_of(keys: &DataKeys, sim: &Simulator, i: u64, user_id: UserId) -> (TokenHash, Session) {
    let (openid, unionid) = person(sim, i);
    let (token, mut session) = super::session(i, i + 1, keys, sim);
    session.openid = openid;
    session.unionid = Some(unionid);
    session.user_id = user_id;
    (token.hash(), session)
}

/// SQLite: every person's first login as the server makes it there, one write each.
async fn sqlite_logins(store: &SqliteStore, keys: &DataKeys, people: u64) -> Result {
    for_each_person(store, keys, people, |store, keys, sim, i| async move {
        let (openid, unionid) = person(&sim, i);
        let user_id = UserId::generate();
        let (hash, session) = session_of(&keys, &sim, i, user_id);
        // Claims live in the process on SQLite: the store leaves this to its caller.
        let settle = Settlement {
            claim: ClaimKey::new(*hash.as_bytes()),
            outcome: Outcome::Issued {
                sealed_token: SealedToken {
                    shape: TokenShape::Ordered,
                    bytes: [0; 32],
                },
                expires_at: session.expires_at,
            },
            keep: std::time::Duration::from_secs(60),
        };
        store
            .resolve_and_start(
                &login(&openid, &unionid),
                Creation::Allowed(user_id),
                unix_now(),
                hash,
                session,
                &settle,
            )
            .await
            .map(drop)
    })
    .await
}

/// Redis: each person's account and key history, as a first login writes them.
async fn redis_accounts(store: &RedisStore, keys: &DataKeys, people: u64) -> Result {
    for_each_person(store, keys, people, |store, keys, sim, i| async move {
        let (openid, unionid) = person(&sim, i);
        let create = Creation::Allowed(UserId::generate());
        store
            .resolve(&login(&openid, &unionid), create, unix_now())
            .await?;
        let raw = format!("{}==", &Token::generate().as_str()[..22]);
        let sealed = keys.seal(&SessionKey::new(raw), DEV_APPID, &openid);
        store.add_session_key(DEV_APPID, &openid, sealed).await
    })
    .await
}

/// Redis: a session of each person, under their account.
async fn redis_sessions(store: &RedisStore, keys: &DataKeys, people: u64) -> Result {
    for_each_person(store, keys, people, |store, keys, sim, i| async move {
        let (openid, unionid) = person(&sim, i);
        let account = store
            .find(&login(&openid, &unionid))
            .await?
            .ok_or_else(|| StoreError::Unavailable("an account the bench made is gone".into()))?;
        let (hash, session) = session_of(&keys, &sim, i, account.user_id);
        store.insert(hash, session).await
    })
    .await
}
