//! The request log: one line per request (method, path, client, status, time; never the query,
//! which may carry a token), and the request counters of `/metrics`.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

use crate::middleware::state_ref;
use crate::state::AppState;

/// Logs the request once answered and counts it for `/metrics` when metrics are on. The probes
/// log at DEBUG only.
///
/// # Errors
/// Only what the inner service returns.
pub async fn request_log(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let start = Instant::now();
    crate::pacing::mark_reached(&req);
    let (method, path) = (req.method().clone(), req.path().to_owned());
    // The client's address is looked up only when a line that shows it will be written.
    let client = if tracing::enabled!(tracing::Level::INFO) {
        state_ref(&req)
            .and_then(|s| s.client_ip(req.request()))
            .map(|ip| ip.to_string())
            .unwrap_or_default()
    } else {
        String::new()
    };
    let probe = path == "/healthz" || path == "/readyz";
    if !probe {
        tracing::debug!(%method, %path, %client, "request started");
    }
    let res = next.call(req).await;
    let status = match &res {
        Ok(r) => r.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    let elapsed = start.elapsed();
    // The state, borrowed from the answered request (the request itself is not cloned: actix
    // needs it unshared while routing). Every route and middleware of Authura answers errors as
    // responses, so an `Err` here (which has no request to read) does not occur in practice.
    if let Ok(r) = &res
        && let Some(metrics) = r
            .request()
            .app_data::<web::Data<AppState>>()
            .and_then(|s| s.metrics())
    {
        metrics.observe(&path, status, elapsed);
    }
    let ms = elapsed.as_secs_f64() * 1000.0;
    if probe {
        tracing::debug!(%method, %path, status, ms, "request");
    } else {
        tracing::info!(%method, %path, %client, status, ms, "request");
    }
    res.map(ServiceResponse::map_into_boxed_body)
}
