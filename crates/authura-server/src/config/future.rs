//! Variables of features this build does not have yet (SPEC §2, §8–§13), each with its feature.
//! Setting one is a startup error: a protection such as sessions or lockout must never be
//! silently ignored. When a feature is built, its variables move to its own section.

use crate::config::var::Var;

const LDAP_SYNC: &str = "ldap sync";

/// The variables of features not built, in the order of their documentation.
pub static VARS: &[&Var] = &[
    &Var::future("LDAP_SYNC_INTERVAL", LDAP_SYNC),
    &Var::future("LDAP_SYNC_MAX_ARCHIVE_PERCENT", LDAP_SYNC),
    &Var::future("LDAP_SYNC_ADOPT", LDAP_SYNC),
];
