//! Variables of features this build does not have yet (SPEC §2, §8–§13), each with its feature.
//! Setting one is a startup error: a protection such as sessions or lockout must never be
//! silently ignored. When a feature is built, its variables move to its own section.

use crate::config::var::Var;

const OAUTH: &str = "oauth";
const LDAP: &str = "the ldap backend";
const LDAP_SYNC: &str = "ldap sync";
const ROLE_GROUPS: &str = "role groups";

/// The variables of features not built, in the order of their documentation.
pub static VARS: &[&Var] = &[
    &Var::future("OAUTH_PROVIDERS", OAUTH),
    &Var::future("GOOGLE_CLIENT_ID", OAUTH),
    &Var::future("GOOGLE_CLIENT_SECRET", OAUTH).secret(),
    &Var::future("GITHUB_CLIENT_ID", OAUTH),
    &Var::future("GITHUB_CLIENT_SECRET", OAUTH).secret(),
    &Var::future("MICROSOFT_TENANT", OAUTH),
    &Var::future("MICROSOFT_CLIENT_ID", OAUTH),
    &Var::future("MICROSOFT_CLIENT_SECRET", OAUTH).secret(),
    &Var::future("OIDC_ISSUER_URL", OAUTH),
    &Var::future("OIDC_CLIENT_ID", OAUTH),
    &Var::future("OIDC_CLIENT_SECRET", OAUTH).secret(),
    &Var::future("GOOGLE_AUTH_URL", OAUTH),
    &Var::future("GOOGLE_TOKEN_URL", OAUTH),
    &Var::future("GOOGLE_USERINFO_URL", OAUTH),
    &Var::future("GITHUB_AUTH_URL", OAUTH),
    &Var::future("GITHUB_TOKEN_URL", OAUTH),
    &Var::future("GITHUB_USERINFO_URL", OAUTH),
    &Var::future("MICROSOFT_AUTH_URL", OAUTH),
    &Var::future("MICROSOFT_TOKEN_URL", OAUTH),
    &Var::future("MICROSOFT_USERINFO_URL", OAUTH),
    &Var::future("OIDC_AUTH_URL", OAUTH),
    &Var::future("OIDC_TOKEN_URL", OAUTH),
    &Var::future("OIDC_USERINFO_URL", OAUTH),
    &Var::future("LDAP_URL", LDAP),
    &Var::future("LDAP_STARTTLS", LDAP),
    &Var::future("LDAP_BIND_DN", LDAP),
    &Var::future("LDAP_BIND_PASSWORD", LDAP).secret(),
    &Var::future("LDAP_BASE_DN", LDAP),
    &Var::future("LDAP_USER_FILTER", LDAP),
    &Var::future("LDAP_ROLE_MAP", LDAP),
    &Var::future("LDAP_ID_ATTRIBUTE", LDAP),
    &Var::future("LDAP_EMAIL_ATTRIBUTE", LDAP),
    &Var::future("LDAP_GROUP_BASE_DN", LDAP),
    &Var::future("LDAP_GROUP_FILTER", LDAP),
    &Var::future("LDAP_TIMEOUT", LDAP),
    &Var::future("LDAP_SYNC_INTERVAL", LDAP_SYNC),
    &Var::future("LDAP_SYNC_MAX_ARCHIVE_PERCENT", LDAP_SYNC),
    &Var::future("LDAP_SYNC_ADOPT", LDAP_SYNC),
    &Var::future("PERMISSION_NAMES", ROLE_GROUPS),
    &Var::future("HASURA_ROLES_FROM_GROUPS", ROLE_GROUPS),
];
