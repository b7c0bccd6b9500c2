//! The store's read connections, and the read transaction each keeps open between reads.
//!
//! Beginning and ending a read transaction costs system calls (a lock on the WAL index taken
//! and released with `fcntl`, a `stat` of the file): on a session check that misses the
//! session cache, about as much as the B-tree lookup itself. So a connection keeps its
//! transaction, and the snapshot it reads, from one read to the next while that snapshot is
//! still the file's latest as far as the process knows:
//! - every commit of this process counts a change ([`Readers::changed`], called by the writer
//!   before it answers the commit's writes), and a read whose snapshot predates the count
//!   begins a new one. A read that starts after a write was answered therefore sees it.
//! - another process's commits are counted when [`SqliteStore::changed_elsewhere`] notices
//!   them; until then, a snapshot is used for at most [`SNAPSHOT_AGE`].
//!
//! An open transaction holds WAL frames from being checkpointed, so idle connections end
//! theirs at every commit, and a sweeper thread ends those left open longer than
//! [`SNAPSHOT_AGE`].
//!
//! [`SqliteStore::changed_elsewhere`]: super::SqliteStore::changed_elsewhere

use std::{
    path::Path,
    sync::{
        Arc, Mutex, MutexGuard, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use rusqlite::{Connection, OpenFlags};

use super::unavailable;
use crate::store::StoreError;

/// The longest one snapshot serves reads: how stale another process's commit can look to
/// a read before the session cache's own look at the file notices it.
pub(super) const SNAPSHOT_AGE: Duration = Duration::from_millis(50);

/// The read connections of one store.
#[derive(Debug)]
pub(super) struct Readers {
    connections: Vec<Mutex<Reader>>,
    /// Changes a snapshot must include: this process's commits, and other processes' once
    /// noticed.
    changes: AtomicU64,
}

#[derive(Debug)]
struct Reader {
    conn: Connection,
    /// The open read transaction's, if one is open.
    snapshot: Option<Snapshot>,
}

#[derive(Debug, Clone, Copy)]
struct Snapshot {
    /// [`Readers::changes`] when the transaction began: it has every change counted so far.
    changes: u64,
    began: Instant,
}

impl Readers {
    /// Opens `count` read-only connections to `path`, each prepared by `setup`, and starts
    /// the thread that ends their idle transactions; it stops once the readers are dropped.
    pub(super) fn open(
        path: &Path,
        count: usize,
        setup: impl Fn(&Connection) -> Result<(), StoreError>,
    ) -> Result<Arc<Self>, StoreError> {
        let connections = (0..count)
            .map(|_| {
                let conn = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(unavailable)?;
                setup(&conn)?;
                Ok(Mutex::new(Reader {
                    conn,
                    snapshot: None,
                }))
            })
            .collect::<Result<_, StoreError>>()?;
        let readers = Arc::new(Self {
            connections,
            changes: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&readers);
        std::thread::Builder::new()
            .name("sqlite-readers".into())
            .spawn(move || sweep_while_alive(&weak))
            .map_err(|e| StoreError::Unavailable(format!("cannot start a SQLite thread: {e}")))?;
        Ok(readers)
    }

    /// Runs `f` on an idle connection, or gives it back when every one is busy.
    pub(super) fn try_read<T, F: FnOnce(&Connection) -> rusqlite::Result<T>>(
        &self,
        f: F,
    ) -> Result<Result<T, StoreError>, F> {
        let changes = self.changes.load(Ordering::Acquire);
        match self.connections.iter().find_map(|m| m.try_lock().ok()) {
            Some(mut reader) => Ok(reader.run(changes, f)),
            None => Err(f),
        }
    }

    /// Runs `f` on an idle connection, else waits for the one `spread` picks.
    pub(super) fn read<T>(
        &self,
        spread: usize,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let changes = self.changes.load(Ordering::Acquire);
        let mut reader = self
            .connections
            .iter()
            .find_map(|m| m.try_lock().ok())
            .unwrap_or_else(|| lock(&self.connections[spread % self.connections.len()]));
        reader.run(changes, f)
    }

    /// Counts a change to the file: no read that starts from now on uses an older snapshot.
    /// Idle connections end theirs at once.
    pub(super) fn changed(&self) {
        self.changes.fetch_add(1, Ordering::Release);
        self.end_idle(Duration::ZERO);
    }

    /// Ends the transactions of idle connections open for at least `age`.
    fn end_idle(&self, age: Duration) {
        for reader in &self.connections {
            if let Ok(mut reader) = reader.try_lock()
                && reader.snapshot.is_some_and(|s| s.began.elapsed() >= age)
            {
                reader.end();
            }
        }
    }
}

impl Reader {
    /// Runs `f` in a transaction whose snapshot has the `changes` counted: the open one if
    /// it does and is young enough, else a new one.
    fn run<T>(
        &mut self,
        changes: u64,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let current = self
            .snapshot
            .is_some_and(|s| s.changes == changes && s.began.elapsed() < SNAPSHOT_AGE);
        if !current {
            self.end();
            // Deferred: the snapshot is taken by `f`'s first read, after `changes` was read.
            self.conn.execute_batch("BEGIN").map_err(unavailable)?;
            self.snapshot = Some(Snapshot {
                changes,
                began: Instant::now(),
            });
        }
        let result = f(&self.conn);
        if result.is_err() {
            self.end();
        }
        result.map_err(unavailable)
    }

    fn end(&mut self) {
        self.snapshot = None;
        if !self.conn.is_autocommit() && self.conn.execute_batch("COMMIT").is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// The sweeper: every [`SNAPSHOT_AGE`], ends the transactions idle connections left open,
/// so that they do not hold the WAL while the process serves no reads.
fn sweep_while_alive(readers: &Weak<Readers>) {
    loop {
        std::thread::sleep(SNAPSHOT_AGE);
        match readers.upgrade() {
            Some(readers) => readers.end_idle(SNAPSHOT_AGE),
            None => return,
        }
    }
}

fn lock(m: &Mutex<Reader>) -> MutexGuard<'_, Reader> {
    // rusqlite rolls back an unfinished statement on drop, so a poisoned lock holds a usable
    // connection; `run` begins afresh when its transaction is in doubt.
    m.lock().unwrap_or_else(|e| {
        let mut reader = e.into_inner();
        reader.end();
        reader
    })
}
