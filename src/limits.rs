//! Process limits: enough file descriptors for the connections we accept.
//!
//! Every connection holds a descriptor. Under the usual soft limit of 1,024
//! a flood of idle connections exhausted them and `accept` failed for
//! everyone, `/healthz` included. So the soft limit is raised to the hard
//! limit at start, and `max_connections` keeps the connections within it.

/// Descriptors kept for the database, its WAL, logs and the like.
const RESERVED: u64 = 128;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft
/// limit now in force.
pub fn raise_open_files() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read or write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                log::info!(
                    "open-file limit raised from {} to {}",
                    limit.rlim_cur,
                    limit.rlim_max
                );
                return limit.rlim_max;
            }
            log::warn!(
                "cannot raise the open-file limit above {}; set LimitNOFILE (systemd) or ulimit -n",
                limit.rlim_cur
            );
        }
    }
    limit.rlim_cur
}

/// Connections accepted at once, over all workers: the setting, or what
/// the open-file limit leaves after the reserve.
pub fn max_connections(setting: usize, open_files: u64) -> usize {
    match setting {
        0 => open_files.saturating_sub(RESERVED).clamp(64, 1 << 20) as usize,
        n => n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_leaves_a_reserve() {
        assert_eq!(max_connections(0, 1024), 896);
        assert_eq!(max_connections(0, 100), 64);
        assert_eq!(max_connections(500, 1024), 500);
    }
}
