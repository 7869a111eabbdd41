//! Validation of the layered settings: each value within its range, the
//! combinations that are unsafe refused, every message naming the setting.

use super::*;

impl Config {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if let Some(issuer) = &self.issuer {
            validate_issuer(issuer).map_err(ConfigError::Invalid)?;
        }
        if self.audience.is_empty() {
            return invalid("audience must not be empty");
        }
        if let Some(bind) = &self.metrics_bind {
            let port = bind.rsplit_once(':').map(|(_, port)| port.parse::<u16>());
            if !matches!(port, Some(Ok(_))) {
                return Err(ConfigError::Invalid(format!(
                    "metrics_bind {bind:?} must be host:port, e.g. 127.0.0.1:9187"
                )));
            }
        }
        within("token_lifetime_secs", self.token_lifetime_secs, 60, 3600)?;
        within("jwks_max_age_secs", self.jwks_max_age_secs, 0, DAY)?;
        within("key_lead_time_secs", self.key_lead_time_secs, 0, 90 * DAY)?;
        within("key_rotation_days", self.key_rotation_days, 0, 3650)?;
        within(
            "key_check_interval_secs",
            self.key_check_interval_secs,
            1,
            DAY,
        )?;
        within("workers", self.workers as u64, 0, MAX_WORKERS)?;
        within("max_connections", self.max_connections as u64, 0, 1 << 20)?;
        within(
            "sqlite.wal_budget_mib",
            u64::from(self.sqlite.wal_budget_mib),
            16,
            65_536,
        )?;
        within(
            "sqlite.read_connections",
            u64::from(self.sqlite.read_connections),
            0,
            1024,
        )?;
        within(
            "postgres.pool_size",
            u64::from(self.postgres.pool_size),
            1,
            10_000,
        )?;
        within(
            "postgres.connect_timeout_secs",
            self.postgres.connect_timeout_secs,
            1,
            600,
        )?;
        within(
            "postgres.statement_timeout_secs",
            self.postgres.statement_timeout_secs,
            1,
            3600,
        )?;
        within("max_body_bytes", self.max_body_bytes as u64, 1, 16 << 20)?;
        within("body_timeout_secs", self.body_timeout_secs, 1, 3600)?;
        within(
            "console_session_max_secs",
            self.console_session_max_secs,
            60,
            7 * DAY,
        )?;
        within("purge_interval_secs", self.purge_interval_secs, 1, DAY)?;
        within("purge_batch", self.purge_batch as u64, 1, 1_000_000)?;
        within(
            "token_cache_capacity",
            self.token_cache_capacity as u64,
            0,
            100_000_000,
        )?;
        // Verifiers cache the JWKS for jwks_max_age_secs and a server sees
        // another process's key change within KEY_RELOAD_SECS: a new key must
        // be published at least that long before it signs.
        let min_lead = self.jwks_max_age_secs + KEY_RELOAD_SECS;
        if self.key_lead_time_secs < min_lead {
            return Err(ConfigError::Invalid(format!(
                "key_lead_time_secs ({}) must be at least jwks_max_age_secs + {KEY_RELOAD_SECS} \
                 ({min_lead}): verifiers cache the JWKS that long and would reject tokens \
                 signed by a key they have not seen",
                self.key_lead_time_secs
            )));
        }
        if self.key_rotation_days > 0 && self.key_rotation_days * DAY <= self.key_lead_time_secs {
            return Err(ConfigError::Invalid(format!(
                "key_rotation_days ({} days) must be longer than key_lead_time_secs ({} s)",
                self.key_rotation_days, self.key_lead_time_secs
            )));
        }
        if !(0.0..=1.0).contains(&self.token_reuse_min_remaining) {
            return invalid("token_reuse_min_remaining must be between 0 and 1");
        }
        if self.secret.is_some() && self.secret_file.is_some() {
            return invalid("set either secret or secret_file, not both");
        }
        if self.key_encryption_key.is_some() && self.key_encryption_key_file.is_some() {
            return invalid("set either key_encryption_key or key_encryption_key_file, not both");
        }
        if let Some(until) = &self.previous_secrets_until {
            if crate::timestamp::Timestamp::parse_iso(until).is_none() {
                return Err(ConfigError::Invalid(format!(
                    "previous_secrets_until {until:?} is not an RFC 3339 instant \
                     (like 2026-12-01T00:00:00Z)"
                )));
            }
            if self.previous_secrets.is_empty() {
                return invalid("previous_secrets_until is set but previous_secrets is empty");
            }
        }
        for webhook in &self.webhooks {
            webhook.validate()?;
        }
        if self.postgres_url().is_some() {
            // A file generated beside the database would be a different one
            // on every node: nodes must share both.
            if self.secret.is_none() && self.secret_file.is_none() {
                return invalid(
                    "with a PostgreSQL database, set secret (AUTHSTORE_SECRET) or secret_file: \
                     every node must use the same one, so none is generated",
                );
            }
            if self.key_encryption_key.is_none() && self.key_encryption_key_file.is_none() {
                return invalid(
                    "with a PostgreSQL database, set key_encryption_key \
                     (AUTHSTORE_KEY_ENCRYPTION_KEY) or key_encryption_key_file: every node \
                     must use the same one, so none is generated",
                );
            }
        }
        Ok(())
    }
}

impl Webhook {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| {
            Err(ConfigError::Invalid(format!(
                "webhook {}: {m}",
                url_without_credentials(&self.url)
            )))
        };
        match url_scheme(&self.url) {
            Some("http" | "https") => {}
            _ => return invalid("url must be an http:// or https:// URL".into()),
        }
        match (&self.secret, &self.secret_file) {
            (Some(_), Some(_)) => {
                return invalid("set either secret or secret_file, not both".into())
            }
            (None, None) => return invalid("set secret or secret_file".into()),
            (Some(secret), None) if secret.expose().len() < MIN_WEBHOOK_SECRET => {
                return invalid(format!(
                    "secret must be at least {MIN_WEBHOOK_SECRET} characters (authstore secret \
                     prints one)"
                ))
            }
            _ => {}
        }
        for name in &self.events {
            if crate::store::events::EventType::parse(name).is_none() {
                let known: Vec<&str> = crate::store::events::EventType::ALL
                    .iter()
                    .map(|t| t.name())
                    .collect();
                return invalid(format!(
                    "unknown event type {name:?}; the types are {}",
                    known.join(", ")
                ));
            }
        }
        within("webhooks.retry_max_secs", self.retry_max_secs, 1, 3600)
    }
}

pub(super) fn url_scheme(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    (!rest.is_empty()).then_some(scheme)
}

pub(super) fn within(name: &str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::Invalid(format!(
            "{name} is {value}; it must be from {min} to {max}"
        )))
    }
}

/// The issuer is used byte-for-byte in `iss` and in discovery; verifiers key
/// users by it, so it must be exactly one canonical form.
pub fn validate_issuer(issuer: &str) -> Result<(), String> {
    let rest = issuer
        .strip_prefix("https://")
        .or_else(|| issuer.strip_prefix("http://"))
        .ok_or_else(|| format!("issuer {issuer:?} must start with https:// or http://"))?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err(format!("issuer {issuer:?} has no host"));
    }
    if issuer.contains(['?', '#']) {
        return Err(format!(
            "issuer {issuer:?} must not have a query or a fragment"
        ));
    }
    if issuer.ends_with('/') {
        return Err(format!(
            "issuer {issuer:?} must not end with '/' (write it without the trailing slash)"
        ));
    }
    if issuer.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("issuer {issuer:?} must not contain spaces"));
    }
    Ok(())
}
