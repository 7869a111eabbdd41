//! WAL checkpoints off the commit path.
//!
//! By default SQLite checkpoints inside the commit that pushes the WAL past
//! 1000 pages, so one unlucky request pays for copying the WAL into the
//! database (a p99 of 7-11 ms, measured here). The writer turns that off and
//! this thread checkpoints instead, on its own connection: a PASSIVE
//! checkpoint runs beside readers and the writer without blocking them.
//!
//! Under a steady flood of writes a PASSIVE checkpoint never quite catches
//! up, and the WAL starts over only once it is wholly copied: until writes
//! pause (any real pause; the next write then restarts it), the WAL grows,
//! about 16 KB per new session. A RESTART checkpoint would bound it, but it
//! holds writers back while it copies and syncs everything the PASSIVE passes
//! left unsynced (SQLite syncs the database only when a checkpoint
//! completes): a write p99 of 35-90 ms, measured here. Syncing the database
//! from this thread after each pass made it worse (ext4's journal commit then
//! stalls the writer's WAL appends: p99 260 ms). So the WAL may grow to
//! `RESTART_FRAMES` (1 GiB) before that stall is accepted to bound the disk
//! space. The WAL file then keeps its size and is overwritten from the start
//! (no `journal_size_limit`: truncating a 1 GiB file in the writer stalled
//! writes for 250 ms).

use rusqlite::Connection;
use std::sync::mpsc;
use std::time::Duration;

const EVERY: Duration = Duration::from_millis(100);
/// SQLite's page size here: WAL frames are pages.
const PAGE_BYTES: i64 = 4096;

pub struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    /// `wal_budget_mib`: the WAL size past which a RESTART checkpoint bounds
    /// it (see the module's documentation).
    pub fn spawn(conn: Connection, wal_budget_mib: u32) -> std::io::Result<Self> {
        let restart_frames = (i64::from(wal_budget_mib) << 20) / PAGE_BYTES;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("authstore-checkpoint".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                    if let Err(e) = checkpoint(&conn, restart_frames) {
                        log::warn!("WAL checkpoint failed: {e}");
                    }
                }
            })?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn checkpoint(conn: &Connection, restart_frames: i64) -> rusqlite::Result<()> {
    // (busy, frames in the WAL, frames copied into the database)
    let (_, frames, _): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    if frames > restart_frames {
        conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))?;
    }
    Ok(())
}
