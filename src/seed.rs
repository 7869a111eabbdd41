//! `serve --seed FILE`: fixtures for tests and demos, loaded through the
//! adapter methods themselves (the same parsing, rules and answers as
//! `POST /api/adapter/{method}`), before the server takes traffic.
//!
//! The file is one JSON object of lists, each item the argument of its
//! method: `{"users": [..createUser's user..], "accounts": [..], "sessions":
//! [..], "verificationTokens": [..], "authenticators": [..]}`.

use crate::store::Store;
use actix_web::body::MessageBody;
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
struct Fixtures {
    users: Vec<Value>,
    accounts: Vec<Value>,
    sessions: Vec<Value>,
    verification_tokens: Vec<Value>,
    authenticators: Vec<Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("seed file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("seed file {path}: {list}[{index}]: {reason}")]
    Item {
        path: PathBuf,
        list: &'static str,
        index: usize,
        reason: String,
    },
}

/// Loads `path` into `store`; returns how many items it loaded.
pub async fn load(store: &Arc<dyn Store>, path: &Path) -> Result<usize, SeedError> {
    let file_error = |reason: String| SeedError::File {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let fixtures: Fixtures = serde_json::from_str(&text).map_err(|e| file_error(e.to_string()))?;
    let lists: [(&'static str, &str, &str, Vec<Value>); 5] = [
        ("users", "createUser", "user", fixtures.users),
        ("accounts", "linkAccount", "account", fixtures.accounts),
        ("sessions", "createSession", "session", fixtures.sessions),
        (
            "verificationTokens",
            "createVerificationToken",
            "verificationToken",
            fixtures.verification_tokens,
        ),
        (
            "authenticators",
            "createAuthenticator",
            "authenticator",
            fixtures.authenticators,
        ),
    ];
    let mut loaded = 0;
    for (list, method, argument, items) in lists {
        for (index, item) in items.into_iter().enumerate() {
            let body = json!({ argument: item }).to_string();
            let policy = crate::http::SessionPolicy {
                now: crate::clock::Clock::now(&crate::clock::SystemClock),
                keep_ip: crate::model::SessionIp::default(),
                seen: None,
            };
            crate::http::call_method(store, &policy, method, body.as_bytes())
                .await
                .map_err(|e| SeedError::Item {
                    path: path.to_owned(),
                    list,
                    index,
                    reason: e.to_string(),
                })
                .map(|response| response.into_body().size())?;
            loaded += 1;
        }
    }
    Ok(loaded)
}
