//! The LDAP backend's variables (SPEC §10): `AUTH_BACKEND=ldap` reads them.

use authura_backend_ldap::{LdapSettings, RoleMap};
use authura_core::{Role, Secret};

use crate::config::BackendConfig;
use crate::config::flows::{ADMIN_ROLE, DEFAULT_ROLE};
use crate::config::reader::Reader;
use crate::config::var::{Var, declare};

const LDAP: &[&str] = &["ldap"];

declare! {
    LDAP_URL = Var::new(
        "ldap",
        "The directory: `ldap://host:389` or `ldaps://host:636`. Missing: `LDAP_URL is required \
         with AUTH_BACKEND=ldap (…)`; another scheme: `LDAP_URL: \"http://h\" must be an ldap:// \
         or ldaps:// URL`. `EXTRA_CA_FILE` is trusted for its certificate, besides the system's \
         roots.",
    )
    .required("required")
    .backends(LDAP)
    .new_variable();
    LDAP_STARTTLS = Var::new(
        "ldap",
        "Upgrade an `ldap://` connection with StartTLS before anything is sent (a directory that \
         refuses it is unavailable, never used in clear). With `ldaps://`: refused (`LDAP_STARTTLS: \
         an ldaps:// URL is TLS already`).",
    )
    .default("false")
    .backends(LDAP)
    .new_variable();
    LDAP_BIND_DN = Var::new(
        "ldap",
        "The service account that searches, e.g. `cn=authura,ou=services,dc=example,dc=com` \
         (Active Directory: `authura@example.com` works too). Unset: searches are anonymous.",
    )
    .backends(LDAP)
    .new_variable();
    LDAP_BIND_PASSWORD = Var::new(
        "ldap",
        "Its password. Secret (redacted; `LDAP_BIND_PASSWORD_FILE` works). Required with \
         `LDAP_BIND_DN`: an empty one would make the bind anonymous.",
    )
    .backends(LDAP)
    .secret()
    .new_variable();
    LDAP_BASE_DN = Var::new(
        "ldap",
        "Where users are searched (the whole subtree), e.g. `ou=people,dc=example,dc=com`.",
    )
    .required("required")
    .backends(LDAP)
    .new_variable();
    LDAP_USER_FILTER = Var::new(
        "ldap",
        "The filter that finds one user by address; `{email}` is replaced by the address, \
         escaped per RFC 4515 (`*`, `(`, `)`, a backslash and NUL cannot change the filter). Exactly \
         one entry must match, else the sign-in is refused as a wrong password. Active \
         Directory: `(&(objectClass=user)(userPrincipalName={email}))`. With `{email}` as `*` it \
         lists every user (the admin API).",
    )
    .default("(mail={email})")
    .backends(LDAP)
    .new_variable();
    LDAP_ID_ATTRIBUTE = Var::new(
        "ldap",
        "The attribute that is the user's id (the tokens' `sub`): `entryUUID` (OpenLDAP), \
         `objectGUID` (Active Directory; shown as a UUID), or any single-valued attribute that \
         never changes.",
    )
    .default("entryUUID")
    .backends(LDAP)
    .new_variable();
    LDAP_EMAIL_ATTRIBUTE = Var::new(
        "ldap",
        "The attribute holding the address (Active Directory: `userPrincipalName` or `mail`). \
         An entry with it blank or not an address is no user.",
    )
    .default("mail")
    .backends(LDAP)
    .new_variable();
    LDAP_GROUP_BASE_DN = Var::new(
        "ldap",
        "Where groups are searched when an entry has no `memberOf`.",
    )
    .computed("`LDAP_BASE_DN`")
    .backends(LDAP)
    .new_variable();
    LDAP_GROUP_FILTER = Var::new(
        "ldap",
        "The filter that finds a user's groups; `{dn}` is replaced by the user's DN, escaped. \
         Used only when the entry has no `memberOf` attribute (OpenLDAP's memberof overlay and \
         Active Directory set it).",
    )
    // The default has a `|`, which would end a Markdown table cell: escaped in the docs.
    .computed("`(\\|(member={dn})(uniqueMember={dn}))`")
    .backends(LDAP)
    .new_variable();
    LDAP_ROLE_MAP = Var::new(
        "ldap",
        "A JSON object of group DN → role, e.g. `{\"cn=admins,ou=groups,dc=example,dc=com\": \
         \"admin\"}`. A member of a group mapped to `ADMIN_ROLE` gets it; else the first group of \
         the map (in the order written) the user is in; else `DEFAULT_ROLE`. DNs compare \
         without case and spaces.",
    )
    .default("{}")
    .backends(LDAP)
    .new_variable();
    LDAP_TIMEOUT = Var::new(
        "ldap",
        "How long one directory step (connecting with TLS, a bind, a search) may take, as a Go \
         duration; past it the request answers 503 `backend_unavailable`. Must be longer than \
         zero.",
    )
    .default("10s")
    .backends(LDAP)
    .new_variable();
    LDAP_POOL_SIZE = Var::new(
        "ldap",
        "Connections bound as the service account kept open at most (a user's own bind uses a \
         connection of its own, closed after it). `0` is refused.",
    )
    .default("4")
    .backends(LDAP)
    .new_variable();
}

