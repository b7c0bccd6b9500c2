//! The default store: one SQLite file, so `cargo run -p server` keeps logins across restarts
//! with nothing else installed.
//!
//! WAL journaling lets readers proceed while a write commits. `synchronous=FULL` syncs every
//! commit: with `NORMAL` a power cut could undo a logout that had already answered 204, and a
//! token the user believed dead would work again. Writes that arrive together share one
//! commit, and so one sync (`group_commit.rs`). Reads use their own connections, so they never
//! wait behind a login's write, and keep a snapshot open between reads while nothing they must
//! see has changed (`readers.rs`). rusqlite is synchronous: a session lookup runs on the
//! caller's thread, other reads on tokio's blocking pool.
//!
//! The file is created readable by its owner only (SQLite gives its `-wal` and `-shm` files the
//! same mode). Its schema, and how a file of an older one is brought up to date, is
//! `migrate.rs`'s; the stores' statements are in `sessions.rs` and `users.rs`. The WAL is
//! copied into the file by a thread of its own (`checkpoints.rs`).

mod accounts;
mod checkpoints;
mod group_commit;
mod migrate;
mod readers;
mod sessions;
mod users;

use std::{path::Path, sync::Arc};

use rusqlite::Connection;

use super::{SqliteOptions, StoreError};

/// Read connections; two cores serve well with a few more than two.
const READERS: usize = 4;

/// How much of the file each connection maps (16 GiB). A check that misses the session cache
/// reads a few B-tree pages. Mapped into memory, those reads are loads from the OS's page
/// cache rather than a `pread` each, which is what keeps a store of millions of sessions, most
/// of them outside the session cache, nearly as quick to check as a small one. The map is
/// address space, not memory: pages are shared with the OS cache and dropped under pressure
/// like any file page.
///
/// SQLite caps the map at `SQLITE_MAX_MMAP_SIZE`, 2 GiB unless compiled otherwise, about six
/// million sessions; the workspace compiles it with this value (`.cargo/config.toml`), and
/// [`SqliteStore::open`] warns when a build did not.
const MMAP_SIZE: i64 = 16 << 30;

const READER_PRAGMAS: &str = "PRAGMA busy_timeout = 5000;";

#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    writer: group_commit::GroupCommit,
    readers: Arc<readers::Readers>,
    /// The write connection's last `PRAGMA data_version`: it changes only when another
    /// connection, so another process, commits (see [`SqliteStore::changed_elsewhere`]).
    data_version: std::sync::atomic::AtomicI64,
    /// Set by [`Outbox::discard_new_events`](crate::store::Outbox::discard_new_events):
    /// each outbox row costs a write now and a delete later, for nobody.
    discard_events: std::sync::atomic::AtomicBool,
    /// Set when this process rewrote sessions behind any cache's back (stamping sessions
    /// from before accounts with theirs): the next look empties the cache as for another
    /// process's write.
    rewritten: std::sync::atomic::AtomicBool,
}

