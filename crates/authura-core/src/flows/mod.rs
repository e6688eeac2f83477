//! The auth flows of SPEC §3 as plain async functions over the [`Context`]'s traits.
//!
//! Each returns what the transport answers with and, for flows that send mail, the [`Mail`] to
//! send *after* answering, so sending can never change or delay the response (no enumeration).

use std::sync::Arc;

use url::Url;

use crate::clock::Clock;
use crate::error::CoreError;
use crate::hash::{PasswordHasher, random_token};
use crate::hook::{Hook, HookData, HookUser};
use crate::mail::{Action, Mail};
use crate::policy::PasswordPolicy;
use crate::redirect::{RedirectPolicy, mail_link};
use crate::store::UserStore;
use crate::token::{AccessToken, TokenPair, Tokens, VerifyRequest, fingerprints_match};
use crate::types::{Email, NewUser, Role, Secret, TenantId, User, UserChanges, UserId};

/// Flow settings from configuration.
#[derive(Debug, Clone)]
pub struct FlowSettings {
    pub admin_role: Role,
    pub default_role: Role,
    pub signup_disabled: bool,
    pub impersonation_enabled: bool,
    pub policy: PasswordPolicy,
    /// Where mail links point when a request names no `redirect_url`.
    pub verify_redirect_url: Url,
    pub redirects: RedirectPolicy,
}

/// Everything a flow needs.
#[derive(Debug, Clone)]
pub struct Context {
    pub store: Arc<dyn UserStore>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub hook: Arc<dyn Hook>,
    pub tokens: Tokens,
    pub clock: Arc<dyn Clock>,
    pub settings: FlowSettings,
}

impl std::fmt::Debug for dyn UserStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserStore")
    }
}

/// A user as answered, with what a hook added.
#[derive(Clone, Debug)]
pub struct UserView {
    pub user: User,
    pub hook_data: Option<HookData>,
}

/// A user with fresh tokens.
#[derive(Clone, Debug)]
pub struct SignedIn {
    pub user: UserView,
    pub tokens: TokenPair,
    /// The admin acting as `user` (impersonation), also in the access token's `act` claim.
    pub actor: Option<UserId>,
}

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
    let now = ctx.clock.now();
    let claims = ctx.tokens.verify_verify(token, now)?;
    if claims.tid.as_deref() != tenant.map(TenantId::as_str) {
        return Err(CoreError::InvalidVerificationToken);
    }
    let action = Action::parse(&claims.action).ok_or(CoreError::InvalidVerificationToken)?;
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
            ctx.store
                .create(NewUser {
                    email,
                    role,
                    tenant: tenant.cloned(),
                    password_hash,
                    verified_at: Some(now),
                })
                .await?
        }
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
            let mut changes = UserChanges::default();
            if action == Action::ResetPassword {
                let password = password.ok_or_else(|| {
                    CoreError::InvalidBody("password is required to reset a password".into())
                })?;
                ctx.settings.policy.check(password.expose())?;
                changes.password_hash = Some(ctx.hasher.hash(password).await?);
                // Following the link proves the address: an unverified account becomes verified.
                if current.verified_at.is_none() {
                    changes.verified_at = Some(now);
                }
            } else {
                if ctx.store.find_by_email(tenant, &email).await?.is_some() {
                    return Err(CoreError::EmailTaken);
                }
                changes.email = Some(email);
                changes.verified_at = Some(now);
            }
            let mut after = current.clone();
            changes.apply_to(&mut after);
            ctx.hook
                .create_or_update_user(&HookUser::from(&after))
                .await?;
            ctx.store.update(tenant, &current.id, changes).await?
        }
    };
    signed_in(ctx, user, None).await
}

