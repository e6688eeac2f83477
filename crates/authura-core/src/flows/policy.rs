//! The account policies of SPEC §11 as the flows apply them: lockout, password history,
//! password expiry and archive over the state store's [`AccountStore`], the audit events
//! through the [`AuditSink`], and the admin's account operations (lock, unlock, archive,
//! restore).
//!
//! Every policy is off by default; with all off and no state store, nothing here reads or
//! writes anything but the log.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::error::CoreError;
use crate::flows::{Context, mail, redirect_target};
use crate::mail::{Action, Mail, NoOutbox, Outbox};
use crate::sessions::Client;
use crate::state::audit::kind;
use crate::state::{
    AccountChange, AccountState, AccountStore, AuditEvent, AuditSink, LogAudit, PermitStore,
};
use crate::token::VerifyRequest;
use crate::types::{Email, Secret, TenantId, User, UserId};

/// How long the `password_expired` answer's reset token lives (SPEC §11).
pub const EXPIRED_RESET_TTL: Duration = Duration::from_secs(10 * 60);

/// The policies as configured (SPEC §11).
#[derive(Debug, Clone, Default)]
pub struct PolicySettings {
    /// `LOCKOUT_THRESHOLD`: consecutive failed logins that lock an account (0 = off).
    pub lockout_threshold: u32,
    /// `LOCKOUT_DURATION`: how long a lock lasts; `None` (0) = until an admin unlocks.
    pub lockout_duration: Option<Duration>,
    /// `PASSWORD_HISTORY`: how many of the last passwords a new one may not be (0 = off).
    pub password_history: u32,
    /// `PASSWORD_MAX_AGE`: how long a password lives (`None` = off).
    pub password_max_age: Option<Duration>,
    /// `PASSWORD_EXPIRY_EXEMPT`: addresses whose passwords never expire.
    pub expiry_exempt: Vec<Email>,
}

/// The policies, where their state lives, and where events and notices go.
#[derive(Debug, Clone)]
pub struct Policies {
    /// The account state and history; `None` when no state store is open (then no policy that
    /// needs one can be on, and the admin's account operations answer `Unsupported`).
    pub accounts: Option<Arc<dyn AccountStore>>,
    pub settings: PolicySettings,
    /// Where audit events go (the log always; the table when `AUDIT_ENABLED`).
    pub audit: Arc<dyn AuditSink>,
    /// Where the `account-locked` notice goes.
    pub outbox: Arc<dyn Outbox>,
    /// `HASURA_ROLES_FROM_GROUPS=true` (SPEC §8a): where a user's role groups are read when
    /// tokens are issued, so the claims extensions see their names; `None` otherwise.
    pub token_groups: Option<Arc<dyn PermitStore>>,
}

impl Policies {
    /// Every policy off, no state store, events to the log only, notices dropped.
    pub fn off() -> Policies {
        Policies {
            accounts: None,
            settings: PolicySettings::default(),
            audit: Arc::new(LogAudit),
            outbox: Arc::new(NoOutbox),
            token_groups: None,
        }
    }
}

/// Records an audit event of `kind` about `user` (in `tenant`), done by `actor` (an admin, when
/// not the user) from `client`.
pub(crate) fn audit(
    ctx: &Context,
    kind: &str,
    tenant: Option<&TenantId>,
    user: Option<&UserId>,
    actor: Option<&UserId>,
    client: Client<'_>,
    detail: Value,
) {
    let mut event = AuditEvent::new(kind, ctx.clock.now(), tenant);
    event.user_id = user.cloned();
    event.actor_id = actor.cloned();
    event.ip = client.ip.map(str::to_owned);
    event.user_agent = client.user_agent.map(str::to_owned);
    event.detail = detail;
    ctx.policies.audit.record(event);
}

/// [`audit`] about a user record.
pub(crate) fn audit_user(
    ctx: &Context,
    kind: &str,
    user: &User,
    actor: Option<&UserId>,
    client: Client<'_>,
    detail: Value,
) {
    audit(
        ctx,
        kind,
        user.tenant.as_ref(),
        Some(&user.id),
        actor,
        client,
        detail,
    );
}

/// The account's state; the default when no state store is open.
///
/// # Errors
/// Store errors.
pub(crate) async fn state_of(ctx: &Context, user: &User) -> Result<AccountState, CoreError> {
    match &ctx.policies.accounts {
        Some(accounts) => Ok(accounts
            .account_state(user.tenant.as_ref(), &user.id)
            .await?),
        None => Ok(AccountState::default()),
    }
}

/// Applies `change` to the account; `None` when no state store is open.
///
/// # Errors
/// Store errors.
pub(crate) async fn change(
    ctx: &Context,
    user: &User,
    change: &AccountChange,
) -> Result<Option<(AccountState, AccountState)>, CoreError> {
    match &ctx.policies.accounts {
        Some(accounts) => Ok(Some(
            accounts
                .update_account(user.tenant.as_ref(), &user.id, change)
                .await?,
        )),
        None => Ok(None),
    }
}

