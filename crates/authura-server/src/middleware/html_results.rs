//! HTML results: for requests preferring HTML (a browser posting a `/form` page), JSON answers,
//! errors included, become small result pages; and a preflight the CORS layer refused gets
//! Authura's error format.

use actix_web::HttpResponse;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use serde_json::Value;

use crate::error::ApiError;
use crate::html;
use crate::middleware::{is_preflight, state_ref};

/// Turns JSON answers into result pages for requests preferring HTML, and refused preflights
/// into 400 `cors_refused`; then adds the browser security headers: `X-Content-Type-Options:
/// nosniff` and `X-Frame-Options: DENY` to every answer, and the `Content-Security-Policy` to
/// every HTML one (the `/form` pages, result pages, HTML errors).
///
/// # Errors
/// Only what the inner service returns.
pub async fn html_results(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let csp = state_ref(&req).map(|s| s.content_security_policy().clone());
    let mut res = results(req, next).await?;
    let headers = res.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let html = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if let (true, Some(csp)) = (html, csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    Ok(res)
}

async fn results(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let preflight = is_preflight(&req);
    let wants_html = html::prefers_html(
        req.headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    );
    let path = req.path().to_owned();
    // No clone of the request may live across `next.call`: the router needs it unshared.
    let res = next.call(req).await?.map_into_boxed_body();
    if preflight && res.status() == StatusCode::BAD_REQUEST {
        return Ok(refused_preflight(res).await);
    }
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !wants_html || !is_json {
        return Ok(res);
    }
    let status = res.status();
    let (http_req, res) = res.into_parts();
    let headers = res.headers().clone();
    let bytes = actix_web::body::to_bytes(res.into_body())
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let mut builder = HttpResponse::build(status);
    for (name, value) in &headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            builder.append_header((name.clone(), value.clone()));
        }
    }
    let page = builder
        .content_type("text/html; charset=utf-8")
        .body(html::result_page(&path, status.as_u16(), &body));
    Ok(ServiceResponse::new(http_req, page))
}

/// A preflight the CORS layer refused (400, plain text) as Authura's error: 400 `cors_refused`.
async fn refused_preflight(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let (http_req, res) = res.into_parts();
    // The layer's body is one short sentence; anything long or unreadable is not repeated.
    let reason = actix_web::body::to_bytes_limited(res.into_body(), 256)
        .await
        .ok()
        .and_then(Result::ok)
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .unwrap_or_default();
    let answer = actix_web::ResponseError::error_response(&ApiError::cors_refused(&reason));
    ServiceResponse::new(http_req, answer)
}
