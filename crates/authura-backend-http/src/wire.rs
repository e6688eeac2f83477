//! The contract's JSON: the user object the service answers with, and the bodies we send.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use authura_core::StoreError;
use authura_core::types::{
    Email, NewUser, PasswordHash, Role, TenantId, User, UserChanges, UserId,
};

/// A user as the service returns it.
#[derive(Deserialize)]
pub(crate) struct WireUser {
    id: WireId,
    email: String,
    role: String,
    password: String,
    #[serde(default)]
    tenant_id: Option<String>,
    #[serde(default)]
    verified_at: Option<DateTime<Utc>>,
}

/// A page as the service returns it: `{"users": [U…], "next": id or null}`.
#[derive(Deserialize)]
pub(crate) struct WirePage {
    users: Vec<WireUser>,
    #[serde(default)]
    next: Option<WireId>,
}

impl WirePage {
    /// The domain page; a user that does not validate is the service's error.
    pub(crate) fn into_page(self) -> Result<authura_core::UserPage, StoreError> {
        let users = self
            .users
            .into_iter()
            .map(WireUser::into_user)
            .collect::<Result<Vec<_>, _>>()?;
        let next = self.next.map(WireId::into_id).transpose()?;
        Ok(authura_core::UserPage { users, next })
    }
}

/// An id as the service returns it: a JSON number or a JSON string, kept as it is.
#[derive(Deserialize)]
#[serde(untagged)]
enum WireId {
    Int(i64),
    Text(String),
}

impl WireId {
    fn into_id(self) -> Result<UserId, StoreError> {
        match self {
            WireId::Int(n) => Ok(UserId::Int(n)),
            WireId::Text(s) if s.is_empty() => Err(StoreError::Backend(
                "the service returned an empty id".into(),
            )),
            WireId::Text(s) => Ok(UserId::Text(s)),
        }
    }
}

impl WireUser {
    /// The domain user; a field that does not validate is the service's error.
    pub(crate) fn into_user(self) -> Result<User, StoreError> {
        let bad = |what: &str| StoreError::Backend(format!("the service returned {what}"));
        let id = self.id.into_id()?;
        let tenant = match self.tenant_id {
            None => None,
            Some(t) => Some(TenantId::parse(&t).map_err(|_| bad("an invalid tenant_id"))?),
        };
        if self.password.is_empty() {
            return Err(bad("a user without a password hash"));
        }
        Ok(User {
            id,
            email: Email::parse(&self.email).map_err(|_| bad("an invalid email"))?,
            role: Role::parse(&self.role).map_err(|_| bad("an invalid role"))?,
            tenant,
            password_hash: PasswordHash::new(self.password),
            verified_at: self.verified_at,
        })
    }
}

/// The body of `POST {HTTP_URL}`: every field, `tenant_id` and `verified_at` possibly null.
#[derive(Serialize)]
pub(crate) struct CreateBody<'a> {
    email: &'a str,
    role: &'a str,
    password: &'a str,
    tenant_id: Option<&'a str>,
    verified_at: Option<String>,
}

impl<'a> CreateBody<'a> {
    pub(crate) fn new(user: &'a NewUser) -> Self {
        CreateBody {
            email: user.email.as_str(),
            role: user.role.as_str(),
            password: user.password_hash.as_str(),
            tenant_id: user.tenant.as_ref().map(TenantId::as_str),
            verified_at: user.verified_at.map(rfc3339),
        }
    }
}

/// The body of `PATCH {HTTP_URL}/{id}`: only the fields that change.
#[derive(Serialize)]
pub(crate) struct PatchBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verified_at: Option<String>,
    /// The precondition of a conditional update: the user's email and password hash as read.
    #[serde(skip_serializing_if = "Option::is_none")]
    expected: Option<Expected<'a>>,
}

/// `expected` in a `PATCH` body: write only if the stored user still has these.
#[derive(Serialize)]
pub(crate) struct Expected<'a> {
    email: &'a str,
    password: &'a str,
}

impl<'a> PatchBody<'a> {
    pub(crate) fn new(changes: &'a UserChanges) -> Self {
        PatchBody {
            email: changes.email.as_ref().map(Email::as_str),
            role: changes.role.as_ref().map(Role::as_str),
            password: changes.password_hash.as_ref().map(PasswordHash::as_str),
            verified_at: changes.verified_at.map(rfc3339),
            expected: None,
        }
    }

    /// The body of a conditional update: `changes`, if the user still is as `expected`.
    pub(crate) fn conditional(changes: &'a UserChanges, expected: &'a User) -> Self {
        PatchBody {
            expected: Some(Expected {
                email: expected.email.as_str(),
                password: expected.password_hash.as_str(),
            }),
            ..PatchBody::new(changes)
        }
    }
}

/// RFC 3339 in UTC with microseconds (`2026-01-01T00:00:00.123456Z`), what every backend keeps.
fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str, expected: Result<UserId, &str>) {
        let parsed: WireUser = serde_json::from_str(json).unwrap();
        match (parsed.into_user(), expected) {
            (Ok(user), Ok(id)) => assert_eq!(user.id, id, "{json}"),
            (Err(StoreError::Backend(m)), Err(what)) => assert!(m.contains(what), "{m}"),
            (got, want) => panic!("{json}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn ids_are_numbers_or_strings_and_fields_are_validated() {
        let user = |id: &str, email: &str, extra: &str| {
            format!(
                r#"{{"id":{id},"email":"{email}","role":"user","password":"$argon2id$x"{extra}}}"#
            )
        };
        check(&user("7", "a@example.com", ""), Ok(UserId::Int(7)));
        check(
            &user(r#""7f3e-uuid""#, "a@example.com", ""),
            Ok(UserId::Text("7f3e-uuid".into())),
        );
        check(
            &user(r#""42""#, "a@example.com", ""),
            Ok(UserId::Text("42".into())),
        );
        check(
            &user(
                "1",
                "A@Example.com",
                r#","tenant_id":null,"verified_at":"2026-01-01T02:00:00+02:00""#,
            ),
            Ok(UserId::Int(1)),
        );
        check(&user(r#""""#, "a@example.com", ""), Err("an empty id"));
        check(&user("1", "not-an-address", ""), Err("an invalid email"));
        check(
            &user("1", "a@example.com", r#","tenant_id":"""#),
            Err("an invalid tenant_id"),
        );
    }

    #[test]
    fn times_are_read_with_any_offset_and_sent_in_utc_with_microseconds() {
        let parsed: WireUser = serde_json::from_str(
            r#"{"id":1,"email":"a@example.com","role":"user","password":"h","verified_at":"2026-01-01T02:00:00.000001+02:00"}"#,
        )
        .unwrap();
        let at = parsed.into_user().unwrap().verified_at.unwrap();
        assert_eq!(rfc3339(at), "2026-01-01T00:00:00.000001Z");
    }

    #[test]
    fn a_patch_carries_only_what_changes() {
        let changes = UserChanges {
            role: Some(Role::parse("admin").unwrap()),
            ..UserChanges::default()
        };
        let body = serde_json::to_string(&PatchBody::new(&changes)).unwrap();
        assert_eq!(body, r#"{"role":"admin"}"#);
    }
}
