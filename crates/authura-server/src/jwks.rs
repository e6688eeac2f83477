//! `GET /.well-known/jwks.json`: the public keys that verify access tokens (RFC 7517), so resource
//! servers such as Hasura (`jwk_url`) verify tokens without sharing a secret. The document is
//! serialized once, when the keys are loaded; with HS256 and no previous public keys it is
//! `{"keys":[]}` (secrets are never published).

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use crate::app::AppState;

/// How long clients may cache the key set. Short enough that a key added for a rotation is seen
/// within minutes; Hasura refreshes a `jwk_url` by this `max-age`.
pub const MAX_AGE_SECS: u32 = 300;

/// Answers the key set with `Cache-Control: public, max-age=300`.
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
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={MAX_AGE_SECS}"),
        ))
        .content_type("application/json")
        .body(state.ctx.tokens.jwks_json().to_owned())
}
