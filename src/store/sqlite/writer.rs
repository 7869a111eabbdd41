//! The one connection that writes, with group commit.
//!
//! SQLite admits one writer at a time; writers that contend through a pool
//! sleep in SQLite's busy handler (p99 in the hundreds of milliseconds,
//! measured here). So every write runs on this dedicated thread, in arrival
//! order, and the async caller awaits its answer without blocking an actix
//! worker. Writes that queue up while one commit is under way share the next
//! transaction (one commit, one WAL sync for all of them); each caller hears
//! back only after that commit.

use crate::error::{Error, Result};
use rusqlite::Connection;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use tokio::sync::oneshot;

/// What a job does once its batch's commit has succeeded or failed.
type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
/// Runs inside the batch's transaction.
type Job = Box<dyn FnOnce(&mut Connection) -> Reply + Send>;

/// Most writes that share one transaction.
const MAX_BATCH: usize = 512;

pub struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// Moves `conn` onto a new thread that runs jobs until the writer is dropped.
    pub fn spawn(mut conn: Connection) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
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
                    run_batch(&mut conn, batch);
                }
            })?;
        Ok(Writer {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Runs `work` on the writer connection, inside a transaction shared with
    /// other writes, and returns its result once that transaction committed.
    /// A multi-statement `work` that must be all-or-nothing uses a savepoint.
    pub async fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = work(conn);
            Box::new(move |committed: Result<(), String>| {
                let _ = reply.send(match committed {
                    Ok(()) => result,
                    Err(e) => Err(Error::internal(format!("commit failed: {e}"))),
                });
            })
        });
        self.jobs
            .as_ref()
            .ok_or_else(|| Error::internal("the database writer has stopped"))?
            .send(job)
            .map_err(|_| Error::internal("the database writer has stopped"))?;
        answer
            .await
            .map_err(|_| Error::internal("the database writer dropped a write"))?
    }
}

fn run_batch(conn: &mut Connection, batch: Vec<Job>) {
    let in_transaction = match conn.execute_batch("BEGIN IMMEDIATE") {
        Ok(()) => true,
        Err(e) => {
            // Another process holds the lock past the busy timeout: run each
            // write on its own, so each still gets a definite answer.
            log::warn!("cannot begin a write transaction ({e}); writing one by one");
            false
        }
    };
    let mut replies = Vec::with_capacity(batch.len());
    for job in batch {
        // A panicking job drops its reply (its caller sees an internal
        // error); the others in the batch go on.
        match catch_unwind(AssertUnwindSafe(|| job(conn))) {
            Ok(reply) => replies.push(reply),
            Err(_) => log::error!("a database write panicked; the writer continues"),
        }
    }
    let committed = if in_transaction {
        conn.execute_batch("COMMIT").map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            e.to_string()
        })
    } else {
        Ok(())
    };
    if let Err(e) = &committed {
        log::error!("a write transaction failed to commit: {e}");
    }
    for reply in replies {
        reply(committed.clone());
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
