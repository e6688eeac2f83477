//! Logging in and tokens: `POST /token` (a password, or an admin's token for impersonation),
//! `/refresh`, and `GET /user`.

use crate::error::CoreError;
use crate::flows::{
    Bind, Context, SignedIn, UserView, authenticate, signed_in, signed_in_with, token_user, view,
};
use crate::hook::HookUser;
use crate::sessions::Client;
use crate::state::SessionMethod;
use crate::token::fingerprints_match;
use crate::types::{Email, Secret, TenantId, User, UserChanges};

/// `POST /token` with a password, behind the per-account failure limit: a locked account
/// (existing or not) is refused before any lookup or hashing; a wrong password counts against
/// it; a correct one clears the count, also when the address is not verified yet.
///
/// # Errors
/// `TooManyAttempts` while the account is locked, `InvalidCredentials` (unknown email or wrong
/// password alike), `EmailNotVerified` after a correct password, `Overloaded`, backend and hook
/// errors.
pub async fn login(
    ctx: &Context,
    tenant: Option<&TenantId>,
    email: &Email,
    password: Secret,
) -> Result<SignedIn, CoreError> {
    login_from(ctx, tenant, email, password, Client::default()).await
}

/// [`login`] from a client the transport describes (recorded on the session it opens when
/// sessions are on).
///
/// # Errors
/// As [`login`].
pub async fn login_from(
    ctx: &Context,
    tenant: Option<&TenantId>,
    email: &Email,
    password: Secret,
    client: Client<'_>,
) -> Result<SignedIn, CoreError> {
    let user = check_login(ctx, tenant, email, password).await?;
    signed_in(ctx, user, None, SessionMethod::Password, client).await
}

/// The checks of [`login`] without signing in: the per-account failure limit, the password
/// against the stored hash (a dummy hash for an unknown user), the verified address, and the
/// upgrade of a legacy or weaker hash. For the sign-ins that issue no tokens (`POST /session`
/// opens a session itself) and the once-off checks (`/check` with Basic credentials).
///
/// # Errors
/// As [`login`].
pub async fn check_login(
    ctx: &Context,
    tenant: Option<&TenantId>,
    email: &Email,
    password: Secret,
) -> Result<User, CoreError> {
    let limiter = &ctx.login_failures;
    if let Err(retry_after) = limiter.check(tenant, email, ctx.clock.instant()) {
        return Err(CoreError::TooManyAttempts { retry_after });
    }
    let result = password_login(ctx, tenant, email, password).await;
    match &result {
        Err(CoreError::InvalidCredentials) => limiter.fail(tenant, email, ctx.clock.instant()),
        // A correct password, verified or not.
        Ok(_) | Err(CoreError::EmailNotVerified) => limiter.succeed(tenant, email),
        Err(_) => {}
    }
    result
}

/// [`login`] without the failure limit.
async fn password_login(
    ctx: &Context,
    tenant: Option<&TenantId>,
    email: &Email,
    password: Secret,
) -> Result<User, CoreError> {
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
    Ok(user)
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
    impersonate_from(ctx, tenant, bearer, email, Client::default()).await
}

/// [`impersonate`] from a client the transport describes.
///
/// # Errors
/// As [`impersonate`].
pub async fn impersonate_from(
    ctx: &Context,
    tenant: Option<&TenantId>,
    bearer: &str,
    email: &Email,
    client: Client<'_>,
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
    let signed = signed_in(
        ctx,
        target,
        Some(&admin.user.id),
        SessionMethod::Impersonation,
        client,
    )
    .await?;
    // The audit trail of impersonation: who acted as whom.
    tracing::info!(admin_id = %admin.user.id, user_id = %signed.user.user.id, tenant = ?tenant.map(TenantId::as_str), "impersonation: tokens issued");
    Ok(signed)
}

/// `POST /refresh`: a new pair, if the user still exists and the password is unchanged. With
/// sessions on, the token's session must be alive and the rotation rule of SPEC §8 applies (a
/// reused token ends its session).
///
/// # Errors
/// `InvalidToken` (also for a reuse, and for a token bound to no session while sessions are
/// on), backend and hook errors.
pub async fn refresh(
    ctx: &Context,
    tenant: Option<&TenantId>,
    refresh_token: &str,
) -> Result<SignedIn, CoreError> {
    let claims = ctx.tokens.verify_refresh(refresh_token, ctx.clock.now())?;
    let user = token_user(ctx, tenant, claims.tid.as_deref(), &claims.sub).await?;
    let fingerprint = ctx.tokens.password_fingerprint(&user.password_hash);
    if !fingerprints_match(&claims.pwd, &fingerprint) {
        return Err(CoreError::InvalidToken);
    }
    let session = match (claims.sid.as_deref(), claims.generation) {
        (Some(sid), Some(generation)) => {
            uuid::Uuid::parse_str(sid).ok().map(|sid| (sid, generation))
        }
        _ => None,
    };
    // The new refresh token carries the same fingerprint (the hook below sees the user but
    // cannot change its password hash).
    signed_in_with(ctx, user, None, Some(fingerprint), Bind::Refresh(session)).await
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
