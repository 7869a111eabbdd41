//! Writing an import (`authstore import convex`) in one transaction: every
//! row or none, so a bad row midway leaves the database as it was.

use super::{Duplicate, StoreError};
use crate::model::{Account, Authenticator, Session, User, VerificationToken};
use async_trait::async_trait;

/// The rows of an import, each with its line in the export, in the order
/// they are written (users before what refers to them).
#[derive(Default)]
pub struct ImportRows {
    pub users: Vec<(usize, User)>,
    pub accounts: Vec<(usize, Account)>,
    pub sessions: Vec<(usize, Session)>,
    pub verification_tokens: Vec<(usize, VerificationToken)>,
    pub authenticators: Vec<(usize, Authenticator)>,
}

/// One table of an import: written, or already there (a row whose own key
/// is present is left as it is, so a second run changes nothing).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Counted {
    pub imported: u64,
    pub present: u64,
}

/// What an import wrote, table by table (in [`TABLES`]' order).
pub type ImportCounts = [Counted; 5];

/// The export's names of the tables, in the order they are written.
pub const TABLES: [&str; 5] = [
    "users",
    "accounts",
    "sessions",
    "verificationTokens",
    "authenticators",
];

/// The row that stopped an import; nothing was written.
#[derive(Debug)]
pub struct RowRefused {
    /// Index into [`TABLES`].
    pub table: usize,
    pub line: usize,
    pub error: StoreError,
}

/// Why a row's write failed: its own key already present is no failure.
pub fn own_key(table: usize) -> Duplicate {
    match table {
        0 => Duplicate::UserId,
        1 => Duplicate::Account,
        2 => Duplicate::Session,
        3 => Duplicate::VerificationToken,
        _ => Duplicate::Authenticator,
    }
}

/// Counts one row's write into `counts`: `Ok` when written or already
/// present, else the refusal that rolls the whole import back.
pub fn count(
    counts: &mut ImportCounts,
    table: usize,
    line: usize,
    written: Result<(), StoreError>,
) -> Result<(), RowRefused> {
    let counted = counts.get_mut(table).ok_or(RowRefused {
        table,
        line,
        error: StoreError::backend("no such import table"),
    })?;
    match written {
        Ok(()) => counted.imported += 1,
        Err(StoreError::Conflict(duplicate)) if duplicate == own_key(table) => counted.present += 1,
        Err(error) => return Err(RowRefused { table, line, error }),
    }
    Ok(())
}

#[async_trait]
pub trait ImportStore: Send + Sync + 'static {
    /// Writes every row in one transaction; on the first row that fails
    /// (other than for its own key being present), writes nothing and says
    /// which row.
    async fn import_rows(&self, rows: ImportRows) -> Result<ImportCounts, RowRefused>;
}
