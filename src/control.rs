//! The control socket of a server that holds its SQLite file alone
//! (`sqlite.locking = "exclusive"`): `<database>.sock`, mode 0600, answering
//! only processes of the server's own user.
//!
//! While such a server runs, no other process can open the file, so a
//! command (`authstore keys rotate`, `audit`, `backup`, `console-link`, ...)
//! sends its command line here instead, and the server runs it on its own
//! store and answers with what the command printed and its exit status. The
//! protocol is one JSON object each way on one connection:
//! `{"args": [...], "cwd": "..."}` (the client then shuts its side for
//! writing), and `{"stdout": "...", "stderr": "...", "code": 0}`.

use crate::config::Config;
use crate::files::with_suffix;
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The largest request read: a command line, not a payload.
const MAX_REQUEST: u64 = 64 * 1024;

/// The longest socket path Linux accepts (`sun_path` holds 108 bytes with
/// its terminating NUL).
const MAX_PATH: usize = 107;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot reach the server that holds the database through {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the server that holds the database did not answer through {path}: {reason}")]
    Answer { path: PathBuf, reason: String },
    #[error("the command line is not valid UTF-8, which the server cannot be sent")]
    NotUtf8,
    /// A socket another user made, or answered by another user's process:
    /// whatever it says is not this database's server speaking.
    #[error(
        "refusing the control socket {path}: {reason}; it is not the server of this database \
         (remove it if no server of yours is running)"
    )]
    Untrusted { path: PathBuf, reason: String },
}

#[derive(Serialize, Deserialize)]
struct Request {
    args: Vec<String>,
    cwd: PathBuf,
}

/// Runs a command line for a client, as typed in its directory, on the
/// server's store with its settings: the command line's own code, handed in
/// by the server (this module knows the protocol, not the commands).
pub type Runner = fn(Vec<String>, &Path, Config, Arc<dyn Store>) -> Reply;

/// What a command run by the server printed, and its exit status.
#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    pub stdout: String,
    pub stderr: String,
    pub code: u8,
}

impl Reply {
    /// Prints the output where the command would have; `Err(code)` for a
    /// command that failed.
    pub fn print(&self) -> Result<(), u8> {
        eprint!("{}", self.stderr);
        print!("{}", self.stdout);
        let _ = std::io::stdout().flush();
        match self.code {
            0 => Ok(()),
            code => Err(code),
        }
    }
}

/// The control socket's path for the database at `database`.
pub fn socket_path(database: &Path) -> PathBuf {
    with_suffix(database, ".sock")
}

/// Whether a server that holds `database` alone answers on its socket (a
/// socket that is not trusted is no server of ours).
pub fn answers(database: &Path) -> bool {
    matches!(connect(&socket_path(database)), Ok(Some(_)))
}

/// This process's effective user.
fn own_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Connects to the socket at `path` when it is one this process may trust:
/// a socket owned by its own user (or root), whose listening process runs
/// as its own user. `None`: nothing listens there. Anyone who can write
/// the database's directory can plant a socket; a command must never send
/// its command line to one, or believe its answer.
fn connect(path: &Path) -> Result<Option<std::os::unix::net::UnixStream>, ControlError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let untrusted = |reason: String| ControlError::Untrusted {
        path: path.to_owned(),
        reason,
    };
    let own = own_uid();
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ControlError::Connect {
                path: path.to_owned(),
                source,
            })
        }
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(untrusted("it is not a socket".into()))
        }
        Ok(meta) if meta.uid() != own && meta.uid() != 0 => {
            return Err(untrusted(format!(
                "it belongs to user {}, not to you ({own})",
                meta.uid()
            )))
        }
        Ok(_) => {}
    }
    let stream = match std::os::unix::net::UnixStream::connect(path) {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(source) => {
            return Err(ControlError::Connect {
                path: path.to_owned(),
                source,
            })
        }
    };
    let peer = peer_uid(&stream).map_err(|source| ControlError::Connect {
        path: path.to_owned(),
        source,
    })?;
    if peer != own {
        return Err(untrusted(format!(
            "the process listening on it runs as user {peer}, not as you ({own})"
        )));
    }
    Ok(Some(stream))
}

/// The user of the process at the other end (`SO_PEERCRED`: the kernel's
/// record of who bound the listening socket, which the peer cannot forge).
fn peer_uid(stream: &std::os::unix::net::UnixStream) -> std::io::Result<u32> {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: the descriptor is open for the call's duration; `cred` and
    // `len` are valid for writes of the size `len` says.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast::<libc::c_void>(),
            &mut len,
        )
    };
    match rc {
        0 => Ok(cred.uid),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Sends this process's command line to the server that holds `database`,
/// when one is listening; `None` when none is (no socket, or one left behind
/// by a server that is gone): the command then opens the file itself.
pub fn forward(database: &Path) -> Result<Option<Reply>, ControlError> {
    let path = socket_path(database);
    let Some(mut stream) = connect(&path)? else {
        return Ok(None);
    };
    let args = std::env::args_os()
        .map(|arg| arg.into_string().map_err(|_| ControlError::NotUtf8))
        .collect::<Result<Vec<_>, _>>()?;
    let cwd = std::env::current_dir().map_err(|source| ControlError::Connect {
        path: path.clone(),
        source,
    })?;
    let answer_error = |reason: String| ControlError::Answer {
        path: path.clone(),
        reason,
    };
    let request =
        serde_json::to_vec(&Request { args, cwd }).map_err(|e| answer_error(e.to_string()))?;
    stream
        .write_all(&request)
        .and_then(|()| stream.shutdown(std::net::Shutdown::Write))
        .map_err(|e| answer_error(e.to_string()))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|e| answer_error(e.to_string()))?;
    if answer.is_empty() {
        return Err(answer_error(
            "it closed the connection without an answer (did it stop?)".into(),
        ));
    }
    serde_json::from_slice(&answer)
        .map(Some)
        .map_err(|e| answer_error(e.to_string()))
}

