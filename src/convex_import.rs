//! `authstore import convex EXPORT`: moving off the Convex Auth.js adapter
//! guide's setup. Reads a Convex snapshot export (`npx convex export --path
//! snapshot.zip`, a ZIP or a directory, one `TABLE/documents.jsonl` per
//! table) of the guide's tables (`users`, `accounts`, `sessions`,
//! `verificationTokens`, `authenticators`) and loads it through the store.
//!
//! User ids are kept (a Convex `Id<"users">` stays the user's id, so the
//! tokens authstore mints carry the same `sub`); session tokens are stored as
//! their digests like any other, so signed-in browsers stay signed in; OAuth
//! tokens are sealed. A row already present is left as it is: a second run
//! changes nothing.
//!
//! The export is read as a stream: each of the guide's tables line by line,
//! a line no longer than the adapter's own body limit (`max_body_bytes`),
//! and the app's own tables never decompressed (a small ZIP may inflate to
//! gigabytes). Every row is checked before the first is written, and they
//! are written in one transaction: a bad row anywhere leaves the database
//! as it was, and the error names its table and line.

use crate::model::{Account, Authenticator, NewUser, Session, VerificationToken};
use crate::store::import::{ImportRows, RowRefused, TABLES};
use crate::store::{Store, StoreError};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use crate::store::import::Counted;

/// Fields Convex adds to every document.
const SYSTEM_FIELDS: [&str; 2] = ["_id", "_creationTime"];

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is neither a directory nor a ZIP file of a Convex export: {reason}")]
    NotAnExport { path: PathBuf, reason: String },
    #[error("the export has no users table (users/documents.jsonl): is it the guide's schema?")]
    NoUsers,
    #[error("{table}/documents.jsonl, line {line}: {reason}; nothing was imported")]
    Row {
        table: &'static str,
        line: usize,
        reason: String,
    },
    #[error(
        "the database already holds {others} user(s) that are not in this export; import \
         beside them with --allow-existing-users"
    )]
    OthersPresent { others: u64 },
    #[error("the database: {0}")]
    Store(String),
}

#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub tables: BTreeMap<&'static str, Counted>,
    /// Tables of the export that are not the guide's (the app's own data).
    pub ignored: Vec<String>,
    #[serde(skip)]
    pub took: Duration,
}

/// The guide's tables of an export, parsed and checked, ready to write.
#[derive(Default)]
pub struct Export {
    rows: ImportRows,
    has_users: bool,
    /// Tables of the export that are not the guide's, by name (unread).
    ignored: Vec<String>,
}

/// Reads the export at `path` (a directory or a ZIP): the guide's tables,
/// streamed line by line with no line longer than `max_line` bytes.
pub fn read_export(path: &Path, max_line: usize) -> Result<Export, ImportError> {
    let read_error = |source| ImportError::Read {
        path: path.to_owned(),
        source,
    };
    let mut export = Export::default();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).map_err(read_error)? {
            let entry = entry.map_err(read_error)?;
            let documents = entry.path().join("documents.jsonl");
            if !documents.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(table) = guide_table(&name) else {
                export.ignore(name);
                continue;
            };
            let file = std::fs::File::open(&documents).map_err(|source| ImportError::Read {
                path: documents.clone(),
                source,
            })?;
            export
                .read_table(table, file, max_line)
                .map_err(|e| e.at_path(&documents))?;
        }
        return Ok(export);
    }
    let file = std::fs::File::open(path).map_err(read_error)?;
    let not_an_export = |reason: String| ImportError::NotAnExport {
        path: path.to_owned(),
        reason,
    };
    let mut archive = zip::ZipArchive::new(file).map_err(|e| not_an_export(e.to_string()))?;
    for index in 0..archive.len() {
        let entry = archive
            .by_index(index)
            .map_err(|e| not_an_export(e.to_string()))?;
        let name = entry
            .name()
            .map_err(|e| not_an_export(e.to_string()))?
            .into_owned();
        let Some(table_name) = name.strip_suffix("/documents.jsonl") else {
            continue;
        };
        if table_name.contains('/') {
            continue; // a component's tables, not the app's
        }
        let Some(table) = guide_table(table_name) else {
            // Never inflated: only its name is kept.
            export.ignore(table_name.to_owned());
            continue;
        };
        export
            .read_table(table, entry, max_line)
            .map_err(|e| e.at_path(Path::new(&name)))?;
    }
    Ok(export)
}

