//! The auth flows of SPEC §3 as plain async functions over the [`Context`]'s traits, by area:
//! signing up and verifying (`signup`), logging in and tokens (`login`), changes to an account
//! (`account`), and user administration (`admin`, shared by the admin API and the CLI). This
//! module keeps what they share: the [`Context`], the answers, and [`authenticate`].
//!
//! Each returns what the transport answers with and, for flows that send mail, the [`Mail`] to
//! send *after* answering, so sending can never change or delay the response (no enumeration).

mod account;
pub mod admin;
mod login;
mod oauth;
pub mod policy;
mod signup;

use std::sync::Arc;

use url::Url;

use crate::clock::Clock;
use crate::error::CoreError;
use crate::hash::PasswordHasher;
use crate::hook::{Hook, HookData, HookUser};
use crate::lockout::FailureLimiter;
use crate::mail::Mail;
use crate::policy::PasswordPolicy;
use crate::redirect::{RedirectPolicy, mail_link};
use crate::sessions::{Client, Sessions, SignIn};
use crate::state::SessionMethod;
use crate::state::audit::kind;
use crate::store::{StoreError, UserStore};
use crate::token::{AccessToken, SessionBinding, TokenPair, Tokens, VerifyRequest};
use crate::types::{Role, TenantId, User, UserId};

pub use account::{change_email, change_password, change_password_from, reset_password};
pub use login::{
    LoginChecked, check_login, check_login_from, current_user, impersonate, impersonate_from,
    login, login_from, refresh, refresh_from,
};
pub use oauth::{ProviderIdentity, oauth_sign_in, oauth_user};
pub use policy::{
    AccountOperation, Policies, PolicySettings, account, change_account, check_password_history,
    password_written,
};
pub use signup::{create_verified_user, invite, signup, verify_email, verify_email_from};

