//! `authura permit show|set <user_id>` (SPEC §11, §8a): a user's permit read or replaced from the
//! command line through the same code as `/permits/{user_id}` ([`crate::permits`]), as the
//! operator (the audit event's detail says `"by": "cli"`). A change is announced to running
//! instances on PostgreSQL by `NOTIFY`, so the user's live sessions see it at `/check` within a
//! second, none of them ending.

use std::time::Duration;

use authura_core::{TenantId, UserId};

use super::group::to_json;
use super::{Failure, open};
use crate::config::Config;
use crate::permits::{self, Actor, GroupSel, PermitOut, permit_out};

/// How long the command waits for its audit events to be written before it exits.
const AUDIT_DRAIN: Duration = Duration::from_secs(10);

/// What to do, to whose permit.
#[derive(Debug, Clone)]
pub struct PermitArgs {
    /// The user's tenant (required with multi-tenancy on).
    pub tenant: Option<String>,
    /// Print JSON, as `/permits/{user_id}` answers.
    pub json: bool,
    /// The user's id.
    pub id: String,
    /// `None`: show; `Some`: set to these groups (ids or exact names; empty clears it).
    pub set: Option<Vec<String>>,
}

/// The tenant given with `--tenant`, as the configuration requires it.
fn tenant(config: &Config, given: Option<&String>) -> Result<Option<TenantId>, Failure> {
    match (given, config.multi_tenant) {
        (Some(t), true) => Ok(Some(TenantId::parse(t).map_err(|_| Failure {
            code: "tenant_required",
            message: format!("{t:?} is not a tenant id"),
        })?)),
        (None, true) => Err(Failure {
            code: "tenant_required",
            message: "multi-tenancy is on: name the tenant with --tenant".into(),
        }),
        (Some(_), false) => Err(Failure {
            code: "invalid_body",
            message: "--tenant is only for MULTI_TENANT_ENABLED=true".into(),
        }),
        (None, false) => Ok(None),
    }
}

/// Groups given on the command line: all digits is an id, anything else an exact name.
fn group_args(given: &[String]) -> Vec<GroupSel> {
    given
        .iter()
        .map(|g| match g.parse::<i64>() {
            Ok(n) if g.bytes().all(|b| b.is_ascii_digit()) => GroupSel::Id(n),
            _ => GroupSel::Name(g.clone()),
        })
        .collect()
}

/// Runs the command on the configured stores; returns what to print.
///
/// # Errors
/// A [`Failure`] with the API's code: `not_found` (user or group), `not_supported` (no state
/// store), `tenant_required`, `start` when the stores cannot be opened.
pub async fn run(config: &Config, args: PermitArgs) -> Result<String, Failure> {
    let tenant = tenant(config, args.tenant.as_ref())?;
    let opened = open(config).await?;
    let state = &opened.state;
    let id = UserId::from_subject(&args.id);
    let (user, access) = match &args.set {
        None => permits::show_permit(state, tenant.as_ref(), &id).await?,
        Some(groups) => {
            let done = permits::set_permit(
                state,
                tenant.as_ref(),
                &id,
                &group_args(groups),
                Actor::default(),
            )
            .await?;
            if !state.audit().drain(AUDIT_DRAIN).await {
                tracing::warn!("some audit events were not written before the command ended");
            }
            done
        }
    };
    let out = permit_out(state, &user.id, &access);
    if args.json {
        return to_json(&out);
    }
    Ok(describe(&out, &user.id, user.email.as_str()))
}

/// A permit in a few lines.
fn describe(out: &PermitOut, id: &UserId, email: &str) -> String {
    let groups = if out.groups.is_empty() {
        "none".to_owned()
    } else {
        out.groups
            .iter()
            .map(|g| format!("{} {:?}", g.id, g.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let permissions = if out.permissions.is_empty() {
        "none".to_owned()
    } else {
        out.permissions
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "user {id} ({email})\ngroups: {groups}\npermissions: {permissions}\npermit: {}",
        out.permit
    )
}
