//! User administration (SPEC §11's admin API): list, create (or invite), show, update and
//! delete users, end a user's sessions, send them a reset mail. The `/admin/users` routes and
//! the `authura user …` subcommands both call these functions, so the rules hold the same way
//! for both: hooks and the password policy (with history) apply to every write, a password or
//! address change ends the user's sessions, an administrator cannot delete or demote their own
//! account (`SelfModification`), and every change is audited with the administrator as actor.
//!
//! Who acts is an [`Actor`]: an administrator's current record (the API) or nobody (the operator
//! at the command line, whose events say `"by": "cli"`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use crate::error::CoreError;
use crate::flows::{Context, UserView, directory_owns_it, mail, policy, redirect_target, view};
use crate::hash::random_token;
use crate::hook::HookUser;
use crate::mail::{Action, Mail};
use crate::permit::Permit;
use crate::sessions::Client;
use crate::state::audit::kind;
use crate::state::{AccountState, PermitStore};
use crate::store::{UserPage, UserQuery};
use crate::token::VerifyRequest;
use crate::types::{Email, NewUser, Role, Secret, TenantId, User, UserChanges, UserId};

/// Who performs an administrative operation, from where.
#[derive(Clone, Copy, Debug, Default)]
pub struct Actor<'a> {
    /// The administrator's current record; `None`: the operator at the command line.
    pub admin: Option<&'a User>,
    /// The client the request came from (for the audit log).
    pub client: Client<'a>,
}

impl Actor<'_> {
    fn id(&self) -> Option<&UserId> {
        self.admin.map(|a| &a.id)
    }

    fn by(&self) -> &'static str {
        if self.admin.is_some() { "admin" } else { "cli" }
    }

    /// Whether `user` is the acting administrator's own account.
    fn is(&self, tenant: Option<&TenantId>, id: &UserId) -> bool {
        self.admin
            .is_some_and(|a| a.id == *id && a.tenant.as_ref() == tenant)
    }
}

/// `GET /admin/users`: what to list.
#[derive(Clone, Debug, Default)]
pub struct ListUsers<'a> {
    /// Matches an email case-insensitively (a substring), or an id exactly.
    pub query: Option<&'a str>,
    /// The previous page's `next_cursor` (opaque).
    pub cursor: Option<&'a str>,
    /// Users per page, 1 to [`UserQuery::MAX_LIMIT`]; `None`: [`UserQuery::DEFAULT_LIMIT`].
    pub limit: Option<usize>,
}

/// One page of users and the opaque cursor of the next (`None` on the last page).
#[derive(Clone, Debug)]
pub struct UsersPage {
    pub users: Vec<User>,
    pub next_cursor: Option<String>,
}

/// Encodes a user id as an opaque page cursor.
pub fn encode_cursor(id: &UserId) -> String {
    let text = match id {
        UserId::Int(n) => format!("i:{n}"),
        UserId::Text(t) => format!("t:{t}"),
    };
    URL_SAFE_NO_PAD.encode(text)
}

/// Decodes a page cursor made by [`encode_cursor`].
///
/// # Errors
/// `InvalidBody` when it is not one.
pub fn decode_cursor(cursor: &str) -> Result<UserId, CoreError> {
    let bad = || CoreError::InvalidBody("cursor is not a cursor of this list".into());
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    match text.split_once(':') {
        Some(("i", n)) => n.parse().map(UserId::Int).map_err(|_| bad()),
        Some(("t", t)) => Ok(UserId::Text(t.to_owned())),
        _ => Err(bad()),
    }
}

/// A page of the users of `tenant` in id order.
///
/// # Errors
/// `InvalidBody` for a bad cursor or a limit outside 1..=200; `Unsupported` when the backend
/// cannot list; backend errors.
pub async fn list_users(
    ctx: &Context,
    tenant: Option<&TenantId>,
    list: &ListUsers<'_>,
) -> Result<UsersPage, CoreError> {
    let limit = match list.limit {
        None => UserQuery::DEFAULT_LIMIT,
        Some(n) if (1..=UserQuery::MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            return Err(CoreError::InvalidBody(format!(
                "limit must be between 1 and {}",
                UserQuery::MAX_LIMIT
            )));
        }
    };
    let after = match list.cursor.filter(|c| !c.is_empty()) {
        Some(c) => Some(decode_cursor(c)?),
        None => None,
    };
    let query = UserQuery {
        tenant: tenant.cloned(),
        text: list
            .query
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(str::to_owned),
        after,
        limit,
    };
    let UserPage { users, next } = ctx.store.list(&query).await?;
    Ok(UsersPage {
        users,
        next_cursor: next.as_ref().map(encode_cursor),
    })
}

