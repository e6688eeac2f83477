//! Role groups and permits over HTTP (SPEC §8a): `GET/POST /rolegroups`,
//! `GET/PUT/DELETE /rolegroups/{id}`, `GET/PUT /permits/{user_id}`. Served with sessions on
//! (the state store holds groups and permits); callers are administrators, as under `/admin`
//! (a Bearer token or a session of an `ADMIN_ROLE` user; others 403 `forbidden`). The work is
//! [`crate::permits`]', which the `authura group` and `authura permit` commands share.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use authura_core::UserId;

use crate::answer::{self, Answer};
use crate::extract::{Body, ClientInfo, State, Tenant};
use crate::permits::{
    self, GroupIn, GroupOut, GroupsOut, PermitIn, PermitOut, group_out, parse_group_id, permit_out,
};
use crate::principal::SessionCredentials;
use crate::routes::refuse_others;

/// Registers the routes (only when sessions are on: see [`crate::routes::app`]).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/rolegroups")
            .route(web::get().to(list_groups))
            .route(web::head().to(list_groups))
            .route(web::post().to(create_group))
            .default_service(refuse_others("GET, HEAD, POST")),
    )
    .service(
        web::resource("/rolegroups/{id}")
            .route(web::get().to(get_group))
            .route(web::head().to(get_group))
            .route(web::put().to(update_group))
            .route(web::delete().to(delete_group))
            .default_service(refuse_others("GET, HEAD, PUT, DELETE")),
    )
    .service(
        web::resource("/permits/{user_id}")
            .route(web::get().to(get_permit))
            .route(web::head().to(get_permit))
            .route(web::put().to(set_permit))
            .default_service(refuse_others("GET, HEAD, PUT")),
    );
}

/// `GET /rolegroups`.
#[utoipa::path(
    get,
    path = "/rolegroups",
    tag = crate::openapi::tag::ADMIN,
    summary = "Every role group (ADMIN_ROLE only; sessions on)",
    description = "`{\"groups\": [{\"id\", \"name\", \"permissions\"}…]}`, ascending by id; \
        with `PERMISSION_NAMES` each group also has `permission_names`.",
    security(("bearer" = []), ("session" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The groups.", body = GroupsOut),
        crate::openapi::errors::PermitRead,
    ),
)]
pub async fn list_groups(
    state: State,
    tenant: Tenant,
    credentials: SessionCredentials,
    req: HttpRequest,
) -> Answer {
    credentials.admin(&state, tenant.get(), &req).await?;
    let groups = permits::list_groups(&state).await?;
    let body = GroupsOut {
        groups: groups.iter().map(|g| group_out(&state, g)).collect(),
    };
    Ok(answer::no_store(HttpResponse::Ok().json(body)))
}

/// `POST /rolegroups`.
#[utoipa::path(
    post,
    path = "/rolegroups",
    tag = crate::openapi::tag::ADMIN,
    summary = "Create a role group (ADMIN_ROLE only; sessions on)",
    description = "`name` (non-empty, no white space around it, at most 128 characters, no \
        control characters; unique and case-sensitive) and `permissions` (numbers 0–65535, or \
        names from `PERMISSION_NAMES`; default none). 201 the group, with a new id (ids are \
        never reused); 409 `name_taken`; 400 `invalid_body` for a bad name or permission.",
    request_body = GroupIn,
    security(("bearer" = []), ("session" = []), ("session_cookie" = [])),
    responses(
        (status = 201, description = "The group.", body = GroupOut),
        crate::openapi::errors::PermitWrite,
    ),
)]
pub async fn create_group(
    state: State,
    tenant: Tenant,
    credentials: SessionCredentials,
    client: ClientInfo,
    req: HttpRequest,
    Body(input): Body<GroupIn>,
) -> Answer {
    let admin = credentials.admin(&state, tenant.get(), &req).await?;
    let actor = admin.permit_actor(&client);
    let group = permits::create_group(&state, &input, actor).await?;
    Ok(answer::no_store(
        HttpResponse::build(StatusCode::CREATED).json(group_out(&state, &group)),
    ))
}

/// `GET /rolegroups/{id}`.
#[utoipa::path(
    get,
    path = "/rolegroups/{id}",
    tag = crate::openapi::tag::ADMIN,
    summary = "One role group (ADMIN_ROLE only; sessions on)",
    params(("id" = u32, Path, description = "The group's id.")),
    security(("bearer" = []), ("session" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The group.", body = GroupOut),
        crate::openapi::errors::PermitRead,
    ),
)]
pub async fn get_group(
    state: State,
    tenant: Tenant,
    credentials: SessionCredentials,
    req: HttpRequest,
    id: web::Path<String>,
) -> Answer {
    credentials.admin(&state, tenant.get(), &req).await?;
    let group = permits::find_group(&state, parse_group_id(&id)?).await?;
    Ok(answer::no_store(
        HttpResponse::Ok().json(group_out(&state, &group)),
    ))
}

