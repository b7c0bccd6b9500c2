//! The default store: one SQLite file, so `cargo run -p server` keeps logins across restarts
//! with nothing else installed.
//!
//! WAL journaling lets readers proceed while a write commits. `synchronous=FULL` syncs every
//! commit: with `NORMAL` a power cut could undo a logout that had already answered 204, and a
//! token the user believed dead would work again. rusqlite is synchronous, so each call runs on tokio's
//! blocking pool; `/checklogin` reads use their own connections so they never wait behind a
//! login's write.

use std::{
    path::Path,
    sync::{Arc, Mutex, MutexGuard},
};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::{Session, SessionStore, StoreError};
use crate::token::TokenHash;

/// Read connections; two cores serve well with a few more than two.
const READERS: usize = 4;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sessions (
    token_hash  BLOB PRIMARY KEY NOT NULL,
    openid      TEXT NOT NULL,
    unionid     TEXT,
    session_key TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_expires_at ON sessions (expires_at);
";

impl SqliteStore {
    /// Opens (creating if needed, parent folders included) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let writer = Connection::open(path).map_err(unavailable)?;
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 PRAGMA busy_timeout = 5000;",
            )
            .map_err(unavailable)?;
        writer.execute_batch(SCHEMA).map_err(unavailable)?;
        let readers = (0..READERS)
            .map(|_| {
                let conn = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(unavailable)?;
                conn.execute_batch("PRAGMA busy_timeout = 5000;")
                    .map_err(unavailable)?;
                Ok(Mutex::new(conn))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Self {
            inner: Arc::new(Inner {
                writer: Mutex::new(writer),
                readers,
            }),
        })
    }

    /// Runs `f` with the write connection on the blocking pool.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&lock(&inner.writer)).map_err(unavailable))
            .await
            .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
    }

    /// Runs `f` with the first idle read connection (or waits on one chosen by key).
    async fn read<T: Send + 'static>(
        &self,
        spread: usize,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = inner
                .readers
                .iter()
                .find_map(|m| m.try_lock().ok())
                .unwrap_or_else(|| lock(&inner.readers[spread % inner.readers.len()]));
            f(&conn).map_err(unavailable)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
    }
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // rusqlite rolls back an unfinished statement on drop, so a poisoned lock holds a usable
    // connection.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn insert(&self, key: TokenHash, s: Session) -> Result<(), StoreError> {
        self.write(move |c| {
            c.prepare_cached(
                "INSERT OR REPLACE INTO sessions
                 (token_hash, openid, unionid, session_key, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                key.as_bytes().as_slice(),
                s.openid,
                s.unionid,
                s.session_key,
                s.created_at,
                s.expires_at
            ])
            .map(drop)
        })
        .await
    }

    async fn get(&self, key: TokenHash, now: i64) -> Result<Option<Session>, StoreError> {
        self.read(key.as_bytes()[0] as usize, move |c| {
            c.prepare_cached(
                "SELECT openid, unionid, session_key, created_at, expires_at
                 FROM sessions WHERE token_hash = ?1 AND expires_at > ?2",
            )?
            .query_row(params![key.as_bytes().as_slice(), now], |row| {
                Ok(Session {
                    openid: row.get(0)?,
                    unionid: row.get(1)?,
                    session_key: row.get(2)?,
                    created_at: row.get(3)?,
                    expires_at: row.get(4)?,
                })
            })
            .optional()
        })
        .await
    }

    async fn remove(&self, key: TokenHash) -> Result<bool, StoreError> {
        self.write(move |c| {
            c.prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")?
                .execute(params![key.as_bytes().as_slice()])
                .map(|n| n > 0)
        })
        .await
    }

    async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        self.write(move |c| {
            c.prepare_cached("DELETE FROM sessions WHERE expires_at <= ?1")?
                .execute(params![now])
                .map(|n| n as u64)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn meets_the_store_contract() {
        let dir = tempdir();
        let store = SqliteStore::open(&dir.join("nested/sessions.db")).unwrap();
        super::super::contract_tests::run_all(&store).await;
        super::super::contract_tests::purge_deletes_expired_sessions(&store).await;
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn sessions_survive_reopening_the_file() {
        let dir = tempdir();
        let path = dir.join("sessions.db");
        let key = crate::token::Token::generate().hash();
        let session = Session {
            openid: "o-durable".into(),
            unionid: None,
            session_key: "k".into(),
            created_at: 1,
            expires_at: i64::MAX,
        };
        {
            let store = SqliteStore::open(&path).unwrap();
            store.insert(key, session.clone()).await.unwrap();
        }
        let reopened = SqliteStore::open(&path).unwrap();
        assert_eq!(reopened.get(key, 2).await.unwrap(), Some(session));
        std::fs::remove_dir_all(dir).ok();
    }

    fn tempdir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sqlite-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
