//! The one connection that writes, with group commit.
//!
//! SQLite admits one writer at a time; writers that contend through a pool
//! sleep in SQLite's busy handler (p99 in the hundreds of milliseconds,
//! measured here). So every write runs on this dedicated thread, in arrival
//! order, and the async caller awaits its answer without blocking an actix
//! worker. Writes that queue up while one commit is under way share the next
//! transaction (one commit, one WAL sync for all of them); each caller hears
//! back only after that commit.
//!
//! Each write runs inside its own SAVEPOINT: one that fails is rolled back
//! alone and only its caller hears the error. The queue is bounded: when it
//! is full, a write is refused at once with `Unavailable` rather than left
//! waiting behind a stalled disk.

use crate::store::{Result, StoreError as Error};
use rusqlite::Connection;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;

/// What a job does once its batch's commit has succeeded or failed.
type Reply = Box<dyn FnOnce(Result<(), Error>) + Send>;

/// How a job's own work went.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Done,
    /// Refused for the caller's reasons (not found, a conflict): the
    /// storage is fine.
    Refused,
    /// The storage failed (full, read-only, I/O).
    StorageFailed,
}

/// A queued write.
trait Job: Send {
    /// Runs inside the batch's transaction; says how the work went, and how
    /// to answer once the batch committed (or failed to).
    fn run(self: Box<Self>, conn: &mut Connection) -> (Outcome, Reply);
    /// Answers without running: the batch could not start.
    fn refuse(self: Box<Self>, error: Error);
}

struct Write<F, T> {
    work: F,
    reply: oneshot::Sender<Result<T>>,
}

impl<F, T> Job for Write<F, T>
where
    T: Send + 'static,
    F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &mut Connection) -> (Outcome, Reply) {
        let Write { work, reply } = *self;
        let result = work(conn);
        let outcome = match &result {
            Ok(_) => Outcome::Done,
            Err(Error::Unavailable(_)) => Outcome::StorageFailed,
            Err(_) => Outcome::Refused,
        };
        let answer: Reply = Box::new(move |committed: Result<(), Error>| {
            let _ = reply.send(match (result, committed) {
                (Err(own), _) => Err(own),
                (Ok(value), Ok(())) => Ok(value),
                (Ok(_), Err(e)) => Err(e),
            });
        });
        (outcome, answer)
    }

    fn refuse(self: Box<Self>, error: Error) {
        let _ = self.reply.send(Err(error));
    }
}

/// Most writes that share one transaction.
const MAX_BATCH: usize = 512;
/// Writes waiting for the writer before new ones are refused.
const QUEUE_CAPACITY: usize = 16_384;

/// What the writer knows about the storage's health, for `/readyz`.
#[derive(Default)]
pub struct WriteHealth {
    /// The last batch failed for a storage reason (full, read-only, I/O);
    /// cleared by the next batch that commits.
    failing: AtomicBool,
}

impl WriteHealth {
    pub fn failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }
}

pub struct Writer {
    jobs: Option<mpsc::SyncSender<Box<dyn Job>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    health: Arc<WriteHealth>,
}

