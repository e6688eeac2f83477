//! Signing in with an OAuth or OpenID provider (SPEC §9): the user a provider's identity stands
//! for, found or created, and the tokens of that sign-in. The transport (HTTP, the provider's
//! protocol) and the provider's own checks (ID token, which addresses count as verified) are
//! `authura-oauth`'s and the server's; this module decides what an identity may do here.
//!
//! The rules, in order:
//! 1. An address the provider does not vouch for never signs into, links to or creates an
//!    account (`EmailNotVerified`), linked or not.
//! 2. With a link store (a state store exists), a linked subject signs into its user, whatever
//!    the address says now; a subject is never signed into another user, and a user linked to
//!    another subject of the same provider is not taken over by a new one with its address
//!    (`Forbidden`: a provider that recycles addresses cannot hand an account to a stranger).
//! 3. Otherwise the user with that address (and tenant) signs in, and is linked; an account
//!    whose address was never verified is verified now and its password replaced by a random
//!    one (whoever set it never proved the mailbox).
//! 4. No such user: one is created (`DEFAULT_ROLE`, verified, a random password) unless
//!    `SIGNUP_DISABLED` (`SignupDisabled`).
//!
//! An archived or locked account (SPEC §11), found by its link or its address, is refused
//! (`Forbidden`) before anything is written, whichever way the sign-in hands over (a one-time
//! code or `mode=session`).
//!
//! Every write is told to the hook first, as for any write; a refusal writes nothing.

use crate::error::CoreError;
use crate::flows::{Context, SignedIn, end_sessions, signed_in, user_gone};
use crate::hash::random_token;
use crate::hook::HookUser;
use crate::sessions::Client;
use crate::state::{OAuthLink, OAuthLinkStore, SessionMethod};
use crate::store::StoreError;
use crate::types::{Email, NewUser, Secret, TenantId, User, UserChanges, UserId};

/// Who a provider says signed in, after the provider's own checks.
#[derive(Clone, Debug)]
pub struct ProviderIdentity<'a> {
    /// The provider's name (`google`, …): links and the session's method name it.
    pub provider: &'a str,
    /// The provider's stable id for the user.
    pub subject: &'a str,
    /// The address the provider gives, if any.
    pub email: Option<&'a str>,
    /// Whether the address counts as verified under the provider's rule.
    pub email_verified: bool,
}

