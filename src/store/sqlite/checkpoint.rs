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
//!
//! With `checkpoints = "litestream"` the passes are Litestream's: it copies
//! the WAL to its replica and then checkpoints it itself, and a checkpoint
//! that starts the WAL over before Litestream has copied it costs it a new
//! snapshot of the whole database. authstore then only watches the WAL
//! file's size, and checkpoints (TRUNCATE: the file shrinks, so the next
//! look sees the bound held) when it passes the budget: Litestream is
//! stopped or far behind, and the disk matters more than one snapshot.

use super::settings::Checkpoints;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_millis(100);
/// With Litestream checkpointing, how long after bounding the WAL (or
/// failing to) authstore waits before it tries again.
const BOUND_RETRY: Duration = Duration::from_secs(60);
/// SQLite's page size here: WAL frames are pages.
const PAGE_BYTES: i64 = 4096;

pub struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    /// `wal_budget_mib`: the WAL size past which a checkpoint bounds it;
    /// `wal`: the WAL file (see the module's documentation).
    pub fn spawn(
        conn: Connection,
        wal: PathBuf,
        wal_budget_mib: u32,
        mode: Checkpoints,
    ) -> std::io::Result<Self> {
        let budget_bytes = u64::from(wal_budget_mib) << 20;
        let restart_frames = (i64::from(wal_budget_mib) << 20) / PAGE_BYTES;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("authstore-checkpoint".into())
            .spawn(move || {
                // Litestream's mode: no second try at bounding the WAL before this.
                let mut not_before = Instant::now();
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                    let done = match mode {
                        Checkpoints::Authstore => checkpoint(&conn, restart_frames),
                        Checkpoints::Litestream if Instant::now() < not_before => Ok(()),
                        Checkpoints::Litestream => match bound(&conn, &wal, budget_bytes) {
                            Ok(Bounded::Within) => Ok(()),
                            outcome => {
                                // A checkpoint that waits for readers holds writers
                                // back: not again for a while.
                                not_before = Instant::now() + BOUND_RETRY;
                                outcome.map(|_| ())
                            }
                        },
                    };
                    if let Err(e) = done {
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

/// What [`bound`] found.
enum Bounded {
    Within,
    Checkpointed,
    /// A reader held the checkpoint back (Litestream reading, most likely).
    Busy,
}

/// Litestream checkpoints: only a WAL file past the budget is checkpointed
/// here (and truncated, so the next look sees it bounded).
fn bound(conn: &Connection, wal: &Path, budget_bytes: u64) -> rusqlite::Result<Bounded> {
    let size = std::fs::metadata(wal).map_or(0, |m| m.len());
    if size <= budget_bytes {
        return Ok(Bounded::Within);
    }
    log::warn!(
        "the WAL has grown to {} MiB, past wal_budget_mib: checkpointing it here although \
         checkpoints = \"litestream\" (is Litestream running and keeping up? it will take a \
         new snapshot)",
        size >> 20
    );
    // (busy, frames in the WAL, frames copied into the database)
    let (busy, _, _): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    if busy != 0 {
        log::warn!(
            "the WAL checkpoint could not finish: a reader holds it back; trying again in {} s",
            BOUND_RETRY.as_secs()
        );
        return Ok(Bounded::Busy);
    }
    Ok(Bounded::Checkpointed)
}
