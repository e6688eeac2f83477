//! Signing up and verifying: `POST /signup`, `/verify-email` and `/invite`, and creating a
//! verified user directly.

use serde_json::json;

use crate::error::CoreError;
use crate::flows::{
    Context, SignedIn, authenticate, directory_owns_it, end_sessions, mail, policy,
    redirect_target, signed_in, user_gone,
};
use crate::hash::random_token;
use crate::hook::HookUser;
use crate::mail::{Action, Mail};
use crate::sessions::Client;
use crate::state::SessionMethod;
use crate::state::audit::kind;
use crate::token::{VerifyRequest, fingerprints_match};
use crate::types::{Email, NewUser, Role, Secret, TenantId, User, UserChanges, UserId};

/// `POST /signup`: mails a verification link unless the address exists (same answer either way).
///
/// # Errors
/// `SignupDisabled`, `InvalidRedirectUrl`, backend errors.
pub async fn signup(
    ctx: &Context,
    tenant: Option<&TenantId>,
    email: &Email,
    redirect_url: Option<&str>,
) -> Result<Option<Mail>, CoreError> {
    directory_owns_it(ctx)?;
    if ctx.settings.signup_disabled {
        return Err(CoreError::SignupDisabled);
    }
    let redirect = redirect_target(ctx, redirect_url)?;
    if ctx.store.find_by_email(tenant, email).await?.is_some() {
        return Ok(None);
    }
    let req = VerifyRequest {
        action: Action::VerifyEmail,
        email,
        tenant,
        user: None,
        role: None,
    };
    mail(ctx, &req, &redirect).map(Some)
}

/// `POST /verify-email`: completes the action a mail link names.
///
/// # Errors
/// `InvalidVerificationToken`, `TokenUsed`, `WeakPassword`, `EmailTaken`, `InvalidBody` (reset
/// without a password), backend and hook errors.
pub async fn verify_email(
    ctx: &Context,
    tenant: Option<&TenantId>,
    token: &str,
    password: Option<Secret>,
) -> Result<SignedIn, CoreError> {
    verify_email_from(ctx, tenant, token, password, Client::default()).await
}

/// [`verify_email`] from a client the transport describes (recorded on the session it opens
/// when sessions are on).
///
/// # Errors
/// As [`verify_email`].
pub async fn verify_email_from(
    ctx: &Context,
    tenant: Option<&TenantId>,
    token: &str,
    password: Option<Secret>,
    client: Client<'_>,
) -> Result<SignedIn, CoreError> {
    let now = ctx.clock.now();
    let claims = ctx.tokens.verify_verify(token, now)?;
    if claims.tid.as_deref() != tenant.map(TenantId::as_str) {
        return Err(CoreError::InvalidVerificationToken);
    }
    let action = Action::parse(&claims.action)
        .filter(|a| *a != Action::AccountLocked)
        .ok_or(CoreError::InvalidVerificationToken)?;
    let email = Email::parse(&claims.email).map_err(|_| CoreError::InvalidVerificationToken)?;
    let password = password.filter(|p| !p.is_empty());

    let user = match action {
        Action::VerifyEmail | Action::Invite => {
            let role = match action {
                Action::Invite => claims
                    .role
                    .as_deref()
                    .and_then(|r| Role::parse(r).ok())
                    .ok_or(CoreError::InvalidVerificationToken)?,
                _ => ctx.settings.default_role.clone(),
            };
            let existing = ctx.store.find_by_email(tenant, &email).await?;
            if existing.is_some()
                || !fingerprints_match(&claims.state, &ctx.tokens.state_fingerprint(None))
            {
                return Err(CoreError::TokenUsed);
            }
            let password = match password {
                Some(p) => {
                    ctx.settings.policy.check(p.expose())?;
                    p
                }
                // No password: a random one the user replaces through a reset.
                None => Secret::new(random_token(32)),
            };
            let hook_user = HookUser {
                id: None,
                email: email.clone(),
                role: role.clone(),
                tenant: tenant.cloned(),
                verified_at: Some(now),
            };
            ctx.hook.create_or_update_user(&hook_user).await?;
            let password_hash = ctx.hasher.hash(password).await?;
            let user = ctx
                .store
                .create(NewUser {
                    email,
                    role,
                    tenant: tenant.cloned(),
                    password_hash,
                    verified_at: Some(now),
                })
                .await?;
            policy::password_created(ctx, &user).await?;
            let by = if action == Action::Invite {
                "invite"
            } else {
                "signup"
            };
            policy::audit_user(
                ctx,
                kind::USER_CREATED,
                &user,
                None,
                client,
                json!({"by": by, "email": user.email.as_str(), "role": user.role.as_str()}),
            );
            user
        }
        Action::AccountLocked => return Err(CoreError::InvalidVerificationToken),
        Action::ResetPassword | Action::ChangeEmail => {
            let id = claims
                .sub
                .as_deref()
                .map(UserId::from_subject)
                .ok_or(CoreError::InvalidVerificationToken)?;
            let current = ctx
                .store
                .find_by_id(tenant, &id)
                .await?
                .ok_or(CoreError::TokenUsed)?;
            if !fingerprints_match(&claims.state, &ctx.tokens.state_fingerprint(Some(&current))) {
                return Err(CoreError::TokenUsed);
            }
            // An archived user cannot reset or change their address (SPEC §11): the link no
            // longer holds.
            if policy::state_of(ctx, &current).await?.is_archived() {
                return Err(CoreError::TokenUsed);
            }
            let mut changes = UserChanges::default();
            if action == Action::ResetPassword {
                let password = password.ok_or_else(|| {
                    CoreError::InvalidBody("password is required to reset a password".into())
                })?;
                ctx.settings.policy.check(password.expose())?;
                policy::check_password_history(ctx, &current, &password).await?;
                changes.password_hash = Some(ctx.hasher.hash(password).await?);
                // Following the link proves the address: an unverified account becomes verified.
                if current.verified_at.is_none() {
                    changes.verified_at = Some(now);
                }
            } else {
                if let Some(holder) = ctx.store.find_by_email(tenant, &email).await? {
                    // The user itself holds the address: another use of this link got there
                    // first.
                    return Err(if holder.id == current.id {
                        CoreError::TokenUsed
                    } else {
                        CoreError::EmailTaken
                    });
                }
                changes.email = Some(email);
                changes.verified_at = Some(now);
            }
            let mut after = current.clone();
            changes.apply_to(&mut after);
            ctx.hook
                .create_or_update_user(&HookUser::from(&after))
                .await?;
            // Written only if the user is still as the token was checked against: of
            // concurrent uses of one link, exactly one gets here first; the others find the
            // password or email changed (`Changed`, answered `token_used`).
            let user = ctx
                .store
                .update_if(tenant, &current, changes)
                .await
                .map_err(user_gone)?;
            if action == Action::ResetPassword {
                // A completed reset lifts a lock (SPEC §11).
                policy::password_written(ctx, &current, true).await?;
                policy::audit_user(ctx, kind::PASSWORD_RESET, &user, None, client, json!({}));
            } else {
                policy::audit_user(
                    ctx,
                    kind::EMAIL_CHANGED,
                    &user,
                    None,
                    client,
                    json!({"from": current.email.as_str(), "to": user.email.as_str()}),
                );
            }
            // A reset password or a changed address ends every session the user had (SPEC §8);
            // following the link then opens a new one.
            end_sessions(ctx, &user).await?;
            user
        }
    };
    signed_in(ctx, user, None, SessionMethod::VerifyEmail, client).await
}

