//! Checkpoints off the write path: a thread with a connection of its own copies the WAL into
//! the database file, so that commits rarely wait for it.
//!
//! Left to the write connection alone (`wal_autocheckpoint`), a checkpoint runs inside the
//! commit that crossed the threshold: that batch's writes, and every batch queued behind it,
//! wait while thousands of pages are copied and the database file is synced. Under a stream of
//! logins that is a stall of tens of milliseconds every few thousand logins. Here, after
//! commits, at most every [`PAUSE`], this thread runs `wal_checkpoint(PASSIVE)`: it copies the
//! frames no reader still needs and waits for no one, while the writer goes on committing.
//!
//! The write connection keeps its own threshold as a backstop: should this thread fall
//! behind, the writer checkpoints as before, and finds most of the copying done. The WAL stays
//! bounded either way.
//!
//! The connection runs with `synchronous=FULL` like the writer: a checkpoint then syncs the
//! database file before the WAL may be reused, so no frame is overwritten before the file
//! holds it durably.

use std::{
    path::Path,
    sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel},
    time::Duration,
};

use rusqlite::{Connection, OpenFlags};

use super::unavailable;
use crate::store::StoreError;

/// The least time between two checkpoints: each copies what the commits since the last one
/// wrote, some thousands of pages at most under load, and an idle store checkpoints once after
/// its last commit and then sleeps.
const PAUSE: Duration = Duration::from_millis(100);

/// Tells the checkpointing thread that a commit happened; the thread ends when this is dropped.
#[derive(Debug)]
pub(super) struct Checkpoints {
    committed: SyncSender<()>,
}

impl Checkpoints {
    /// Opens the thread's connection to `path` (a file already in WAL mode) and starts it.
    pub(super) fn start(path: &Path) -> Result<Self, StoreError> {
        let connection = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(unavailable)?;
        connection
            .execute_batch("PRAGMA synchronous = FULL;")
            .map_err(unavailable)?;
        // One pending signal is enough: the next checkpoint copies every commit before it.
        let (committed, commits) = sync_channel(1);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoint_after_commits(&connection, &commits))
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot start the SQLite checkpointer: {e}"))
            })?;
        Ok(Self { committed })
    }

    /// Called by the writer after each commit; never blocks it.
    pub(super) fn committed(&self) {
        match self.committed.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) => {}
            // The thread ended (its connection failed): the writer's own threshold remains.
            Err(TrySendError::Disconnected(())) => {}
        }
    }
}

fn checkpoint_after_commits(connection: &Connection, commits: &Receiver<()>) {
    while commits.recv().is_ok() {
        // `(busy, frames in the WAL, frames copied)`; busy when the writer's own checkpoint
        // or a `TRUNCATE` (an account's erasure) holds the checkpoint lock: the next commit
        // brings this thread back.
        let done = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(2)?))
        });
        if let Err(e) = done {
            tracing::warn!(
                error = %e,
                "a background checkpoint of the SQLite file failed; the writer checkpoints \
                 instead"
            );
        }
        std::thread::sleep(PAUSE);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::{SqliteStore, tests::tempdir};
    use crate::store::{SessionStore, contract_tests};

    /// The sessions the database file holds by itself, read from a copy without its WAL; `None`
    /// while that copy is not a whole database (taken in the middle of a checkpoint's copying).
    fn sessions_in_the_main_file(path: &std::path::Path, copy: &std::path::Path) -> Option<i64> {
        std::fs::copy(path, copy).unwrap();
        let c = rusqlite::Connection::open(copy).ok()?;
        c.query_row("SELECT count(*) FROM sessions", [], |row| row.get(0))
            .ok()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn commits_reach_the_database_file_long_before_the_writers_threshold() {
        let dir = tempdir();
        let path = dir.join("sessions.db");
        let store = SqliteStore::open(&path, &contract_tests::sqlite_options()).unwrap();
        // A few commits: a handful of WAL frames, far below `wal_autocheckpoint`'s 10,000
        // pages, so only a checkpoint of the background thread copies them.
        for n in 0..5 {
            store
                .insert(
                    crate::token::Token::generate().hash(),
                    contract_tests::session(&format!("o-copied-{n}"), 3600),
                )
                .await
                .unwrap();
        }
        let copy = dir.join("main-file-alone.db");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if sessions_in_the_main_file(&path, &copy) == Some(5) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the sessions are still only in the WAL"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(store);
        std::fs::remove_dir_all(dir).ok();
    }
}
