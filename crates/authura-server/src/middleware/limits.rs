//! The checks before routing: the per-client rate limit (429 `rate_limited`) and the host check
//! against `ALLOWED_HOSTS` (400 `host_not_allowed`). The probes and `/metrics` are exempt from
//! both; a CORS preflight is not counted, nor is `/check` without Basic credentials.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

use crate::error::ApiError;
use crate::middleware::{exempt, is_preflight, state_ref, unlimited_check};

/// Takes a token from the client's bucket; an empty bucket is 429 `rate_limited` with
/// `Retry-After`.
///
/// # Errors
/// Only what the inner service returns.
pub async fn rate_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let wait = state_ref(&req)
        .filter(|state| {
            state.limiter().is_enabled()
                && !exempt(&req)
                && !is_preflight(&req)
                && !unlimited_check(&req)
        })
        .and_then(|state| {
            let client = state.client_ip(req.request())?;
            state.limiter().check(client, Instant::now()).err()
        });
    if let Some(wait) = wait {
        return Ok(req.error_response(ApiError::rate_limited(wait)));
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_boxed_body)
}

/// With `ALLOWED_HOSTS` set, refuses a host (read from `HOST_HEADER`) not in the list: 400
/// `host_not_allowed`.
///
/// # Errors
/// Only what the inner service returns.
pub async fn host_check(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let refused = !exempt(&req)
        && state_ref(&req).is_some_and(|state| {
            state.allowed_hosts().is_some_and(|allowed| {
                let host = req
                    .headers()
                    .get(state.host_header())
                    .and_then(|v| v.to_str().ok())
                    .map(|h| h.trim().to_ascii_lowercase());
                !host.is_some_and(|h| allowed.contains(&h))
            })
        });
    if refused {
        return Ok(req.error_response(ApiError::host_not_allowed()));
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_boxed_body)
}
