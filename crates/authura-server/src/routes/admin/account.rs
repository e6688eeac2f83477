//! `POST /admin/users/{id}/lock|unlock|archive|restore` (SPEC §11): an administrator changes an
//! account's state through core's `flows::policy::change_account`, which the `authura user
//! lock|unlock|archive|restore` subcommands share. Each answers 200 with the account's state.

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use authura_core::UserId;
use authura_core::flows::{AccountOperation, change_account};
use authura_core::state::AccountState;
use authura_core::types::format_time;
use serde::Serialize;

use crate::answer::{self, Answer};
use crate::extract::{ClientInfo, State, Tenant};
use crate::principal::SessionCredentials;
use crate::routes::resource;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/admin/users/{id}/lock", Method::POST, lock))
        .service(resource("/admin/users/{id}/unlock", Method::POST, unlock))
        .service(resource("/admin/users/{id}/archive", Method::POST, archive))
        .service(resource("/admin/users/{id}/restore", Method::POST, restore));
}

/// An account's state as the admin API shows it (SPEC §11).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccountOut {
    /// The user's id (a JSON string, as a token's `sub`).
    pub user_id: String,
    /// Whether the account is locked now (by failed logins or an administrator).
    pub locked: bool,
    /// When the lock ends; `null` when not locked, or locked until an administrator unlocks.
    #[schema(required = true)]
    pub locked_until: Option<String>,
    /// Whether the account is archived.
    pub archived: bool,
    /// Consecutive failed logins counted towards `LOCKOUT_THRESHOLD`.
    pub failed_logins: u32,
    /// The last successful sign-in, when recorded.
    #[schema(required = true)]
    pub last_login_at: Option<String>,
    /// When the password was last written (or first seen by the expiry policy), when recorded.
    #[schema(required = true)]
    pub password_changed_at: Option<String>,
}

impl AccountOut {
    /// `state` of `user_id` as of `now`.
    pub fn new(user_id: &UserId, state: &AccountState, now: chrono::DateTime<chrono::Utc>) -> Self {
        let locked = state.is_locked(now);
        AccountOut {
            user_id: user_id.to_string(),
            locked,
            locked_until: state
                .locked_until
                .filter(|_| locked)
                .map(|at| format_time(&at)),
            archived: state.is_archived(),
            failed_logins: state.failed_logins,
            last_login_at: state.last_login_at.as_ref().map(format_time),
            password_changed_at: state.password_changed_at.as_ref().map(format_time),
        }
    }
}

/// Runs `operation` on the account of the path's id, as the calling administrator.
async fn operate(
    state: State,
    tenant: Tenant,
    id: web::Path<String>,
    credentials: SessionCredentials,
    client: ClientInfo,
    req: HttpRequest,
    operation: AccountOperation,
) -> Answer {
    let admin = credentials.admin(&state, tenant.get(), &req).await?;
    let id = UserId::from_subject(&id);
    let ctx = state.ctx();
    let (user, after) = change_account(
        ctx,
        tenant.get(),
        Some(&admin.user),
        &id,
        operation,
        client.client(),
    )
    .await?;
    let body = AccountOut::new(&user.id, &after, ctx.clock.now());
    Ok(answer::no_store(HttpResponse::Ok().json(body)))
}

/// `POST /admin/users/{id}/lock`.
#[utoipa::path(
    post,
    path = "/admin/users/{id}/lock",
    tag = crate::openapi::tag::ADMIN,
    summary = "Lock an account until an administrator unlocks it (ADMIN_ROLE only)",
    description = "A locked account answers every password like a wrong one (401 \
        `invalid_credentials`). 409 `self_modification` for the caller's own account; 501 \
        `not_supported` without the state store.",
    params(("id" = String, Path, description = "The user's id.")),
    security(("bearer" = []), ("session" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The account's state.", body = AccountOut),
        crate::openapi::errors::AdminAccount,
    ),
)]
pub async fn lock(
    state: State,
    tenant: Tenant,
    id: web::Path<String>,
    credentials: SessionCredentials,
    client: ClientInfo,
    req: HttpRequest,
) -> Answer {
    operate(
        state,
        tenant,
        id,
        credentials,
        client,
        req,
        AccountOperation::Lock,
    )
    .await
}

/// `POST /admin/users/{id}/unlock`.
#[utoipa::path(
    post,
    path = "/admin/users/{id}/unlock",
    tag = crate::openapi::tag::ADMIN,
    summary = "Lift an account's lock and clear its failed logins (ADMIN_ROLE only)",
    description = "501 `not_supported` without the state store.",
    params(("id" = String, Path, description = "The user's id.")),
    security(("bearer" = []), ("session" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The account's state.", body = AccountOut),
        crate::openapi::errors::AdminAccount,
    ),
)]
pub async fn unlock(
    state: State,
    tenant: Tenant,
    id: web::Path<String>,
    credentials: SessionCredentials,
    client: ClientInfo,
    req: HttpRequest,
) -> Answer {
    operate(
        state,
        tenant,
        id,
        credentials,
        client,
        req,
        AccountOperation::Unlock,
    )
    .await
}

/// `POST /admin/users/{id}/archive`.
#[utoipa::path(
    post,
    path = "/admin/users/{id}/archive",
    tag = crate::openapi::tag::ADMIN,
    summary = "Archive a user: no sign-in, refresh, reset or invite; sessions end (ADMIN_ROLE only)",
    description = "Nothing is deleted; `/restore` brings the user back as they were. 409 \
        `self_modification` for the caller's own account; 501 `not_supported` without the \
        state store.",
    params(("id" = String, Path, description = "The user's id.")),
    security(("bearer" = []), ("session" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The account's state.", body = AccountOut),
        crate::openapi::errors::AdminAccount,
    ),
)]
pub async fn archive(
    state: State,
    tenant: Tenant,
    id: web::Path<String>,
    credentials: SessionCredentials,
    client: ClientInfo,
    req: HttpRequest,
) -> Answer {
    operate(
        state,
        tenant,
        id,
        credentials,
        client,
        req,
        AccountOperation::Archive,
    )
    .await
}

/// `POST /admin/users/{id}/restore`.
#[utoipa::path(
    post,
    path = "/admin/users/{id}/restore",
    tag = crate::openapi::tag::ADMIN,
    summary = "Bring an archived user back as they were (ADMIN_ROLE only)",
    description = "501 `not_supported` without the state store.",
    params(("id" = String, Path, description = "The user's id.")),
    security(("bearer" = []), ("session" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The account's state.", body = AccountOut),
        crate::openapi::errors::AdminAccount,
    ),
)]
pub async fn restore(
    state: State,
    tenant: Tenant,
    id: web::Path<String>,
    credentials: SessionCredentials,
    client: ClientInfo,
    req: HttpRequest,
) -> Answer {
    operate(
        state,
        tenant,
        id,
        credentials,
        client,
        req,
        AccountOperation::Restore,
    )
    .await
}