impl SqliteStore {
    /// Opens (creating if needed, parent folders included) the database at `path`, bringing
    /// a file of an older schema up to date (see `migrate.rs`).
    pub fn open(path: &Path, options: &SqliteOptions) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        create_private(path)?;
        let mut writer = Connection::open(path).map_err(unavailable)?;
        // `temp_store = MEMORY` keeps the statement journal of each write's savepoint (see
        // `group_commit.rs`) in memory: otherwise it spills past 64 KiB into a temporary file,
        // a write call per page a login touches, twice what the WAL itself takes per login.
        // The page cache is kept small (8 MiB): a commit after a B-tree split walks every slot
        // of the cache's hash table, which grows with the pages held, and pages past it come
        // back from the mapped file for a copy.
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 PRAGMA secure_delete = ON;
                 PRAGMA temp_store = MEMORY;
                 PRAGMA busy_timeout = 5000;
                 PRAGMA cache_size = -8192;
                 PRAGMA wal_autocheckpoint = 10000;",
            )
            .map_err(unavailable)?;
        let mapped = map_file(&writer)?;
        if mapped < MMAP_SIZE {
            tracing::warn!(
                mapped_bytes = mapped,
                "this build's SQLite maps at most {mapped} bytes of the file: past that, a \
                 session check reads with a system call. Build with \
                 LIBSQLITE3_FLAGS=-DSQLITE_MAX_MMAP_SIZE={MMAP_SIZE} to map it whole"
            );
        }
        migrate::migrate(&mut writer, &options.legacy)?;
        let readers = readers::Readers::open(path, READERS, |conn| {
            conn.execute_batch(READER_PRAGMAS).map_err(unavailable)?;
            map_file(conn).map(drop)
        })?;
        let data_version: i64 = writer
            .query_row("PRAGMA data_version", [], |row| row.get(0))
            .map_err(unavailable)?;
        Ok(Self {
            inner: Arc::new(Inner {
                writer: group_commit::GroupCommit::start(writer, {
                    let readers = readers.clone();
                    let checkpoints = checkpoints::Checkpoints::start(path)?;
                    move || {
                        readers.changed();
                        checkpoints.committed();
                    }
                })?,
                readers,
                data_version: data_version.into(),
                discard_events: false.into(),
                rewritten: false.into(),
            }),
        })
    }

    /// Whether sessions changed since the last call other than through this store's session
    /// methods: another process committed to the file (an operator's `server accounts`
    /// command, or another server on the same file), or this one stamped old sessions with
    /// their accounts. Every write of this process goes through the write connection, whose
    /// `data_version` ignores its own commits, so that sees the others' only. Cheap: one
    /// pragma, no read of the database.
    pub async fn changed_elsewhere(&self) -> Result<bool, StoreError> {
        // Read in the write, compared here: a write may run twice, and a swap inside it could
        // see its own first run's value and miss the change.
        let now: i64 = self
            .write(|c| c.query_row("PRAGMA data_version", [], |row| row.get(0)))
            .await?;
        let before = self
            .inner
            .data_version
            .swap(now, std::sync::atomic::Ordering::Relaxed);
        let rewritten = self
            .inner
            .rewritten
            .swap(false, std::sync::atomic::Ordering::Relaxed);
        if before != now {
            self.inner.readers.changed();
        }
        Ok(before != now || rewritten)
    }

    /// Runs `f` with the write connection, inside the next batch's transaction; answers once
    /// that transaction is durable. `f` opens no transaction of its own: it has one. `f` may
    /// run twice, each time from the same state of the file, when another write of its batch
    /// fails (see `group_commit.rs`): what it changes outside the file must bear that.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnMut(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.inner.writer.write(f).await
    }

    /// Runs `f` with the write connection outside any transaction, between batches.
    async fn write_alone<T: Send + 'static>(
        &self,
        f: impl FnMut(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.inner.writer.write_alone(f).await
    }

    /// Runs `f`, a lookup of one row by key, right here on the caller's thread when a read
    /// connection is idle, else as [`SqliteStore::read`] does. Handing a lookup to the blocking
    /// pool costs two thread switches, more than the lookup itself once the file is mapped
    /// (`READER_PRAGMAS`): a check that misses the session cache would spend most of its time
    /// travelling. The price is that a page not in the OS's cache holds this thread for one disk
    /// read; a session's few pages are the file's hottest.
    async fn read_row<T: Send + 'static>(
        &self,
        spread: usize,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        match self.inner.readers.try_read(f) {
            Ok(read) => read,
            Err(f) => self.read(spread, f).await,
        }
    }

    /// Runs `f` on the blocking pool with the first idle read connection (or waits on one
    /// chosen by `spread`).
    async fn read<T: Send + 'static>(
        &self,
        spread: usize,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = self.inner.readers.clone();
        tokio::task::spawn_blocking(move || readers.read(spread, f))
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

