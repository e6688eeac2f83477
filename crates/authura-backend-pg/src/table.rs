//! `UsersTable`: the validated name of the users table, the only text ever spliced into SQL.

use std::fmt;

/// The users table, optionally schema-qualified (`users`, `auth.accounts`). Each part is an
/// SQL identifier of letters, digits, `_` and `$`, not starting with a digit, at most 63 bytes;
/// it is folded to lower case like an unquoted identifier and always written quoted, so no
/// value from the configuration can change a statement's meaning.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UsersTable {
    schema: Option<String>,
    name: String,
}

impl UsersTable {
    /// Parses `name` or `schema.name`; `None` when it is not a plain identifier.
    pub fn parse(input: &str) -> Option<UsersTable> {
        let mut parts = input.trim().split('.');
        let first = identifier(parts.next()?)?;
        match (parts.next(), parts.next()) {
            (None, _) => Some(UsersTable {
                schema: None,
                name: first,
            }),
            (Some(second), None) => Some(UsersTable {
                schema: Some(first),
                name: identifier(second)?,
            }),
            (Some(_), Some(_)) => None,
        }
    }

    /// The quoted, possibly qualified name for SQL: `"users"`, `"auth"."accounts"`.
    pub fn quoted(&self) -> String {
        match &self.schema {
            Some(schema) => format!("\"{schema}\".\"{}\"", self.name),
            None => format!("\"{}\"", self.name),
        }
    }

    /// The table's own name, without schema (`accounts`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The schema, when one was given (otherwise the connection's `search_path` decides).
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// A sibling table in the same schema, quoted (`"auth"."authura_schema_migrations"`).
    pub(crate) fn sibling(&self, name: &str) -> String {
        match &self.schema {
            Some(schema) => format!("\"{schema}\".\"{name}\""),
            None => format!("\"{name}\""),
        }
    }
}

impl fmt::Display for UsersTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl fmt::Debug for UsersTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UsersTable({self})")
    }
}

fn identifier(part: &str) -> Option<String> {
    let mut chars = part.chars();
    let first = chars.next()?;
    let valid = (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        && part.len() <= 63;
    valid.then(|| part.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Option<&str>) {
        let got = UsersTable::parse(input).map(|t| t.quoted());
        assert_eq!(got.as_deref(), expected, "input {input:?}");
    }

    #[test]
    fn table_names_are_plain_identifiers() {
        check("users", Some(r#""users""#));
        check(" Users ", Some(r#""users""#));
        check("auth.accounts", Some(r#""auth"."accounts""#));
        check("_t$1", Some(r#""_t$1""#));
        check(&"a".repeat(63), Some(&format!("\"{}\"", "a".repeat(63))));
        for bad in [
            "",
            "1users",
            "users;drop table users",
            "\"users\"",
            "a.b.c",
            "a.",
            ".a",
            "us ers",
            "usérs",
            &"a".repeat(64),
        ] {
            check(bad, None);
        }
    }

    #[test]
    fn siblings_share_the_schema() {
        let t = UsersTable::parse("auth.accounts").unwrap();
        assert_eq!(t.sibling("m"), r#""auth"."m""#);
        assert_eq!(t.to_string(), "auth.accounts");
        let t = UsersTable::parse("users").unwrap();
        assert_eq!(t.sibling("m"), r#""m""#);
    }
}