/// `POST /admin/users`: the user to create (a password's `Debug` is redacted).
#[derive(Debug)]
pub struct CreateUser<'a> {
    pub email: Email,
    /// `None`: `DEFAULT_ROLE`.
    pub role: Option<Role>,
    /// `None`: a random one (the user sets theirs through a reset or the invite link).
    pub password: Option<Secret>,
    /// Whether the address counts as verified (`verified_at` = now).
    pub verified: bool,
    /// Send the invite mail (whose link sets the password) instead of taking a password.
    pub invite: bool,
    /// Where the invite link points (validated as every `redirect_url`).
    pub redirect_url: Option<&'a str>,
}

/// Creates a user: hooks and the password policy apply; with `invite`, returns the invite mail
/// to send (its link sets a password, as a reset's does). Audited as `user.created` (and
/// `user.invited`).
///
/// # Errors
/// `InvalidBody` (a password with `invite`), `WeakPassword`, `InvalidRedirectUrl`,
/// `EmailTaken`; hook and backend errors.
pub async fn create_user(
    ctx: &Context,
    tenant: Option<&TenantId>,
    actor: Actor<'_>,
    new: CreateUser<'_>,
) -> Result<(UserView, Option<Mail>), CoreError> {
    directory_owns_it(ctx)?;
    let password = new.password.filter(|p| !p.is_empty());
    if new.invite && password.is_some() {
        return Err(CoreError::InvalidBody(
            "invite sends a link that sets the password: give either invite or password".into(),
        ));
    }
    let redirect = if new.invite {
        Some(redirect_target(ctx, new.redirect_url)?)
    } else {
        None
    };
    let role = new
        .role
        .unwrap_or_else(|| ctx.settings.default_role.clone());
    let password = match password {
        Some(p) => {
            ctx.settings.policy.check(p.expose())?;
            p
        }
        None => Secret::new(random_token(32)),
    };
    if ctx.store.find_by_email(tenant, &new.email).await?.is_some() {
        return Err(CoreError::EmailTaken);
    }
    let now = ctx.clock.now();
    let verified_at = new.verified.then_some(now);
    let hook_user = HookUser {
        id: None,
        email: new.email.clone(),
        role: role.clone(),
        tenant: tenant.cloned(),
        verified_at,
    };
    ctx.hook.create_or_update_user(&hook_user).await?;
    let password_hash = ctx.hasher.hash(password).await?;
    let user = ctx
        .store
        .create(NewUser {
            email: new.email,
            role,
            tenant: tenant.cloned(),
            password_hash,
            verified_at,
        })
        .await?;
    policy::password_created(ctx, &user).await?;
    policy::audit_user(
        ctx,
        kind::USER_CREATED,
        &user,
        actor.id(),
        actor.client,
        json!({
            "by": actor.by(),
            "email": user.email.as_str(),
            "role": user.role.as_str(),
            "verified": user.verified_at.is_some(),
        }),
    );
    let mail = match redirect {
        Some(redirect) => {
            let mail = invite_mail(ctx, &user, &redirect)?;
            policy::audit_user(
                ctx,
                kind::USER_INVITED,
                &user,
                actor.id(),
                actor.client,
                json!({"by": actor.by(), "email": user.email.as_str(), "role": user.role.as_str()}),
            );
            Some(mail)
        }
        None => None,
    };
    Ok((view(ctx, user).await?, mail))
}

/// The invite mail for a user created by an administrator: the `invite` template, whose link
/// carries a `reset-password` token for the new record, so following it sets the password (and
/// verifies the address) through `/verify-email`.
fn invite_mail(ctx: &Context, user: &User, redirect: &url::Url) -> Result<Mail, CoreError> {
    let req = VerifyRequest {
        action: Action::ResetPassword,
        email: &user.email,
        tenant: user.tenant.as_ref(),
        user: Some(user),
        role: None,
    };
    let mut mail = mail(ctx, &req, redirect)?;
    mail.action = Action::Invite;
    mail.role = Some(user.role.clone());
    Ok(mail)
}

