//! `[postgres]`: the PostgreSQL backend's settings (read and validated by
//! `config`, which layers them; used here).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[postgres]`: used when `database` is a `postgres://` URL.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresSettings {
    /// Connections this node keeps open at most.
    pub pool_size: u32,
    /// How long connecting, or waiting for a free pooled connection, may take.
    pub connect_timeout_secs: u64,
    /// How long one statement may run before PostgreSQL cancels it.
    pub statement_timeout_secs: u64,
    /// PEM file of the CA that signed the server's certificate, when it is
    /// not one the system trusts (with `sslmode=require` in the URL).
    pub ca_file: Option<PathBuf>,
}

impl Default for PostgresSettings {
    fn default() -> Self {
        PostgresSettings {
            pool_size: 16,
            connect_timeout_secs: 5,
            statement_timeout_secs: 5,
            ca_file: None,
        }
    }
}