/// `POST /token` with a password.
///
/// # Errors
/// `InvalidCredentials` (unknown email or wrong password alike), `EmailNotVerified` after a
/// correct password, `Overloaded`, backend and hook errors.
pub async fn login(
    ctx: &Context,
    tenant: Option<&TenantId>,
    email: &Email,
    password: Secret,
) -> Result<SignedIn, CoreError> {
    let user = ctx.store.find_by_email(tenant, email).await?;
    // An unknown user is checked against a dummy hash: the same work, the same answer.
    let check = ctx
        .hasher
        .verify(
            password.clone(),
            user.as_ref().map(|u| u.password_hash.clone()),
        )
        .await?;
    let user = match user {
        Some(user) if check.valid => user,
        _ => return Err(CoreError::InvalidCredentials),
    };
    if user.verified_at.is_none() {
        return Err(CoreError::EmailNotVerified);
    }
    // A legacy or weaker hash becomes Argon2id. That is a write, so the hook hears of it first,
    // as for any write; its refusal keeps the old hash. No failure here fails the login.
    let user = if check.needs_rehash
        && ctx
            .hook
            .create_or_update_user(&HookUser::from(&user))
            .await
            .is_ok()
        && let Ok(hash) = ctx.hasher.hash(password).await
    {
        let changes = UserChanges {
            password_hash: Some(hash),
            ..UserChanges::default()
        };
        ctx.store
            .update(tenant, &user.id, changes)
            .await
            .unwrap_or(user)
    } else {
        user
    };
    signed_in(ctx, user, None).await
}

/// `POST /token` with an empty password and an admin's Bearer token (impersonation).
///
/// # Errors
/// `Forbidden` when impersonation is off or the bearer is not an admin; `InvalidToken`;
/// `InvalidCredentials` when the target does not exist.
pub async fn impersonate(
    ctx: &Context,
    tenant: Option<&TenantId>,
    bearer: &str,
    email: &Email,
) -> Result<SignedIn, CoreError> {
    let admin = authenticate(ctx, tenant, bearer).await?;
    if !ctx.settings.impersonation_enabled || admin.user.role != ctx.settings.admin_role {
        return Err(CoreError::Forbidden);
    }
    let target = ctx
        .store
        .find_by_email(tenant, email)
        .await?
        .ok_or(CoreError::InvalidCredentials)?;
    signed_in(ctx, target, Some(&admin.user.id)).await
}

/// `POST /refresh`: a new pair, if the user still exists and the password is unchanged.
///
/// # Errors
/// `InvalidToken`, backend and hook errors.
pub async fn refresh(
    ctx: &Context,
    tenant: Option<&TenantId>,
    refresh_token: &str,
) -> Result<SignedIn, CoreError> {
    let claims = ctx.tokens.verify_refresh(refresh_token, ctx.clock.now())?;
    if claims.tid.as_deref() != tenant.map(TenantId::as_str) {
        return Err(CoreError::InvalidToken);
    }
    let user = ctx
        .store
        .find_by_id(tenant, &UserId::from_subject(&claims.sub))
        .await?
        .ok_or(CoreError::InvalidToken)?;
    let fingerprint = ctx.tokens.password_fingerprint(&user.password_hash);
    if !fingerprints_match(&claims.pwd, &fingerprint) {
        return Err(CoreError::InvalidToken);
    }
    // The new refresh token carries the same fingerprint (the hook below sees the user but
    // cannot change its password hash).
    signed_in_with(ctx, user, None, Some(fingerprint)).await
}

/// An authenticated request: the bearer's claims and the user's *current* record.
#[derive(Clone, Debug)]
pub struct Authenticated {
    pub claims: AccessToken,
    pub user: User,
}

/// Checks a Bearer token and reads the user's current record (claims are never trusted for
/// role or existence).
///
/// # Errors
/// `InvalidToken` when the token is bad, of another tenant, or its user is gone.
pub async fn authenticate(
    ctx: &Context,
    tenant: Option<&TenantId>,
    bearer: &str,
) -> Result<Authenticated, CoreError> {
    let claims = ctx.tokens.verify_bearer(bearer, ctx.clock.now())?;
    if claims.tid.as_deref() != tenant.map(TenantId::as_str) {
        return Err(CoreError::InvalidToken);
    }
    let user = ctx
        .store
        .find_by_id(tenant, &UserId::from_subject(&claims.sub))
        .await?
        .ok_or(CoreError::InvalidToken)?;
    Ok(Authenticated { claims, user })
}

