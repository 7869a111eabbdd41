//! `[sqlite]`: the SQLite backend's settings (read and validated by
//! `config`, which layers them; used here).

use serde::{Deserialize, Serialize};

/// `[sqlite]`: used when `database` is a file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqliteSettings {
    pub durability: Durability,
    /// Read-only connections; 0 means one per worker plus one (reads run on
    /// the workers, so no more are ever in use at once).
    pub read_connections: u32,
    /// SQLite page cache of each read connection, in MiB.
    pub read_cache_mib: u32,
    /// Map up to this many MiB of the database into memory for reads; 0 is off.
    pub read_mmap_mib: u32,
    /// The WAL's size past which it is bounded (a RESTART checkpoint), in MiB.
    pub wal_budget_mib: u32,
    /// Whether a server shares the file (with other servers, commands,
    /// Litestream, any reader) or holds it alone.
    pub locking: Locking,
    /// Who checkpoints the WAL: authstore, or a replicator (Litestream).
    pub checkpoints: Checkpoints,
}

/// How a server locks the SQLite file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Locking {
    /// Any number of servers, commands and other readers (Litestream, the
    /// `sqlite3` shell) on the file at once, each read taking and dropping a
    /// shared lock through the kernel.
    #[default]
    Shared,
    /// One server holds the file for as long as it runs (SQLite's `unix-excl`
    /// VFS): the WAL index lives in its own memory, and a read takes no lock
    /// through the kernel (the shared mode's two `fcntl` per read, 4-8% of a
    /// lookup). No other process can open the file meanwhile: a second
    /// server is refused, Litestream cannot replicate it, and commands
    /// (`keys`, `audit`, `backup`, ...) reach the running server through its
    /// control socket, `<database>.sock`.
    Exclusive,
}

/// Who checkpoints the write-ahead log (copies it into the database so it
/// can start over).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Checkpoints {
    /// authstore, off the commit path: a PASSIVE checkpoint every 100 ms,
    /// a RESTART once the WAL passes `wal_budget_mib`.
    #[default]
    Authstore,
    /// Litestream, which replicates the WAL and checkpoints it itself once
    /// it has copied it. authstore checkpoints only when the WAL file passes
    /// `wal_budget_mib` (Litestream stopped, or far behind), so the WAL stays
    /// bounded; Litestream then starts a new snapshot, and loses nothing.
    Litestream,
}

/// `PRAGMA synchronous` in WAL mode: what a commit waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Commits survive a crash of authstore; the last ones may be lost on a
    /// power cut or kernel panic. The database is never corrupted.
    #[default]
    Normal,
    /// Every commit is fsynced before it is acknowledged.
    Full,
}

impl Default for SqliteSettings {
    fn default() -> Self {
        SqliteSettings {
            durability: Durability::default(),
            read_connections: 0,
            read_cache_mib: 8,
            read_mmap_mib: 1024,
            wal_budget_mib: 1024,
            locking: Locking::default(),
            checkpoints: Checkpoints::default(),
        }
    }
}