/// The `LDAP_*` variables, checked without connecting.
pub fn read_ldap(r: &mut Reader, extra_ca_pem: Option<Vec<u8>>) -> Option<BackendConfig> {
    let url = r.string(&LDAP_URL);
    let starttls = r.bool(&LDAP_STARTTLS);
    let bind_dn = r.string(&LDAP_BIND_DN).filter(|dn| !dn.is_empty());
    let bind_password = r.secret(&LDAP_BIND_PASSWORD);
    let base_dn = r.string(&LDAP_BASE_DN).filter(|dn| !dn.is_empty());
    let user_filter = r.text(&LDAP_USER_FILTER);
    let id_attribute = r.text(&LDAP_ID_ATTRIBUTE);
    let email_attribute = r.text(&LDAP_EMAIL_ATTRIBUTE);
    let group_base_dn = r.string(&LDAP_GROUP_BASE_DN).filter(|dn| !dn.is_empty());
    let group_filter = match r.string(&LDAP_GROUP_FILTER) {
        Some(filter) => filter,
        None => r.default(&LDAP_GROUP_FILTER, LdapSettings::DEFAULT_GROUP_FILTER),
    };
    let role_map = RoleMap::parse(&r.text(&LDAP_ROLE_MAP))
        .map_err(|e| r.problem(format!("LDAP_ROLE_MAP: {e}")))
        .ok();
    let timeout = r.positive_duration(&LDAP_TIMEOUT);
    let pool_size = r.number::<usize>(&LDAP_POOL_SIZE);
    if pool_size == 0 {
        r.problem("LDAP_POOL_SIZE: expected at least 1".into());
    }
    // Read again here (the flows section reports a bad one); the defaults keep `authura
    // migrate`, which reads no flow settings, working.
    let admin_role = Role::parse(&r.text(&ADMIN_ROLE)).unwrap_or_else(|_| fallback("admin"));
    let default_role = Role::parse(&r.text(&DEFAULT_ROLE)).unwrap_or_else(|_| fallback("user"));
    let Some(url) = url else {
        r.problem(
            "LDAP_URL is required with AUTH_BACKEND=ldap (e.g. ldaps://ldap.example.com)".into(),
        );
        return None;
    };
    let Some(base_dn) = base_dn else {
        r.problem(
            "LDAP_BASE_DN is required with AUTH_BACKEND=ldap (e.g. ou=people,dc=example,dc=com)"
                .into(),
        );
        return None;
    };
    if bind_dn.is_some() && bind_password.as_ref().is_none_or(Secret::is_empty) {
        r.problem(
            "LDAP_BIND_PASSWORD is required with LDAP_BIND_DN (an empty password binds \
             anonymously)"
                .into(),
        );
        return None;
    }
    if group_base_dn.is_none() {
        r.record(&LDAP_GROUP_BASE_DN, &base_dn);
    }
    let settings = LdapSettings {
        url,
        starttls,
        bind_dn,
        bind_password: bind_password.unwrap_or_else(|| Secret::new("")),
        group_base_dn: group_base_dn.unwrap_or_else(|| base_dn.clone()),
        base_dn,
        user_filter,
        id_attribute,
        email_attribute,
        group_filter,
        role_map: role_map?,
        admin_role,
        default_role,
        timeout: timeout?,
        extra_ca_pem,
        pool_size,
    };
    if let Err(e) = settings.check() {
        r.problem(e.to_string().replace("backend error: ", ""));
        return None;
    }
    Some(BackendConfig::Ldap(settings))
}

fn fallback(role: &str) -> Role {
    Role::parse(role).unwrap_or_else(|_| unreachable!("{role} is a role"))
}