/// The guide's name for `name`, if it is one of its tables.
fn guide_table(name: &str) -> Option<&'static str> {
    TABLES.iter().copied().find(|table| *table == name)
}

/// A failure while reading one table's file.
enum TableError {
    Io(std::io::Error),
    Row(ImportError),
}

impl TableError {
    fn at_path(self, path: &Path) -> ImportError {
        match self {
            TableError::Io(source) => ImportError::Read {
                path: path.to_owned(),
                source,
            },
            TableError::Row(e) => e,
        }
    }
}

impl Export {
    fn ignore(&mut self, name: String) {
        if !name.starts_with('_') {
            self.ignored.push(name);
        }
    }

    /// Parses `table`'s documents from `input`, one line at a time.
    fn read_table(
        &mut self,
        table: &'static str,
        input: impl Read,
        max_line: usize,
    ) -> Result<(), TableError> {
        let mut reader = BufReader::new(input);
        let mut buffer = Vec::new();
        let mut line = 0;
        loop {
            buffer.clear();
            line += 1;
            // One byte past the limit tells a line that is too long.
            let limit = u64::try_from(max_line)
                .unwrap_or(u64::MAX)
                .saturating_add(1);
            let read = (&mut reader)
                .take(limit)
                .read_until(b'\n', &mut buffer)
                .map_err(TableError::Io)?;
            if read == 0 {
                return Ok(());
            }
            let text = buffer.strip_suffix(b"\n").unwrap_or(&buffer);
            if text.len() > max_line {
                return Err(TableError::Row(ImportError::Row {
                    table,
                    line,
                    reason: format!(
                        "the line is longer than {max_line} bytes, the adapter's own limit \
                         (max_body_bytes)"
                    ),
                }));
            }
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let text = std::str::from_utf8(text).map_err(|_| {
                TableError::Row(ImportError::Row {
                    table,
                    line,
                    reason: "not UTF-8".into(),
                })
            })?;
            self.add(table, line, text).map_err(TableError::Row)?;
        }
    }

    /// Parses one document of `table` into its typed row.
    fn add(&mut self, table: &'static str, line: usize, text: &str) -> Result<(), ImportError> {
        let (id, mut fields) = document(table, line, text)?;
        let rows = &mut self.rows;
        match table {
            "users" => {
                self.has_users = true;
                fields.insert("id".into(), Value::String(id));
                let user = parse::<NewUser>(table, line, fields)?.into_user();
                rows.users.push((line, user));
            }
            "accounts" => rows
                .accounts
                .push((line, parse::<Account>(table, line, fields)?)),
            "sessions" => rows
                .sessions
                .push((line, parse::<Session>(table, line, fields)?)),
            "verificationTokens" => rows
                .verification_tokens
                .push((line, parse::<VerificationToken>(table, line, fields)?)),
            _ => rows
                .authenticators
                .push((line, parse::<Authenticator>(table, line, fields)?)),
        }
        Ok(())
    }
}