/// A user's account as `GET /admin/users/{id}` shows it.
#[derive(Clone, Debug)]
pub struct UserAccount {
    pub user: UserView,
    /// The account's state (the default when no state store is open).
    pub state: AccountState,
    /// Live sessions (0 with sessions off).
    pub sessions: usize,
}

/// The user `id` of `tenant` with their account.
///
/// # Errors
/// `NotFound`; hook, backend and state store errors.
pub async fn show_user(
    ctx: &Context,
    tenant: Option<&TenantId>,
    id: &UserId,
) -> Result<UserAccount, CoreError> {
    let user = find(ctx, tenant, id).await?;
    let state = policy::state_of(ctx, &user).await?;
    let sessions = match &ctx.sessions {
        Some(sessions) => sessions.count(tenant, id).await?,
        None => 0,
    };
    Ok(UserAccount {
        user: view(ctx, user).await?,
        state,
        sessions,
    })
}

/// `PATCH /admin/users/{id}`: the fields to change (`None` leaves one as it is; a password's
/// `Debug` is redacted).
#[derive(Debug, Default)]
pub struct UpdateUser {
    pub email: Option<Email>,
    pub role: Option<Role>,
    /// `true` verifies an unverified address; `false` is refused for a verified one (a
    /// verification is never withdrawn: no backend can clear `verified_at`).
    pub verified: Option<bool>,
    pub password: Option<Secret>,
}

/// Changes a user: hooks and the password policy (with history) apply; a password or address
/// change ends the user's sessions (and revokes their refresh tokens); a role change reaches
/// every instance's session cache. Audited as `user.updated` with a diff of the fields (a
/// changed password is `true`, never a hash).
///
/// # Errors
/// `NotFound`, `SelfModification` (an administrator's own role away from `ADMIN_ROLE`),
/// `InvalidBody` (withdrawing a verification), `WeakPassword`, `PasswordReused`, `EmailTaken`;
/// hook and backend errors.
pub async fn update_user(
    ctx: &Context,
    tenant: Option<&TenantId>,
    actor: Actor<'_>,
    id: &UserId,
    update: UpdateUser,
) -> Result<UserView, CoreError> {
    directory_owns_it(ctx)?;
    if actor.is(tenant, id)
        && update
            .role
            .as_ref()
            .is_some_and(|r| *r != ctx.settings.admin_role)
    {
        return Err(CoreError::SelfModification);
    }
    let before = find(ctx, tenant, id).await?;
    let mut changes = UserChanges::default();
    let mut diff = Map::new();
    if let Some(email) = update.email.filter(|e| *e != before.email) {
        if ctx.store.find_by_email(tenant, &email).await?.is_some() {
            return Err(CoreError::EmailTaken);
        }
        diff.insert(
            "email".into(),
            json!({"from": before.email.as_str(), "to": email.as_str()}),
        );
        changes.email = Some(email);
    }
    if let Some(role) = update.role.filter(|r| *r != before.role) {
        diff.insert(
            "role".into(),
            json!({"from": before.role.as_str(), "to": role.as_str()}),
        );
        changes.role = Some(role);
    }
    match (update.verified, before.verified_at) {
        (Some(true), None) => {
            changes.verified_at = Some(ctx.clock.now());
            diff.insert("verified".into(), json!({"from": false, "to": true}));
        }
        (Some(false), Some(_)) => {
            return Err(CoreError::InvalidBody(
                "verified cannot be withdrawn: a verified address stays verified".into(),
            ));
        }
        _ => {}
    }
    let password = update.password.filter(|p| !p.is_empty());
    if let Some(password) = password {
        ctx.settings.policy.check(password.expose())?;
        policy::check_password_history(ctx, &before, &password).await?;
        changes.password_hash = Some(ctx.hasher.hash(password).await?);
        diff.insert("password".into(), Value::Bool(true));
    }
    if diff.is_empty() {
        return view(ctx, before).await;
    }
    let mut after = before.clone();
    changes.apply_to(&mut after);
    ctx.hook
        .create_or_update_user(&HookUser::from(&after))
        .await?;
    let password_changed = changes.password_hash.is_some();
    let email_changed = changes.email.is_some();
    let user = ctx.store.update(tenant, id, changes).await?;
    if password_changed {
        policy::password_written(ctx, &before, false).await?;
    }
    diff.insert("by".into(), Value::from(actor.by()));
    policy::audit_user(
        ctx,
        kind::USER_UPDATED,
        &user,
        actor.id(),
        actor.client,
        Value::Object(diff),
    );
    if password_changed || email_changed {
        end_all(ctx, &user, actor).await?;
    } else if let Some(sessions) = &ctx.sessions {
        sessions.user_changed(tenant, id).await;
    }
    view(ctx, user).await
}