/// `POST /invite` (admins only).
///
/// # Errors
/// `InvalidToken`, `Forbidden`, `InvalidRedirectUrl`, `EmailTaken`, backend errors.
pub async fn invite(
    ctx: &Context,
    tenant: Option<&TenantId>,
    bearer: &str,
    email: &Email,
    role: &Role,
    redirect_url: Option<&str>,
) -> Result<Mail, CoreError> {
    directory_owns_it(ctx)?;
    let auth = authenticate(ctx, tenant, bearer).await?;
    if auth.user.role != ctx.settings.admin_role {
        return Err(CoreError::Forbidden);
    }
    let redirect = redirect_target(ctx, redirect_url)?;
    if ctx.store.find_by_email(tenant, email).await?.is_some() {
        return Err(CoreError::EmailTaken);
    }
    let req = VerifyRequest {
        action: Action::Invite,
        email,
        tenant,
        user: None,
        role: Some(role),
    };
    let mail = mail(ctx, &req, &redirect)?;
    policy::audit(
        ctx,
        kind::USER_INVITED,
        tenant,
        None,
        Some(&auth.user.id),
        Client::default(),
        json!({"email": email.as_str(), "role": role.as_str()}),
    );
    Ok(mail)
}

/// Creates a user directly (the initial admin, `authura` embedders): verified, policy checked.
///
/// # Errors
/// `WeakPassword`, `EmailTaken`, backend errors.
pub async fn create_verified_user(
    ctx: &Context,
    tenant: Option<&TenantId>,
    email: &Email,
    password: Secret,
    role: &Role,
) -> Result<User, CoreError> {
    ctx.settings.policy.check(password.expose())?;
    let password_hash = ctx.hasher.hash(password).await?;
    let new = NewUser {
        email: email.clone(),
        role: role.clone(),
        tenant: tenant.cloned(),
        password_hash,
        verified_at: Some(ctx.clock.now()),
    };
    let user = ctx.store.create(new).await?;
    policy::password_created(ctx, &user).await?;
    policy::audit_user(
        ctx,
        kind::USER_CREATED,
        &user,
        None,
        Client::default(),
        json!({"by": "direct", "email": user.email.as_str(), "role": user.role.as_str()}),
    );
    Ok(user)
}