/// Asks for [`MMAP_SIZE`] and answers what SQLite granted.
fn map_file(conn: &Connection) -> Result<i64, StoreError> {
    conn.query_row(&format!("PRAGMA mmap_size = {MMAP_SIZE}"), [], |row| {
        row.get(0)
    })
    .map_err(unavailable)
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
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

#[cfg(test)]
mod tests {
    use std::{
        sync::Arc,
        time::{Duration, Instant},
    };

    use super::*;
    use crate::{
        data_keys::SessionKey,
        store::{
            Session, SessionStore,
            contract_tests::{self, APPID, sqlite_options},
        },
    };

    #[tokio::test(flavor = "multi_thread")]
    async fn meets_the_store_contract() {
        let dir = tempdir();
        let store = SqliteStore::open(&dir.join("nested/sessions.db"), &sqlite_options()).unwrap();
        contract_tests::run_all(&store).await;
        contract_tests::deletes_expired_sessions(&store).await;
        crate::store::user_contract_tests::run_all(&store).await;
        let store = Arc::new(store);
        crate::store::account_contract_tests::run_all(store.clone(), Some(&*store)).await;
        crate::store::user_contract_tests::a_record_outlives_account_changes(&*store, &*store)
            .await;
        // Claims live in the process, beside the file.
        let claims = crate::store::LocalClaims::default();
        crate::store::login_contract_tests::run_all(&*store, &claims).await;
        crate::store::login_contract_tests::a_store_told_to_discard_writes_no_event(&*store).await;
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_writer_keeps_each_writes_savepoint_journal_in_memory() {
        let dir = tempdir();
        let store = SqliteStore::open(&dir.join("sessions.db"), &sqlite_options()).unwrap();
        let temp_store: i64 = store
            .write(|c| c.query_row("PRAGMA temp_store", [], |row| row.get(0)))
            .await
            .unwrap();
        assert_eq!(
            temp_store, 2,
            "2 is MEMORY: no journal page goes to a temporary file"
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn every_connection_maps_sixteen_gib_of_the_file() {
        let dir = tempdir();
        let store = SqliteStore::open(&dir.join("sessions.db"), &sqlite_options()).unwrap();
        let written: i64 = store
            .write(|c| c.query_row("PRAGMA mmap_size", [], |row| row.get(0)))
            .await
            .unwrap();
        let read: i64 = store
            .read(0, |c| c.query_row("PRAGMA mmap_size", [], |row| row.get(0)))
            .await
            .unwrap();
        assert_eq!(
            (written, read),
            (MMAP_SIZE, MMAP_SIZE),
            "SQLite built without LIBSQLITE3_FLAGS=-DSQLITE_MAX_MMAP_SIZE={MMAP_SIZE} caps \
             the map at 2 GiB (see .cargo/config.toml)"
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn events_are_kept_until_the_store_is_told_to_discard_them() {
        use crate::store::{AccountStore, Creation, LoginIdentity, Outbox, UserId};
        let dir = tempdir();
        let store = SqliteStore::open(&dir.join("sessions.db"), &sqlite_options()).unwrap();
        let sign_up = |openid: &'static str| {
            let store = store.clone();
            async move {
                let login = LoginIdentity {
                    appid: APPID,
                    openid,
                    unionid: None,
                };
                let made = Creation::Allowed(UserId::generate());
                store.resolve(&login, made, 1).await.unwrap();
                // Taken entries are leased past the second look, which sees only new ones.
                store
                    .take_due(2_000, Duration::from_secs(60), 10)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(
            sign_up("o-kept").await.len(),
            1,
            "the account's creation is kept"
        );
        store.discard_new_events();
        let left = sign_up("o-discarded").await;
        assert!(left.is_empty(), "nothing written: {left:?}");
        std::fs::remove_dir_all(dir).ok();
    }

    /// Two stores on one new file, standing for two processes; the folder to remove.
    fn two_processes() -> (std::path::PathBuf, SqliteStore, SqliteStore) {
        let dir = tempdir();
        let path = dir.join("sessions.db");
        let options = sqlite_options();
        let here = SqliteStore::open(&path, &options).unwrap();
        let there = SqliteStore::open(&path, &options).unwrap();
        (dir, here, there)
    }

    /// Read connections keep a snapshot between reads (`readers.rs`); none may outlive what
    /// a read must see. Two stores on one file stand for two processes.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_read_sees_every_answered_write_of_this_process_and_noticed_ones_of_another() {
        let (dir, here, there) = two_processes();
        let (mine, theirs) = (
            crate::token::Token::generate().hash(),
            crate::token::Token::generate().hash(),
        );
        let session = contract_tests::session("o-fresh", 3600);
        assert_eq!(here.get(mine, 0).await.unwrap(), None);
        here.insert(mine, session.clone()).await.unwrap();
        assert!(
            here.get(mine, 0).await.unwrap().is_some(),
            "its own, at once"
        );
        assert!(here.remove(mine).await.unwrap());
        assert_eq!(
            here.get(mine, 0).await.unwrap(),
            None,
            "its own end, at once"
        );

        there.insert(theirs, session.clone()).await.unwrap();
        assert!(here.changed_elsewhere().await.unwrap());
        assert!(
            here.get(theirs, 0).await.unwrap().is_some(),
            "another's, once noticed"
        );
        // Not noticed: seen all the same once a snapshot has aged out.
        assert!(there.remove(theirs).await.unwrap());
        let deadline = Instant::now() + Duration::from_secs(5);
        while here.get(theirs, 0).await.unwrap().is_some() {
            assert!(
                Instant::now() < deadline,
                "another process's change unseen after {:?}",
                readers::SNAPSHOT_AGE
            );
            tokio::task::yield_now().await;
        }
        std::fs::remove_dir_all(dir).ok();
    }

    /// A snapshot left open by an idle read connection would hold the WAL from another
    /// process's checkpoint, which erasing an account waits for.
    #[tokio::test(flavor = "multi_thread")]
    async fn idle_read_connections_let_another_process_empty_the_wal() {
        let (dir, here, there) = two_processes();
        let key = crate::token::Token::generate().hash();
        there
            .insert(key, contract_tests::session("o-wal", 3600))
            .await
            .unwrap();
        assert!(here.get(key, 0).await.unwrap().is_some());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let busy: i64 = there
                .write_alone(|c| {
                    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
                })
                .await
                .unwrap();
            if busy == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "the WAL is still held");
            tokio::task::yield_now().await;
        }
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn sessions_survive_reopening_the_file() {
        let dir = tempdir();
        let path = dir.join("sessions.db");
        let key = crate::token::Token::generate().hash();
        let options = sqlite_options();
        let session = Session {
            session_key: options
                .legacy
                .data_keys
                .seal(&SessionKey::new("k"), APPID, "o-durable"),
            created_at: 1,
            expires_at: i64::MAX,
            ..contract_tests::session("o-durable", 1)
        };
        {
            let store = SqliteStore::open(&path, &options).unwrap();
            store.insert(key, session.clone()).await.unwrap();
        }
        let reopened = SqliteStore::open(&path, &options).unwrap();
        assert_eq!(reopened.get(key, 2).await.unwrap(), Some(Arc::new(session)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        std::fs::remove_dir_all(dir).ok();
    }

    /// The database file and whichever of its `-wal` and `-shm` companions exist.
    pub(super) fn files_of(path: &Path) -> Vec<std::path::PathBuf> {
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

    pub(super) fn tempdir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sqlite-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