/// `DELETE /admin/users/{id}`: deletes the user; their sessions, permit (in `permits`, the state
/// store when one is open), account state and password history go with them. Audited as
/// `user.deleted`.
///
/// # Errors
/// `SelfModification`, `NotFound`, `Unsupported` when the backend cannot delete; backend and
/// state store errors.
pub async fn delete_user<P: PermitStore + ?Sized>(
    ctx: &Context,
    tenant: Option<&TenantId>,
    actor: Actor<'_>,
    id: &UserId,
    permits: Option<&P>,
) -> Result<(), CoreError> {
    directory_owns_it(ctx)?;
    if actor.is(tenant, id) {
        return Err(CoreError::SelfModification);
    }
    let user = find(ctx, tenant, id).await?;
    if !ctx.store.delete(tenant, id).await? {
        return Err(CoreError::NotFound);
    }
    if let Some(sessions) = &ctx.sessions {
        sessions.end_all(tenant, id).await?;
    }
    if let Some(permits) = permits {
        permits.set_permit(tenant, id, &Permit::default()).await?;
    }
    if let Some(accounts) = &ctx.policies.accounts {
        accounts.forget_account(tenant, id).await?;
    }
    policy::audit_user(
        ctx,
        kind::USER_DELETED,
        &user,
        actor.id(),
        actor.client,
        json!({"by": actor.by(), "email": user.email.as_str(), "role": user.role.as_str()}),
    );
    Ok(())
}

/// `DELETE /admin/users/{id}/sessions`: ends every session of the user (audited as
/// `session.ended`).
///
/// # Errors
/// `NotFound`; `Unsupported` with sessions off; store errors.
pub async fn end_user_sessions(
    ctx: &Context,
    tenant: Option<&TenantId>,
    actor: Actor<'_>,
    id: &UserId,
) -> Result<(), CoreError> {
    let user = find(ctx, tenant, id).await?;
    if ctx.sessions.is_none() {
        return Err(CoreError::Unsupported(
            "ending sessions while sessions are off (SESSIONS_ENABLED)".into(),
        ));
    }
    end_all(ctx, &user, actor).await
}

/// `POST /admin/users/{id}/reset-password`: the reset mail for the user (its link, as the one
/// `/reset-password` sends, sets a new password through `/verify-email`).
///
/// # Errors
/// `NotFound`, `InvalidRedirectUrl`; backend errors.
pub async fn send_reset(
    ctx: &Context,
    tenant: Option<&TenantId>,
    id: &UserId,
    redirect_url: Option<&str>,
) -> Result<Mail, CoreError> {
    directory_owns_it(ctx)?;
    let redirect = redirect_target(ctx, redirect_url)?;
    let user = find(ctx, tenant, id).await?;
    let req = VerifyRequest {
        action: Action::ResetPassword,
        email: &user.email,
        tenant,
        user: Some(&user),
        role: None,
    };
    mail(ctx, &req, &redirect)
}

async fn find(ctx: &Context, tenant: Option<&TenantId>, id: &UserId) -> Result<User, CoreError> {
    ctx.store
        .find_by_id(tenant, id)
        .await?
        .ok_or(CoreError::NotFound)
}

/// Ends the user's sessions, audited with the actor (also for the account operations of
/// `flows::policy`).
pub(crate) async fn end_all(ctx: &Context, user: &User, actor: Actor<'_>) -> Result<(), CoreError> {
    let Some(sessions) = &ctx.sessions else {
        return Ok(());
    };
    sessions.end_all(user.tenant.as_ref(), &user.id).await?;
    policy::audit_user(
        ctx,
        kind::SESSION_ENDED,
        user,
        actor.id(),
        actor.client,
        json!({"all": true, "by": actor.by()}),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::flows::admin::{decode_cursor, encode_cursor};
    use crate::types::UserId;

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        for id in [
            UserId::Int(0),
            UserId::Int(-5),
            UserId::Int(i64::MAX),
            UserId::Text("abc:def".into()),
            UserId::Text(String::new()),
        ] {
            assert_eq!(decode_cursor(&encode_cursor(&id)).unwrap(), id);
        }
        for bad in ["", "!!", "aTo", "eDox", "aTp4"] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }
}