/// Whether `new` may become `user`'s password under `PASSWORD_HISTORY` = N: it may not be
/// the current password nor one of the N − 1 before it (so N counts the current one, and
/// N = 1 only refuses keeping the same password). Each comparison is a full hash check.
/// Every flow that sets a password calls it after the policy check, before hashing; the admin
/// flows call it too.
///
/// # Errors
/// `PasswordReused`; store and hashing errors.
pub async fn check_password_history(
    ctx: &Context,
    user: &User,
    new: &Secret,
) -> Result<(), CoreError> {
    let n = ctx.policies.settings.password_history;
    let Some(accounts) = ctx.policies.accounts.as_ref().filter(|_| n > 0) else {
        return Ok(());
    };
    let mut hashes = vec![user.password_hash.clone()];
    hashes.extend(
        accounts
            .password_history(user.tenant.as_ref(), &user.id, n - 1)
            .await?,
    );
    for hash in hashes {
        if ctx.hasher.verify(new.clone(), Some(hash)).await?.valid {
            return Err(CoreError::PasswordReused);
        }
    }
    Ok(())
}

/// After a password write: the replaced hash joins the history (when `PASSWORD_HISTORY` is
/// on), the expiry clock restarts, and a completed reset (`unlock`) lifts a lock. Every flow
/// that sets a password calls it with the user as they were before the write.
///
/// # Errors
/// Store errors.
pub async fn password_written(ctx: &Context, before: &User, unlock: bool) -> Result<(), CoreError> {
    let Some(accounts) = &ctx.policies.accounts else {
        return Ok(());
    };
    let now = ctx.clock.now();
    let n = ctx.policies.settings.password_history;
    if n > 1 {
        accounts
            .push_password_history(
                before.tenant.as_ref(),
                &before.id,
                &before.password_hash,
                now,
                n - 1,
            )
            .await?;
    }
    let (was, _) = accounts
        .update_account(
            before.tenant.as_ref(),
            &before.id,
            &AccountChange::PasswordChanged { at: now, unlock },
        )
        .await?;
    if unlock && was.is_locked(now) {
        audit_user(
            ctx,
            kind::ACCOUNT_UNLOCKED,
            before,
            None,
            Client::default(),
            json!({"by": "password_reset"}),
        );
    }
    Ok(())
}

/// A new user's password: the expiry clock starts now.
///
/// # Errors
/// Store errors.
pub(crate) async fn password_created(ctx: &Context, user: &User) -> Result<(), CoreError> {
    let at = ctx.clock.now();
    change(
        ctx,
        user,
        &AccountChange::PasswordChanged { at, unlock: false },
    )
    .await
    .map(drop)
}

/// When `user`'s password expires under `PASSWORD_MAX_AGE`; `None` when expiry is off or the
/// address is exempt. A password the policy has not seen yet (written before it was on) starts
/// its clock now, so turning it on never expires everyone at once.
///
/// # Errors
/// Store errors.
pub(crate) async fn password_expires_at(
    ctx: &Context,
    user: &User,
    state: &AccountState,
) -> Result<Option<DateTime<Utc>>, CoreError> {
    let settings = &ctx.policies.settings;
    let Some(max_age) = settings.password_max_age else {
        return Ok(None);
    };
    if settings.expiry_exempt.contains(&user.email) {
        return Ok(None);
    }
    let changed_at = match state.password_changed_at {
        Some(at) => at,
        None => {
            let at = ctx.clock.now();
            match change(ctx, user, &AccountChange::FirstSeen { at }).await? {
                Some((_, after)) => after.password_changed_at.unwrap_or(at),
                None => at,
            }
        }
    };
    let max_age = chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
    Ok(Some(
        changed_at
            .checked_add_signed(max_age)
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
    ))
}

/// The `password_expired` refusal: a `reset-password` verification token of
/// [`EXPIRED_RESET_TTL`] for `user`, which `/verify-email` accepts with a new password.
///
/// # Errors
/// Signing errors.
pub(crate) fn expired(ctx: &Context, user: &User) -> Result<CoreError, CoreError> {
    let req = VerifyRequest {
        action: Action::ResetPassword,
        email: &user.email,
        tenant: user.tenant.as_ref(),
        user: Some(user),
        role: None,
    };
    let token = ctx
        .tokens
        .issue_verify_for(&req, ctx.clock.now(), EXPIRED_RESET_TTL)?;
    Ok(CoreError::PasswordExpired {
        reset_token: Secret::new(token),
    })
}

