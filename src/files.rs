//! Files authstore creates: readable by the owner only, whatever the umask,
//! and published whole, so a second process never reads half a file.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of every file authstore creates.
pub const PRIVATE: u32 = 0o600;

/// Creates `path` holding `contents` (mode 0600) unless it already exists.
/// Returns `Ok(false)` when another process (or an earlier start) created it
/// first; the caller then reads that one.
///
/// The contents go to a temporary file first, which is then hard-linked to
/// `path`: the link either appears whole or fails because `path` exists, so
/// two processes starting at the same instant agree on one file.
pub fn create_private(path: &Path, contents: &[u8]) -> std::io::Result<bool> {
    let temp = temp_name(path);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(PRIVATE)
            .open(&temp)?;
        // The mode given to open() is masked by the umask; say it again.
        file.set_permissions(std::fs::Permissions::from_mode(PRIVATE))?;
        file.write_all(contents)?;
        file.sync_all()?;
        match std::fs::hard_link(&temp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    })();
    let _ = std::fs::remove_file(&temp);
    result
}

/// Creates an empty file at `path` with mode 0600 if there is none (SQLite
/// then gives its `-wal` and `-shm` files the same mode).
pub fn touch_private(path: &Path) -> std::io::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE)
        .open(path)
    {
        Ok(file) => file.set_permissions(std::fs::Permissions::from_mode(PRIVATE)),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// A new file at `path`, written whole under a private name first and then
/// linked into place: `Err(AlreadyExists)` when anything is at `path`, a
/// symlink (dangling or not) included, and nothing is ever written through
/// one. `write` fills the staged file, named by its path, inside a directory
/// of mode 0700 (no other user can swap it for a link meanwhile); the file is
/// mode 0600 from its first byte. Only what this call staged is removed, on
/// failure as on success.
pub fn publish_new<E: From<std::io::Error>>(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    use std::os::unix::fs::DirBuilderExt;
    if std::fs::symlink_metadata(path).is_ok() {
        return Err(std::io::Error::from(ErrorKind::AlreadyExists).into());
    }
    let staging = temp_name(path);
    std::fs::DirBuilder::new().mode(0o700).create(&staging)?;
    let staged = staging.join("staged");
    let result = (|| {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(PRIVATE)
            .open(&staged)?
            .set_permissions(std::fs::Permissions::from_mode(PRIVATE))?;
        write(&staged)?;
        std::fs::File::open(&staged)?.sync_all()?;
        // link() never follows a link at its target: it fails if anything is there.
        std::fs::hard_link(&staged, path)?;
        Ok(())
    })();
    let _ = std::fs::remove_file(&staged);
    let _ = std::fs::remove_dir(&staging);
    result
}

/// Copies the file `from` to a new file `to` created 0600 (`std::fs::copy`
/// would give it `from`'s permission bits). `to` must not exist.
pub fn copy_private(from: &Path, to: &Path) -> std::io::Result<u64> {
    let mut source = std::fs::File::open(from)?;
    let mut target = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE)
        .open(to)?;
    target.set_permissions(std::fs::Permissions::from_mode(PRIVATE))?;
    let bytes = std::io::copy(&mut source, &mut target)?;
    target.sync_all()?;
    Ok(bytes)
}

/// Logs a warning when `path` can be read by its group or by others.
pub fn warn_if_readable_by_others(path: &Path, what: &str) {
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        let shown = path.display();
        let extra = if what == "database" {
            format!(" {shown}-wal {shown}-shm")
        } else {
            String::new()
        };
        log::warn!(
            "the {what} file {shown} can be read by other users (mode {mode:o}); \
             fix it with: chmod 600 {shown}{extra}"
        );
    }
}

/// A claim on a database: a lock on `<database>.lock`. A server holds it
/// while it runs, shared or (`sqlite.locking = "exclusive"`) sole; a command
/// that works on the file itself holds it shared meanwhile, so that a server
/// that would hold the file alone waits for it; commands that must not run
/// beside a server (`restore`) take it exclusively. A file of its own,
/// because closing any other descriptor of the database would drop SQLite's
/// locks on it.
pub struct Lease {
    _file: std::fs::File,
}

