//! Settings, layered: built-in defaults → `config.toml` → `AUTHSTORE_*`
//! environment variables → command-line flags. Every setting is documented,
//! with its default, in the top-level `config.toml`.

use crate::secret::Secret;
use serde::{Deserialize, Serialize};

pub use crate::urls::{redact_password, url_without_credentials};

mod layers;
mod validate;

use self::layers::*;
pub use self::validate::validate_issuer;
use std::path::{Path, PathBuf};
use toml::{Table, Value};

pub const DEFAULT_PORT: u16 = 7878;
/// The longest a server takes to see a key change made by another process.
pub const KEY_RELOAD_SECS: u64 = 2;
const DAY: u64 = 86_400;
const MAX_WORKERS: u64 = 256;
const ENV_PREFIX: &str = "AUTHSTORE_";

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The SQLite database file, or a `postgres://` URL.
    pub database: PathBuf,
    pub bind: String,
    /// 0 binds a free port (the log says which).
    pub port: u16,
    /// HTTP worker threads; 0 means one per CPU core.
    pub workers: usize,
    /// Connections accepted at once; 0 derives it from the open-file limit.
    pub max_connections: usize,
    /// The shared secret. When neither this nor `secret_file` is set, a secret
    /// is generated into `<database>.secret` on first start and reused after.
    pub secret: Option<Secret>,
    pub secret_file: Option<PathBuf>,
    /// Secrets still accepted beside `secret` while clients move to it.
    pub previous_secrets: Vec<Secret>,
    /// When the previous secrets stop being accepted (RFC 3339, UTC);
    /// unset: until they are removed from the configuration.
    pub previous_secrets_until: Option<String>,
    /// The key-encryption key that seals signing keys and OAuth tokens in the
    /// database. When neither this nor `key_encryption_key_file` is set, one
    /// is generated into `<database>.kek` on first start and reused after.
    pub key_encryption_key: Option<Secret>,
    pub key_encryption_key_file: Option<PathBuf>,
    /// A PEM RSA private key that becomes the first signing key of a database
    /// that has none (instead of generating one: 50-800 ms); ignored once the
    /// database has keys. For test suites that start many servers.
    pub signing_key_file: Option<PathBuf>,
    pub max_body_bytes: usize,
    /// A request body that has not fully arrived after this long gets 408.
    pub body_timeout_secs: u64,
    /// A console session ends this long after it opened, however much it
    /// is used (besides ending after 12 hours unused).
    pub console_session_max_secs: u64,
    pub purge_interval_secs: u64,
    pub purge_batch: usize,
    /// The public URL of this issuer; defaults to `http://<bind>:<port>`.
    pub issuer: Option<String>,
    /// `host:port` of the Prometheus listener (`GET /metrics`); off when unset.
    pub metrics_bind: Option<String>,
    /// Log lines as text, or one JSON object per line.
    pub log_format: crate::logging::LogFormat,
    /// How much of a new session's address is kept: `prefix`, `full`, `off`.
    pub session_ip: crate::model::SessionIp,
    pub audience: String,
    /// How new signing keys sign: `RS256` or `ES256` (a change takes effect
    /// through the next rotation).
    pub algorithm: crate::issuer::keys::Algorithm,
    pub token_lifetime_secs: u64,
    pub jwks_max_age_secs: u64,
    pub key_lead_time_secs: u64,
    /// Rotate the signing key every this many days; 0 turns it off.
    pub key_rotation_days: u64,
    pub key_check_interval_secs: u64,
    pub profile_claims: Vec<ProfileClaim>,
    /// Sessions whose latest token is kept for reuse; 0 turns reuse off.
    pub token_cache_capacity: usize,
    /// A token is reused while more than this share of its lifetime remains.
    pub token_reuse_min_remaining: f64,
    /// Where events are delivered (`[[webhooks]]`, config file only).
    pub webhooks: Vec<Webhook>,
    /// Settings of the SQLite backend (`[sqlite]`).
    pub sqlite: SqliteSettings,
    /// Settings of the PostgreSQL backend (`[postgres]`).
    pub postgres: PostgresSettings,
}

