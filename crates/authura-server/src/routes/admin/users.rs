//! `/admin/users` (SPEC §11): list, create, show, update and delete users, end a user's
//! sessions, send a reset mail, through core's `flows::admin`, which the `authura user …`
//! subcommands share. The caller is an administrator ([`SessionCredentials::admin`]); reads
//! take a cookie without the CSRF rule, writes follow it.

use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use authura_core::flows::admin::{self, CreateUser, ListUsers, UpdateUser, UserAccount, UsersPage};
use authura_core::types::format_time;
use authura_core::{CoreError, Email, Role, Secret, UserId};
use serde::{Deserialize, Serialize};

use crate::answer::{self, Answer, UserOut};
use crate::error::ApiError;
use crate::extract::{Body, ClientInfo, State, Tenant};
use crate::principal::SessionCredentials;
use crate::routes::{refuse_others, resource};
use crate::state::AppState;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/admin/users")
            .route(web::get().to(list))
            .route(web::head().to(list))
            .route(web::post().to(create))
            .default_service(refuse_others("GET, HEAD, POST")),
    )
    .service(
        web::resource("/admin/users/{id}")
            .route(web::get().to(show))
            .route(web::head().to(show))
            .route(web::patch().to(update))
            .route(web::delete().to(delete))
            .default_service(refuse_others("GET, HEAD, PATCH, DELETE")),
    )
    .service(resource(
        "/admin/users/{id}/sessions",
        Method::DELETE,
        end_sessions,
    ))
    .service(resource(
        "/admin/users/{id}/reset-password",
        Method::POST,
        reset_password,
    ));
}

/// The query of `GET /admin/users`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Matches an email case-insensitively (a part of it), or an id exactly.
    query: Option<String>,
    /// The tenant whose users to list: the request's own (with multi-tenancy on, the tenant
    /// header); another is 403 `forbidden`.
    tenant_id: Option<String>,
    /// The previous page's `next_cursor` (opaque).
    cursor: Option<String>,
    /// Users per page, 1 to 200 (50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<usize>,
}

/// `{"users": [U…], "next_cursor"}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UsersOut<'a> {
    /// The page, in id order.
    pub users: Vec<UserOut<'a>>,
    /// The cursor of the next page; `null` on the last.
    #[schema(required = true)]
    pub next_cursor: Option<&'a str>,
}

/// The account part of `GET /admin/users/{id}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccountSummary {
    /// Whether the account is locked now.
    pub locked: bool,
    /// Whether the account is archived.
    pub archived: bool,
    /// The last successful sign-in, when recorded.
    #[schema(required = true)]
    pub last_login_at: Option<String>,
    /// When the password was last written, when recorded.
    #[schema(required = true)]
    pub password_changed_at: Option<String>,
    /// Live sessions (0 with sessions off).
    pub sessions: usize,
}

/// U plus `"account"`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserAccountOut<'a> {
    #[serde(flatten)]
    #[schema(inline)]
    pub user: UserOut<'a>,
    /// The account's state.
    pub account: AccountSummary,
}

impl<'a> UserAccountOut<'a> {
    /// The answer for `account`, as of `now`.
    pub fn new(state: &AppState, account: &'a UserAccount) -> Self {
        let now = state.ctx().clock.now();
        let s = &account.state;
        UserAccountOut {
            user: UserOut::new(state, &account.user),
            account: AccountSummary {
                locked: s.is_locked(now),
                archived: s.is_archived(),
                last_login_at: s.last_login_at.as_ref().map(format_time),
                password_changed_at: s.password_changed_at.as_ref().map(format_time),
                sessions: account.sessions,
            },
        }
    }
}

/// The body of `POST /admin/users`.
// No `Debug`: it may carry a password.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct CreateBody {
    #[schema(format = Email)]
    email: String,
    /// `DEFAULT_ROLE` when absent.
    role: Option<String>,
    /// A random one when absent (the user sets theirs by a reset or the invite link).
    password: Option<String>,
    /// Whether the address counts as verified (true).
    verified: Option<bool>,
    /// Send the invite mail, whose link sets the password, instead of taking one (false).
    invite: Option<bool>,
    /// Where the invite link points (validated as every `redirect_url`).
    redirect_url: Option<String>,
}

/// The body of `PATCH /admin/users/{id}`: each field changes when present.
// No `Debug`: it may carry a password.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct UpdateBody {
    #[schema(format = Email)]
    email: Option<String>,
    role: Option<String>,
    /// `true` verifies the address; `false` is refused for a verified one.
    verified: Option<bool>,
    /// The new password (policy and history apply; the user's sessions end).
    password: Option<String>,
}

