//! The probes and what monitoring reads: `GET /healthz`, `/readyz`, `/metrics`, and
//! `/.well-known/jwks.json`, the public keys that verify access tokens (RFC 7517), so resource
//! servers such as Hasura (`jwk_url`) verify tokens without sharing a secret.

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
        .service(resource("/.well-known/jwks.json", Method::GET, jwks));
}

/// `GET /healthz`: the process answers.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: the backend answers (503 `backend_unavailable` when not).
pub async fn readyz(state: State) -> Answer {
    state.ctx().store.ping().await.map_err(CoreError::from)?;
    Ok(HttpResponse::Ok().json(json!({"status": "ready"})))
}

/// `GET /metrics`: Prometheus's text format; 404 (as for any unknown path) unless
/// `METRICS_ENABLED=true`.
pub async fn metrics(state: State) -> Answer {
    let metrics = state.metrics().ok_or_else(ApiError::not_found)?;
    let text = metrics.render(
        state.mail_stats(),
        state.hash_pool().stats(),
        state.ctx().store.pool_status(),
    );
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(text))
}

/// `GET /.well-known/jwks.json`: the key set, serialized once when the keys were loaded (with
/// HS256 and no previous public keys it is `{"keys":[]}`: secrets are never published), with
/// `Cache-Control: public, max-age=300`.
pub async fn jwks(state: State) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={JWKS_MAX_AGE_SECS}"),
        ))
        .content_type("application/json")
        .body(state.ctx().tokens.jwks_json().to_owned())
}
