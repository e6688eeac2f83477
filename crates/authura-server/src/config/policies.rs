//! The account policies section (SPEC §11): lockout, password history and expiry, and the
//! audit log. Each is off by default; any of them on needs the state store (SPEC §13).

use std::time::Duration;

use authura_core::Email;
use authura_core::flows::PolicySettings;

use crate::config::reader::Reader;
use crate::config::var::{Var, declare};

declare! {
    LOCKOUT_THRESHOLD = Var::new(
        "policies",
        "Consecutive failed logins that lock an account (`0` = off). Counted in the state store, \
         so a lock survives restarts and holds on every instance. A locked account answers \
         every password, the right one too, with `401 invalid_credentials`; the owner gets an \
         `account-locked` mail with a password-reset link (a completed reset lifts the lock), \
         and an admin can unlock. Anyone who knows an address can lock its owner out this way: \
         see \"Lockout and guessing\" below.",
    )
    .default("0")
    .new_variable();
    LOCKOUT_DURATION = Var::new(
        "policies",
        "How long a lock lasts, as a Go duration; `0` = until an admin unlocks (or a password \
         reset).",
    )
    .default("15m")
    .when("`LOCKOUT_THRESHOLD` > 0")
    .new_variable();
    PASSWORD_HISTORY = Var::new(
        "policies",
        "N > 0 refuses a new password that is the current one or one of the N − 1 before it \
         (`400 password_reused`), in every flow that sets a password (change, reset, \
         verify-email, admin). Checked against their hashes; each check is a full hash, so keep \
         N small. `0` = off.",
    )
    .default("0")
    .new_variable();
    PASSWORD_MAX_AGE = Var::new(
        "policies",
        "How long a password lives, as a Go duration (`0` = off). A correct but older password \
         answers `403 password_expired` with a `reset_token` (10 minutes) that `/verify-email` \
         accepts with a new password; sessions end when the password expires at the latest. \
         The clock starts at each password write; for a password written before the policy was \
         on, when the policy first sees it (turning it on never expires everyone at once).",
    )
    .default("0")
    .new_variable();
    PASSWORD_EXPIRY_EXEMPT = Var::new(
        "policies",
        "Comma-separated addresses whose passwords never expire (service accounts).",
    )
    .unset("unset (none)")
    .when("`PASSWORD_MAX_AGE` > 0")
    .new_variable();
    AUDIT_ENABLED = Var::new(
        "policies",
        "`true` writes every security event to the `authura_audit` table (served at `GET \
         /admin/audit`), off the request's path through a bounded queue (full: dropped and \
         counted in `/metrics`). Events are logged at INFO under the target `authura::audit` \
         whether or not this is on.",
    )
    .default("false")
    .new_variable();
    AUDIT_RETENTION = Var::new(
        "policies",
        "How long audit events are kept: whole days (`90d`) or a Go duration (`2160h`); `0` = \
         forever. Older ones are deleted hourly.",
    )
    .default("90d")
    .when("`AUDIT_ENABLED=true`")
    .new_variable();
    AUDIT_QUEUE_SIZE = Var::new(
        "policies",
        "How many audit events may wait for the writer; when it is full, new events are dropped \
         (still logged) and counted as `authura_audit_events_total{result=\"dropped\"}`, so a \
         slow database never slows a request.",
    )
    .default("4096")
    .when("`AUDIT_ENABLED=true`")
    .new_variable();
}

/// The audit table's settings (`AUDIT_ENABLED=true`).
#[derive(Debug, Clone, Copy)]
pub struct AuditConfig {
    /// `AUDIT_RETENTION`; `None` = forever.
    pub retention: Option<Duration>,
    /// `AUDIT_QUEUE_SIZE` (at least 1).
    pub queue_size: usize,
}

/// The policies as configured.
#[derive(Debug, Clone)]
pub struct PoliciesConfig {
    /// Lockout, history and expiry.
    pub settings: PolicySettings,
    /// `AUDIT_ENABLED=true`: the table.
    pub audit: Option<AuditConfig>,
}

impl PoliciesConfig {
    /// The variables of the policies that are on (each needs the state store), as
    /// `NAME=value` for messages.
    pub fn stateful(&self) -> Vec<String> {
        let s = &self.settings;
        let mut on = Vec::new();
        if s.lockout_threshold > 0 {
            on.push(format!("LOCKOUT_THRESHOLD={}", s.lockout_threshold));
        }
        if s.password_history > 0 {
            on.push(format!("PASSWORD_HISTORY={}", s.password_history));
        }
        if s.password_max_age.is_some() {
            on.push("PASSWORD_MAX_AGE".to_owned());
        }
        if self.audit.is_some() {
            on.push("AUDIT_ENABLED=true".to_owned());
        }
        on
    }
}

/// The policy variables; a problem for each malformed one.
pub fn read_policies(r: &mut Reader) -> Option<PoliciesConfig> {
    let lockout_threshold = r.number::<u32>(&LOCKOUT_THRESHOLD);
    let lockout_duration = r.duration(&LOCKOUT_DURATION);
    let password_history = r.number::<u32>(&PASSWORD_HISTORY);
    let max_age = r.duration(&PASSWORD_MAX_AGE);
    let mut expiry_exempt = Vec::new();
    for item in r
        .string(&PASSWORD_EXPIRY_EXEMPT)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match Email::parse(item) {
            Ok(email) => expiry_exempt.push(email),
            Err(_) => r.problem(format!(
                "PASSWORD_EXPIRY_EXEMPT: {item:?} is not an email address"
            )),
        }
    }
    let audit = r.bool(&AUDIT_ENABLED);
    let retention = r.days_or_duration(&AUDIT_RETENTION);
    let queue_size = r.number::<usize>(&AUDIT_QUEUE_SIZE);
    if queue_size == 0 {
        r.problem("AUDIT_QUEUE_SIZE must be at least 1".into());
    }
    Some(PoliciesConfig {
        settings: PolicySettings {
            lockout_threshold,
            lockout_duration: Some(lockout_duration?).filter(|d| !d.is_zero()),
            password_history,
            password_max_age: Some(max_age?).filter(|d| !d.is_zero()),
            expiry_exempt,
        },
        audit: audit.then_some(AuditConfig {
            retention: Some(retention?).filter(|d| !d.is_zero()),
            queue_size: queue_size.max(1),
        }),
    })
}