/// The body of `POST /admin/users/{id}/reset-password` (may be empty).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct ResetBody {
    /// Where the link points (validated as every `redirect_url`).
    redirect_url: Option<String>,
}

/// `GET /admin/users`.
#[utoipa::path(
    get,
    path = "/admin/users",
    tag = crate::openapi::tag::ADMIN,
    summary = "List users a page at a time, in id order (ADMIN_ROLE only)",
    description = "Paging by `next_cursor` neither skips nor repeats a user while users are \
        created between pages. 501 `not_supported` when the backend cannot list (an HTTP \
        backend without the optional list endpoint).",
    params(ListParams),
    security(("bearer" = []), ("session" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The page.", body = UsersOut,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        crate::openapi::errors::AdminRead,
    ),
)]
pub async fn list(
    state: State,
    tenant: Tenant,
    params: Result<web::Query<ListParams>, actix_web::Error>,
    credentials: SessionCredentials,
    req: HttpRequest,
) -> Answer {
    let params =
        params.map_err(|_| ApiError::invalid_body("the query string could not be read"))?;
    credentials.admin(&state, tenant.get(), &req).await?;
    if let Some(asked) = params.tenant_id.as_deref().filter(|t| !t.is_empty())
        && Some(asked) != tenant.get().map(|t| t.as_str())
    {
        return Err(CoreError::Forbidden.into());
    }
    let list = ListUsers {
        query: params.query.as_deref(),
        cursor: params.cursor.as_deref(),
        limit: params.limit,
    };
    let UsersPage { users, next_cursor } =
        admin::list_users(state.ctx(), tenant.get(), &list).await?;
    let views: Vec<_> = users
        .into_iter()
        .map(|user| authura_core::flows::UserView {
            user,
            hook_data: None,
        })
        .collect();
    let body = UsersOut {
        users: views.iter().map(|v| UserOut::new(&state, v)).collect(),
        next_cursor: next_cursor.as_deref(),
    };
    Ok(answer::no_store(HttpResponse::Ok().json(body)))
}

/// `POST /admin/users`.
#[utoipa::path(
    post,
    path = "/admin/users",
    tag = crate::openapi::tag::ADMIN,
    summary = "Create a user, or invite them (ADMIN_ROLE only)",
    description = "Hooks and the password policy apply. With `invite`, the invite mail is sent \
        and its link sets the password (`password` is then refused).",
    request_body = CreateBody,
    security(("bearer" = []), ("session" = []), ("session_cookie" = [])),
    responses(
        (status = 201, description = "U.", body = crate::answer::UserOut),
        crate::openapi::errors::AdminWrite,
    ),
)]
pub async fn create(
    state: State,
    tenant: Tenant,
    body: Body<CreateBody>,
    credentials: SessionCredentials,
    client: ClientInfo,
    req: HttpRequest,
) -> Answer {
    let Body(body) = body;
    // Who asks before what they ask for: an unauthenticated caller learns nothing about the
    // body's fields.
    let admin = credentials.admin(&state, tenant.get(), &req).await?;
    let email = Email::parse(&body.email)?;
    let role = body.role.as_deref().map(Role::parse).transpose()?;
    let new = CreateUser {
        email,
        role,
        password: body.password.map(Secret::new),
        verified: body.verified.unwrap_or(true),
        invite: body.invite.unwrap_or(false),
        redirect_url: body.redirect_url.as_deref(),
    };
    let actor = admin.actor(&client);
    let (view, mail) = admin::create_user(state.ctx(), tenant.get(), actor, new).await?;
    state.send_mail(mail);
    Ok(answer::no_store(
        HttpResponse::build(StatusCode::CREATED).json(UserOut::new(&state, &view)),
    ))
}

/// `GET /admin/users/{id}`.
#[utoipa::path(
    get,
    path = "/admin/users/{id}",
    tag = crate::openapi::tag::ADMIN,
    summary = "A user and their account's state (ADMIN_ROLE only)",
    params(("id" = String, Path, description = "The user's id.")),
    security(("bearer" = []), ("session" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "U plus `account`.", body = UserAccountOut,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        crate::openapi::errors::AdminRead,
    ),
)]
pub async fn show(
    state: State,
    tenant: Tenant,
    id: web::Path<String>,
    credentials: SessionCredentials,
    req: HttpRequest,
) -> Answer {
    credentials.admin(&state, tenant.get(), &req).await?;
    let account = admin::show_user(state.ctx(), tenant.get(), &UserId::from_subject(&id)).await?;
    Ok(answer::no_store(
        HttpResponse::Ok().json(UserAccountOut::new(&state, &account)),
    ))
}

