//! The default store: one SQLite file, so `cargo run -p server` keeps logins across restarts
//! with nothing else installed.
//!
//! WAL journaling lets readers proceed while a write commits. `synchronous=FULL` syncs every
//! commit: with `NORMAL` a power cut could undo a logout that had already answered 204, and a
//! token the user believed dead would work again. rusqlite is synchronous, so each call runs on tokio's
//! blocking pool; `/checklogin` reads use their own connections so they never wait behind a
//! login's write.
//!
//! The file is created readable by its owner only (SQLite gives its `-wal` and `-shm` files the
//! same mode), and its schema is versioned with `PRAGMA user_version`:
//! - 0: no table yet, or the table of versions before session_key was sealed (plaintext
//!   `session_key`, no `appid`). Such a file is adopted at open: every live row is sealed under
//!   the current data key and stamped with the server's AppID, expired rows are dropped, and
//!   the file is vacuumed and its WAL truncated so no plaintext session_key survives on disk.
//! - 1: `appid` per row, `session_key` a sealed BLOB.
//! - 2: a `users` table beside it: per app and openid, the last few sealed session_keys (JSON)
//!   and the phone number (JSON). Added empty to a version-1 file.

use std::{
    path::Path,
    sync::{Arc, Mutex, MutexGuard},
};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use rusqlite::TransactionBehavior;

use super::{Phone, Scope, Session, SessionStore, StoreError, UserRecord, UserStore};
use crate::{
    data_keys::{SealedSessionKey, SessionKey},
    token::TokenHash,
};

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

/// The schema this version writes, as `PRAGMA user_version` records it.
const SCHEMA_VERSION: i64 = 2;

const SCHEMA_V1: &str = "
CREATE TABLE sessions (
    token_hash  BLOB PRIMARY KEY NOT NULL,
    appid       TEXT NOT NULL,
    openid      TEXT NOT NULL,
    unionid     TEXT,
    session_key BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_expires_at ON sessions (expires_at);
";

const SCHEMA_V2: &str = "
CREATE TABLE users (
    appid        TEXT NOT NULL,
    openid       TEXT NOT NULL,
    session_keys TEXT NOT NULL,
    phone        TEXT,
    PRIMARY KEY (appid, openid)
) WITHOUT ROWID;
";

impl SqliteStore {
    /// Opens (creating if needed, parent folders included) the database at `path`, bringing
    /// a file of an older schema up to date for the app of `scope` (see the module doc).
    pub fn open(path: &Path, scope: &Scope) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        create_private(path)?;
        let mut writer = Connection::open(path).map_err(unavailable)?;
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 PRAGMA busy_timeout = 5000;",
            )
            .map_err(unavailable)?;
        migrate(&mut writer, scope)?;
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

/// Creates the database file with mode 0600 when it does not exist yet; SQLite would create
/// it with the umask's mode, typically readable by everyone. An existing file keeps the mode
/// its operator gave it.
fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Unavailable(format!(
            "cannot create {}: {e}",
            path.display()
        ))),
    }
}

/// Brings the file to [`SCHEMA_VERSION`]. One immediate transaction, so two processes opening
/// one new file at once do not both create the table.
fn migrate(conn: &mut Connection, scope: &Scope) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(unavailable)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(unavailable)?;
    let adopted = match version {
        SCHEMA_VERSION => return Ok(()),
        1 => {
            tx.execute_batch(SCHEMA_V2).map_err(unavailable)?;
            None
        }
        0 => {
            let legacy: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM sqlite_master
                     WHERE type = 'table' AND name = 'sessions')",
                    [],
                    |row| row.get(0),
                )
                .map_err(unavailable)?;
            let adopted = if legacy {
                Some(adopt_plaintext_sessions(&tx, scope)?)
            } else {
                tx.execute_batch(SCHEMA_V1).map_err(unavailable)?;
                None
            };
            tx.execute_batch(SCHEMA_V2).map_err(unavailable)?;
            adopted
        }
        newer => {
            return Err(StoreError::Corrupt(format!(
                "the database has schema version {newer}, newer than this server's \
                 ({SCHEMA_VERSION}): run the newer server, or move the file aside"
            )));
        }
    };
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(unavailable)?;
    tx.commit().map_err(unavailable)?;
    if let Some(count) = adopted {
        wipe_free_space(conn)?;
        tracing::info!(
            sessions = count,
            "SQLite store upgraded: plaintext session_keys sealed under the data key"
        );
    }
    Ok(())
}