/// A wrong password on an existing account: counted in the state store; reaching
/// `LOCKOUT_THRESHOLD` locks the account, audits it and mails the owner.
///
/// # Errors
/// Store errors.
pub(crate) async fn login_failed(
    ctx: &Context,
    user: &User,
    client: Client<'_>,
) -> Result<(), CoreError> {
    let settings = &ctx.policies.settings;
    let now = ctx.clock.now();
    let lock_until = settings.lockout_duration.map(|d| {
        now.checked_add_signed(chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    });
    let failed = AccountChange::LoginFailed {
        at: now,
        threshold: settings.lockout_threshold,
        lock_until,
    };
    if let Some((before, after)) = change(ctx, user, &failed).await?
        && !before.is_locked(now)
        && after.is_locked(now)
    {
        audit_user(
            ctx,
            kind::ACCOUNT_LOCKED,
            user,
            None,
            client,
            json!({"by": "failed_logins", "until": after.locked_until}),
        );
        match locked_mail(ctx, user) {
            Ok(mail) => ctx.policies.outbox.post(mail),
            Err(e) => tracing::warn!(error = %e, "account-locked mail not made"),
        }
    }
    Ok(())
}

/// The `account-locked` notice: its link is a password reset's (completing it lifts the lock).
fn locked_mail(ctx: &Context, user: &User) -> Result<Mail, CoreError> {
    let redirect = redirect_target(ctx, None)?;
    let req = VerifyRequest {
        action: Action::ResetPassword,
        email: &user.email,
        tenant: user.tenant.as_ref(),
        user: Some(user),
        role: None,
    };
    let mut mail = mail(ctx, &req, &redirect)?;
    mail.action = Action::AccountLocked;
    Ok(mail)
}

/// An admin's operation on an account (SPEC §11's `/admin/users/{id}/…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountOperation {
    /// Locked until unlocked.
    Lock,
    /// Lock and failures cleared.
    Unlock,
    /// Cannot sign in, refresh, reset or be invited; sessions end.
    Archive,
    /// Back as it was.
    Restore,
}

/// The account of `id` in `tenant`, with its state (the admin API and CLI's view).
///
/// # Errors
/// `NotFound`; `Unsupported` without a state store; store errors.
pub async fn account(
    ctx: &Context,
    tenant: Option<&TenantId>,
    id: &UserId,
) -> Result<(User, AccountState), CoreError> {
    let user = ctx
        .store
        .find_by_id(tenant, id)
        .await?
        .ok_or(CoreError::NotFound)?;
    let Some(accounts) = &ctx.policies.accounts else {
        return Err(no_state_store());
    };
    let state = accounts.account_state(tenant, id).await?;
    Ok((user, state))
}

fn no_state_store() -> CoreError {
    CoreError::Unsupported(
        "account state without the state store (turn on a feature that keeps it, such as \
         LOCKOUT_THRESHOLD or AUDIT_ENABLED)"
            .into(),
    )
}

/// Applies an admin's `operation` to the account `id` in `tenant`, as `admin` (whose own account
/// may not be locked or archived; `None`: the operator at the command line) from `client`;
/// returns the user and the account's new state. Archiving and locking end the user's
/// sessions. Each operation is audited (`account.locked`, `account.unlocked`, `user.archived`,
/// `user.restored`) with the admin as actor.
///
/// # Errors
/// `SelfModification`, `NotFound`, `Unsupported` without a state store; store errors.
pub async fn change_account(
    ctx: &Context,
    tenant: Option<&TenantId>,
    admin: Option<&User>,
    id: &UserId,
    operation: AccountOperation,
    client: Client<'_>,
) -> Result<(User, AccountState), CoreError> {
    let own = admin.is_some_and(|a| a.id == *id && a.tenant.as_ref() == tenant);
    if own
        && matches!(
            operation,
            AccountOperation::Lock | AccountOperation::Archive
        )
    {
        return Err(CoreError::SelfModification);
    }
    let (user, _) = account(ctx, tenant, id).await?;
    let now = ctx.clock.now();
    let (change_, event) = match operation {
        AccountOperation::Lock => (
            AccountChange::Lock {
                at: now,
                until: None,
            },
            kind::ACCOUNT_LOCKED,
        ),
        AccountOperation::Unlock => (AccountChange::Unlock, kind::ACCOUNT_UNLOCKED),
        AccountOperation::Archive => (AccountChange::Archive { at: now }, kind::USER_ARCHIVED),
        AccountOperation::Restore => (AccountChange::Restore, kind::USER_RESTORED),
    };
    let (_, after) = change(ctx, &user, &change_)
        .await?
        .ok_or_else(no_state_store)?;
    // SPEC §8: archive and lock end the user's sessions (a lock would otherwise leave them
    // signed in wherever they already were).
    if matches!(
        operation,
        AccountOperation::Archive | AccountOperation::Lock
    ) {
        let actor = crate::flows::admin::Actor { admin, client };
        crate::flows::admin::end_all(ctx, &user, actor).await?;
    }
    audit_user(
        ctx,
        event,
        &user,
        admin.map(|a| &a.id),
        client,
        json!({"by": if admin.is_some() { "admin" } else { "cli" }}),
    );
    Ok((user, after))
}