/// `PATCH /admin/users/{id}`.
#[utoipa::path(
    patch,
    path = "/admin/users/{id}",
    tag = crate::openapi::tag::ADMIN,
    summary = "Change a user's email, role, verification or password (ADMIN_ROLE only)",
    description = "Hooks and the password policy (with history) apply. A password or email \
        change ends the user's sessions and revokes their refresh tokens. 409 \
        `self_modification` for a change of the caller's own role away from ADMIN_ROLE.",
    params(("id" = String, Path, description = "The user's id.")),
    request_body = UpdateBody,
    security(("bearer" = []), ("session" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "U.", body = crate::answer::UserOut),
        crate::openapi::errors::AdminWrite,
    ),
)]
pub async fn update(
    state: State,
    tenant: Tenant,
    id: web::Path<String>,
    body: Body<UpdateBody>,
    credentials: SessionCredentials,
    client: ClientInfo,
    req: HttpRequest,
) -> Answer {
    let Body(body) = body;
    let admin = credentials.admin(&state, tenant.get(), &req).await?;
    let update = UpdateUser {
        email: body.email.as_deref().map(Email::parse).transpose()?,
        role: body.role.as_deref().map(Role::parse).transpose()?,
        verified: body.verified,
        password: body.password.map(Secret::new),
    };
    let actor = admin.actor(&client);
    let id = UserId::from_subject(&id);
    let view = admin::update_user(state.ctx(), tenant.get(), actor, &id, update).await?;
    Ok(answer::no_store(
        HttpResponse::Ok().json(UserOut::new(&state, &view)),
    ))
}

/// `DELETE /admin/users/{id}`.
#[utoipa::path(
    delete,
    path = "/admin/users/{id}",
    tag = crate::openapi::tag::ADMIN,
    summary = "Delete a user with their sessions, permit and account state (ADMIN_ROLE only)",
    description = "409 `self_modification` for the caller's own account; 501 `not_supported` \
        when the backend cannot delete.",
    params(("id" = String, Path, description = "The user's id.")),
    security(("bearer" = []), ("session" = []), ("session_cookie" = [])),
    responses(
        (status = 204, description = "Deleted."),
        crate::openapi::errors::AdminWrite,
    ),
)]
pub async fn delete(
    state: State,
    tenant: Tenant,
    id: web::Path<String>,
    credentials: SessionCredentials,
    client: ClientInfo,
    req: HttpRequest,
) -> Answer {
    let admin = credentials.admin(&state, tenant.get(), &req).await?;
    let actor = admin.actor(&client);
    let id = UserId::from_subject(&id);
    admin::delete_user(
        state.ctx(),
        tenant.get(),
        actor,
        &id,
        state.state_store().map(|s| &**s),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /admin/users/{id}/sessions`.
#[utoipa::path(
    delete,
    path = "/admin/users/{id}/sessions",
    tag = crate::openapi::tag::ADMIN,
    summary = "End every session of a user (ADMIN_ROLE only)",
    description = "Their refresh tokens stop working with them. 501 `not_supported` while \
        sessions are off (`SESSIONS_ENABLED`).",
    params(("id" = String, Path, description = "The user's id.")),
    security(("bearer" = []), ("session" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "`{}`.", body = crate::openapi::Empty),
        crate::openapi::errors::AdminWrite,
    ),
)]
pub async fn end_sessions(
    state: State,
    tenant: Tenant,
    id: web::Path<String>,
    credentials: SessionCredentials,
    client: ClientInfo,
    req: HttpRequest,
) -> Answer {
    let admin = credentials.admin(&state, tenant.get(), &req).await?;
    let actor = admin.actor(&client);
    let id = UserId::from_subject(&id);
    admin::end_user_sessions(state.ctx(), tenant.get(), actor, &id).await?;
    Ok(answer::empty())
}

/// `POST /admin/users/{id}/reset-password`.
#[utoipa::path(
    post,
    path = "/admin/users/{id}/reset-password",
    tag = crate::openapi::tag::ADMIN,
    summary = "Send a user the reset-password mail (ADMIN_ROLE only)",
    description = "The body may be empty.",
    params(("id" = String, Path, description = "The user's id.")),
    request_body = ResetBody,
    security(("bearer" = []), ("session" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "`{}`; the mail is sent.", body = crate::openapi::Empty),
        crate::openapi::errors::AdminWrite,
    ),
)]
pub async fn reset_password(
    state: State,
    tenant: Tenant,
    id: web::Path<String>,
    body: Body<ResetBody>,
    credentials: SessionCredentials,
    req: HttpRequest,
) -> Answer {
    credentials.admin(&state, tenant.get(), &req).await?;
    let id = UserId::from_subject(&id);
    let mail =
        admin::send_reset(state.ctx(), tenant.get(), &id, body.redirect_url.as_deref()).await;
    answer::mailed(&state, mail.map(Some))
}