/// One document, without Convex's system fields, with whole numbers written
/// as integers (Convex numbers are float64: `1.7e12` for a millisecond instant).
fn document(
    table: &'static str,
    line: usize,
    text: &str,
) -> Result<(String, Map<String, Value>), ImportError> {
    let row_error = |reason: String| ImportError::Row {
        table,
        line,
        reason,
    };
    let value: Value = serde_json::from_str(text).map_err(|e| row_error(e.to_string()))?;
    let Value::Object(mut fields) = value else {
        return Err(row_error("not a JSON object".into()));
    };
    let id = match fields.get("_id") {
        Some(Value::String(id)) => id.clone(),
        _ => return Err(row_error("no _id".into())),
    };
    for system in SYSTEM_FIELDS {
        fields.remove(system);
    }
    for value in fields.values_mut() {
        if let Value::Number(number) = value {
            if let Some(float) = number
                .as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            {
                if number.as_i64().is_none() {
                    *value = Value::from(float as i64);
                }
            }
        }
    }
    Ok((id, fields))
}

fn parse<T: serde::de::DeserializeOwned>(
    table: &'static str,
    line: usize,
    fields: Map<String, Value>,
) -> Result<T, ImportError> {
    serde_json::from_value(Value::Object(fields)).map_err(|e| ImportError::Row {
        table,
        line,
        reason: e.to_string(),
    })
}

/// What a refused row's failure means to the person importing.
fn refused(refusal: RowRefused) -> ImportError {
    let table = TABLES.get(refusal.table).copied().unwrap_or("users");
    let reason = match refusal.error {
        StoreError::Conflict(duplicate) => format!("another row already has this {duplicate}"),
        StoreError::MissingUser => "its userId is not a user of the export".into(),
        other if refusal.line == 0 => return ImportError::Store(other.log_text()),
        other => other.log_text(),
    };
    ImportError::Row {
        table,
        line: refusal.line,
        reason,
    }
}

/// Loads the guide's tables of `export` into `store`, in one transaction.
pub async fn import(
    store: &dyn Store,
    export: Export,
    allow_existing_users: bool,
) -> Result<Report, ImportError> {
    let started = Instant::now();
    if !export.has_users {
        return Err(ImportError::NoUsers);
    }
    let store_error = |e: StoreError| ImportError::Store(e.log_text());
    let Export {
        mut rows, ignored, ..
    } = export;

    // Users imported before are left as they are (their email may have
    // changed since); the refusal comes before any write.
    let mut present = 0u64;
    let mut new_users = Vec::with_capacity(rows.users.len());
    for (line, user) in rows.users {
        match store.get_user(&user.id).await.map_err(store_error)? {
            Some(_) => present += 1,
            None => new_users.push((line, user)),
        }
    }
    rows.users = new_users;
    let others = store
        .count_users()
        .await
        .map_err(store_error)?
        .saturating_sub(present);
    if others > 0 && !allow_existing_users {
        return Err(ImportError::OthersPresent { others });
    }
    let mut counts = store.import_rows(rows).await.map_err(refused)?;
    if let Some(users) = counts.first_mut() {
        users.present += present;
    }
    Ok(Report {
        tables: TABLES.iter().copied().zip(counts).collect(),
        ignored,
        took: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timestamp::Timestamp;

    #[test]
    fn a_document_loses_its_system_fields_and_whole_floats_become_integers() {
        let (id, fields) = document(
            "sessions",
            1,
            r#"{"_id":"k1","_creationTime":1.7e12,"expires":1.7646e12,"ratio":0.5,"sessionToken":"t"}"#,
        )
        .unwrap();
        assert_eq!(id, "k1");
        assert!(!fields.contains_key("_creationTime"));
        assert_eq!(fields["expires"], Value::from(1_764_600_000_000_i64));
        assert_eq!(fields["ratio"], Value::from(0.5));
        let err = document("users", 3, "[1]").unwrap_err();
        assert_eq!(
            err.to_string(),
            "users/documents.jsonl, line 3: not a JSON object; nothing was imported"
        );
    }

    #[test]
    fn timestamps_of_the_guide_are_epoch_milliseconds() {
        let (_, fields) =
            document("sessions", 1, r#"{"_id":"a","expires":1764600000000}"#).unwrap();
        let expires: Timestamp = serde_json::from_value(fields["expires"].clone()).unwrap();
        assert_eq!(expires.millis(), 1_764_600_000_000);
    }
}
