//! Group commit: the SQLite store's one write connection lives on a thread of its own, and the
//! writes that wait for it together commit as one transaction, so one sync to disk makes a
//! whole batch durable where each write used to wait for a sync of its own.
//!
//! The rules a caller can rely on:
//! - Every write is answered only once the commit that holds it has returned, so with
//!   `synchronous=FULL` a write that was answered survives a crash, a power cut included.
//! - A statement that fails undoes its own write and fails its own request, and the rest of
//!   the batch commits. A batch first runs without savepoints: one per write copies every page
//!   the batch already touched into a statement journal, each time, a tenth of the writer's
//!   work on a stream of logins. Only when a write fails is the batch rolled back and run
//!   again with a savepoint per write, which is why a write may run more than once and is
//!   `FnMut`: each run starts from the same state, before the batch.
//! - A commit that fails fails every write of its batch: none of them reached the disk.
//! - A batch holds at most [`MAX_BATCH`] writes, and nothing waits for a batch to fill: the
//!   writer yields the CPU once (to threads that are runnable then, not for a set time), then
//!   takes whatever is queued, so a lone write on an idle server commits at once, as it did
//!   before batching.
//! - The queue is bounded ([`QUEUE`]): when the disk stalls, writes past it are refused with
//!   [`StoreError::Unavailable`] at once rather than pile up in memory.

use std::{
    panic::AssertUnwindSafe,
    sync::mpsc::{self, Receiver, SyncSender, TrySendError},
};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::unavailable;
use crate::{metrics, store::StoreError};

/// Most writes in one transaction: enough that a burst of logins shares a sync, few enough
/// that the first of them is not held long behind the last.
pub(super) const MAX_BATCH: usize = 256;

/// Most writes waiting for the writer. Past it the disk is not keeping up, and a quick 503
/// that the client retries beats a queue that grows until memory runs out.
pub(super) const QUEUE: usize = 4096;

/// One queued write: it runs in a batch, then hears how the batch's commit went.
trait Write: Send {
    /// Runs the write's statements; whether they succeeded. May run again (see the module's
    /// rules): the last run's result is the one answered.
    fn run(&mut self, c: &Connection) -> bool;
    /// Answers the caller: the write's own result if the commit held, else the commit's
    /// failure. A write that never ran (its batch broke first, or it panicked) says so.
    fn answer(self: Box<Self>, commit: Result<(), &StoreError>);
}

struct Pending<T, F> {
    f: F,
    result: Option<rusqlite::Result<T>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Write for Pending<T, F>
where
    T: Send,
    F: FnMut(&Connection) -> rusqlite::Result<T> + Send,
{
    fn run(&mut self, c: &Connection) -> bool {
        self.result = None;
        let result = (self.f)(c);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn answer(self: Box<Self>, commit: Result<(), &StoreError>) {
        let answer = match (commit, self.result) {
            (Err(e), _) => Err(StoreError::Unavailable(e.to_string())),
            (Ok(()), Some(result)) => result.map_err(unavailable),
            (Ok(()), None) => Err(StoreError::Unavailable(
                "a SQLite write failed before it finished".into(),
            )),
        };
        // The caller may have gone; its write stands or falls with the batch all the same.
        let _ = self.reply.send(answer);
    }
}

struct Job {
    /// Runs outside any transaction, between batches: for statements SQLite refuses inside
    /// one, such as a WAL checkpoint.
    alone: bool,
    write: Box<dyn Write>,
}

/// The handle the store keeps; dropping the last one lets the thread finish what is queued,
/// close the connection and end.
#[derive(Debug)]
pub(super) struct GroupCommit {
    queue: SyncSender<Job>,
}

/// What became of one batch: how many writes it held and whether its commit held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Committed {
    writes: usize,
    durable: bool,
}

impl GroupCommit {
    /// Starts the writer thread with `connection`, which from now on only it uses.
    /// `changed` is called after every commit, before its writes are answered: what reads
    /// the file must know by then (see `readers.rs`).
    pub(super) fn start(
        connection: Connection,
        changed: impl Fn() + Send + 'static,
    ) -> Result<Self, StoreError> {
        let (queue, jobs) = mpsc::sync_channel(QUEUE);
        let delivery = Delivery::here();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                write_loop(&connection, &jobs, &changed, &delivery, |batch| {
                    metrics::sqlite_commit(batch.writes, batch.durable);
                });
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start the SQLite writer: {e}")))?;
        Ok(Self { queue })
    }

