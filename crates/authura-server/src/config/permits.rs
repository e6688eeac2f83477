//! The role groups section (SPEC §8a): `PERMISSION_NAMES`, names for permission numbers that
//! `/check` answers (`permission_names`) and accepts (`?permission=<name>`), and the admin
//! endpoints accept and show. Role groups and permits themselves live in the state store.

use authura_core::permit::{Permission, PermissionNames};

use crate::config::reader::Reader;
use crate::config::var::{Var, declare};

declare! {
    PERMISSION_NAMES = Var::new(
        "permits",
        "Names for permission numbers, as a JSON object of name → number (0–65535), e.g. \
         `{\"read\": 1, \"write\": 2}`. `/check` then answers `permission_names` and accepts \
         `?permission=<name>`; the admin endpoints accept names in `permissions` and show them. \
         A name is non-empty, has no white space around it and is not all digits (so it never \
         reads as a number); several names may share a number. Checked at startup.",
    )
    .unset("unset (permissions are numbers only)")
    .when("`SESSIONS_ENABLED=true`")
    .new_variable();
    HASURA_ROLES_FROM_GROUPS = Var::new(
        "permits",
        "`true` makes the `hasura` claims extension's `x-hasura-allowed-roles` the user's role \
         followed by the names of their role groups (read when a token is issued or \
         refreshed), so Hasura permissions can follow groups; `x-hasura-default-role` stays \
         the role. Needs `SESSIONS_ENABLED=true` and `hasura` in `JWT_EXTENSIONS`.",
    )
    .default("false")
    .new_variable();
}

/// `HASURA_ROLES_FROM_GROUPS`; a problem when it is on without sessions or without the
/// `hasura` extension.
pub fn read_hasura_roles_from_groups(r: &mut Reader, sessions: bool, hasura: bool) -> bool {
    let on = r.bool(&HASURA_ROLES_FROM_GROUPS);
    if on && !sessions {
        r.problem(
            "HASURA_ROLES_FROM_GROUPS=true needs SESSIONS_ENABLED=true (role groups live in the \
             state store)"
                .into(),
        );
    }
    if on && !hasura {
        r.problem(
            "HASURA_ROLES_FROM_GROUPS=true needs the hasura claims extension (JWT_EXTENSIONS=hasura)"
                .into(),
        );
    }
    on
}

/// `PERMISSION_NAMES`; a problem when it is not a JSON object of valid names → u16 numbers.
pub fn read_permission_names(r: &mut Reader) -> PermissionNames {
    let Some(text) = r.string(&PERMISSION_NAMES).filter(|t| !t.trim().is_empty()) else {
        return PermissionNames::default();
    };
    match parse(&text) {
        Ok(names) => names,
        Err(problem) => {
            r.problem(format!("PERMISSION_NAMES: {problem}"));
            PermissionNames::default()
        }
    }
}

/// Reads the JSON object.
fn parse(text: &str) -> Result<PermissionNames, String> {
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
        .map_err(|e| format!("expected a JSON object of name → number: {e}"))?;
    let mut names = Vec::with_capacity(map.len());
    for (name, value) in map {
        if name.trim().is_empty() || name.trim() != name {
            return Err(format!(
                "{name:?} is not a name (empty, or white space around it)"
            ));
        }
        if name.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "{name:?} is all digits, so it would read as a permission number"
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(format!("{name:?} contains a control character"));
        }
        let number = value
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .ok_or_else(|| format!("{name:?} must name a number from 0 to 65535, not {value}"))?;
        names.push((name, Permission(number)));
    }
    Ok(PermissionNames::new(names))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_u16_numbers() {
        let names = parse(r#"{"read": 1, "write": 2, "also-read": 1, "max": 65535}"#).unwrap();
        assert_eq!(names.number("read"), Some(Permission(1)));
        assert_eq!(names.number("max"), Some(Permission(65535)));
        assert_eq!(names.number("Read"), None);
        for bad in [
            "[1]",
            "{",
            r#"{"read": 65536}"#,
            r#"{"read": -1}"#,
            r#"{"read": 1.5}"#,
            r#"{"read": "1"}"#,
            r#"{"": 1}"#,
            r#"{" read": 1}"#,
            r#"{"12": 1}"#,
            r#"{"a\nb": 1}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