/// `PUT /rolegroups/{id}`.
#[utoipa::path(
    put,
    path = "/rolegroups/{id}",
    tag = crate::openapi::tag::ADMIN,
    summary = "Replace a role group's name and/or permissions (ADMIN_ROLE only; sessions on)",
    description = "What the body gives is replaced; what it leaves out stays. Every session of \
        a user holding the group sees the change at `/check` at once (on PostgreSQL, on every \
        instance within a second).",
    params(("id" = u32, Path, description = "The group's id.")),
    request_body = GroupIn,
    security(("bearer" = []), ("session" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The group as it is now.", body = GroupOut),
        crate::openapi::errors::PermitWrite,
    ),
)]
pub async fn update_group(
    state: State,
    tenant: Tenant,
    credentials: SessionCredentials,
    client: ClientInfo,
    req: HttpRequest,
    id: web::Path<String>,
    Body(input): Body<GroupIn>,
) -> Answer {
    let admin = credentials.admin(&state, tenant.get(), &req).await?;
    let actor = admin.permit_actor(&client);
    let group = permits::update_group(&state, parse_group_id(&id)?, &input, actor).await?;
    Ok(answer::no_store(
        HttpResponse::Ok().json(group_out(&state, &group)),
    ))
}

/// `DELETE /rolegroups/{id}`.
#[utoipa::path(
    delete,
    path = "/rolegroups/{id}",
    tag = crate::openapi::tag::ADMIN,
    summary = "Delete a role group (ADMIN_ROLE only; sessions on)",
    description = "The group leaves every permit that held it, at once. 200 `{}`.",
    params(("id" = u32, Path, description = "The group's id.")),
    security(("bearer" = []), ("session" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "Deleted: `{}`.", body = Object),
        crate::openapi::errors::PermitDelete,
    ),
)]
pub async fn delete_group(
    state: State,
    tenant: Tenant,
    credentials: SessionCredentials,
    client: ClientInfo,
    req: HttpRequest,
    id: web::Path<String>,
) -> Answer {
    let admin = credentials.admin(&state, tenant.get(), &req).await?;
    let actor = admin.permit_actor(&client);
    permits::delete_group(&state, parse_group_id(&id)?, actor).await?;
    Ok(answer::no_store(
        HttpResponse::Ok().json(serde_json::json!({})),
    ))
}

/// `GET /permits/{user_id}`.
#[utoipa::path(
    get,
    path = "/permits/{user_id}",
    tag = crate::openapi::tag::ADMIN,
    summary = "A user's permit (ADMIN_ROLE only; sessions on)",
    description = "`{\"user_id\", \"groups\": [{\"id\", \"name\"}], \"permissions\", \
        \"permit\"}`: the groups that exist (a deleted group is skipped), the union of their \
        permissions, and the Authaus permit blob in standard base64. 404 `not_found` for an \
        unknown user.",
    params(("user_id" = String, Path, description = "The user's id.")),
    security(("bearer" = []), ("session" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The permit.", body = PermitOut),
        crate::openapi::errors::PermitRead,
    ),
)]
pub async fn get_permit(
    state: State,
    tenant: Tenant,
    credentials: SessionCredentials,
    req: HttpRequest,
    user_id: web::Path<String>,
) -> Answer {
    credentials.admin(&state, tenant.get(), &req).await?;
    let id = UserId::from_subject(&user_id);
    let (user, access) = permits::show_permit(&state, tenant.get(), &id).await?;
    Ok(answer::no_store(
        HttpResponse::Ok().json(permit_out(&state, &user.id, &access)),
    ))
}

/// `PUT /permits/{user_id}`.
#[utoipa::path(
    put,
    path = "/permits/{user_id}",
    tag = crate::openapi::tag::ADMIN,
    summary = "Replace a user's permit (ADMIN_ROLE only; sessions on)",
    description = "`groups`: ids (numbers) or exact names (strings); `[]` clears the permit. \
        The user's live sessions see the new permit at `/check` at once (on PostgreSQL, on \
        every instance within a second); none of them ends. 404 `not_found` for an unknown \
        user or group.",
    params(("user_id" = String, Path, description = "The user's id.")),
    request_body = PermitIn,
    security(("bearer" = []), ("session" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The new permit.", body = PermitOut),
        crate::openapi::errors::PermitSet,
    ),
)]
pub async fn set_permit(
    state: State,
    tenant: Tenant,
    credentials: SessionCredentials,
    client: ClientInfo,
    req: HttpRequest,
    user_id: web::Path<String>,
    Body(input): Body<PermitIn>,
) -> Answer {
    let admin = credentials.admin(&state, tenant.get(), &req).await?;
    let actor = admin.permit_actor(&client);
    let id = UserId::from_subject(&user_id);
    let (user, access) =
        permits::set_permit(&state, tenant.get(), &id, &input.groups, actor).await?;
    Ok(answer::no_store(
        HttpResponse::Ok().json(permit_out(&state, &user.id, &access)),
    ))
}