    /// Runs `f` in the next batch and answers once that batch is durable.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        f: impl FnMut(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        answered(self.enqueue(false, f)?).await
    }

    /// Runs `f` on its own, outside any transaction.
    pub(super) async fn write_alone<T: Send + 'static>(
        &self,
        f: impl FnMut(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        answered(self.enqueue(true, f)?).await
    }

    /// Queues `f`, or refuses it at once when the queue is full.
    fn enqueue<T: Send + 'static>(
        &self,
        alone: bool,
        f: impl FnMut(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<Answer<T>, StoreError> {
        let (job, answer) = job(alone, f);
        match self.queue.try_send(job) {
            Ok(()) => Ok(answer),
            Err(TrySendError::Full(_)) => Err(StoreError::Unavailable(format!(
                "{QUEUE} writes are waiting for the SQLite file: the disk is not keeping up"
            ))),
            Err(TrySendError::Disconnected(_)) => Err(StoreError::Unavailable(
                "the SQLite writer has stopped".into(),
            )),
        }
    }
}

type Answer<T> = oneshot::Receiver<Result<T, StoreError>>;

fn job<T: Send + 'static>(
    alone: bool,
    f: impl FnMut(&Connection) -> rusqlite::Result<T> + Send + 'static,
) -> (Job, Answer<T>) {
    let (reply, answer) = oneshot::channel();
    let write = Box::new(Pending {
        f,
        result: None,
        reply,
    });
    (Job { alone, write }, answer)
}

async fn answered<T>(answer: Answer<T>) -> Result<T, StoreError> {
    answer
        .await
        .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?
}

/// Where a batch's answers are sent from.
///
/// Each answer wakes the task that waits for it. Woken from this thread, a runtime worker
/// that shares its core preempts the writer at the first answer, runs that one task, sleeps,
/// and is woken again by the next: a batch of thirty answers cost some thirty switches. Handed
/// to the runtime as one task, a batch costs one wake, and its answers wake their tasks from
/// inside the runtime, where a wake is a queue push.
enum Delivery {
    /// Answered from the writer thread (no multi-thread runtime was running at start).
    Direct,
    /// Answered by a task on the runtime the store was opened on.
    Runtime(tokio::runtime::Handle),
}

impl Delivery {
    /// Through the current runtime if it is a multi-thread one. A current-thread runtime
    /// runs only while its own thread polls it, and callers on another thread could wait on
    /// it forever.
    fn here() -> Self {
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                Self::Runtime(handle)
            }
            _ => Self::Direct,
        }
    }

    fn send(&self, answers: Answers) {
        match self {
            Self::Direct => drop(answers),
            // Should the runtime be gone, the task is dropped unrun, and dropping `Answers`
            // answers them here all the same.
            Self::Runtime(handle) => drop(handle.spawn(async move { drop(answers) })),
        }
    }
}

/// A committed batch's writes with how the commit went: dropping it answers every one, so
/// no path can lose an answer.
struct Answers {
    writes: Vec<Box<dyn Write>>,
    commit: Result<(), StoreError>,
}

impl Drop for Answers {
    fn drop(&mut self) {
        let commit = self.commit.as_ref().map(drop);
        for write in self.writes.drain(..) {
            write.answer(commit);
        }
    }
}

/// The writer thread: batches until every handle is gone and the queue is empty.
/// `changed` hears of every change before its writes are answered; `committed` of every
/// batch once they are.
fn write_loop(
    c: &Connection,
    jobs: &Receiver<Job>,
    changed: &dyn Fn(),
    delivery: &Delivery,
    mut committed: impl FnMut(Committed),
) {
    let mut next = None;
    loop {
        let first = match next.take() {
            Some(job) => job,
            None => match jobs.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        if first.alone {
            let mut write = first.write;
            run_guarded(c, &mut *write);
            changed();
            write.answer(Ok(()));
            continue;
        }
        // Before taking the batch, hand the CPU to any runnable thread once. Where the
        // server's other threads share a core with this one, the requests they are still
        // handling join this batch instead of waiting for a sync of their own after it. With
        // a core to spare, or nothing else to run, it returns at once.
        std::thread::yield_now();
        let mut batch = vec![first.write];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) if job.alone => {
                    next = Some(job);
                    break;
                }
                Ok(job) => batch.push(job.write),
                Err(_) => break,
            }
        }
        let (outcome, answers) = commit_batch(c, batch, changed);
        delivery.send(answers);
        committed(outcome);
    }
}

