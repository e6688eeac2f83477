//! Logging in and tokens: `POST /token` (a password, or an admin's token for impersonation),
//! `/refresh`, and `GET /user`.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::error::CoreError;
use crate::flows::{
    Bind, Context, SignedIn, UserView, authenticate, policy, signed_in, signed_in_with, token_user,
    view,
};
use crate::hook::HookUser;
use crate::sessions::Client;
use crate::state::audit::kind;
use crate::state::{AccountChange, SessionMethod};
use crate::store::PasswordCheck;
use crate::token::fingerprints_match;
use crate::types::{Email, Secret, TenantId, User, UserChanges};

/// `POST /token` with a password, behind the per-account failure limit: a locked account
/// (existing or not) is refused before any lookup or hashing; a wrong password counts against
/// it; a correct one clears the count, also when the address is not verified yet.
///
/// # Errors
/// `TooManyAttempts` while the account is over its limit (`CaptchaRequired` instead when a
/// captcha is configured and the request did not pass one), `InvalidCredentials` (unknown
/// email, wrong password, and a locked or archived account alike), `EmailNotVerified` and
/// `PasswordExpired` after a correct password, `Overloaded`, backend and hook errors.
pub async fn login(
    ctx: &Context,
    tenant: Option<&TenantId>,
    email: &Email,
    password: Secret,
) -> Result<SignedIn, CoreError> {
    login_from(ctx, tenant, email, password, Client::default()).await
}

/// [`login`] from a client the transport describes (recorded on the session it opens when
/// sessions are on, and in the audit log).
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
    let checked = check_login_from(ctx, tenant, email, password, client).await?;
    let bind = Bind::Open(SessionMethod::Password, client, checked.password_expires_at);
    signed_in_with(ctx, checked.user, None, None, bind).await
}

/// A password sign-in that passed every check.
#[derive(Debug, Clone)]
pub struct LoginChecked {
    /// The user, as stored after the login (a legacy hash upgraded).
    pub user: User,
    /// When the password expires (`PASSWORD_MAX_AGE`): a session opened for this sign-in
    /// ends then at the latest. `None` when expiry is off or the address exempt.
    pub password_expires_at: Option<DateTime<Utc>>,
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
    check_login_from(ctx, tenant, email, password, Client::default())
        .await
        .map(|c| c.user)
}

/// [`check_login`] from a client the transport describes, with the password's expiry.
///
/// # Errors
/// As [`login`].
pub async fn check_login_from(
    ctx: &Context,
    tenant: Option<&TenantId>,
    email: &Email,
    password: Secret,
    client: Client<'_>,
) -> Result<LoginChecked, CoreError> {
    let limiter = &ctx.login_failures;
    if let Err(retry_after) = limiter.check(tenant, email, ctx.clock.instant()) {
        // With a captcha configured, an account over its limit asks for one instead of
        // refusing the owner: guessing cannot lock anyone out (SPEC §3).
        match (ctx.settings.captcha, client.captcha_passed) {
            (false, _) => {
                failed(ctx, tenant, None, email, client, "too_many_attempts");
                return Err(CoreError::TooManyAttempts { retry_after });
            }
            (true, false) => return Err(CoreError::CaptchaRequired),
            (true, true) => {}
        }
    }
    let result = password_login(ctx, tenant, email, password, client).await;
    match &result {
        Err(CoreError::InvalidCredentials) => limiter.fail(tenant, email, ctx.clock.instant()),
        // A correct password, verified or not.
        Ok(_) | Err(CoreError::EmailNotVerified | CoreError::PasswordExpired { .. }) => {
            limiter.succeed(tenant, email)
        }
        Err(_) => {}
    }
    result
}

/// A `login.failed` audit event; `reason` says why, never how close a guess was.
fn failed(
    ctx: &Context,
    tenant: Option<&TenantId>,
    user: Option<&User>,
    email: &Email,
    client: Client<'_>,
    reason: &str,
) {
    policy::audit(
        ctx,
        kind::LOGIN_FAILED,
        tenant,
        user.map(|u| &u.id),
        None,
        client,
        json!({"email": email.as_str(), "reason": reason}),
    );
}

