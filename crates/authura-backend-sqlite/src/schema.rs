//! The diesel description of the `users` table and the rows the store reads and writes.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sqlite::Sqlite;

use authura_core::StoreError;
use authura_core::types::{
    Email, NewUser, PasswordHash, Role, TenantId, User, UserChanges, UserId, format_time,
};

diesel::table! {
    /// The seed's table. Only these columns are ever named in a query, so an operator's table
    /// may have more (nullable) ones.
    users (id) {
        id -> BigInt,
        email -> Text,
        role -> Text,
        password -> Text,
        tenant_id -> Nullable<Text>,
        verified_at -> Nullable<Text>,
    }
}

diesel::define_sql_function! {
    /// SQLite's `lower()`: the unique index is on `lower(email)`, and rows an operator wrote
    /// may not be lower-case.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

diesel::define_sql_function! {
    /// SQLite's `instr()`: where the filter text starts in the email (0: nowhere). Unlike
    /// `LIKE`, no character of the text is a wildcard.
    fn instr(haystack: diesel::sql_types::Text, needle: diesel::sql_types::Text) -> diesel::sql_types::Integer;
}

/// A stored row, as selected (and returned by `RETURNING`).
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(Sqlite))]
pub(crate) struct UserRow {
    id: i64,
    email: String,
    role: String,
    password: String,
    tenant_id: Option<String>,
    verified_at: Option<String>,
}

impl UserRow {
    /// Validates a stored row into a domain user. Rows written by other tools can be malformed;
    /// the error names the row and the column, never the password hash.
    pub(crate) fn into_user(self) -> Result<User, StoreError> {
        let id = self.id;
        let verified_at = self
            .verified_at
            .as_deref()
            .map(parse_time)
            .transpose()
            .map_err(|_| {
                StoreError::Backend(format!(
                    "user {id} has an invalid verified_at (expected RFC 3339)"
                ))
            })?;
        authura_core::store::StoredUser {
            id: UserId::Int(id),
            email: self.email,
            role: self.role,
            tenant_id: self.tenant_id,
            password: self.password,
            verified_at,
        }
        .into_user()
    }
}

/// A row to insert. NULLs are written as NULL, not as SQL `DEFAULT` (which SQLite lacks).
#[derive(Debug, Insertable)]
#[diesel(table_name = users, treat_none_as_default_value = false)]
pub(crate) struct NewRow<'a> {
    email: &'a str,
    role: &'a str,
    password: &'a str,
    tenant_id: Option<&'a str>,
    verified_at: Option<String>,
}

impl<'a> NewRow<'a> {
    pub(crate) fn new(user: &'a NewUser) -> Self {
        NewRow {
            email: user.email.as_str(),
            role: user.role.as_str(),
            password: user.password_hash.as_str(),
            tenant_id: user.tenant.as_ref().map(TenantId::as_str),
            verified_at: user.verified_at.as_ref().map(format_time),
        }
    }
}

/// The columns an update sets; `None` leaves a column alone.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = users)]
pub(crate) struct ChangeRow<'a> {
    email: Option<&'a str>,
    role: Option<&'a str>,
    password: Option<&'a str>,
    verified_at: Option<String>,
}

impl<'a> ChangeRow<'a> {
    /// The changeset, or `None` when nothing changes (diesel refuses an empty `SET`).
    pub(crate) fn new(changes: &'a UserChanges) -> Option<Self> {
        let row = ChangeRow {
            email: changes.email.as_ref().map(Email::as_str),
            role: changes.role.as_ref().map(Role::as_str),
            password: changes.password_hash.as_ref().map(PasswordHash::as_str),
            verified_at: changes.verified_at.as_ref().map(format_time),
        };
        let empty = row.email.is_none()
            && row.role.is_none()
            && row.password.is_none()
            && row.verified_at.is_none();
        (!empty).then_some(row)
    }
}

/// The numeric id a `UserId` names, if any: SQLite ids are integers, so a textual id that is not
/// a number matches no row.
pub(crate) fn row_id(id: &UserId) -> Option<i64> {
    match id {
        UserId::Int(n) => Some(*n),
        UserId::Text(s) => s.parse().ok(),
    }
}

/// Reads `verified_at`: any RFC 3339 offset, converted to UTC.
fn parse_time(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(text).map(|at| at.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_time(text: &str, expected: Option<&str>) {
        let got = parse_time(text).ok().map(|at| format_time(&at));
        assert_eq!(got.as_deref(), expected, "input {text:?}");
    }

    #[test]
    fn times_are_read_as_utc() {
        check_time(
            "2026-11-01T12:00:00.123456+00:00",
            Some("2026-11-01T12:00:00.123456+00:00"),
        );
        check_time(
            "2026-11-01T12:00:00Z",
            Some("2026-11-01T12:00:00.000000+00:00"),
        );
        check_time(
            "2026-11-01T14:30:00.5+02:30",
            Some("2026-11-01T12:00:00.500000+00:00"),
        );
        check_time("2026-11-01", None);
        check_time("yesterday", None);
    }

    #[test]
    fn textual_ids_match_only_numbers() {
        assert_eq!(row_id(&UserId::Int(7)), Some(7));
        assert_eq!(row_id(&UserId::Text("7".into())), Some(7));
        assert_eq!(row_id(&UserId::Text("abc".into())), None);
        assert_eq!(row_id(&UserId::Text(String::new())), None);
    }
}