/// `database` shown without a URL's password; secrets show as redacted.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database", &self.database_for_log())
            .field("bind", &self.bind)
            .field("port", &self.port)
            .field("workers", &self.workers)
            .field("max_connections", &self.max_connections)
            .field("secret", &self.secret)
            .field("secret_file", &self.secret_file)
            .field("previous_secrets", &self.previous_secrets)
            .field("previous_secrets_until", &self.previous_secrets_until)
            .field("key_encryption_key", &self.key_encryption_key)
            .field("key_encryption_key_file", &self.key_encryption_key_file)
            .field("signing_key_file", &self.signing_key_file)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("body_timeout_secs", &self.body_timeout_secs)
            .field("console_session_max_secs", &self.console_session_max_secs)
            .field("purge_interval_secs", &self.purge_interval_secs)
            .field("purge_batch", &self.purge_batch)
            .field("issuer", &self.issuer)
            .field("metrics_bind", &self.metrics_bind)
            .field("log_format", &self.log_format)
            .field("session_ip", &self.session_ip)
            .field("audience", &self.audience)
            .field("algorithm", &self.algorithm)
            .field("token_lifetime_secs", &self.token_lifetime_secs)
            .field("jwks_max_age_secs", &self.jwks_max_age_secs)
            .field("key_lead_time_secs", &self.key_lead_time_secs)
            .field("key_rotation_days", &self.key_rotation_days)
            .field("key_check_interval_secs", &self.key_check_interval_secs)
            .field("profile_claims", &self.profile_claims)
            .field("token_cache_capacity", &self.token_cache_capacity)
            .field("token_reuse_min_remaining", &self.token_reuse_min_remaining)
            .field("webhooks", &self.webhooks)
            .field("sqlite", &self.sqlite)
            .field("postgres", &self.postgres)
            .finish()
    }
}

pub use crate::webhooks::{Webhook, MIN_WEBHOOK_SECRET};

pub use crate::store::postgres::settings::PostgresSettings;
pub use crate::store::sqlite::settings::{Checkpoints, Durability, Locking, SqliteSettings};

/// Settings that moved into a backend's section, and where to.
const MOVED: [(&str, &str); 5] = [
    ("durability", "sqlite"),
    ("read_connections", "sqlite"),
    ("read_cache_mib", "sqlite"),
    ("read_mmap_mib", "sqlite"),
    ("wal_budget_mib", "sqlite"),
];

/// The backend sections, each a table of settings.
const SECTIONS: [&str; 2] = ["sqlite", "postgres"];

/// Optional text settings: absent from the defaults' table, so listed here
/// (section settings as `section.name`).
const OPTIONAL_TEXT: [&str; 9] = [
    "signing_key_file",
    "secret",
    "secret_file",
    "previous_secrets_until",
    "issuer",
    "metrics_bind",
    "key_encryption_key",
    "key_encryption_key_file",
    "postgres.ca_file",
];

pub use crate::issuer::ProfileClaim;

