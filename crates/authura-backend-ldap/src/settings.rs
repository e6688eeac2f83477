//! What the LDAP store is configured with (SPEC §10): the directory, the service account, the
//! filters and the group → role map, each checked once when it is built.

use std::fmt;
use std::time::Duration;

use authura_core::{Role, Secret, StoreError};

/// The directory and how users and their groups are found in it.
#[derive(Clone)]
pub struct LdapSettings {
    /// `ldap://host:389` or `ldaps://host:636`.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS before anything is sent.
    pub starttls: bool,
    /// The service account that searches (`None`: searches are anonymous).
    pub bind_dn: Option<String>,
    /// Its password.
    pub bind_password: Secret,
    /// Where users are searched (the whole subtree).
    pub base_dn: String,
    /// The filter that finds one user by address; `{email}` is replaced by the address,
    /// escaped per RFC 4515.
    pub user_filter: String,
    /// The attribute that is the user's id: `entryUUID` (OpenLDAP), `objectGUID` (Active
    /// Directory, shown as a UUID), or any single-valued attribute.
    pub id_attribute: String,
    /// The attribute holding the address.
    pub email_attribute: String,
    /// Where groups are searched when an entry has no `memberOf`.
    pub group_base_dn: String,
    /// The filter that finds a user's groups; `{dn}` is replaced by the user's DN, escaped.
    pub group_filter: String,
    /// Group DN → role, in the operator's order.
    pub role_map: RoleMap,
    /// The role that wins over every other mapped role.
    pub admin_role: Role,
    /// The role of a user in no mapped group.
    pub default_role: Role,
    /// How long one directory operation (a connection, a bind, a search) may take.
    pub timeout: Duration,
    /// PEM certificates trusted besides the system's roots (`EXTRA_CA_FILE`).
    pub extra_ca_pem: Option<Vec<u8>>,
    /// How many service-account connections are kept open at most.
    pub pool_size: usize,
}

impl fmt::Debug for LdapSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdapSettings")
            .field("url", &self.url)
            .field("starttls", &self.starttls)
            .field("bind_dn", &self.bind_dn)
            .field("bind_password", &self.bind_password)
            .field("base_dn", &self.base_dn)
            .field("user_filter", &self.user_filter)
            .field("id_attribute", &self.id_attribute)
            .field("email_attribute", &self.email_attribute)
            .field("group_base_dn", &self.group_base_dn)
            .field("group_filter", &self.group_filter)
            .field("role_map", &self.role_map)
            .field("timeout", &self.timeout)
            .field("pool_size", &self.pool_size)
            .finish_non_exhaustive()
    }
}

impl LdapSettings {
    /// `LDAP_USER_FILTER`'s default.
    pub const DEFAULT_USER_FILTER: &'static str = "(mail={email})";
    /// `LDAP_GROUP_FILTER`'s default.
    pub const DEFAULT_GROUP_FILTER: &'static str = "(|(member={dn})(uniqueMember={dn}))";
    /// `LDAP_ID_ATTRIBUTE`'s default.
    pub const DEFAULT_ID_ATTRIBUTE: &'static str = "entryUUID";
    /// `LDAP_EMAIL_ATTRIBUTE`'s default.
    pub const DEFAULT_EMAIL_ATTRIBUTE: &'static str = "mail";
    /// `LDAP_TIMEOUT`'s default.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    /// How many service-account connections are kept by default.
    pub const DEFAULT_POOL_SIZE: usize = 4;

    /// Checks what can be checked without connecting.
    ///
    /// # Errors
    /// `StoreError::Backend` naming the setting at fault.
    pub fn check(&self) -> Result<(), StoreError> {
        let bad = |m: String| Err(StoreError::Backend(m));
        let scheme = self
            .url
            .split_once("://")
            .map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("ldap") => {}
            Some("ldaps") if self.starttls => {
                return bad("LDAP_STARTTLS: an ldaps:// URL is TLS already".into());
            }
            Some("ldaps") => {}
            _ => {
                return bad(format!(
                    "LDAP_URL: {:?} must be an ldap:// or ldaps:// URL",
                    self.url
                ));
            }
        }
        if url::Url::parse(&self.url).map_or(true, |u| u.host_str().is_none_or(str::is_empty)) {
            return bad(format!("LDAP_URL: {:?} names no host", self.url));
        }
        if !self.user_filter.contains("{email}") {
            return bad("LDAP_USER_FILTER: must contain {email}".into());
        }
        if !self.group_filter.contains("{dn}") {
            return bad("LDAP_GROUP_FILTER: must contain {dn}".into());
        }
        for (name, filter) in [
            ("LDAP_USER_FILTER", &self.user_filter),
            ("LDAP_GROUP_FILTER", &self.group_filter),
        ] {
            if !(filter.starts_with('(') && filter.ends_with(')')) {
                return bad(format!(
                    "{name}: {filter:?} must be a parenthesised LDAP filter"
                ));
            }
        }
        if self.bind_dn.is_some() && self.bind_password.is_empty() {
            // An empty password makes a simple bind anonymous: the search would run unbound.
            return bad("LDAP_BIND_PASSWORD is required with LDAP_BIND_DN".into());
        }
        if self.timeout.is_zero() {
            return bad("LDAP_TIMEOUT must be longer than zero".into());
        }
        Ok(())
    }

    /// The scheme, lower-case, for logs.
    pub(crate) fn is_ldaps(&self) -> bool {
        self.url.to_ascii_lowercase().starts_with("ldaps://")
    }
}

