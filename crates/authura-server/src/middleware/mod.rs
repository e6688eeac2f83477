//! The middleware, one file each, that run before the router in SPEC §3's order: the request
//! log (outermost), HTML results, CORS, the rate limit, then the host check.
//! [`crate::routes::app`] stacks them.

use actix_web::dev::ServiceRequest;
use actix_web::http::{Method, header};
use actix_web::web;

use crate::state::AppState;

pub mod cors;
pub mod html_results;
pub mod limits;
pub mod request_log;

/// The probes and the metrics are exempt from the rate limit and the host check.
fn exempt(req: &ServiceRequest) -> bool {
    matches!(req.path(), "/healthz" | "/readyz" | "/metrics")
}

/// `/check` and forward auth: a proxy asks them for every request it serves, so the per-IP
/// limit does not count them, unless they carry Basic credentials (a password guess).
fn unlimited_check(req: &ServiceRequest) -> bool {
    matches!(req.path(), "/check" | "/check/forward-auth")
        && !crate::routes::check::has_basic(req.headers())
}

/// A CORS preflight: `OPTIONS` with `Access-Control-Request-Method`.
fn is_preflight(req: &ServiceRequest) -> bool {
    req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The state, borrowed (middleware read it before passing the request on; no `Arc` clone).
fn state_ref(req: &ServiceRequest) -> Option<&AppState> {
    req.app_data::<web::Data<AppState>>().map(|d| &***d)
}