/// Moves the rows of the unsealed schema into the current one: session_key sealed under the
/// current data key, `appid` the server's own (a file had one app's sessions). Expired rows are
/// not carried over. Returns how many rows were.
fn adopt_plaintext_sessions(tx: &Connection, scope: &Scope) -> Result<usize, StoreError> {
    tx.execute_batch(
        "DROP INDEX IF EXISTS sessions_expires_at;
         ALTER TABLE sessions RENAME TO sessions_unsealed;",
    )
    .map_err(unavailable)?;
    tx.execute_batch(SCHEMA_V1).map_err(unavailable)?;
    let mut select = tx
        .prepare(
            "SELECT token_hash, openid, unionid, session_key, created_at, expires_at
             FROM sessions_unsealed WHERE expires_at > ?1",
        )
        .map_err(unavailable)?;
    let mut insert = tx
        .prepare(
            "INSERT INTO sessions
             (token_hash, appid, openid, unionid, session_key, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(unavailable)?;
    let mut rows = select
        .query(params![super::unix_now()])
        .map_err(unavailable)?;
    let mut count = 0;
    while let Some(row) = rows.next().map_err(unavailable)? {
        let token_hash: Vec<u8> = row.get(0).map_err(unavailable)?;
        let openid: String = row.get(1).map_err(unavailable)?;
        let unionid: Option<String> = row.get(2).map_err(unavailable)?;
        let plain: String = row.get(3).map_err(unavailable)?;
        let sealed = scope
            .data_keys
            .seal(&SessionKey::new(plain), &scope.appid, &openid);
        let created_at: i64 = row.get(4).map_err(unavailable)?;
        let expires_at: i64 = row.get(5).map_err(unavailable)?;
        insert
            .execute(params![
                token_hash,
                scope.appid,
                openid,
                unionid,
                sealed.as_bytes(),
                created_at,
                expires_at
            ])
            .map_err(unavailable)?;
        count += 1;
    }
    drop(rows);
    drop(select);
    drop(insert);
    tx.execute_batch("DROP TABLE sessions_unsealed;")
        .map_err(unavailable)?;
    Ok(count)
}

/// Rewrites the file without the pages the plaintext lived in, and empties the WAL, which
/// held copies of them: a dropped table's pages otherwise stay on disk, readable, until reused.
fn wipe_free_space(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("VACUUM;").map_err(unavailable)?;
    let (busy, _, _): (i64, i64, i64) = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .map_err(unavailable)?;
    if busy != 0 {
        return Err(StoreError::Unavailable(
            "the upgraded database's WAL could not be emptied: another process has the file \
             open. Stop it and start again"
                .into(),
        ));
    }
    Ok(())
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
                 (token_hash, appid, openid, unionid, session_key, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                key.as_bytes().as_slice(),
                s.appid,
                s.openid,
                s.unionid,
                s.session_key.as_bytes(),
                s.created_at,
                s.expires_at
            ])
            .map(drop)
        })
        .await
    }

    async fn get(&self, key: TokenHash, now: i64) -> Result<Option<Arc<Session>>, StoreError> {
        self.read(key.as_bytes()[0] as usize, move |c| {
            c.prepare_cached(
                "SELECT appid, openid, unionid, session_key, created_at, expires_at
                 FROM sessions WHERE token_hash = ?1 AND expires_at > ?2",
            )?
            .query_row(params![key.as_bytes().as_slice(), now], |row| {
                Ok(Arc::new(Session {
                    appid: row.get(0)?,
                    openid: row.get(1)?,
                    unionid: row.get(2)?,
                    session_key: SealedSessionKey::from_bytes(row.get(3)?),
                    created_at: row.get(4)?,
                    expires_at: row.get(5)?,
                }))
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

/// JSON in a column: the store keeps the record's shape, never reads inside it.
fn to_json<T: serde::Serialize>(value: &T) -> rusqlite::Result<String> {
    serde_json::to_string(value).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))
}

fn from_json<T: serde::de::DeserializeOwned>(column: usize, text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, e.into())
    })
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn user(&self, appid: &str, openid: &str) -> Result<Option<UserRecord>, StoreError> {
        let (appid, openid) = (appid.to_owned(), openid.to_owned());
        self.read(openid.len(), move |c| {
            c.prepare_cached(
                "SELECT session_keys, phone FROM users WHERE appid = ?1 AND openid = ?2",
            )?
            .query_row(params![appid, openid], |row| {
                let keys: String = row.get(0)?;
                let phone: Option<String> = row.get(1)?;
                Ok(UserRecord {
                    session_keys: from_json(0, &keys)?,
                    phone: phone.map(|p| from_json(1, &p)).transpose()?,
                })
            })
            .optional()
        })
        .await
    }

    async fn add_session_key(
        &self,
        appid: &str,
        openid: &str,
        key: SealedSessionKey,
    ) -> Result<(), StoreError> {
        let (appid, openid) = (appid.to_owned(), openid.to_owned());
        // Read and write on the one write connection, in one transaction: two logins of one
        // user cannot lose each other's key.
        self.write(move |c| {
            let tx = c.unchecked_transaction()?;
            let keys: Option<String> = tx
                .prepare_cached("SELECT session_keys FROM users WHERE appid = ?1 AND openid = ?2")?
                .query_row(params![appid, openid], |row| row.get(0))
                .optional()?;
            let mut record = UserRecord {
                session_keys: keys
                    .map(|k| from_json(0, &k))
                    .transpose()?
                    .unwrap_or_default(),
                phone: None,
            };
            record.push_session_key(key);
            tx.prepare_cached(
                "INSERT INTO users (appid, openid, session_keys) VALUES (?1, ?2, ?3)
                 ON CONFLICT (appid, openid) DO UPDATE SET session_keys = excluded.session_keys",
            )?
            .execute(params![appid, openid, to_json(&record.session_keys)?])?;
            tx.commit()
        })
        .await
    }

    async fn set_phone(&self, appid: &str, openid: &str, phone: Phone) -> Result<(), StoreError> {
        let (appid, openid) = (appid.to_owned(), openid.to_owned());
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO users (appid, openid, session_keys, phone) VALUES (?1, ?2, '[]', ?3)
                 ON CONFLICT (appid, openid) DO UPDATE SET phone = excluded.phone",
            )?
            .execute(params![appid, openid, to_json(&phone)?])
            .map(drop)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::contract_tests::{APPID, scope};

    #[tokio::test(flavor = "multi_thread")]
    async fn meets_the_store_contract() {
        let dir = tempdir();
        let store = SqliteStore::open(&dir.join("nested/sessions.db"), &scope()).unwrap();
        super::super::contract_tests::run_all(&store).await;
        super::super::contract_tests::purge_deletes_expired_sessions(&store).await;
        super::super::user_contract_tests::run_all(&store).await;
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn a_version_1_file_gains_the_users_table_and_keeps_its_sessions() {
        let dir = tempdir();
        let path = dir.join("v1.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA_V1).unwrap();
            conn.execute_batch("PRAGMA user_version = 1;").unwrap();
            conn.execute(
                "INSERT INTO sessions VALUES (x'01', 'wxA', 'o-1', NULL, x'00', 0, 9999999999)",
                [],
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path, &scope()).unwrap();
        let rows: i64 = lock(&store.inner.writer)
            .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1, "the session is still there");
        super::super::user_contract_tests::run_all(&store).await;
        let version: i64 = lock(&store.inner.writer)
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn sessions_survive_reopening_the_file() {
        let dir = tempdir();
        let path = dir.join("sessions.db");
        let key = crate::token::Token::generate().hash();
        let scope = scope();
        let session = Session {
            appid: APPID.into(),
            openid: "o-durable".into(),
            unionid: None,
            session_key: scope
                .data_keys
                .seal(&SessionKey::new("k"), APPID, "o-durable"),
            created_at: 1,
            expires_at: i64::MAX,
        };
        {
            let store = SqliteStore::open(&path, &scope).unwrap();
            store.insert(key, session.clone()).await.unwrap();
        }
        let reopened = SqliteStore::open(&path, &scope).unwrap();
        assert_eq!(reopened.get(key, 2).await.unwrap(), Some(Arc::new(session)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        std::fs::remove_dir_all(dir).ok();
    }

    /// The schema of the versions before sealing, exactly as they created it.
    const UNSEALED_SCHEMA: &str = "
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

    #[tokio::test(flavor = "multi_thread")]
    async fn a_file_with_plaintext_session_keys_is_adopted_sealed_and_wiped() {
        let dir = tempdir();
        let path = dir.join("sessions.db");
        let plain = "UGxhaW50ZXh0U2Vzc2lvbktleQ==";
        let expired_plain = "RXhwaXJlZFNlc3Npb25LZXkxMg==";
        let live = crate::token::Token::generate().hash();
        let expired = crate::token::Token::generate().hash();
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch("PRAGMA journal_mode = WAL;").unwrap();
            old.execute_batch(UNSEALED_SCHEMA).unwrap();
            for (key, session_key, expires_at) in
                [(live, plain, i64::MAX), (expired, expired_plain, 10)]
            {
                old.execute(
                    "INSERT INTO sessions VALUES (?1, 'o-old', 'u-old', ?2, 5, ?3)",
                    params![key.as_bytes().as_slice(), session_key, expires_at],
                )
                .unwrap();
            }
            // As after a crash: the rows are in the WAL, not yet in the database file.
            std::mem::forget(old);
        }
        let scope = scope();
        let store = SqliteStore::open(&path, &scope).unwrap();

        let session = store.get(live, 6).await.unwrap().expect("adopted");
        assert_eq!(session.appid, APPID, "stamped with the server's app");
        assert_eq!(
            (session.openid.as_str(), session.unionid.as_deref()),
            ("o-old", Some("u-old"))
        );
        let opened = scope
            .data_keys
            .open(&session.session_key, APPID, "o-old")
            .unwrap();
        assert_eq!(opened.expose(), plain);
        assert_eq!(store.get(expired, 0).await.unwrap(), None, "dropped");

        let raw =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, plain).unwrap();
        for file in files_of(&path) {
            let bytes = std::fs::read(&file).unwrap();
            for needle in [plain.as_bytes(), raw.as_slice(), expired_plain.as_bytes()] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "plaintext session_key left in {}",
                    file.display()
                );
            }
        }
        drop(store);
        // Opening again finds the current schema and changes nothing.
        let again = SqliteStore::open(&path, &scope).unwrap();
        assert_eq!(again.get(live, 6).await.unwrap(), Some(session));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_file_from_a_newer_version_is_refused_not_rewritten() {
        let dir = tempdir();
        let path = dir.join("sessions.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 7;")
            .unwrap();
        let err = SqliteStore::open(&path, &scope()).unwrap_err().to_string();
        assert!(err.contains("schema version 7"), "{err}");
        std::fs::remove_dir_all(dir).ok();
    }

    /// The database file and whichever of its `-wal` and `-shm` companions exist.
    fn files_of(path: &Path) -> Vec<std::path::PathBuf> {
        let mut files = vec![path.to_owned()];
        for suffix in ["-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            let companion = std::path::PathBuf::from(name);
            if companion.exists() {
                files.push(companion);
            }
        }
        files
    }

    fn tempdir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sqlite-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
