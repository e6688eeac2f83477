//! Validated domain types: each is constructed once, checked, and then trusted everywhere.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use subtle::ConstantTimeEq;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use crate::error::CoreError;

/// A secret value (a password, a signing key, a credential). `Debug` and `Display` never print it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself; call sites that use it are the only places it can leak from.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time equality, for comparing credentials.
    pub fn ct_eq(&self, other: &Secret) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// An email address: trimmed, lower-cased, within RFC 5321's length limits, free of control,
/// white-space and format-class (Unicode `Cf`: zero-width, direction-changing, byte-order mark)
/// characters, so two addresses that look the same are the same address.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

/// The characters RFC 5322 reserves, which an unquoted local part may not contain.
fn is_special(c: char) -> bool {
    matches!(
        c,
        '@' | '<' | '>' | '(' | ')' | '[' | ']' | '\\' | ',' | ';' | ':' | '"'
    )
}

/// Whether `c` is in Unicode's format class (general category `Cf`).
fn is_format(c: char) -> bool {
    c.general_category() == GeneralCategory::Format
}

impl Email {
    /// Longest address RFC 5321 allows in a forward path.
    pub const MAX_LEN: usize = 254;

    /// Parses and normalises an address.
    ///
    /// # Errors
    /// `CoreError::InvalidEmail` when it is not a plausible address.
    pub fn parse(input: &str) -> Result<Self, CoreError> {
        let input = input.trim();
        // Every record read parses its address again: ASCII (nearly every address) skips the
        // Unicode case tables.
        let email = if input.is_ascii() {
            input.to_ascii_lowercase()
        } else {
            input.to_lowercase()
        };
        if email.len() > Self::MAX_LEN {
            return Err(CoreError::InvalidEmail);
        }
        // Invisible and direction-changing characters (U+200B, U+200D, U+202E, U+FEFF, U+2066…)
        // would let one address be shown as another. ASCII has none.
        if !email.is_ascii() && email.chars().any(is_format) {
            return Err(CoreError::InvalidEmail);
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err(CoreError::InvalidEmail);
        };
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| !c.is_whitespace() && !c.is_control() && !is_special(c));
        let domain_ok = !domain.is_empty()
            && domain.len() <= 253
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if local_ok && domain_ok {
            Ok(Email(email))
        } else {
            Err(CoreError::InvalidEmail)
        }
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tenant identifier (multi-tenancy): a header value or a host name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TenantId(String);

impl TenantId {
    /// Parses a tenant id: non-empty after trimming, at most 255 bytes, no control characters.
    ///
    /// # Errors
    /// `CoreError::InvalidTenant` otherwise.
    pub fn parse(input: &str) -> Result<Self, CoreError> {
        let t = input.trim();
        if t.is_empty() || t.len() > 255 || t.chars().any(char::is_control) {
            return Err(CoreError::InvalidTenant);
        }
        Ok(TenantId(t.to_owned()))
    }

    /// The tenant id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A role name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Role(String);

impl Role {
    /// Parses a role: non-empty, at most 64 bytes, no whitespace or control characters.
    ///
    /// # Errors
    /// `CoreError::InvalidBody` otherwise.
    pub fn parse(input: &str) -> Result<Self, CoreError> {
        let r = input.trim();
        if r.is_empty() || r.len() > 64 || r.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(CoreError::InvalidBody(
                "role must be 1 to 64 characters without spaces".into(),
            ));
        }
        Ok(Role(r.to_owned()))
    }

    /// The role name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A user id as the backend stores it: a number (SQL serial) or a string (UUIDs, LDAP entryUUID).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum UserId {
    /// A numeric id.
    Int(i64),
    /// A textual id.
    Text(String),
}

impl UserId {
    /// Reads a token's `sub`: digits become a number, anything else stays text.
    pub fn from_subject(sub: &str) -> Self {
        match sub.parse::<i64>() {
            Ok(n) if n.to_string() == sub => UserId::Int(n),
            _ => UserId::Text(sub.to_owned()),
        }
    }

    /// The id as a JSON value, as stored (number or string).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            UserId::Int(n) => serde_json::Value::from(*n),
            UserId::Text(s) => serde_json::Value::from(s.as_str()),
        }
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserId::Int(n) => write!(f, "{n}"),
            UserId::Text(s) => f.write_str(s),
        }
    }
}

/// A stored password hash in PHC (`$argon2id$…`) or modular crypt (`$2b$…`) form. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a hash read from storage.
    pub fn new(hash: impl Into<String>) -> Self {
        PasswordHash(hash.into())
    }

    /// The hash string, for storage.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash([redacted])")
    }
}

/// A user record as a backend returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub role: Role,
    pub tenant: Option<TenantId>,
    pub password_hash: PasswordHash,
    pub verified_at: Option<DateTime<Utc>>,
}

