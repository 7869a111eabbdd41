//! The Auth.js adapter models, shaped exactly as they travel on the wire.
//!
//! Field names follow `@auth/core/adapters`. Unknown fields on users and
//! accounts are kept in `extra` and returned. Types that carry credentials
//! (accounts, sessions, verification tokens) deliberately have no `Debug`.

use crate::timestamp::Timestamp;
use serde::{de, Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Fields a model does not know, kept verbatim.
pub type Extra = Map<String, Value>;

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub email_verified: Option<Timestamp>,
    pub image: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `createUser` input: the id is optional (a new WebAuthn user is just `{ email }`).
#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct NewUser {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email_verified: Option<Timestamp>,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `updateUser` input: absent fields stay as they are, `null` clears.
#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct UserPatch {
    pub id: String,
    #[serde(default, deserialize_with = "present")]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub email_verified: Option<Option<Timestamp>>,
    #[serde(default, deserialize_with = "present")]
    pub image: Option<Option<String>>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl NewUser {
    /// The user as stored: Auth.js's rules applied before any backend sees
    /// it (an id generated when none came, the email normalized).
    pub fn into_user(self) -> User {
        User {
            id: self.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            email: self.email.as_deref().and_then(normalize_email),
            name: self.name,
            email_verified: self.email_verified,
            image: self.image,
            extra: self.extra,
        }
    }
}

impl UserPatch {
    /// The patch with its email normalized, as stored.
    pub fn normalized(mut self) -> Self {
        self.email = self
            .email
            .map(|email| email.as_deref().and_then(normalize_email));
        self
    }
}

impl User {
    /// Applies an `updateUser` patch; extra fields are merged key by key.
    pub fn apply(&mut self, patch: UserPatch) {
        if let Some(email) = patch.email {
            self.email = email;
        }
        if let Some(name) = patch.name {
            self.name = name;
        }
        if let Some(verified) = patch.email_verified {
            self.email_verified = verified;
        }
        if let Some(image) = patch.image {
            self.image = image;
        }
        self.extra.extend(patch.extra);
    }
}

/// Emails are compared trimmed and lowercased; an empty one is no email.
pub fn normalize_email(email: &str) -> Option<String> {
    let email = email.trim();
    (!email.is_empty()).then(|| email.to_lowercase())
}

#[derive(Serialize, Deserialize, Clone)]
pub struct Account {
    #[serde(rename = "userId")]
    pub user_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub provider: String,
    #[serde(rename = "providerAccountId", deserialize_with = "string_or_number")]
    pub provider_account_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_state: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The key of an account: `(provider, providerAccountId)`.
#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct AccountKey {
    pub provider: String,
    #[serde(deserialize_with = "string_or_number")]
    pub provider_account_id: String,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub session_token: String,
    pub user_id: String,
    pub expires: Timestamp,
}

/// Where a new session comes from: `createSession`'s optional `context`
/// (an older server ignores it), kept so a person can tell their sessions
/// apart.
#[derive(Deserialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct SessionContext {
    #[serde(default)]
    pub user_agent: Option<String>,
    #[serde(default)]
    pub ip: Option<String>,
}

/// The longest `User-Agent` kept, in characters (longer ones are cut).
pub const MAX_USER_AGENT_CHARS: usize = 512;

/// How much of a session's address is kept (`session_ip`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SessionIp {
    /// The network, not the host: IPv4 /24, IPv6 /48.
    #[default]
    Prefix,
    /// The whole address.
    Full,
    /// None.
    Off,
}

/// What is stored of a new session besides Auth.js's fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionOrigin {
    pub created_at: Option<Timestamp>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

impl SessionOrigin {
    /// The origin of a session created at `now` with `context`, its address
    /// kept as `keep` says. Fails on an address that is not one.
    pub fn new(now: Timestamp, context: SessionContext, keep: SessionIp) -> Result<Self, String> {
        let ip = match context
            .ip
            .as_deref()
            .map(str::trim)
            .filter(|ip| !ip.is_empty())
        {
            None => None,
            Some(text) => {
                let ip: std::net::IpAddr = text
                    .parse()
                    .map_err(|_| "context.ip is not an IPv4 or IPv6 address".to_owned())?;
                keep.apply(ip)
            }
        };
        let user_agent = context
            .user_agent
            .map(|ua| ua.chars().take(MAX_USER_AGENT_CHARS).collect::<String>())
            .filter(|ua| !ua.trim().is_empty());
        Ok(SessionOrigin {
            created_at: Some(now),
            user_agent,
            ip,
        })
    }
}

