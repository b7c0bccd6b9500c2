//! `/checklogin` as the store grows: a SQLite file of ten million sessions read at random, so
//! that the server's session cache (65,536 sessions by default) mostly misses and most checks
//! read the B-tree, against the same over ten thousand sessions, which the cache holds whole.
//!
//! Both files are filled by the store's own `insert_many`, in chunks of a million sorted by
//! key: ten million in random order take many minutes, and the measurement is of reads. wrk
//! sends each check with a token picked at random from a sample spread over the whole file
//! (`wrk/tokens.lua`), the same script for both sizes, so the ratio is the cost of size alone.

use std::{path::Path, time::Duration};

use server::{
    DEV_APPID,
    data_keys::DataKeys,
    store::{LegacyImport, SqliteOptions, SqliteStore},
};

use crate::{Result, client, cpus::CpuPlan, footprint, processes::TempDir, throughput, wrk};

/// Tokens wrk picks from, at most: fifteen times the cache, so nine checks in ten miss it.
const SAMPLE: u64 = 1_000_000;
/// Sessions per `insert_many`.
const CHUNK: u64 = 1_000_000;

/// One size's run.
#[derive(Debug, Clone)]
pub struct AtScale {
    pub sessions: u64,
    pub sampled: u64,
    pub fill_seconds: f64,
    pub file_bytes: u64,
    pub sample: wrk::Sample,
}

/// Fills a file of each size in `sizes`, serves `/checklogin` from it for `duration` after
/// `warmup`, one size after the other.
pub async fn measure(
    server: &Path,
    cpus: &CpuPlan,
    wrk: &wrk::Wrk,
    http: &reqwest::Client,
    sizes: &[u64],
    warmup: Duration,
    duration: Duration,
) -> Result<Vec<AtScale>> {
    let mut runs = Vec::new();
    for &n in sizes {
        let dir = TempDir::new("bench-scale")?;
        let path = dir.path().join("sessions.db");
        let keys = DataKeys::load_or_create(&dir.path().join("data_key"))?;
        let started = std::time::Instant::now();
        let tokens = fill(&path, &keys, n).await?;
        let fill_seconds = started.elapsed().as_secs_f64();
        eprintln!("    {n} sessions written in {fill_seconds:.0} s");
        let list = dir.path().join("tokens.txt");
        std::fs::write(&list, tokens.join("\n") + "\n")?;

        let store = format!("sqlite://{}", path.display());
        let service = throughput::start_server(server, &store, cpus)?;
        for token in tokens.iter().step_by(tokens.len().div_ceil(20)) {
            client::expect_logged_in(http, service.base(), token).await?;
        }
        wrk.checklogin_spread(service.base(), &list, warmup)?;
        let sample = wrk.checklogin_spread(service.base(), &list, duration)?;
        service.stop();
        eprintln!(
            "    /checklogin over {n} sessions: {} req/s, p50 {:.2} ms, p99 {:.2} ms",
            crate::stats::thousands(sample.per_second()),
            sample.p50_ms,
            sample.p99_ms
        );
        if sample.errors() > 0 {
            return Err(
                format!("/checklogin over {n} sessions: {} errors", sample.errors()).into(),
            );
        }
        runs.push(AtScale {
            sessions: n,
            sampled: tokens.len() as u64,
            fill_seconds,
            file_bytes: footprint::sqlite::files_size(&path),
            sample,
        });
    }
    Ok(runs)
}

/// Creates the store's file and writes `n` sessions; the raw tokens of an evenly spread
/// sample of them.
async fn fill(path: &Path, keys: &DataKeys, n: u64) -> Result<Vec<String>> {
    let options = SqliteOptions {
        legacy: LegacyImport {
            appid: DEV_APPID.to_owned(),
            data_keys: keys.clone(),
        },
    };
    let store = SqliteStore::open(path, &options)?;
    let sim = footprint::simulator();
    let every = n.div_ceil(SAMPLE).max(1);
    let mut sampled = Vec::new();
    for start in (0..n).step_by(CHUNK as usize) {
        let mut chunk: Vec<_> = (start..n.min(start + CHUNK))
            .map(|i| {
                let (token, session) = footprint::session(i, n, keys, &sim);
                let hash = token.hash();
                if i % every == 0 {
                    sampled.push(token.into_string());
                }
                (hash, session)
            })
            .collect();
        chunk.sort_unstable_by(|(a, _), (b, _)| a.as_bytes().cmp(b.as_bytes()));
        store.insert_many(chunk).await?;
    }
    drop(store);
    footprint::sqlite::checkpoint_whole(&rusqlite::Connection::open(path)?)?;
    Ok(sampled)
}
