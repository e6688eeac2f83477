//! `authura user lock|unlock|archive|restore <id>` (SPEC §11): an account's state changed from
//! the command line through the same flow as `POST /admin/users/{id}/…`
//! (`flows::policy::change_account`), as the operator (no admin account; the audit event's
//! detail says `"by": "cli"`). Archiving ends the user's sessions, announced to running
//! instances on PostgreSQL by `NOTIFY`. The audit events reach the table before the command
//! returns.

use std::time::Duration;

use authura_core::UserId;
use authura_core::flows::{AccountOperation, change_account};
use authura_core::sessions::Client;

use super::{Failure, open};
use crate::config::Config;
use crate::routes::admin::account::AccountOut;

/// How long the command waits for its audit events to be written before it exits.
const AUDIT_DRAIN: Duration = Duration::from_secs(10);

/// What to do, to which user.
#[derive(Debug, Clone)]
pub struct AccountArgs {
    /// The user's tenant (required with multi-tenancy on).
    pub tenant: Option<String>,
    /// Print the state as JSON (the API's answer) instead of a sentence.
    pub json: bool,
    /// The user's id.
    pub id: String,
    /// The operation.
    pub operation: AccountOperation,
}

/// Runs the operation on the configured stores; returns what to print.
///
/// # Errors
/// A [`Failure`] with the API's code: `not_found`, `not_supported` (no state store: no feature
/// that keeps account state is on), `tenant_required`, `start` when the stores cannot be opened.
pub async fn run(config: &Config, args: AccountArgs) -> Result<String, Failure> {
    let tenant = super::users::tenant(config, args.tenant.as_deref())?;
    let opened = open(config).await?;
    let ctx = opened.state.ctx();
    let id = UserId::from_subject(&args.id);
    let (user, after) = change_account(
        ctx,
        tenant.as_ref(),
        None,
        &id,
        args.operation,
        Client::default(),
    )
    .await?;
    if !opened.state.audit().drain(AUDIT_DRAIN).await {
        tracing::warn!("some audit events were not written before the command ended");
    }
    let out = AccountOut::new(&user.id, &after, ctx.clock.now());
    if args.json {
        return serde_json::to_string(&out).map_err(|e| Failure {
            code: "internal_error",
            message: e.to_string(),
        });
    }
    let what = match args.operation {
        AccountOperation::Lock => "locked until unlocked",
        AccountOperation::Unlock => "unlocked",
        AccountOperation::Archive => "archived; their sessions ended",
        AccountOperation::Restore => "restored",
    };
    Ok(format!(
        "user {} ({}): {what}",
        user.id,
        user.email.as_str()
    ))
}