impl SessionIp {
    /// What is kept of `ip`: the /24 or /48 network (`1.2.3.0/24`,
    /// `2001:db8:1::/48`), the address, or nothing.
    pub fn apply(self, ip: std::net::IpAddr) -> Option<String> {
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        // An IPv4 address written as IPv6 (::ffff:a.b.c.d) is kept as IPv4.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self, ip) {
            (SessionIp::Off, _) => None,
            (SessionIp::Full, ip) => Some(ip.to_string()),
            (SessionIp::Prefix, IpAddr::V4(v4)) => {
                let [a, b, c, _] = v4.octets();
                Some(format!("{}/24", Ipv4Addr::new(a, b, c, 0)))
            }
            (SessionIp::Prefix, IpAddr::V6(v6)) => {
                let [a, b, c, ..] = v6.segments();
                Some(format!("{}/48", Ipv6Addr::new(a, b, c, 0, 0, 0, 0, 0)))
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionPatch {
    pub session_token: String,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub expires: Option<Timestamp>,
}

#[derive(Serialize)]
pub struct SessionAndUser {
    pub session: Session,
    pub user: User,
    /// When the session was last seen, as stored (not part of Auth.js's
    /// answer: it tells the lookup whether to note it again).
    #[serde(skip)]
    pub last_seen_at: Option<Timestamp>,
}

#[derive(Serialize, Deserialize, Clone)]
pub struct VerificationToken {
    pub identifier: String,
    pub token: String,
    pub expires: Timestamp,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Authenticator {
    #[serde(rename = "credentialID")]
    pub credential_id: String,
    pub user_id: String,
    #[serde(deserialize_with = "string_or_number")]
    pub provider_account_id: String,
    pub credential_public_key: String,
    pub counter: u32,
    pub credential_device_type: String,
    pub credential_backed_up: bool,
    #[serde(default)]
    pub transports: Option<String>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Provider ids arrive as numbers from some providers (GitHub); they are text.
pub fn string_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(de::Error::invalid_type(
            unexpected(&other),
            &"a string or a number",
        )),
    }
}

fn unexpected(value: &Value) -> de::Unexpected<'_> {
    match value {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
        Value::String(s) => de::Unexpected::Str(s),
        Value::Number(_) => de::Unexpected::Other("number"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_lowercased() {
        assert_eq!(
            normalize_email("  Fill@Murray.COM "),
            Some("fill@murray.com".into())
        );
        assert_eq!(normalize_email("   "), None);
    }

    #[test]
    fn numeric_provider_account_id_becomes_text() {
        let key: AccountKey =
            serde_json::from_str(r#"{"provider":"github","providerAccountId":12345}"#).unwrap();
        assert_eq!(key.provider_account_id, "12345");
    }

    #[test]
    fn patch_tells_null_from_absent() {
        let patch: UserPatch = serde_json::from_str(r#"{"id":"u","name":null}"#).unwrap();
        assert_eq!(patch.name, Some(None));
        assert_eq!(patch.image, None);
    }

    #[test]
    fn user_extra_fields_survive() {
        let new: NewUser =
            serde_json::from_str(r#"{"email":"a@b.c","role":"admin","phone":"000"}"#).unwrap();
        assert_eq!(new.extra.get("role"), Some(&Value::from("admin")));
        assert!(!new.extra.contains_key("email"));
    }

    #[test]
    fn a_new_user_gets_an_id_and_a_normalized_email() {
        let new: NewUser = serde_json::from_str(r#"{"email":"  Ann@Example.COM "}"#).unwrap();
        let user = new.into_user();
        assert_eq!(user.email.as_deref(), Some("ann@example.com"));
        assert!(uuid::Uuid::parse_str(&user.id).is_ok(), "{}", user.id);
        let given: NewUser = serde_json::from_str(r#"{"id":"u1","email":" "}"#).unwrap();
        let user = given.into_user();
        assert_eq!((user.id.as_str(), user.email), ("u1", None));
    }
}

#[cfg(test)]
mod session_origin_tests {
    use super::*;

    fn kept(ip: &str, keep: SessionIp) -> Option<String> {
        let context = SessionContext {
            user_agent: None,
            ip: Some(ip.to_owned()),
        };
        SessionOrigin::new(Timestamp::from_millis(0), context, keep)
            .unwrap()
            .ip
    }

    #[test]
    fn an_address_is_kept_as_session_ip_says() {
        assert_eq!(
            kept("203.0.113.77", SessionIp::Prefix).as_deref(),
            Some("203.0.113.0/24")
        );
        assert_eq!(
            kept("2001:db8:1:2::5", SessionIp::Prefix).as_deref(),
            Some("2001:db8:1::/48")
        );
        assert_eq!(
            kept("::ffff:203.0.113.77", SessionIp::Prefix).as_deref(),
            Some("203.0.113.0/24")
        );
        assert_eq!(
            kept("203.0.113.77", SessionIp::Full).as_deref(),
            Some("203.0.113.77")
        );
        assert_eq!(kept("203.0.113.77", SessionIp::Off), None);
        let bad = SessionContext {
            user_agent: None,
            ip: Some("not an address".into()),
        };
        let refused = SessionOrigin::new(Timestamp::from_millis(0), bad, SessionIp::Full);
        assert!(refused.unwrap_err().contains("context.ip"));
    }

    #[test]
    fn a_long_user_agent_is_cut() {
        let context = SessionContext {
            user_agent: Some("x".repeat(5000)),
            ip: None,
        };
        let origin =
            SessionOrigin::new(Timestamp::from_millis(0), context, SessionIp::Off).unwrap();
        assert_eq!(origin.user_agent.unwrap().len(), MAX_USER_AGENT_CHARS);
    }
}