/// How long a server that would hold the database alone waits for commands
/// that work on the file to finish.
const START_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// How often a lease that is held elsewhere is tried again.
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("a running authstore is using {0}; stop it first")]
    Busy(PathBuf),
    #[error(
        "another authstore server is using {0}; a server with sqlite.locking = \"exclusive\" \
         must be the only one on its file: stop the other, or set locking = \"shared\" (the \
         default) in [sqlite] (AUTHSTORE_SQLITE_LOCKING=shared) for every server on it"
    )]
    Served(PathBuf),
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Lease {
    fn open(database: &Path) -> Result<(std::fs::File, PathBuf), LeaseError> {
        let path = with_suffix(database, ".lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(PRIVATE)
            .open(&path)
            .map_err(|source| LeaseError::Io {
                path: path.clone(),
                source,
            })?;
        Ok((file, path))
    }

    /// Held by every server that shares the database; any number at once.
    /// Refused beside a server that holds the database alone (`served`
    /// says whether one answers); waits for a command that holds it alone
    /// (`restore`, `keys rewrap`).
    pub fn shared(database: &Path, served: impl Fn() -> bool) -> Result<Lease, LeaseError> {
        let (file, path) = Self::open(database)?;
        Self::wait(database, None, || file.try_lock_shared(), served, &path)?;
        Ok(Lease { _file: file })
    }

    /// Held by a server that must be the only one on the database. Refused
    /// beside another server (`served`: it answers on its control socket);
    /// waits up to `START_WAIT` for commands that work on the file to finish.
    pub fn sole(database: &Path, served: impl Fn() -> bool) -> Result<Lease, LeaseError> {
        let (file, path) = Self::open(database)?;
        Self::wait(
            database,
            Some(START_WAIT),
            || file.try_lock(),
            served,
            &path,
        )?;
        Ok(Lease { _file: file })
    }

    /// Held by a command while it works on the database file itself (no
    /// server holds it alone): a server that would hold it alone waits for
    /// the command. `None` when a server holds the database alone (or a
    /// command that must run alone does): ask the server instead, or wait.
    pub fn command(database: &Path) -> Result<Option<Lease>, LeaseError> {
        let (file, path) = Self::open(database)?;
        match file.try_lock_shared() {
            Ok(()) => Ok(Some(Lease { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(source)) => Err(LeaseError::Io { path, source }),
        }
    }

    /// Retries `try_lock` until it succeeds, until a server that holds the
    /// database alone answers (`served`; refused), or past `deadline`
    /// (refused).
    fn wait(
        database: &Path,
        deadline: Option<std::time::Duration>,
        mut try_lock: impl FnMut() -> Result<(), std::fs::TryLockError>,
        served: impl Fn() -> bool,
        path: &Path,
    ) -> Result<(), LeaseError> {
        let started = std::time::Instant::now();
        loop {
            match try_lock() {
                Ok(()) => return Ok(()),
                Err(std::fs::TryLockError::Error(source)) => {
                    return Err(LeaseError::Io {
                        path: path.to_owned(),
                        source,
                    })
                }
                Err(std::fs::TryLockError::WouldBlock) => {}
            }
            if served() || deadline.is_some_and(|limit| started.elapsed() >= limit) {
                return Err(LeaseError::Served(database.to_owned()));
            }
            // Leases are taken before any runtime serves (start-up, a command).
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(LOCK_RETRY);
        }
    }

    /// Only when no server holds the database.
    pub fn exclusive(database: &Path) -> Result<Lease, LeaseError> {
        let (file, _) = Self::open(database)?;
        match file.try_lock() {
            Ok(()) => Ok(Lease { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(LeaseError::Busy(database.to_owned())),
            Err(std::fs::TryLockError::Error(source)) => Err(LeaseError::Io {
                path: database.to_owned(),
                source,
            }),
        }
    }
}

fn temp_name(path: &Path) -> PathBuf {
    with_suffix(path, &format!(".tmp-{}-{}", std::process::id(), unique()))
}

/// `path` with `suffix` appended to its file name: `authstore.db` and
/// `-wal` give `authstore.db-wal`.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_writer_wins_and_the_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        assert!(create_private(&path, b"one").unwrap());
        assert!(!create_private(&path, b"two").unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp left"
        );
    }

    #[test]
    fn racing_writers_agree_on_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || create_private(&path, format!("{i}").as_bytes()))
            })
            .collect();
        let won: usize = threads
            .into_iter()
            .map(|t| usize::from(t.join().unwrap().unwrap()))
            .sum();
        assert_eq!(won, 1);
    }
}