/// The user a provider's identity signs into, found, linked, verified or created by the rules
/// above. Tokens are not issued here: see [`oauth_sign_in`].
///
/// # Errors
/// `EmailNotVerified` (no address, or not vouched for; an address that is not one is the
/// same), `Forbidden` (a linked user is gone, the user is archived or locked, or linked to
/// another subject),
/// `SignupDisabled`, hook and backend errors.
pub async fn oauth_user(
    ctx: &Context,
    links: Option<&dyn OAuthLinkStore>,
    tenant: Option<&TenantId>,
    identity: &ProviderIdentity<'_>,
) -> Result<User, CoreError> {
    let email = match identity.email {
        Some(email) if identity.email_verified => {
            Email::parse(email).map_err(|_| CoreError::EmailNotVerified)?
        }
        _ => return Err(CoreError::EmailNotVerified),
    };
    if let Some(links) = links
        && let Some(link) = links
            .find_oauth_link(tenant, identity.provider, identity.subject)
            .await?
    {
        // A linked subject reaches its own user, or nobody.
        let user = ctx
            .store
            .find_by_id(tenant, &link.user_id)
            .await?
            .ok_or(CoreError::Forbidden)?;
        refuse_closed(ctx, &user).await?;
        return verify_unverified(ctx, tenant, user).await;
    }
    let user = match ctx.store.find_by_email(tenant, &email).await? {
        Some(user) => {
            if let Some(links) = links
                && links
                    .find_user_oauth_link(tenant, identity.provider, &user.id)
                    .await?
                    .is_some()
            {
                return Err(CoreError::Forbidden);
            }
            refuse_closed(ctx, &user).await?;
            verify_unverified(ctx, tenant, user).await?
        }
        None => create(ctx, tenant, email).await?,
    };
    if let Some(links) = links {
        let link = OAuthLink {
            provider: identity.provider.to_owned(),
            subject: identity.subject.to_owned(),
            tenant: tenant.cloned(),
            user_id: user.id.clone(),
            created_at: ctx.clock.now(),
        };
        match links.create_oauth_link(link).await {
            Ok(()) => {}
            // A racing first sign-in of the same subject linked it first: fine if to this user.
            Err(StoreError::Conflict) => {
                let linked = links
                    .find_oauth_link(tenant, identity.provider, identity.subject)
                    .await?;
                if linked.is_none_or(|l| l.user_id != user.id) {
                    return Err(CoreError::Forbidden);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(user)
}

/// Tokens for a user an OAuth sign-in found (by [`oauth_user`], possibly in an earlier request:
/// the one-time code's exchange), read again: a session with method `oauth:<provider>` when
/// sessions are on.
///
/// An archived or locked account (SPEC §11) signs in with a provider no more than with a
/// password: it is answered as a user that is gone.
///
/// # Errors
/// `InvalidToken` when the user is gone since, archived or locked; hook and backend errors.
pub async fn oauth_sign_in(
    ctx: &Context,
    tenant: Option<&TenantId>,
    user_id: &UserId,
    provider: &str,
    client: Client<'_>,
) -> Result<SignedIn, CoreError> {
    let user = ctx
        .store
        .find_by_id(tenant, user_id)
        .await?
        .ok_or(CoreError::InvalidToken)?;
    let state = crate::flows::policy::state_of(ctx, &user).await?;
    if state.is_archived() || state.is_locked(ctx.clock.now()) {
        return Err(CoreError::InvalidToken);
    }
    signed_in(
        ctx,
        user,
        None,
        SessionMethod::OAuth(provider.to_owned()),
        client,
    )
    .await
}

/// `Forbidden` for an archived or locked account (SPEC §11): a provider's word opens it no more
/// than the right password does, and nothing about it is written (no link, no verification).
async fn refuse_closed(ctx: &Context, user: &User) -> Result<(), CoreError> {
    let state = crate::flows::policy::state_of(ctx, user).await?;
    if state.is_archived() || state.is_locked(ctx.clock.now()) {
        return Err(CoreError::Forbidden);
    }
    Ok(())
}

/// An account whose address was never verified, verified by the provider's word, with its
/// password replaced by a random one and its sessions ended; a verified one as it is.
async fn verify_unverified(
    ctx: &Context,
    tenant: Option<&TenantId>,
    user: User,
) -> Result<User, CoreError> {
    if user.verified_at.is_some() {
        return Ok(user);
    }
    let changes = UserChanges {
        verified_at: Some(ctx.clock.now()),
        password_hash: Some(ctx.hasher.hash(Secret::new(random_token(32))).await?),
        ..UserChanges::default()
    };
    let mut after = user.clone();
    changes.apply_to(&mut after);
    ctx.hook
        .create_or_update_user(&HookUser::from(&after))
        .await?;
    let updated = ctx
        .store
        .update_if(tenant, &user, changes)
        .await
        .map_err(user_gone)?;
    end_sessions(ctx, &updated).await?;
    Ok(updated)
}

/// A new verified user with a random password, unless signup is disabled.
async fn create(ctx: &Context, tenant: Option<&TenantId>, email: Email) -> Result<User, CoreError> {
    if ctx.settings.signup_disabled {
        return Err(CoreError::SignupDisabled);
    }
    let now = ctx.clock.now();
    let role = ctx.settings.default_role.clone();
    ctx.hook
        .create_or_update_user(&HookUser {
            id: None,
            email: email.clone(),
            role: role.clone(),
            tenant: tenant.cloned(),
            verified_at: Some(now),
        })
        .await?;
    let password_hash = ctx.hasher.hash(Secret::new(random_token(32))).await?;
    Ok(ctx
        .store
        .create(NewUser {
            email,
            role,
            tenant: tenant.cloned(),
            password_hash,
            verified_at: Some(now),
        })
        .await?)
}
