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
    /// Whether a server holds the file alone or shares it with other servers.
    pub locking: Locking,
}

/// How a server locks the SQLite file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Locking {
    /// One server holds the file for as long as it runs (SQLite's `unix-excl`
    /// VFS): the WAL index lives in its own memory, and a read takes no lock
    /// through the kernel (the shared mode's two `fcntl` per read). A second
    /// server is refused; commands (`keys`, `audit`, `backup`, ...) reach the
    /// running server through its control socket, `<database>.sock`.
    #[default]
    Exclusive,
    /// Any number of servers and commands on the file at once, each read
    /// taking and dropping a shared lock.
    Shared,
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
        }
    }
}
