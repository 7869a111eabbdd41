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

use crate::model::{Account, Authenticator, NewUser, Session, VerificationToken};
use crate::store::{Duplicate, Store, StoreError};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The guide's tables, in the order they load (users before what refers to them).
pub const TABLES: [&str; 5] = [
    "users",
    "accounts",
    "sessions",
    "verificationTokens",
    "authenticators",
];

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
    #[error("{table}/documents.jsonl, line {line}: {reason}")]
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

/// What one table's import did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Counted {
    pub imported: u64,
    /// Rows already in the database (an earlier run): left as they are.
    pub present: u64,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub tables: BTreeMap<&'static str, Counted>,
    /// Tables of the export that are not the guide's (the app's own data).
    pub ignored: Vec<String>,
    #[serde(skip)]
    pub took: Duration,
}

/// The export's tables: each table's `documents.jsonl`, by table name.
pub fn read_export(path: &Path) -> Result<BTreeMap<String, String>, ImportError> {
    let read_error = |source| ImportError::Read {
        path: path.to_owned(),
        source,
    };
    let mut tables = BTreeMap::new();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).map_err(read_error)? {
            let entry = entry.map_err(read_error)?;
            let documents = entry.path().join("documents.jsonl");
            if documents.is_file() {
                let text =
                    std::fs::read_to_string(&documents).map_err(|source| ImportError::Read {
                        path: documents.clone(),
                        source,
                    })?;
                tables.insert(entry.file_name().to_string_lossy().into_owned(), text);
            }
        }
        return Ok(tables);
    }
    let file = std::fs::File::open(path).map_err(read_error)?;
    let not_an_export = |reason: String| ImportError::NotAnExport {
        path: path.to_owned(),
        reason,
    };
    let mut archive = zip::ZipArchive::new(file).map_err(|e| not_an_export(e.to_string()))?;
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .map_err(|e| not_an_export(e.to_string()))?;
        let name = entry
            .name()
            .map_err(|e| not_an_export(e.to_string()))?
            .into_owned();
        let Some(table) = name.strip_suffix("/documents.jsonl") else {
            continue;
        };
        if table.contains('/') {
            continue; // a component's tables, not the app's
        }
        let mut text = String::new();
        entry
            .read_to_string(&mut text)
            .map_err(|e| not_an_export(format!("{name}: {e}")))?;
        tables.insert(table.to_owned(), text);
    }
    Ok(tables)
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

/// The documents of `table`, numbered from line 1; blank lines skipped.
fn documents<'a>(
    tables: &'a BTreeMap<String, String>,
    table: &'static str,
) -> impl Iterator<Item = Result<(String, Map<String, Value>), ImportError>> + 'a {
    tables
        .get(table)
        .map(String::as_str)
        .unwrap_or_default()
        .lines()
        .enumerate()
        .filter(|(_, text)| !text.trim().is_empty())
        .map(move |(at, text)| document(table, at + 1, text))
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

/// Counts a write: a duplicate of the table's own key is a row already there.
fn count(
    counted: &mut Counted,
    result: Result<(), StoreError>,
    own_key: Duplicate,
    table: &'static str,
    line: usize,
) -> Result<(), ImportError> {
    match result {
        Ok(()) => counted.imported += 1,
        Err(StoreError::Conflict(duplicate)) if duplicate == own_key => counted.present += 1,
        Err(StoreError::Conflict(duplicate)) => {
            return Err(ImportError::Row {
                table,
                line,
                reason: format!("another row already has this {duplicate}"),
            })
        }
        Err(StoreError::MissingUser) => {
            return Err(ImportError::Row {
                table,
                line,
                reason: "its userId is not a user of the export".into(),
            })
        }
        Err(other) => return Err(ImportError::Store(other.log_text())),
    }
    Ok(())
}

/// Loads the guide's tables of `tables` into `store`.
pub async fn import(
    store: &dyn Store,
    tables: &BTreeMap<String, String>,
    allow_existing_users: bool,
) -> Result<Report, ImportError> {
    let started = Instant::now();
    if !tables.contains_key("users") {
        return Err(ImportError::NoUsers);
    }
    let store_error = |e: StoreError| ImportError::Store(e.log_text());
    let mut report = Report {
        ignored: tables
            .keys()
            .filter(|t| !t.starts_with('_') && !TABLES.contains(&t.as_str()))
            .cloned()
            .collect(),
        ..Report::default()
    };

    // Users first; the refusal comes before any write.
    let mut users = Vec::new();
    for (line, row) in documents(tables, "users").enumerate() {
        let (id, mut fields) = row?;
        fields.insert("id".into(), Value::String(id));
        users.push((
            line + 1,
            parse::<NewUser>("users", line + 1, fields)?.into_user(),
        ));
    }
    let mut present = std::collections::HashSet::new();
    for (_, user) in &users {
        if store
            .get_user(&user.id)
            .await
            .map_err(store_error)?
            .is_some()
        {
            present.insert(user.id.clone());
        }
    }
    let others = store
        .count_users()
        .await
        .map_err(store_error)?
        .saturating_sub(present.len() as u64);
    if others > 0 && !allow_existing_users {
        return Err(ImportError::OthersPresent { others });
    }
    let mut counted = Counted::default();
    for (line, user) in users {
        if present.contains(&user.id) {
            // Imported before (its email may have changed since: left as it is).
            counted.present += 1;
            continue;
        }
        let result = store.create_user(user).await.map(drop);
        count(&mut counted, result, Duplicate::UserId, "users", line)?;
    }
    report.tables.insert("users", counted);

    let mut counted = Counted::default();
    for (line, row) in documents(tables, "accounts").enumerate() {
        let account: Account = parse("accounts", line + 1, row?.1)?;
        let result = store.link_account(account).await.map(drop);
        count(
            &mut counted,
            result,
            Duplicate::Account,
            "accounts",
            line + 1,
        )?;
    }
    report.tables.insert("accounts", counted);

    let mut counted = Counted::default();
    for (line, row) in documents(tables, "sessions").enumerate() {
        let session: Session = parse("sessions", line + 1, row?.1)?;
        let result = store.create_session(session).await.map(drop);
        count(
            &mut counted,
            result,
            Duplicate::Session,
            "sessions",
            line + 1,
        )?;
    }
    report.tables.insert("sessions", counted);

    let mut counted = Counted::default();
    for (line, row) in documents(tables, "verificationTokens").enumerate() {
        let token: VerificationToken = parse("verificationTokens", line + 1, row?.1)?;
        let result = store.create_verification_token(token).await.map(drop);
        count(
            &mut counted,
            result,
            Duplicate::VerificationToken,
            "verificationTokens",
            line + 1,
        )?;
    }
    report.tables.insert("verificationTokens", counted);

    let mut counted = Counted::default();
    for (line, row) in documents(tables, "authenticators").enumerate() {
        let authenticator: Authenticator = parse("authenticators", line + 1, row?.1)?;
        let result = store.create_authenticator(authenticator).await.map(drop);
        count(
            &mut counted,
            result,
            Duplicate::Authenticator,
            "authenticators",
            line + 1,
        )?;
    }
    report.tables.insert("authenticators", counted);
    report.took = started.elapsed();
    Ok(report)
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
            "users/documents.jsonl, line 3: not a JSON object"
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