/// `LDAP_ROLE_MAP`: group DNs and their roles, in the order the operator wrote them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleMap {
    entries: Vec<(String, Role)>,
}

impl RoleMap {
    /// Parses a JSON object of group DN → role, keeping its order (the first match wins after
    /// the admin role).
    ///
    /// # Errors
    /// A message saying what is wrong: not an object, a value not a string, a role that is not
    /// a role, a DN given twice.
    pub fn parse(json: &str) -> Result<Self, String> {
        let pairs = ordered_pairs(json)?;
        let mut entries: Vec<(String, Role)> = Vec::with_capacity(pairs.len());
        for (dn, role) in pairs {
            let role =
                Role::parse(&role).map_err(|_| format!("{role:?} (for {dn:?}) is not a role"))?;
            let key = normalize_dn(&dn);
            if key.is_empty() {
                return Err("a group DN is empty".into());
            }
            if entries.iter().any(|(k, _)| *k == key) {
                return Err(format!("the group {dn:?} is given twice"));
            }
            entries.push((key, role));
        }
        Ok(RoleMap { entries })
    }

    /// No group is mapped.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The role of a member of `groups` (DNs, in any case and spacing): `admin` if one of the
    /// groups maps to it, else the first mapped role in the map's order, else `default`.
    pub fn role_of<'a>(
        &'a self,
        groups: impl IntoIterator<Item = &'a str>,
        admin: &'a Role,
        default: &'a Role,
    ) -> &'a Role {
        let groups: Vec<String> = groups.into_iter().map(normalize_dn).collect();
        let mapped = || {
            self.entries
                .iter()
                .filter(|(dn, _)| groups.iter().any(|g| g == dn))
                .map(|(_, role)| role)
        };
        if mapped().any(|role| role == admin) {
            return admin;
        }
        mapped().next().unwrap_or(default)
    }
}

/// A DN compared as directories compare them for the usual attribute types: case-insensitive,
/// without the spaces around `,`, `=` and `+`.
pub(crate) fn normalize_dn(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    for part in dn.split(',') {
        if !out.is_empty() {
            out.push(',');
        }
        let rdn: Vec<String> = part
            .split('+')
            .map(|ava| match ava.split_once('=') {
                Some((k, v)) => format!("{}={}", k.trim(), v.trim()),
                None => ava.trim().to_owned(),
            })
            .collect();
        out.push_str(&rdn.join("+"));
    }
    out.to_lowercase()
}

/// The members of a JSON object as (key, string value), in document order (serde_json's map
/// sorts its keys unless its `preserve_order` feature is on, which this crate does not force on
/// its users).
fn ordered_pairs(json: &str) -> Result<Vec<(String, String)>, String> {
    use serde::de::{Deserializer as _, MapAccess, Visitor};

    struct Pairs;
    impl<'de> Visitor<'de> for Pairs {
        type Value = Vec<(String, String)>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object of group DN to role name")
        }

        fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
            let mut out = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, String>()? {
                out.push((k, v));
            }
            Ok(out)
        }
    }

    let mut de = serde_json::Deserializer::from_str(json);
    let pairs = de
        .deserialize_map(Pairs)
        .map_err(|e| format!("expected a JSON object of group DN to role ({e})"))?;
    de.end()
        .map_err(|e| format!("expected a JSON object of group DN to role ({e})"))?;
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use authura_core::Role;

    use super::{RoleMap, normalize_dn};

    fn role(r: &str) -> Role {
        Role::parse(r).unwrap()
    }

    #[test]
    fn the_admin_role_wins_then_the_first_match_in_the_map_order() {
        let map = RoleMap::parse(
            r#"{"cn=Editors,ou=groups,dc=x": "editor", "cn=staff,ou=groups,dc=x": "staff",
                "cn=admins,ou=groups,dc=x": "admin"}"#,
        )
        .unwrap();
        let (admin, user) = (role("admin"), role("user"));
        let check = |groups: &[&str], want: &str| {
            assert_eq!(
                map.role_of(groups.iter().copied(), &admin, &user).as_str(),
                want,
                "{groups:?}"
            );
        };
        check(
            &["cn=staff,ou=groups,dc=x", "CN=Editors, OU=groups, DC=x"],
            "editor",
        );
        check(
            &["cn=staff,ou=groups,dc=x", "cn=admins,ou=groups,dc=x"],
            "admin",
        );
        check(&["cn=staff,ou=groups,dc=x"], "staff");
        check(&["cn=other,ou=groups,dc=x"], "user");
        check(&[], "user");
    }

    #[test]
    fn a_bad_map_is_refused_with_what_is_wrong() {
        for (json, says) in [
            ("[]", "expected a JSON object"),
            (r#"{"cn=a": 1}"#, "expected a JSON object"),
            (r#"{"cn=a": "has space"}"#, "is not a role"),
            (r#"{"cn=a,dc=x": "x", "CN=A, DC=x": "y"}"#, "given twice"),
            (r#"{"cn=a": "x"} trailing"#, "expected a JSON object"),
        ] {
            let err = RoleMap::parse(json).unwrap_err();
            assert!(err.contains(says), "{json}: {err}");
        }
    }

    #[test]
    fn dns_compare_without_case_or_spaces() {
        assert_eq!(
            normalize_dn("CN=Admins , OU=Groups,dc=Example"),
            "cn=admins,ou=groups,dc=example"
        );
    }
}