/// Flow settings from configuration.
#[derive(Debug, Clone)]
pub struct FlowSettings {
    pub admin_role: Role,
    pub default_role: Role,
    pub signup_disabled: bool,
    pub impersonation_enabled: bool,
    /// Whether a captcha is configured: an account over its per-account failure limit then
    /// asks for one instead of refusing the owner (SPEC §3).
    pub captcha: bool,
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
    /// Failed password logins per account (`LOGIN_FAILURES_PER_ACCOUNT`), shared by every copy
    /// of the context.
    pub login_failures: Arc<FailureLimiter>,
    /// Server-side sessions (SPEC §8): `None` when they are off, and then every token stays
    /// stateless, exactly as without them.
    pub sessions: Option<Arc<dyn Sessions>>,
    /// The account policies and the audit log (SPEC §11): [`Policies::off`] when none is on.
    pub policies: Policies,
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

/// An authenticated request: the bearer's claims and the user's *current* record.
#[derive(Clone, Debug)]
pub struct Authenticated {
    pub claims: AccessToken,
    pub user: User,
}

/// `ManagedByDirectory` when the users backend is a directory Authura only reads (SPEC §10):
/// signup, invite, change-password, change-email and reset are the directory's business.
///
/// # Errors
/// `ManagedByDirectory` when the store is read-only.
pub fn directory_owns_it(ctx: &Context) -> Result<(), CoreError> {
    if ctx.store.read_only() {
        return Err(CoreError::ManagedByDirectory);
    }
    Ok(())
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
    let user = token_user(ctx, tenant, claims.tid.as_deref(), &claims.sub).await?;
    Ok(Authenticated { claims, user })
}

/// The current record of the user a verified token names (its `tid` and `sub`).
///
/// # Errors
/// `InvalidToken` when the token is of another tenant than the request, or its user is gone (a
/// missing user means the token no longer holds, not `NotFound`); backend errors.
async fn token_user(
    ctx: &Context,
    tenant: Option<&TenantId>,
    tid: Option<&str>,
    sub: &str,
) -> Result<User, CoreError> {
    if tid != tenant.map(TenantId::as_str) {
        return Err(CoreError::InvalidToken);
    }
    ctx.store
        .find_by_id(tenant, &UserId::from_subject(sub))
        .await?
        .ok_or(CoreError::InvalidToken)
}

/// A user who is gone when a flow writes to them (deleted since their token was checked): the
/// token that named them no longer holds, so the answer is `InvalidToken`, as when the token's
/// user is not found on reading. Every other store error keeps its own meaning.
fn user_gone(e: StoreError) -> CoreError {
    match e {
        StoreError::NotFound => CoreError::InvalidToken,
        e => e.into(),
    }
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

/// How a new pair is bound to a session.
enum Bind<'a> {
    /// A sign-in, by a client: with sessions on, it opens one, ending at the latest when the
    /// password expires.
    Open(
        SessionMethod,
        Client<'a>,
        Option<chrono::DateTime<chrono::Utc>>,
    ),
    /// A refresh of a token bound to this session (`sid`) at this generation, or to none.
    Refresh(Option<(uuid::Uuid, i64)>),
}

/// A sign-in: the user's view, a session when sessions are on, and a pair bound to it.
async fn signed_in(
    ctx: &Context,
    user: User,
    actor: Option<&UserId>,
    method: SessionMethod,
    client: Client<'_>,
) -> Result<SignedIn, CoreError> {
    signed_in_with(ctx, user, actor, None, Bind::Open(method, client, None)).await
}

/// [`signed_in`], with the user's password fingerprint when the caller has it already, and the
/// session binding to apply. The session is opened (or rotated) only after the hook has
/// answered, so a failing hook leaves no session behind and does not spend a generation.
async fn signed_in_with(
    ctx: &Context,
    user: User,
    actor: Option<&UserId>,
    fingerprint: Option<String>,
    bind: Bind<'_>,
) -> Result<SignedIn, CoreError> {
    let view = view(ctx, user).await?;
    let groups = token_groups(ctx, &view.user).await?;
    let binding = bind_session(ctx, &view.user, bind).await?;
    let tokens = ctx.tokens.issue_pair_with(
        &view.user,
        view.hook_data.as_ref(),
        actor,
        ctx.clock.now(),
        fingerprint,
        binding.as_ref(),
        groups.as_deref(),
    )?;
    Ok(SignedIn {
        user: view,
        tokens,
        actor: actor.cloned(),
    })
}

/// The names of `user`'s role groups for the claims extensions, when
/// `HASURA_ROLES_FROM_GROUPS=true` put a permit store in the policies (SPEC §8a).
async fn token_groups(ctx: &Context, user: &User) -> Result<Option<Vec<String>>, CoreError> {
    let Some(store) = &ctx.policies.token_groups else {
        return Ok(None);
    };
    let access = store.access(user.tenant.as_ref(), &user.id).await?;
    Ok(Some(
        access
            .groups
            .into_iter()
            .map(|(_, name)| name.as_str().to_owned())
            .collect(),
    ))
}

/// The session a new pair is bound to: `None` when sessions are off.
async fn bind_session(
    ctx: &Context,
    user: &User,
    bind: Bind<'_>,
) -> Result<Option<SessionBinding>, CoreError> {
    let Some(sessions) = &ctx.sessions else {
        return Ok(None);
    };
    let binding = match bind {
        Bind::Open(method, client, expires_before) => {
            let text = method.as_text();
            let sign_in = SignIn {
                user,
                method,
                ip: client.ip,
                user_agent: client.user_agent,
                expires_before,
            };
            let binding = sessions.open_for_sign_in(sign_in).await?;
            policy::audit_user(
                ctx,
                kind::SESSION_CREATED,
                user,
                None,
                client,
                serde_json::json!({"session_id": binding.sid, "method": text}),
            );
            binding
        }
        Bind::Refresh(Some((sid, generation))) => {
            sessions.rotate_for_refresh(user, sid, generation).await?
        }
        // A refresh token that names no session (issued while sessions were off) cannot show
        // that its session is alive.
        Bind::Refresh(None) => return Err(CoreError::InvalidToken),
    };
    Ok(Some(binding))
}

/// Ends every session of a user whose password or address changed, or who was archived
/// (SPEC §8, §11); nothing when sessions are off.
async fn end_sessions(ctx: &Context, user: &User) -> Result<(), CoreError> {
    match &ctx.sessions {
        Some(sessions) => {
            sessions.end_all(user.tenant.as_ref(), &user.id).await?;
            policy::audit_user(
                ctx,
                kind::SESSION_ENDED,
                user,
                None,
                Client::default(),
                serde_json::json!({"all": true}),
            );
            Ok(())
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use crate::error::CoreError;
    use crate::flows::user_gone;
    use crate::store::StoreError;

    #[test]
    fn a_user_gone_on_writing_is_an_invalid_token() {
        assert!(matches!(
            user_gone(StoreError::NotFound),
            CoreError::InvalidToken
        ));
        assert!(matches!(
            user_gone(StoreError::Conflict),
            CoreError::EmailTaken
        ));
        assert!(matches!(
            user_gone(StoreError::Unavailable("down".into())),
            CoreError::BackendUnavailable(_)
        ));
    }
}