/// The listening socket; removed when dropped.
pub struct ControlSocket {
    path: PathBuf,
    inode: u64,
    task: actix_web::rt::task::JoinHandle<()>,
}

impl ControlSocket {
    /// Listens on `<database>.sock` (replacing one a stopped server left
    /// behind: this process holds the database alone, so no other server
    /// can be listening there) and runs the commands sent to it on `store`.
    /// `None`, with a warning, when the socket cannot be made: the server
    /// serves, but commands cannot reach it.
    pub fn listen(config: &Config, store: Arc<dyn Store>, run: Runner) -> Option<ControlSocket> {
        let path = socket_path(&config.database);
        match Self::bind(&path) {
            Ok((listener, inode)) => {
                let task = actix_web::rt::spawn(serve(listener, config.clone(), store, run));
                log::info!("commands reach this server through {}", path.display());
                Some(ControlSocket { path, inode, task })
            }
            Err(e) => {
                log::warn!(
                    "no control socket at {} ({e}): commands such as `authstore keys rotate` \
                     cannot reach this server, and cannot open the database while it runs; \
                     use a shorter database path, or sqlite.locking = \"shared\"",
                    path.display()
                );
                None
            }
        }
    }

    fn bind(path: &Path) -> std::io::Result<(tokio::net::UnixListener, u64)> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        if path.as_os_str().len() > MAX_PATH {
            return Err(std::io::Error::other(format!(
                "the path is longer than the {MAX_PATH} bytes a socket's may be"
            )));
        }
        // Bound under a temporary name and made private before it appears
        // under its own: no other user can connect in between.
        let staged = with_suffix(path, &format!(".{}", std::process::id()));
        let _ = std::fs::remove_file(&staged);
        let listener = std::os::unix::net::UnixListener::bind(&staged)?;
        std::fs::set_permissions(
            &staged,
            std::fs::Permissions::from_mode(crate::files::PRIVATE),
        )?;
        std::fs::rename(&staged, path)?;
        let inode = std::fs::metadata(path)?.ino();
        listener.set_nonblocking(true)?;
        Ok((tokio::net::UnixListener::from_std(listener)?, inode))
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt;
        self.task.abort();
        // Only our own: never a socket another server has put there since.
        if std::fs::metadata(&self.path).is_ok_and(|m| m.ino() == self.inode) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

async fn serve(
    listener: tokio::net::UnixListener,
    config: Config,
    store: Arc<dyn Store>,
    run: Runner,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                log::warn!("control socket: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let (config, store) = (config.clone(), store.clone());
        actix_web::rt::spawn(async move {
            if let Err(e) = answer(stream, config, store, run).await {
                log::warn!("control socket: {e}");
            }
        });
    }
}

/// Runs one command for a client of this server's own user.
async fn answer(
    mut stream: tokio::net::UnixStream,
    config: Config,
    store: Arc<dyn Store>,
    run: Runner,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let own = own_uid();
    let peer = stream.peer_cred()?.uid();
    if peer != own {
        return Err(std::io::Error::other(format!(
            "refused a client of user {peer}, not this server's ({own})"
        )));
    }
    let mut bytes = Vec::new();
    (&mut stream)
        .take(MAX_REQUEST)
        .read_to_end(&mut bytes)
        .await?;
    if bytes.is_empty() {
        // A probe: is a server listening here (`answers`)?
        return Ok(());
    }
    let request: Request = serde_json::from_slice(&bytes)
        .map_err(|e| std::io::Error::other(format!("a request that is not one: {e}")))?;
    // The subcommand alone: nothing a command line carries reaches the log.
    let name = request.args.get(1).cloned().unwrap_or_default();
    // Commands run their own actix system, as on the command line: on a
    // thread of their own, since a runtime cannot start inside this one.
    let (done, reply) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("authstore-command".into())
        .spawn(move || {
            let reply = run(request.args, &request.cwd, config, store);
            let _ = done.send(reply);
        })?;
    let reply = reply
        .await
        .map_err(|_| std::io::Error::other("the command's thread ended without a reply"))?;
    log::info!(
        "ran `authstore {name}` for a command line (status {})",
        reply.code
    );
    let json = serde_json::to_vec(&reply).map_err(std::io::Error::other)?;
    stream.write_all(&json).await?;
    stream.shutdown().await
}