impl Writer {
    /// Moves `conn` onto a new thread that runs jobs until the writer is dropped.
    pub fn spawn(mut conn: Connection) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::sync_channel::<Box<dyn Job>>(QUEUE_CAPACITY);
        let health = Arc::new(WriteHealth::default());
        let reported = health.clone();
        let thread = std::thread::Builder::new()
            .name("authstore-writer".into())
            .spawn(move || {
                while let Ok(first) = queue.recv() {
                    // Let the threads that queue writes run first (on a busy
                    // core the writer would otherwise wake for every single
                    // write): batches grow, and so does throughput. Returns at
                    // once when nothing else is runnable.
                    std::thread::yield_now();
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match queue.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    if let Some(m) = crate::metrics::get() {
                        m.writer_queue.sub(batch.len() as i64);
                        m.commit_batch.observe(batch.len() as f64);
                    }
                    run_batch(&mut conn, batch, &reported);
                }
            })?;
        Ok(Writer {
            jobs: Some(jobs),
            thread: Some(thread),
            health,
        })
    }

    pub fn health(&self) -> &WriteHealth {
        &self.health
    }

    /// Whether the writer thread is still running.
    pub fn is_alive(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Runs `work` on the writer connection, inside a transaction shared with
    /// other writes, and returns its result once that transaction committed.
    /// A failing `work` is rolled back alone (its own savepoint).
    pub async fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Write { work, reply });
        let stopped = || Error::Unavailable("the database writer has stopped".into());
        let jobs = self.jobs.as_ref().ok_or_else(stopped)?;
        let queued = crate::metrics::get().map(|m| &m.writer_queue);
        // Counted before it is sent: the writer may take it at once.
        queued.inspect(|q| q.inc());
        match jobs.try_send(job) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(_)) => {
                queued.inspect(|q| q.dec());
                return Err(Error::Unavailable(format!(
                    "{QUEUE_CAPACITY} writes are already waiting for the database"
                )));
            }
            Err(mpsc::TrySendError::Disconnected(_)) => {
                queued.inspect(|q| q.dec());
                return Err(stopped());
            }
        }
        answer
            .await
            .map_err(|_| Error::backend("the database writer dropped a write"))?
    }
}

fn run_batch(conn: &mut Connection, batch: Vec<Box<dyn Job>>, health: &WriteHealth) {
    // SQLite's busy handler waits for another process's lock up to the
    // connection's deadline; past it the whole batch is refused at once.
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let error = Error::from(e);
        note(health, &error);
        log::warn!("cannot begin a write transaction: {}", error.log_text());
        for job in batch {
            // Nothing ran: each caller hears the same refusal.
            job.refuse(Error::Unavailable(error.log_text()));
        }
        return;
    }
    let mut replies = Vec::with_capacity(batch.len());
    let mut wrote = false;
    for job in batch {
        if let Err(e) = conn.execute_batch("SAVEPOINT job") {
            log::warn!("cannot open a savepoint: {e}");
        }
        // A panicking job drops its reply (its caller sees an internal
        // error); the others in the batch go on.
        match catch_unwind(AssertUnwindSafe(|| job.run(conn))) {
            Ok((Outcome::Done, reply)) => {
                let _ = conn.execute_batch("RELEASE job");
                wrote = true;
                replies.push(reply);
            }
            Ok((outcome, reply)) => {
                let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
                if outcome == Outcome::StorageFailed {
                    health.failing.store(true, Ordering::Relaxed);
                }
                replies.push(reply);
            }
            Err(_) => {
                let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
                log::error!("a database write panicked; the writer continues");
            }
        }
    }
    let committed = match conn.execute_batch("COMMIT") {
        Ok(()) => {
            // Only a write that reached the disk shows the storage works again.
            if wrote {
                health.failing.store(false, Ordering::Relaxed);
            }
            Ok(())
        }
        Err(e) => {
            // A failed COMMIT saved nothing of the batch: roll it back and
            // tell every caller.
            let _ = conn.execute_batch("ROLLBACK");
            let error = Error::from(e);
            note(health, &error);
            log::error!("a write transaction failed to commit: {}", error.log_text());
            Err(error)
        }
    };
    for reply in replies {
        reply(match &committed {
            Ok(()) => Ok(()),
            Err(Error::Unavailable(reason)) => Err(Error::Unavailable(reason.clone())),
            Err(other) => Err(Error::backend(other.log_text())),
        });
    }
}

/// Remembers a storage failure for `/readyz`.
fn note(health: &WriteHealth, error: &Error) {
    if matches!(error, Error::Unavailable(_)) {
        health.failing.store(true, Ordering::Relaxed);
    }
}

impl Drop for Writer {
    /// Lets queued writes finish and the connection close (checkpointing the
    /// WAL) before the store is gone.
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
