//! `GET /admin/audit` (SPEC §11): the audit log of the caller's tenant, newest first, a page at
//! a time by cursor, filtered by user, event, and time. 501 `not_supported` while
//! `AUDIT_ENABLED` is off (the events then go to the log only).

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use authura_core::state::{AuditQuery, StoredAuditEvent};
use authura_core::types::format_time;
use authura_core::{CoreError, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::answer::{self, Answer};
use crate::error::ApiError;
use crate::extract::{State, Tenant};
use crate::principal::SessionCredentials;
use crate::routes::resource;

/// Events per page by default, and at most.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 200;

/// Registers the route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/admin/audit", Method::GET, list));
}

/// The query of `GET /admin/audit`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only the events about this user.
    user_id: Option<String>,
    /// Only events of this name (`login.failed`, `user.archived`, …).
    event: Option<String>,
    /// Only events at or after this time (RFC 3339).
    since: Option<String>,
    /// Only events before this time (RFC 3339).
    until: Option<String>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
    /// Events per page, 1 to 200 (50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// One event of the audit log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEventOut {
    /// The event's id (ids grow with time).
    pub id: String,
    /// When it happened (RFC 3339, microseconds).
    pub at: String,
    /// Its name (SPEC §11).
    pub event: String,
    /// The tenant; `null` without multi-tenancy.
    #[schema(required = true)]
    pub tenant_id: Option<String>,
    /// The user it concerns, when known.
    #[schema(required = true)]
    pub user_id: Option<String>,
    /// Who did it, when not the user (an administrator).
    #[schema(required = true)]
    pub actor_id: Option<String>,
    /// The client's address.
    #[schema(required = true)]
    pub ip: Option<String>,
    /// The client's `User-Agent`.
    #[schema(required = true)]
    pub user_agent: Option<String>,
    /// What else there is to say; never a secret.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl From<StoredAuditEvent> for AuditEventOut {
    fn from(stored: StoredAuditEvent) -> Self {
        let e = stored.event;
        AuditEventOut {
            id: stored.id.to_string(),
            at: format_time(&e.at),
            event: e.event,
            tenant_id: e.tenant.map(|t| t.as_str().to_owned()),
            user_id: e.user_id.map(|u| u.to_string()),
            actor_id: e.actor_id.map(|u| u.to_string()),
            ip: e.ip,
            user_agent: e.user_agent,
            detail: e.detail,
        }
    }
}

/// `{"events": […], "next_cursor"}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// The page, newest first.
    pub events: Vec<AuditEventOut>,
    /// The cursor of the next (older) page; `null` on the last.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

fn time(name: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => DateTime::parse_from_rfc3339(v)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| ApiError::invalid_body(format!("{name} is not an RFC 3339 time"))),
    }
}

/// `GET /admin/audit`: a page of the tenant's audit events, newest first.
#[utoipa::path(
    get,
    path = "/admin/audit",
    tag = crate::openapi::tag::ADMIN,
    summary = "Read the audit log, newest first, a page at a time (ADMIN_ROLE only)",
    description = "The events of the request's tenant. A cursor page neither skips nor repeats \
        an event while new ones are written between pages. 501 `not_supported` while \
        `AUDIT_ENABLED` is off.",
    params(AuditParams),
    security(("bearer" = []), ("session" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The page.", body = AuditPage),
        crate::openapi::errors::AdminAudit,
    ),
)]
pub async fn list(
    state: State,
    tenant: Tenant,
    params: Result<web::Query<AuditParams>, actix_web::Error>,
    credentials: SessionCredentials,
    req: HttpRequest,
) -> Answer {
    let params =
        params.map_err(|_| ApiError::invalid_body("the query string could not be read"))?;
    let limit = match params.limit {
        None => DEFAULT_LIMIT,
        Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => return Err(ApiError::invalid_body("limit must be between 1 and 200")),
    };
    let since = time("since", params.since.as_deref())?;
    let until = time("until", params.until.as_deref())?;
    let before_id = match params.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| ApiError::invalid_body("cursor is not a cursor of this list"))?,
        ),
    };
    credentials.admin(&state, tenant.get(), &req).await?;
    let Some(store) = state.audit_store() else {
        return Err(CoreError::Unsupported(
            "the audit log is kept in the state store only with AUDIT_ENABLED=true".into(),
        )
        .into());
    };
    let query = AuditQuery {
        tenant: tenant.0.clone(),
        user_id: params
            .user_id
            .as_deref()
            .filter(|u| !u.is_empty())
            .map(UserId::from_subject),
        event: params.event.clone().filter(|e| !e.is_empty()),
        since,
        until,
        before_id,
        // One more than the page: whether there is a next one.
        limit: limit + 1,
    };
    let mut events = store.list_audit(&query).await.map_err(CoreError::from)?;
    let next_cursor = if events.len() > limit as usize {
        events.truncate(limit as usize);
        events.last().map(|e| e.id.to_string())
    } else {
        None
    };
    let body = AuditPage {
        events: events.into_iter().map(AuditEventOut::from).collect(),
        next_cursor,
    };
    Ok(answer::no_store(HttpResponse::Ok().json(body)))
}
