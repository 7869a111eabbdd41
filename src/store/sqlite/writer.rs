//! The one connection that writes.
//!
//! SQLite admits one writer at a time; writers that contend through a pool
//! sleep in SQLite's busy handler (p99 in the hundreds of milliseconds, measured
//! here). So every write runs on this dedicated thread, in arrival order, and
//! the async caller awaits its answer without blocking an actix worker.

use crate::error::{Error, Result};
use rusqlite::Connection;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

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
                for job in queue {
                    // A panicking job drops its reply channel (the caller sees an
                    // internal error); the writer itself keeps serving.
                    if catch_unwind(AssertUnwindSafe(|| job(&mut conn))).is_err() {
                        log::error!("a database write panicked; the writer continues");
                    }
                }
            })?;
        Ok(Writer {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Runs `work` on the writer connection and returns its result.
    pub async fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .as_ref()
            .ok_or_else(|| Error::internal("the database writer has stopped"))?
            .send(Box::new(move |conn| {
                let _ = reply.send(work(conn));
            }))
            .map_err(|_| Error::internal("the database writer has stopped"))?;
        answer
            .await
            .map_err(|_| Error::internal("the database writer dropped a write"))?
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