/// One transaction for `batch`, its answers ready once the commit has returned. The batch
/// runs first without savepoints; if a write fails, it is rolled back and run again with one
/// savepoint per write, so that only the failing write is undone.
fn commit_batch(
    c: &Connection,
    mut batch: Vec<Box<dyn Write>>,
    changed: &dyn Fn(),
) -> (Committed, Answers) {
    let commit = match run_plain(c, &mut batch) {
        Ran::AllWell => c.execute_batch("COMMIT").map_err(unavailable),
        Ran::AWriteFailed => run_with_savepoints(c, &mut batch)
            .and_then(|()| c.execute_batch("COMMIT").map_err(unavailable)),
        Ran::Broken(e) => Err(e),
    };
    if commit.is_err() && !c.is_autocommit() {
        // Nothing of the batch may stay half-applied under the next one.
        let _ = c.execute_batch("ROLLBACK");
    }
    let outcome = Committed {
        writes: batch.len(),
        durable: commit.is_ok(),
    };
    changed();
    let answers = Answers {
        writes: batch,
        commit: commit.map(drop),
    };
    (outcome, answers)
}

/// How a pass over a batch went, its transaction still open unless it broke.
enum Ran {
    AllWell,
    /// One write failed; the transaction was rolled back, and nothing of the batch stands.
    AWriteFailed,
    /// The transaction itself could not go on; the batch fails whole.
    Broken(StoreError),
}

/// Every write of `batch` in one immediate transaction, with nothing between them.
fn run_plain(c: &Connection, batch: &mut [Box<dyn Write>]) -> Ran {
    // Immediate: another process writing the same file waits for this batch, or this batch
    // for it (within the busy timeout), instead of failing halfway.
    if let Err(e) = c.execute_batch("BEGIN IMMEDIATE") {
        return Ran::Broken(unavailable(e));
    }
    if batch.iter_mut().all(|write| run_guarded(c, &mut **write)) {
        return Ran::AllWell;
    }
    match c.execute_batch("ROLLBACK") {
        Ok(()) => Ran::AWriteFailed,
        Err(e) => Ran::Broken(unavailable(e)),
    }
}

/// Every write of `batch` again, in a new transaction, each inside a savepoint of its own: a
/// write that fails is undone alone, and the others stand.
fn run_with_savepoints(c: &Connection, batch: &mut [Box<dyn Write>]) -> Result<(), StoreError> {
    c.execute_batch("BEGIN IMMEDIATE").map_err(unavailable)?;
    for write in batch {
        run_cached(c, "SAVEPOINT one_write").map_err(unavailable)?;
        if run_guarded(c, &mut **write) {
            run_cached(c, "RELEASE one_write")
        } else {
            run_cached(c, "ROLLBACK TO one_write").and_then(|()| run_cached(c, "RELEASE one_write"))
        }
        .map_err(unavailable)?;
    }
    Ok(())
}

/// Runs one of the batch's own statements from the connection's statement cache: parsing
/// `SAVEPOINT` and `RELEASE` afresh for every write would cost more than many writes do.
fn run_cached(c: &Connection, sql: &str) -> rusqlite::Result<()> {
    c.prepare_cached(sql)?.execute([]).map(drop)
}