/// [`login`] without the failure limit.
async fn password_login(
    ctx: &Context,
    tenant: Option<&TenantId>,
    email: &Email,
    password: Secret,
    client: Client<'_>,
) -> Result<LoginChecked, CoreError> {
    let (user, valid, needs_rehash) = match ctx.store.authenticate(tenant, email, &password).await?
    {
        // A directory checked the password itself (an LDAP bind): there is no hash to upgrade.
        PasswordCheck::Checked { user, valid } => (user, valid, false),
        PasswordCheck::ByHash => {
            let user = ctx.store.find_by_email(tenant, email).await?;
            // An unknown user is checked against a dummy hash: the same work, the same answer.
            let check = ctx
                .hasher
                .verify(
                    password.clone(),
                    user.as_ref().map(|u| u.password_hash.clone()),
                )
                .await?;
            (user, check.valid, check.needs_rehash)
        }
    };
    let Some(user) = user else {
        failed(ctx, tenant, None, email, client, "unknown_user");
        return Err(CoreError::InvalidCredentials);
    };
    let now = ctx.clock.now();
    let state = policy::state_of(ctx, &user).await?;
    // A locked or archived account answers every password as a wrong one: nothing tells a
    // guesser that a guess was right. It counts nothing more.
    if state.is_archived() || state.is_locked(now) {
        let reason = if state.is_archived() {
            "archived"
        } else {
            "locked"
        };
        failed(ctx, tenant, Some(&user), email, client, reason);
        return Err(CoreError::InvalidCredentials);
    }
    if !valid {
        policy::login_failed(ctx, &user, client).await?;
        failed(ctx, tenant, Some(&user), email, client, "wrong_password");
        return Err(CoreError::InvalidCredentials);
    }
    if user.verified_at.is_none() {
        failed(
            ctx,
            tenant,
            Some(&user),
            email,
            client,
            "email_not_verified",
        );
        return Err(CoreError::EmailNotVerified);
    }
    let password_expires_at = policy::password_expires_at(ctx, &user, &state).await?;
    if password_expires_at.is_some_and(|at| at <= now) {
        failed(ctx, tenant, Some(&user), email, client, "password_expired");
        return Err(policy::expired(ctx, &user)?);
    }
    // A legacy or weaker hash becomes Argon2id. That is a write, so the hook hears of it first,
    // as for any write; its refusal keeps the old hash. No failure here fails the login.
    let user = if needs_rehash
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
    policy::change(ctx, &user, &AccountChange::LoginSucceeded { at: now }).await?;
    policy::audit_user(
        ctx,
        kind::LOGIN_SUCCEEDED,
        &user,
        None,
        client,
        json!({"method": "password"}),
    );
    Ok(LoginChecked {
        user,
        password_expires_at,
    })
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
    policy::audit_user(
        ctx,
        kind::IMPERSONATION_STARTED,
        &signed.user.user,
        Some(&admin.user.id),
        client,
        json!({}),
    );
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
    refresh_from(ctx, tenant, refresh_token, Client::default()).await
}

/// [`refresh`] from a client the transport describes (for the audit log). An archived user, or
/// one whose password has expired (SPEC §11), cannot refresh.
///
/// # Errors
/// As [`refresh`].
pub async fn refresh_from(
    ctx: &Context,
    tenant: Option<&TenantId>,
    refresh_token: &str,
    client: Client<'_>,
) -> Result<SignedIn, CoreError> {
    let now = ctx.clock.now();
    let claims = ctx.tokens.verify_refresh(refresh_token, now)?;
    let user = token_user(ctx, tenant, claims.tid.as_deref(), &claims.sub).await?;
    let fingerprint = ctx.tokens.password_fingerprint(&user.password_hash);
    if !fingerprints_match(&claims.pwd, &fingerprint) {
        return Err(CoreError::InvalidToken);
    }
    if ctx.policies.accounts.is_some() {
        let state = policy::state_of(ctx, &user).await?;
        if state.is_archived()
            || policy::password_expires_at(ctx, &user, &state)
                .await?
                .is_some_and(|at| at <= now)
        {
            return Err(CoreError::InvalidToken);
        }
    }
    let session = match (claims.sid.as_deref(), claims.generation) {
        (Some(sid), Some(generation)) => {
            uuid::Uuid::parse_str(sid).ok().map(|sid| (sid, generation))
        }
        _ => None,
    };
    // The new refresh token carries the same fingerprint (the hook below sees the user but
    // cannot change its password hash).
    let result = signed_in_with(
        ctx,
        user.clone(),
        None,
        Some(fingerprint),
        Bind::Refresh(session),
    )
    .await;
    match result {
        Err(CoreError::RefreshReused) => {
            policy::audit_user(
                ctx,
                kind::REFRESH_REUSE_DETECTED,
                &user,
                None,
                client,
                json!({"session_id": session.map(|(sid, _)| sid)}),
            );
            Err(CoreError::InvalidToken)
        }
        other => other,
    }
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