/// `GET /user`.
///
/// # Errors
/// `InvalidToken`, backend and hook errors.
pub async fn current_user(
    ctx: &Context,
    tenant: Option<&TenantId>,
    bearer: &str,
) -> Result<UserView, CoreError> {
    let auth = authenticate(ctx, tenant, bearer).await?;
    view(ctx, auth.user).await
}

/// `POST /change-password`: revokes every earlier refresh token (their fingerprint changes).
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
    let auth = authenticate(ctx, tenant, bearer).await?;
    let check = ctx
        .hasher
        .verify(old_password, Some(auth.user.password_hash.clone()))
        .await?;
    if !check.valid {
        return Err(CoreError::InvalidCredentials);
    }
    ctx.settings.policy.check(new_password.expose())?;
    ctx.hook
        .create_or_update_user(&HookUser::from(&auth.user))
        .await?;
    let hash = ctx.hasher.hash(new_password).await?;
    let changes = UserChanges {
        password_hash: Some(hash),
        ..UserChanges::default()
    };
    ctx.store.update(tenant, &auth.user.id, changes).await?;
    Ok(())
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
    mail(ctx, &req, &redirect)
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
    let redirect = redirect_target(ctx, redirect_url)?;
    let Some(user) = ctx.store.find_by_email(tenant, email).await? else {
        return Ok(None);
    };
    let req = VerifyRequest {
        action: Action::ResetPassword,
        email: &user.email,
        tenant,
        user: Some(&user),
        role: None,
    };
    mail(ctx, &req, &redirect).map(Some)
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
    Ok(ctx.store.create(new).await?)
}

fn redirect_target(ctx: &Context, requested: Option<&str>) -> Result<Url, CoreError> {
    match requested.map(str::trim).filter(|s| !s.is_empty()) {
        Some(url) => ctx.settings.redirects.check(url),
        None => Ok(ctx.settings.verify_redirect_url.clone()),
    }
}

fn mail(ctx: &Context, req: &VerifyRequest<'_>, redirect: &Url) -> Result<Mail, CoreError> {
    let token = ctx.tokens.issue_verify(req, ctx.clock.now())?;
    Ok(Mail {
        to: req.email.clone(),
        action: req.action,
        link: mail_link(redirect, req.action, &token),
        tenant: req.tenant.cloned(),
        role: req.role.cloned(),
        expires_in: ctx.tokens.settings().verify_ttl,
    })
}

async fn view(ctx: &Context, user: User) -> Result<UserView, CoreError> {
    if !ctx.hook.is_active() {
        return Ok(UserView {
            user,
            hook_data: None,
        });
    }
    let hook_data = ctx.hook.get_user(&HookUser::from(&user)).await?;
    Ok(UserView { user, hook_data })
}

async fn signed_in(
    ctx: &Context,
    user: User,
    actor: Option<&UserId>,
) -> Result<SignedIn, CoreError> {
    signed_in_with(ctx, user, actor, None).await
}

/// [`signed_in`], with the user's password fingerprint when the caller has it already.
async fn signed_in_with(
    ctx: &Context,
    user: User,
    actor: Option<&UserId>,
    fingerprint: Option<String>,
) -> Result<SignedIn, CoreError> {
    let view = view(ctx, user).await?;
    let tokens = ctx.tokens.issue_pair_with(
        &view.user,
        view.hook_data.as_ref(),
        actor,
        ctx.clock.now(),
        fingerprint,
    )?;
    Ok(SignedIn {
        user: view,
        tokens,
        actor: actor.cloned(),
    })
}
