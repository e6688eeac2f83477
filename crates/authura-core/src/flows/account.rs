//! Changes to an account: `POST /change-password`, `/change-email` and `/reset-password`.

use serde_json::json;

use crate::error::CoreError;
use crate::flows::{
    Context, authenticate, directory_owns_it, end_sessions, mail, policy, redirect_target,
    user_gone,
};
use crate::hook::HookUser;
use crate::mail::{Action, Mail};
use crate::sessions::Client;
use crate::state::audit::kind;
use crate::store::StoreError;
use crate::token::VerifyRequest;
use crate::types::{Email, Secret, TenantId, UserChanges};

/// `POST /change-password`: revokes every earlier refresh token (their fingerprint changes)
/// and, with sessions on, ends every session of the user (SPEC §8).
///
/// # Errors
/// `InvalidToken`, `InvalidCredentials` (wrong old password), `WeakPassword`, backend errors.
pub async fn change_password(
    ctx: &Context,
    tenant: Option<&TenantId>,
    bearer: &str,
    old_password: Secret,
    new_password: Secret,
) -> Result<(), CoreError> {
    change_password_from(
        ctx,
        tenant,
        bearer,
        old_password,
        new_password,
        Client::default(),
    )
    .await
}

/// [`change_password`] from a client the transport describes (for the audit log). The new
/// password may not be one of the last `PASSWORD_HISTORY` (SPEC §11).
///
/// # Errors
/// As [`change_password`], and `PasswordReused`.
pub async fn change_password_from(
    ctx: &Context,
    tenant: Option<&TenantId>,
    bearer: &str,
    old_password: Secret,
    new_password: Secret,
    client: Client<'_>,
) -> Result<(), CoreError> {
    directory_owns_it(ctx)?;
    let auth = authenticate(ctx, tenant, bearer).await?;
    let check = ctx
        .hasher
        .verify(old_password, Some(auth.user.password_hash.clone()))
        .await?;
    if !check.valid {
        return Err(CoreError::InvalidCredentials);
    }
    ctx.settings.policy.check(new_password.expose())?;
    policy::check_password_history(ctx, &auth.user, &new_password).await?;
    ctx.hook
        .create_or_update_user(&HookUser::from(&auth.user))
        .await?;
    let hash = ctx.hasher.hash(new_password).await?;
    let changes = UserChanges {
        password_hash: Some(hash),
        ..UserChanges::default()
    };
    // Written only if the password is still the one `old_password` was checked against: of
    // concurrent changes with the same old password, exactly one wins; for the others the old
    // password is no longer the password (401 `invalid_credentials`).
    let user = ctx
        .store
        .update_if(tenant, &auth.user, changes)
        .await
        .map_err(|e| match e {
            StoreError::Changed => CoreError::InvalidCredentials,
            e => user_gone(e),
        })?;
    policy::password_written(ctx, &auth.user, false).await?;
    policy::audit_user(
        ctx,
        kind::PASSWORD_CHANGED,
        &user,
        None,
        client,
        json!({"by": "user"}),
    );
    end_sessions(ctx, &user).await
}

/// `POST /change-email`: mails a link to the new address, unless it is in use (same answer).
///
/// # Errors
/// `InvalidToken`, `InvalidRedirectUrl`, backend errors.
pub async fn change_email(
    ctx: &Context,
    tenant: Option<&TenantId>,
    bearer: &str,
    new_email: &Email,
    redirect_url: Option<&str>,
) -> Result<Option<Mail>, CoreError> {
    directory_owns_it(ctx)?;
    let auth = authenticate(ctx, tenant, bearer).await?;
    let redirect = redirect_target(ctx, redirect_url)?;
    if ctx.store.find_by_email(tenant, new_email).await?.is_some() {
        return Ok(None);
    }
    let req = VerifyRequest {
        action: Action::ChangeEmail,
        email: new_email,
        tenant,
        user: Some(&auth.user),
        role: None,
    };
    mail(ctx, &req, &redirect).map(Some)
}

/// `POST /reset-password`: mails a link if the user exists (same answer either way).
///
/// # Errors
/// `InvalidRedirectUrl`, backend errors.
pub async fn reset_password(
    ctx: &Context,
    tenant: Option<&TenantId>,
    email: &Email,
    redirect_url: Option<&str>,
) -> Result<Option<Mail>, CoreError> {
    directory_owns_it(ctx)?;
    let redirect = redirect_target(ctx, redirect_url)?;
    let Some(user) = ctx.store.find_by_email(tenant, email).await? else {
        return Ok(None);
    };
    // An archived user cannot reset (SPEC §11): the same answer, no mail.
    if policy::state_of(ctx, &user).await?.is_archived() {
        return Ok(None);
    }
    let req = VerifyRequest {
        action: Action::ResetPassword,
        email: &user.email,
        tenant,
        user: Some(&user),
        role: None,
    };
    mail(ctx, &req, &redirect).map(Some)
}