/// Runs `write`; a panic counts as a failed write (its caller hears so), since the writer
/// thread must outlive any one write.
fn run_guarded(c: &Connection, write: &mut dyn Write) -> bool {
    std::panic::catch_unwind(AssertUnwindSafe(|| write.run(c))).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection with a table `t` of unique numbers, and a parent/child pair whose foreign
    /// key is checked only at commit.
    fn connection() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "PRAGMA foreign_keys = ON;
             CREATE TABLE t (x INTEGER PRIMARY KEY);
             CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE child (parent INTEGER
                 REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);",
        )
        .unwrap();
        c
    }

    fn insert(x: i64) -> impl FnMut(&Connection) -> rusqlite::Result<()> + Send + 'static {
        move |c| c.execute("INSERT INTO t VALUES (?1)", [x]).map(drop)
    }

    fn rows(c: &Connection) -> Vec<i64> {
        c.prepare("SELECT x FROM t ORDER BY x")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Runs the writer over `jobs`, queued before it starts as writes arriving together are,
    /// until they are done; what each batch came to.
    fn run(c: &Connection, jobs: Vec<Job>) -> Vec<Committed> {
        let (queue, receiver) = mpsc::sync_channel(jobs.len());
        for job in jobs {
            queue.try_send(job).unwrap();
        }
        drop(queue);
        let mut batches = Vec::new();
        write_loop(c, &receiver, &|| {}, &Delivery::Direct, |batch| {
            batches.push(batch);
        });
        batches
    }

    fn answer<T>(mut answer: Answer<T>) -> Result<T, StoreError> {
        answer.try_recv().expect("answered")
    }

    fn multi_thread_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap()
    }

    #[test]
    fn a_writer_started_on_a_runtime_answers_every_caller_through_it() {
        let runtime = multi_thread_runtime();
        runtime.block_on(async {
            let writer = GroupCommit::start(connection(), || {}).unwrap();
            assert!(matches!(Delivery::here(), Delivery::Runtime(_)));
            let writes = (1..=100).map(|x| writer.write(insert(x)));
            for result in futures_util::future::join_all(writes).await {
                result.unwrap();
            }
            assert_eq!(
                writer.write(|c| Ok(rows(c))).await.unwrap(),
                (1..=100).collect::<Vec<_>>()
            );
        });
    }

    /// A lost answer would leave its caller waiting for good: the wait is bounded.
    async fn within_seconds<T>(answer: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(std::time::Duration::from_secs(10), answer)
            .await
            .expect("answered within 10 s")
    }

    #[test]
    fn answers_still_arrive_once_the_runtime_the_writer_started_on_is_gone() {
        let first = multi_thread_runtime();
        let writer = {
            let _inside = first.enter();
            GroupCommit::start(connection(), || {}).unwrap()
        };
        drop(first);
        let second = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        second.block_on(async {
            within_seconds(writer.write(insert(1))).await.unwrap();
            let all = within_seconds(writer.write(|c| Ok(rows(c)))).await;
            assert_eq!(all.unwrap(), [1]);
        });
    }

    #[test]
    fn writes_queued_together_commit_as_one_transaction() {
        let c = connection();
        let (jobs, answers): (Vec<_>, Vec<_>) = (1..=10).map(|x| job(false, insert(x))).unzip();
        assert_eq!(
            run(&c, jobs),
            [Committed {
                writes: 10,
                durable: true
            }]
        );
        for a in answers {
            answer(a).unwrap();
        }
        assert_eq!(rows(&c), (1..=10).collect::<Vec<_>>());
    }

    #[test]
    fn a_batch_holds_at_most_max_batch_writes() {
        let c = connection();
        let n = MAX_BATCH as i64 + 1;
        let (jobs, _answers): (Vec<_>, Vec<_>) = (1..=n).map(|x| job(false, insert(x))).unzip();
        let sizes: Vec<usize> = run(&c, jobs).iter().map(|b| b.writes).collect();
        assert_eq!(sizes, [MAX_BATCH, 1]);
    }

    #[test]
    fn a_failing_write_fails_alone_and_leaves_nothing_of_itself() {
        let c = connection();
        let (first, a1) = job(false, insert(1));
        // Its first statement succeeds, its second fails: the savepoint undoes both.
        let (failing, a2) = job(false, |c: &Connection| {
            c.execute("INSERT INTO t VALUES (2)", [])?;
            c.execute("INSERT INTO t VALUES (1)", []).map(drop)
        });
        let (last, a3) = job(false, insert(3));
        let (panicking, a4) = job(false, |_: &Connection| -> rusqlite::Result<()> {
            panic!("a bug in one write")
        });
        let batches = run(&c, vec![first, failing, last, panicking]);
        assert_eq!(batches.len(), 1);
        assert!(batches[0].durable);
        answer(a1).unwrap();
        assert!(answer(a2).is_err());
        answer(a3).unwrap();
        assert!(answer(a4).is_err());
        assert_eq!(rows(&c), [1, 3]);
    }

    #[test]
    fn a_write_runs_once_unless_another_of_its_batch_fails_and_then_answers_its_second_run() {
        use std::sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        };
        let c = connection();
        let counted = |x: i64, runs: &Arc<AtomicUsize>| {
            let runs = runs.clone();
            move |c: &Connection| {
                let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
                c.execute("INSERT INTO t VALUES (?1)", [x])?;
                Ok(run)
            }
        };
        let calm = Arc::new(AtomicUsize::new(0));
        let (alone, a1) = job(false, counted(1, &calm));
        run(&c, vec![alone]);
        assert_eq!(answer(a1).unwrap(), 1, "ran once");

        let rerun = Arc::new(AtomicUsize::new(0));
        let (good, a2) = job(false, counted(2, &rerun));
        let (duplicate, a3) = job(false, insert(1));
        run(&c, vec![good, duplicate]);
        assert_eq!(answer(a2).unwrap(), 2, "answered from its second run");
        assert!(answer(a3).is_err());
        assert_eq!(rows(&c), [1, 2], "the first run left nothing behind");
    }

    #[test]
    fn a_failed_commit_fails_every_write_of_its_batch_even_those_that_ran_well() {
        let c = connection();
        let (good, a1) = job(false, insert(1));
        // Fine as a statement; the commit finds the foreign key broken.
        let (orphan, a2) = job(false, |c: &Connection| {
            c.execute("INSERT INTO child VALUES (99)", []).map(drop)
        });
        let batches = run(&c, vec![good, orphan]);
        assert_eq!(
            batches,
            [Committed {
                writes: 2,
                durable: false
            }]
        );
        assert!(matches!(answer(a1), Err(StoreError::Unavailable(_))));
        assert!(matches!(answer(a2), Err(StoreError::Unavailable(_))));
        assert_eq!(rows(&c), Vec::<i64>::new());
        assert!(c.is_autocommit(), "the failed batch was rolled back");
        // The next batch starts clean.
        let (next, a3) = job(false, insert(2));
        run(&c, vec![next]);
        answer(a3).unwrap();
        assert_eq!(rows(&c), [2]);
    }

    #[test]
    fn a_write_alone_runs_outside_any_transaction_and_splits_the_batches_around_it() {
        let c = connection();
        let in_tx = |c: &Connection| Ok(!c.is_autocommit());
        let (before, a1) = job(false, in_tx);
        let (alone, a2) = job(true, in_tx);
        let (after, a3) = job(false, in_tx);
        let sizes: Vec<usize> = run(&c, vec![before, alone, after])
            .iter()
            .map(|b| b.writes)
            .collect();
        assert_eq!(sizes, [1, 1]);
        assert!(answer(a1).unwrap());
        assert!(!answer(a2).unwrap());
        assert!(answer(a3).unwrap());
    }

    #[tokio::test]
    async fn past_the_queue_bound_a_write_is_refused_at_once() {
        let writer = GroupCommit::start(connection(), || {}).unwrap();
        let (started, running) = mpsc::channel();
        let (release, stalled) = mpsc::channel::<()>();
        // A write that holds the writer, as a stalled disk would.
        let stall = writer
            .enqueue(false, move |_| {
                started.send(()).unwrap();
                stalled.recv().ok();
                Ok(())
            })
            .unwrap();
        running.recv().unwrap();
        let queued: Vec<_> = (0..QUEUE as i64)
            .map(|x| writer.enqueue(false, insert(x)).unwrap())
            .collect();
        let refused = writer.enqueue(false, insert(-1)).expect_err("refused");
        assert!(refused.to_string().contains("not keeping up"), "{refused}");
        release.send(()).unwrap();
        answered(stall).await.unwrap();
        for answer in queued {
            answered(answer).await.unwrap();
        }
    }
}