impl Default for Config {
    fn default() -> Self {
        Config {
            database: PathBuf::from("authstore.db"),
            bind: "127.0.0.1".into(),
            port: DEFAULT_PORT,
            workers: 0,
            max_connections: 0,
            secret: None,
            secret_file: None,
            previous_secrets: Vec::new(),
            previous_secrets_until: None,
            key_encryption_key: None,
            key_encryption_key_file: None,
            signing_key_file: None,
            max_body_bytes: 64 * 1024,
            body_timeout_secs: 10,
            console_session_max_secs: 12 * 3600,
            purge_interval_secs: 300,
            purge_batch: 1000,
            issuer: None,
            metrics_bind: None,
            log_format: crate::logging::LogFormat::Text,
            session_ip: crate::model::SessionIp::Prefix,
            audience: "convex".into(),
            algorithm: crate::issuer::keys::Algorithm::RS256,
            token_lifetime_secs: 300,
            jwks_max_age_secs: 300,
            key_lead_time_secs: 24 * 3600,
            key_rotation_days: 0,
            key_check_interval_secs: 60,
            profile_claims: Vec::new(),
            token_cache_capacity: 100_000,
            token_reuse_min_remaining: 0.5,
            webhooks: Vec::new(),
            sqlite: SqliteSettings::default(),
            postgres: PostgresSettings::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Builds the configuration from every layer. `file` is read when given;
    /// `env` is the process environment (injectable for tests); `flags` are
    /// the settings given on the command line, by setting name.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: Table,
    ) -> Result<Config, ConfigError> {
        let defaults = Table::try_from(Config::default())
            .map_err(|e| ConfigError::Invalid(format!("the built-in defaults: {e}")))?;
        let mut layered = defaults.clone();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            let table: Table = text
                .parse()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?;
            if let Some(message) = moved_setting(table.keys()) {
                return Err(ConfigError::Parse {
                    path: path.to_owned(),
                    message,
                });
            }
            // The file alone over the defaults: its own mistakes name it.
            let mut alone = defaults.clone();
            merge(&mut alone, table.clone());
            Value::Table(alone)
                .try_into::<Config>()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    path: path.to_owned(),
                    message: e.message().to_owned(),
                })?;
            merge(&mut layered, table);
        }
        for (name, raw) in env {
            let Some(key) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            // AUTHSTORE_CONFIG is read before the layers; AUTHSTORE_BIN names
            // the binary for the test helpers (one edit from AUTHSTORE_BIND).
            if matches!(key.as_str(), "config" | "bin") {
                continue;
            }
            if key == "webhooks" {
                return Err(ConfigError::Env {
                    name,
                    message: "webhooks are set in config.toml ([[webhooks]] with url and secret)"
                        .into(),
                });
            }
            let (section, setting) = split_section(&key);
            let env_error = |message| ConfigError::Env {
                name: name.clone(),
                message,
            };
            let Some(value) = env_value(&defaults, section, setting, &raw).map_err(env_error)?
            else {
                // Another program's variable (AUTHSTORE_URL of the client, say)
                // is none of our business; a near miss of a setting is a typo.
                if let Some(near) = nearest_setting(&defaults, &key) {
                    return Err(env_error(format!(
                        "not a setting of authstore; did you mean {ENV_PREFIX}{}?",
                        near.to_ascii_uppercase()
                    )));
                }
                log::warn!("ignoring {name}: not a setting of authstore (config.toml lists them)");
                continue;
            };
            let mut entry = Table::new();
            match section {
                Some(section) => {
                    let mut inner = Table::new();
                    inner.insert(setting.to_owned(), value);
                    entry.insert(section.to_owned(), Value::Table(inner));
                }
                None => {
                    entry.insert(key.clone(), value);
                }
            }
            merge(&mut layered, entry);
        }
        merge(&mut layered, flags);
        let config: Config = Value::Table(layered)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.message().to_owned()))?;
        config.validate()?;
        Ok(config)
    }

    /// When the previous secrets stop being accepted (validated at load).
    pub fn previous_secrets_until(&self) -> Option<crate::timestamp::Timestamp> {
        self.previous_secrets_until
            .as_deref()
            .and_then(crate::timestamp::Timestamp::parse_iso)
    }

    /// The database URL when `database` names a PostgreSQL server.
    pub fn postgres_url(&self) -> Option<&str> {
        let text = self.database.to_str()?;
        (text.starts_with("postgres://") || text.starts_with("postgresql://")).then_some(text)
    }

    /// `database` as a log line may show it: a URL's password replaced.
    pub fn database_for_log(&self) -> String {
        match self.postgres_url() {
            Some(url) => redact_password(url),
            None => std::path::absolute(&self.database)
                .unwrap_or_else(|_| self.database.clone())
                .display()
                .to_string(),
        }
    }

    /// The issuer's settings, with `issuer` its public URL.
    pub fn issuer_settings(&self, issuer: String) -> crate::issuer::IssuerSettings {
        let config = self;
        crate::issuer::IssuerSettings {
            issuer,
            audience: config.audience.clone(),
            algorithm: config.algorithm,
            token_lifetime_secs: config.token_lifetime_secs,
            jwks_max_age_secs: config.jwks_max_age_secs,
            profile_claims: config.profile_claims.clone(),
            token_cache_capacity: config.token_cache_capacity,
            token_reuse_min_remaining: config.token_reuse_min_remaining,
            schedule: crate::issuer::keys::Schedule {
                lead_time_secs: config.key_lead_time_secs,
                token_lifetime_secs: config.token_lifetime_secs,
                jwks_max_age_secs: config.jwks_max_age_secs,
                rotation_period_secs: (config.key_rotation_days > 0)
                    .then(|| config.key_rotation_days * 86_400),
            },
        }
    }

    /// Where the generated secret lives when none is configured.
    pub fn default_secret_file(&self) -> PathBuf {
        self.beside_database(".secret")
    }

    /// Where the key-encryption key comes from.
    pub fn kek_source(&self) -> crate::kek::KekSource {
        crate::kek::KekSource {
            key: self.key_encryption_key.clone(),
            key_file: self.key_encryption_key_file.clone(),
            default_file: self.default_kek_file(),
            database: self.database.clone(),
        }
    }

    /// Where the generated key-encryption key lives when none is configured.
    pub fn default_kek_file(&self) -> PathBuf {
        self.beside_database(".kek")
    }

    fn beside_database(&self, suffix: &str) -> PathBuf {
        crate::files::with_suffix(&self.database, suffix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn layers_override_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(
            &file,
            "port = 9000\naudience = \"from-file\"\ndatabase = \"file.db\"\n",
        )
        .unwrap();
        let mut flags = Table::new();
        flags.insert("database".into(), Value::String("flag.db".into()));
        let config = Config::load(
            Some(&file),
            env(&[
                ("AUTHSTORE_PORT", "9100"),
                ("AUTHSTORE_PROFILE_CLAIMS", "email, name"),
                ("PATH", "/bin"),
            ]),
            flags,
        )
        .unwrap();
        assert_eq!(config.port, 9100);
        assert_eq!(config.audience, "from-file");
        assert_eq!(config.database, PathBuf::from("flag.db"));
        assert_eq!(
            config.profile_claims,
            vec![ProfileClaim::Email, ProfileClaim::Name]
        );
        assert_eq!(config.token_lifetime_secs, 300);
    }

    #[test]
    fn metrics_bind_is_host_and_port() {
        for good in ["127.0.0.1:9187", "localhost:0", "[::1]:9187"] {
            let config =
                Config::load(None, env(&[("AUTHSTORE_METRICS_BIND", good)]), Table::new()).unwrap();
            assert_eq!(config.metrics_bind.as_deref(), Some(good));
        }
        for bad in ["127.0.0.1", "127.0.0.1:http", ":99999"] {
            let err = Config::load(None, env(&[("AUTHSTORE_METRICS_BIND", bad)]), Table::new())
                .unwrap_err();
            assert!(err.to_string().contains("must be host:port"), "{err}");
        }
        assert_eq!(Config::default().metrics_bind, None);
    }

    #[test]
    fn a_typo_is_refused_and_another_programs_variable_ignored() {
        let err = Config::load(None, env(&[("AUTHSTORE_PROT", "1")]), Table::new()).unwrap_err();
        assert!(err.to_string().contains("AUTHSTORE_PROT"), "{err}");
        assert!(
            err.to_string().contains("did you mean AUTHSTORE_PORT?"),
            "{err}"
        );
        let err = Config::load(
            None,
            env(&[("AUTHSTORE_POSTGRES_POOL_SIZ", "3")]),
            Table::new(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("AUTHSTORE_POSTGRES_POOL_SIZE"),
            "{err}"
        );
        // The client's and the test helpers' variables in a shared
        // environment: not ours, not fatal (AUTHSTORE_BIN is one edit from
        // AUTHSTORE_BIND).
        let config = Config::load(
            None,
            env(&[
                ("AUTHSTORE_URL", "http://127.0.0.1:7878"),
                ("AUTHSTORE_BIN", "/usr/local/bin/authstore"),
                ("AUTHSTORE_SOMETHING_ELSE", "1"),
            ]),
            Table::new(),
        )
        .unwrap();
        assert_eq!(config.port, DEFAULT_PORT);
    }

    #[test]
    fn a_config_file_mistake_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        for text in [
            "prot = 1\n",
            "port = \"eighty\"\n",
            "[sqlite]\ndurable = 1\n",
        ] {
            std::fs::write(&file, text).unwrap();
            let err = Config::load(Some(&file), env(&[]), Table::new()).unwrap_err();
            assert!(
                err.to_string().contains(&file.display().to_string()),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn webhooks_load_from_the_file_and_mistakes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        let load = |text: &str| {
            std::fs::write(&file, text).unwrap();
            Config::load(Some(&file), env(&[]), Table::new())
        };
        let secret = "a".repeat(MIN_WEBHOOK_SECRET);
        let config = load(&format!(
            "[[webhooks]]\nurl = \"https://x.convex.site/authstore/events\"\nsecret = \"{secret}\"\n\
             [[webhooks]]\nurl = \"http://127.0.0.1:9/h\"\nsecret = \"{secret}\"\n\
             events = [\"user.deleted\"]\nretry_max_secs = 5\n"
        ))
        .unwrap();
        assert_eq!(config.webhooks.len(), 2);
        assert_eq!(config.webhooks[0].retry_max_secs, 30);
        assert!(config.webhooks[0].events.is_empty());
        assert_eq!(config.webhooks[1].events, ["user.deleted"]);
        // The secret never shows in a Debug print.
        assert!(!format!("{config:?}").contains(&secret));
        for (text, says) in [
            (format!("[[webhooks]]\nurl = \"ftp://x/h\"\nsecret = \"{secret}\"\n"), "http:// or https://"),
            ("[[webhooks]]\nurl = \"https://x/h\"\nsecret = \"short-but-sixteen+\"\n".into(), "at least 32"),
            ("[[webhooks]]\nurl = \"https://x/h\"\n".into(), "set secret or secret_file"),
            (format!("[[webhooks]]\nurl = \"https://x/h\"\nsecret = \"{secret}\"\nevents = [\"session.ended\"]\n"), "unknown event type \"session.ended\""),
            (format!("[[webhooks]]\nurl = \"https://x/h\"\nsecret = \"{secret}\"\nsecret_file = \"/s\"\n"), "not both"),
            (format!("[[webhooks]]\nurl = \"https://x/h\"\nsecret = \"{secret}\"\nretry_max_secs = 0\n"), "retry_max_secs"),
        ] {
            let err = load(&text).unwrap_err().to_string();
            assert!(err.contains(says), "{text}: {err}");
            assert!(!err.contains(&secret), "{err}");
        }
        let err =
            Config::load(None, env(&[("AUTHSTORE_WEBHOOKS", "x")]), Table::new()).unwrap_err();
        assert!(err.to_string().contains("config.toml"), "{err}");
    }

    #[test]
    fn a_webhook_error_and_debug_print_show_no_url_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        let load = |text: &str| {
            std::fs::write(&file, text).unwrap();
            Config::load(Some(&file), env(&[]), Table::new())
        };
        let text = "[[webhooks]]\nurl = \"https://hookuser:hookpass@x.example/h?token=tok123\"\n\
                    secret = \"sixteen-or-more-but-short\"\n";
        let err = load(text).unwrap_err().to_string();
        assert!(err.contains("https://x.example/h"), "{err}");
        for secret in ["hookuser", "hookpass", "tok123"] {
            assert!(!err.contains(secret), "{err}");
        }
        let secret = "a".repeat(MIN_WEBHOOK_SECRET);
        let config = load(&format!(
            "[[webhooks]]\nurl = \"https://u:hookpass@x.example/h?token=tok123\"\nsecret = \"{secret}\"\n"
        ))
        .unwrap();
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("hookpass") && !debug.contains("tok123"),
            "{debug}"
        );
    }

    #[test]
    fn edit_distance_counts_single_character_edits() {
        assert_eq!(edit_distance("port", "port"), 0);
        assert_eq!(edit_distance("port", "prot"), 2);
        assert_eq!(edit_distance("port", "ports"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn previous_secrets_come_with_an_rfc3339_deadline() {
        let config = Config::load(
            None,
            env(&[
                (
                    "AUTHSTORE_PREVIOUS_SECRETS",
                    "old-secret-0123456789abcdef,older-secret-0123456789abcdef",
                ),
                ("AUTHSTORE_PREVIOUS_SECRETS_UNTIL", "2026-12-01T00:00:00Z"),
            ]),
            Table::new(),
        )
        .unwrap();
        assert_eq!(config.previous_secrets.len(), 2);
        assert_eq!(
            config.previous_secrets_until().unwrap().to_string(),
            "2026-12-01T00:00:00.000Z"
        );
        assert!(!format!("{config:?}").contains("old-secret"));
        let err = Config::load(
            None,
            env(&[
                ("AUTHSTORE_PREVIOUS_SECRETS", "old-secret-0123456789abcdef"),
                ("AUTHSTORE_PREVIOUS_SECRETS_UNTIL", "next tuesday"),
            ]),
            Table::new(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("RFC 3339"), "{err}");
        let err = Config::load(
            None,
            env(&[("AUTHSTORE_PREVIOUS_SECRETS", "short")]),
            Table::new(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("shorter"), "{err}");
    }

    #[test]
    fn bad_numbers_name_the_variable() {
        let err =
            Config::load(None, env(&[("AUTHSTORE_PORT", "eighty")]), Table::new()).unwrap_err();
        assert!(err.to_string().contains("AUTHSTORE_PORT"), "{err}");
    }

    #[test]
    fn secret_from_env_is_text_even_when_numeric_looking() {
        let config = Config::load(
            None,
            env(&[("AUTHSTORE_SECRET", "12345678901234567890")]),
            Table::new(),
        )
        .unwrap();
        assert_eq!(config.secret.unwrap().expose(), "12345678901234567890");
    }

    #[test]
    fn issuer_forms() {
        assert!(validate_issuer("https://auth.example.com").is_ok());
        assert!(validate_issuer("https://example.com/auth").is_ok());
        assert!(validate_issuer("https://auth.example.com/").is_err());
        assert!(validate_issuer("https://example.com/auth/").is_err());
        assert!(validate_issuer("https://example.com?x=1").is_err());
        assert!(validate_issuer("https://example.com#f").is_err());
        assert!(validate_issuer("auth.example.com").is_err());
    }

    #[test]
    fn the_settings_page_documents_every_setting() {
        let page = include_str!("../../docs/settings.md");
        let defaults = Table::try_from(Config::default()).unwrap();
        let mut wanted: Vec<(String, String)> = Vec::new();
        for (name, value) in &defaults {
            match value {
                Value::Table(section) => {
                    for setting in section.keys() {
                        wanted.push((
                            format!("`[{name}] {setting}`"),
                            format!(
                                "`AUTHSTORE_{}_{}`",
                                name.to_uppercase(),
                                setting.to_uppercase()
                            ),
                        ));
                    }
                }
                Value::Array(_) if name == "webhooks" => {
                    wanted.push(("`webhooks`".into(), "(config.toml only)".into()));
                }
                _ => wanted.push((
                    format!("`{name}`"),
                    format!("`AUTHSTORE_{}`", name.to_uppercase()),
                )),
            }
        }
        for name in OPTIONAL_TEXT {
            let (shown, variable) = match name.split_once('.') {
                Some((section, setting)) => (
                    format!("`[{section}] {setting}`"),
                    format!(
                        "`AUTHSTORE_{}_{}`",
                        section.to_uppercase(),
                        setting.to_uppercase()
                    ),
                ),
                None => (
                    format!("`{name}`"),
                    format!("`AUTHSTORE_{}`", name.to_uppercase()),
                ),
            };
            wanted.push((shown, variable));
        }
        for field in ["url", "secret", "secret_file", "events", "retry_max_secs"] {
            wanted.push((
                format!("`[[webhooks]] {field}`"),
                "(config.toml only)".into(),
            ));
        }
        for (shown, variable) in wanted {
            assert!(
                page.contains(&format!("| {shown} | {variable} |")),
                "docs/settings.md has no row for {shown} ({variable})"
            );
        }
    }

    #[test]
    fn config_toml_documents_every_setting() {
        let documented = include_str!("../../config.toml");
        let defaults = Table::try_from(Config::default()).unwrap();
        let mut names: Vec<String> = Vec::new();
        for (name, value) in &defaults {
            match value {
                Value::Table(section) => {
                    let heading = format!("\n[{name}]\n");
                    let at = documented
                        .find(&heading)
                        .unwrap_or_else(|| panic!("config.toml has no [{name}] section"));
                    let rest = &documented[at + heading.len()..];
                    let body = &rest[..rest.find("\n[").unwrap_or(rest.len())];
                    for setting in section.keys() {
                        assert!(
                            body.contains(&format!("\n# {setting} = ")),
                            "config.toml does not document {setting} under [{name}]"
                        );
                    }
                }
                _ => names.push(name.clone()),
            }
        }
        names.extend(
            OPTIONAL_TEXT
                .iter()
                .filter(|n| !n.contains('.'))
                .map(|n| n.to_string()),
        );
        for name in names {
            assert!(
                documented.contains(&format!("\n# {name} = ")),
                "config.toml does not document {name}"
            );
        }
        assert!(documented.contains("\n# ca_file = "));
        // The file itself loads: its uncommented lines are valid settings.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, documented).unwrap();
        Config::load(Some(&file), env(&[]), Table::new()).unwrap();
    }

    #[test]
    fn backend_sections_layer_key_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(
            &file,
            "[sqlite]\nread_cache_mib = 32\n[postgres]\npool_size = 4\n",
        )
        .unwrap();
        let config = Config::load(
            Some(&file),
            env(&[
                ("AUTHSTORE_SQLITE_DURABILITY", "full"),
                ("AUTHSTORE_POSTGRES_CA_FILE", "/etc/ca.pem"),
            ]),
            Table::new(),
        )
        .unwrap();
        assert_eq!(config.sqlite.durability, Durability::Full);
        assert_eq!(config.sqlite.read_cache_mib, 32);
        assert_eq!(config.sqlite.wal_budget_mib, 1024);
        assert_eq!(config.postgres.pool_size, 4);
        assert_eq!(config.postgres.ca_file, Some(PathBuf::from("/etc/ca.pem")));
        let err = Config::load(
            None,
            env(&[("AUTHSTORE_SQLITE_DURABILTY", "full")]),
            Table::new(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("AUTHSTORE_SQLITE_DURABILITY"),
            "{err}"
        );
    }

    #[test]
    fn a_setting_that_moved_says_where_to() {
        let err =
            Config::load(None, env(&[("AUTHSTORE_DURABILITY", "full")]), Table::new()).unwrap_err();
        assert!(
            err.to_string().contains("AUTHSTORE_SQLITE_DURABILITY"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "read_cache_mib = 4\n").unwrap();
        let err = Config::load(Some(&file), env(&[]), Table::new()).unwrap_err();
        assert!(err.to_string().contains("[sqlite]"), "{err}");
    }

    #[test]
    fn postgres_needs_a_shared_secret_and_kek() {
        let url = (
            "AUTHSTORE_DATABASE",
            "postgres://app:hunter2@db.internal/auth",
        );
        let secret = ("AUTHSTORE_SECRET", "s3cret-s3cret-s3cret-s3cret!!");
        let kek = (
            "AUTHSTORE_KEY_ENCRYPTION_KEY",
            "k3k-k3k-k3k-k3k-k3k-k3k-k3k-k3k",
        );
        let load = |pairs: &[(&str, &str)]| Config::load(None, env(pairs), Table::new());
        let err = load(&[url]).unwrap_err();
        assert!(err.to_string().contains("secret"), "{err}");
        let err = load(&[url, secret]).unwrap_err();
        assert!(err.to_string().contains("key_encryption_key"), "{err}");
        let config = load(&[url, secret, kek]).unwrap();
        assert!(config.postgres_url().is_some());
        assert!(!format!("{config:?}").contains("hunter2"));
        assert_eq!(
            config.database_for_log(),
            "postgres://app:***@db.internal/auth"
        );
        assert!(load(&[("AUTHSTORE_DATABASE", "auth.db")]).is_ok());
    }

    #[test]
    fn passwords_leave_database_urls() {
        for (url, shown) in [
            ("postgres://u:p@h/db", "postgres://u:***@h/db"),
            ("postgresql://u@h:5432/db", "postgresql://u@h:5432/db"),
            (
                "postgres://u:p@a,b/db?sslmode=require",
                "postgres://u:***@a,b/db?sslmode=require",
            ),
            (
                "postgres://h/db?user=u&password=p",
                "postgres://h/db?user=u&password=***",
            ),
            ("postgres://u:p@h", "postgres://u:***@h"),
        ] {
            assert_eq!(redact_password(url), shown);
        }
    }

    #[test]
    fn settings_that_make_rotation_unsafe_are_refused() {
        let load = |pairs: &[(&str, &str)]| Config::load(None, env(pairs), Table::new());
        let err = load(&[("AUTHSTORE_KEY_LEAD_TIME_SECS", "301")]).unwrap_err();
        assert!(err.to_string().contains("jwks_max_age_secs + 2"), "{err}");
        assert!(load(&[("AUTHSTORE_KEY_LEAD_TIME_SECS", "302")]).is_ok());
        let err = load(&[
            ("AUTHSTORE_KEY_ROTATION_DAYS", "1"),
            ("AUTHSTORE_KEY_LEAD_TIME_SECS", "86400"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("key_rotation_days"), "{err}");
        for (name, value) in [
            ("AUTHSTORE_WORKERS", "600"),
            ("AUTHSTORE_TOKEN_LIFETIME_SECS", "99999999999"),
            ("AUTHSTORE_TOKEN_LIFETIME_SECS", "0"),
            ("AUTHSTORE_PURGE_BATCH", "0"),
        ] {
            let err = load(&[(name, value)]).unwrap_err();
            let setting = name.trim_start_matches("AUTHSTORE_").to_ascii_lowercase();
            assert!(err.to_string().contains(&setting), "{err}");
        }
        assert!(load(&[("AUTHSTORE_WORKERS", "256")]).is_ok());
    }

    #[test]
    fn debug_does_not_show_the_secret() {
        let config = Config::load(
            None,
            env(&[("AUTHSTORE_SECRET", "very-secret-value-123")]),
            Table::new(),
        )
        .unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("very-secret"));
        // Every setting is in it (the impl is written by hand).
        for name in Table::try_from(Config::default()).unwrap().keys() {
            assert!(shown.contains(&format!("{name}: ")), "Debug lacks {name}");
        }
    }
}
