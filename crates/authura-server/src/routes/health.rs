//! The probes and what monitoring reads: `GET /healthz`, `/readyz`, `/metrics`, and what
//! describes the service: `/.well-known/jwks.json`, the public keys that verify access tokens
//! (RFC 7517), so resource servers such as Hasura (`jwk_url`) verify tokens without sharing a
//! secret, and `/openapi.json`, the API's OpenAPI document (built in [`crate::openapi`]).

use actix_web::http::{Method, header};
use actix_web::{HttpResponse, web};
use authura_core::CoreError;
use serde_json::json;

use crate::answer::Answer;
use crate::error::ApiError;
use crate::extract::State;
use crate::routes::resource;

/// How long clients may cache the key set. Short enough that a key added for a rotation is seen
/// within minutes; Hasura refreshes a `jwk_url` by this `max-age`.
pub const JWKS_MAX_AGE_SECS: u32 = 300;

/// Registers this area's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/healthz", Method::GET, healthz))
        .service(resource("/readyz", Method::GET, readyz))
        .service(resource("/metrics", Method::GET, metrics))
        .service(resource("/.well-known/jwks.json", Method::GET, jwks))
        .service(resource(
            "/openapi.json",
            Method::GET,
            crate::openapi::openapi_json,
        ));
}

/// `GET /healthz`: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = crate::openapi::tag::HEALTH,
    summary = "Liveness: the process runs",
    responses((status = 200, description = "`{\"status\": \"ok\"}`.", body = crate::openapi::Status)),
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: the backend answers, and the state store when one is in use (503
/// `backend_unavailable` when either does not).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = crate::openapi::tag::HEALTH,
    summary = "Readiness: the user backend (and the state store, when in use) answers",
    responses(
        (status = 200, description = "`{\"status\": \"ready\"}`.", body = crate::openapi::Status),
        crate::openapi::errors::Ready,
    ),
)]
pub async fn readyz(state: State) -> Answer {
    state.ctx().store.ping().await.map_err(CoreError::from)?;
    if let Some(sessions) = state.sessions() {
        sessions.store().ping().await.map_err(CoreError::from)?;
    }
    Ok(HttpResponse::Ok().json(json!({"status": "ready"})))
}

/// `GET /metrics`: Prometheus's text format; 404 (as for any unknown path) unless
/// `METRICS_ENABLED=true`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = crate::openapi::tag::HEALTH,
    summary = "Prometheus metrics (with METRICS_ENABLED=true)",
    responses(
        (status = 200, description = "The text exposition format 0.0.4.",
            content((String = "text/plain; version=0.0.4; charset=utf-8"))),
        crate::openapi::errors::Metrics,
    ),
)]
pub async fn metrics(state: State) -> Answer {
    let metrics = state.metrics().ok_or_else(ApiError::not_found)?;
    let text = metrics.render(
        state.mail_stats(),
        state.hash_pool().stats(),
        state.ctx().store.pool_status(),
        state.sessions().map(|s| s.cache().stats()),
        state.audit().is_enabled().then(|| state.audit().stats()),
        state.pacer().map(|p| p.stats()),
    );
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(text))
}

/// `GET /.well-known/jwks.json`: the key set, serialized once when the keys were loaded (with
/// HS256 and no previous public keys it is `{"keys":[]}`: secrets are never published), with
/// `Cache-Control: public, max-age=300`.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = crate::openapi::tag::META,
    summary = "The public keys that verify access tokens (JWKS)",
    responses(
        (status = 200, description = "The key set; `{\"keys\": []}` with HS256 and no previous public keys.",
            body = crate::openapi::Jwks,
            headers(("Cache-Control" = String, description = "`public, max-age=300`."))),
        crate::openapi::errors::Keys,
    ),
)]
pub async fn jwks(state: State) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={JWKS_MAX_AGE_SECS}"),
        ))
        .content_type("application/json")
        .body(state.ctx().tokens.jwks_json().to_owned())
}