/// A user to be created.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub email: Email,
    pub role: Role,
    pub tenant: Option<TenantId>,
    pub password_hash: PasswordHash,
    pub verified_at: Option<DateTime<Utc>>,
}

/// The fields an update changes; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct UserChanges {
    pub email: Option<Email>,
    pub role: Option<Role>,
    pub password_hash: Option<PasswordHash>,
    pub verified_at: Option<DateTime<Utc>>,
}

impl UserChanges {
    /// Applies the changes to a record (what every store does on update).
    pub fn apply_to(&self, user: &mut User) {
        if let Some(email) = &self.email {
            user.email = email.clone();
        }
        if let Some(role) = &self.role {
            user.role = role.clone();
        }
        if let Some(hash) = &self.password_hash {
            user.password_hash = hash.clone();
        }
        if let Some(at) = self.verified_at {
            user.verified_at = Some(at);
        }
    }
}

/// Formats a timestamp as RFC 3339 with offset and microseconds, as every output does.
pub fn format_time(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_email(input: &str, expected: Option<&str>) {
        let got = Email::parse(input).ok();
        assert_eq!(got.as_ref().map(Email::as_str), expected, "input {input:?}");
    }

    #[test]
    fn emails() {
        check_email("  John.Doe@Example.COM ", Some("john.doe@example.com"));
        check_email("a@b", Some("a@b"));
        check_email("user+tag@sub.example.org", Some("user+tag@sub.example.org"));
        check_email("no-at-sign", None);
        check_email("@example.com", None);
        check_email("user@", None);
        check_email("us er@example.com", None);
        check_email("user@exa mple.com", None);
        check_email("user@-example.com", None);
        check_email("user@example..com", None);
        check_email("a..b@example.com", None);
        check_email(&format!("{}@example.com", "a".repeat(65)), None);
        check_email(
            &format!("{}@example.com", "a".repeat(64)),
            Some(&*format!("{}@example.com", "a".repeat(64))),
        );
        check_email(&format!("a@{}.com", "b".repeat(250)), None);
        // Every reserved character is refused in the local part; Unicode is lower-cased.
        for c in "@<>()[]\\,;:\"".chars() {
            check_email(&format!("a{c}b@example.com"), None);
        }
        check_email(
            "a!#$%&'*/=?^_`{|}~b@example.com",
            Some("a!#$%&'*/=?^_`{|}~b@example.com"),
        );
        check_email("ÄNN@BÜCHER.Example", Some("änn@bücher.example"));
    }

    /// Every character of Unicode's format class, as an independent table (regex's `\p{Cf}`)
    /// lists it, is refused anywhere in an address; the class is not empty, and nearby
    /// visible letters are still accepted.
    #[test]
    fn format_class_characters_are_refused_everywhere_in_an_address() {
        let cf = regex::Regex::new(r"^\p{Cf}$").unwrap();
        let all: Vec<char> = (0..=u32::from(char::MAX))
            .filter_map(char::from_u32)
            .filter(|c| cf.is_match(c.encode_utf8(&mut [0; 4])))
            .collect();
        assert!(all.len() > 150, "only {} Cf characters", all.len());
        for c in [
            '\u{200B}', '\u{200D}', '\u{202E}', '\u{FEFF}', '\u{2066}', '\u{AD}',
        ] {
            assert!(all.contains(&c), "{c:?} not in the table");
        }
        for c in &all {
            for input in [
                format!("a{c}b@example.com"),
                format!("{c}ab@example.com"),
                format!("ab{c}@example.com"),
                format!("ab@exa{c}mple.com"),
                format!("ab@example.com{c}"),
            ] {
                assert!(Email::parse(&input).is_err(), "{input:?} accepted");
            }
        }
        // The check is the general category, not "anything outside ASCII".
        check_email("zoë@exämple.com", Some("zoë@exämple.com"));
        check_email("用户@例子.广告", Some("用户@例子.广告"));
    }

    #[test]
    fn user_ids_round_trip_through_subjects() {
        assert_eq!(UserId::from_subject("42"), UserId::Int(42));
        assert_eq!(UserId::from_subject("042"), UserId::Text("042".into()));
        assert_eq!(UserId::from_subject("abc-1"), UserId::Text("abc-1".into()));
        assert_eq!(UserId::Int(7).to_string(), "7");
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "[redacted] [redacted]");
        assert_eq!(
            format!("{:?}", PasswordHash::new("$argon2id$x")),
            "PasswordHash([redacted])"
        );
        assert!(s.ct_eq(&Secret::new("hunter2")));
        assert!(!s.ct_eq(&Secret::new("hunter3")));
    }
}
