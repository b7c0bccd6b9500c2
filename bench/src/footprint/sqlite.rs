//! Bytes on disk per SQLite session after a million of them, and the resident memory of a
//! server that has that file open and is serving from it.
//!
//! The file is made and filled by the store itself (`SqliteStore::open` creates the schema,
//! `SqliteStore::insert_many` writes the rows, so the measurement follows any change to
//! either), a batch per transaction: a million logins through the server would take many
//! minutes at `synchronous=FULL` (each commits with an fsync), and the bytes on disk do not
//! depend on how fast they came. Rows go in in random key order, as logins do, so the B-tree
//! pages are as full as in service (an insert in key order would pack them tighter and flatter
//! the figure).

use std::{path::Path, time::Duration};

use rusqlite::Connection;
use server::{
    DEV_APPID,
    data_keys::DataKeys,
    store::{LegacyImport, SqliteOptions, SqliteStore},
};

use crate::{Result, client, cpus::CpuPlan, processes::TempDir, throughput, wrk::Sample, wrk::Wrk};

/// What [`measure`] found.
#[derive(Debug, Clone)]
pub struct SqliteFootprint {
    pub sessions: u64,
    /// The database file with its WAL and shared-memory files, after a checkpoint.
    pub file_bytes: u64,
    /// Resident memory (KiB) of the server with the file open, before any request.
    pub idle_rss_kib: u64,
    /// Resident memory and its peak (KiB) after serving `/checklogin` from the file.
    pub serving_rss_kib: u64,
    pub serving_peak_kib: u64,
    /// The `/checklogin` run that did the serving (one token, so it reads one hot path).
    pub served: Sample,
    pub fill_seconds: f64,
}

impl SqliteFootprint {
    pub fn bytes_per_session(&self) -> f64 {
        self.file_bytes as f64 / self.sessions as f64
    }
}

/// Fills a file with `sessions` sessions, starts the server on it, serves `/checklogin` for
/// `duration`, and reads the sizes.
pub async fn measure(
    server: &Path,
    cpus: &CpuPlan,
    wrk: &Wrk,
    http: &reqwest::Client,
    sessions: u64,
    duration: Duration,
) -> Result<SqliteFootprint> {
    let dir = TempDir::new("bench-sqlite")?;
    let path = dir.path().join("sessions.db");
    // Where dev mode looks for its data key: the server then opens these sessions as its own.
    let keys = DataKeys::load_or_create(&dir.path().join("data_key"))?;
    let started = std::time::Instant::now();
    let token = fill(&path, &keys, sessions).await?;
    let fill_seconds = started.elapsed().as_secs_f64();
    let file_bytes = files_size(&path);

    let server = throughput::start_server(server, &format!("sqlite://{}", path.display()), cpus)?;
    let (idle_rss_kib, _) = server.memory_kib()?;
    client::expect_logged_in(http, server.base(), &token).await?;
    let served = wrk.get(
        &format!("{}/checklogin", server.base()),
        Some(&token),
        duration,
    )?;
    client::expect_logged_in(http, server.base(), &token).await?;
    let (serving_rss_kib, serving_peak_kib) = server.memory_kib()?;
    server.stop();
    Ok(SqliteFootprint {
        sessions,
        file_bytes,
        idle_rss_kib,
        serving_rss_kib,
        serving_peak_kib,
        served,
        fill_seconds,
    })
}

/// Sessions per transaction: ten commits for a million, some 30 MB in flight. Each batch
/// touches pages all over the tree, and smaller ones write the same pages again in every
/// commit: a tenth of this size took three times as long.
const BATCH: u64 = 100_000;

/// Creates the store's file at `path` and writes `n` sessions into it; returns the token of
/// the last one, for the server to be asked about.
async fn fill(path: &Path, keys: &DataKeys, n: u64) -> Result<String> {
    let options = SqliteOptions {
        legacy: LegacyImport {
            appid: DEV_APPID.to_owned(),
            data_keys: keys.clone(),
        },
    };
    let store = SqliteStore::open(path, &options)?;
    let sim = super::simulator();
    let mut last = String::new();
    for start in (0..n).step_by(BATCH as usize) {
        let batch = (start..n.min(start + BATCH))
            .map(|i| {
                let (token, session) = super::session(i, n, keys, &sim);
                let hash = token.hash();
                last = token.into_string();
                (hash, session)
            })
            .collect();
        store.insert_many(batch).await?;
    }
    drop(store);
    // Everything into the main file, as a long-running server's checkpoints leave it.
    checkpoint_whole(&Connection::open(path)?)?;
    Ok(last)
}

/// Copies the whole WAL into the main file and empties it. A store just dropped may still
/// be finishing a checkpoint of its own on its checkpointing thread: while it does, this one
/// is refused (`busy`), so it is retried, for at most ten seconds.
pub(crate) fn checkpoint_whole(conn: &Connection) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))?;
        if busy == 0 {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(
                "the WAL could not be checkpointed within 10 s: another connection held it".into(),
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The size of the database and its `-wal` and `-shm` companions.
pub(crate) fn files_size(path: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            std::fs::metadata(name).map_or(0, |m| m.len())
        })
        .sum()
}
