//! CORS (actix-cors): `EXTERNAL_URL`'s origin and `ALLOWED_ORIGINS` may call the API from a
//! browser; other origins get no CORS headers, and are not refused. The same matching decides
//! the session cookie's CSRF rule ([`trusted_origin`]), without `*`.

use actix_web::http::{Method, header};

use crate::state::AppState;

/// The CORS layer for `state`'s origins.
pub fn cors(state: &AppState) -> actix_cors::Cors {
    let origins = state.allowed_origins().to_vec();
    let own = state.external_origin().to_owned();
    actix_cors::Cors::default()
        .allowed_origin_fn(move |origin, _| {
            let origin = origin.to_str().unwrap_or("").to_ascii_lowercase();
            origin == own
                || origins
                    .iter()
                    .any(|allowed| origin_matches(allowed, &origin))
        })
        // DELETE for the session endpoints (`DELETE /session`, `/sessions`, `/sessions/{id}`).
        .allowed_methods([Method::GET, Method::POST, Method::DELETE])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
        .allow_any_header()
        .expose_headers([header::RETRY_AFTER, header::WWW_AUTHENTICATE])
        .max_age(3600)
        // A disallowed origin gets no CORS headers (the browser then blocks it); the request is
        // not refused, so same-site form posts and non-browser clients are unaffected.
        .block_on_origin_mismatch(false)
}

/// Whether `origin` (an `Origin` header's value, or the origin of a `Referer`) may make a
/// state-changing request authenticated by the session cookie alone (SPEC §8's CSRF rule):
/// `EXTERNAL_URL`'s origin, or one listed in `ALLOWED_ORIGINS`. A `*` entry does not count
/// here: it opens the API to scripts of any site for reading, and must not let any site end a
/// user's sessions with the cookie their browser attaches. `null` (an opaque origin) never
/// matches.
pub(crate) fn trusted_origin(state: &AppState, origin: &str) -> bool {
    let origin = origin.trim().to_ascii_lowercase();
    origin != "null"
        && (origin == state.external_origin()
            || state
                .allowed_origins()
                .iter()
                .any(|allowed| allowed != "*" && origin_matches(allowed, &origin)))
}

/// `*` matches any origin; an entry without a scheme matches http and https.
fn origin_matches(allowed: &str, origin: &str) -> bool {
    allowed == "*"
        || allowed == origin
        || (!allowed.contains("://")
            && (origin.strip_prefix("http://") == Some(allowed)
                || origin.strip_prefix("https://") == Some(allowed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert!(origin_matches("*", "https://x.example"));
        assert!(origin_matches("app.example.com", "http://app.example.com"));
        assert!(origin_matches("app.example.com", "https://app.example.com"));
        assert!(!origin_matches(
            "app.example.com",
            "https://app.example.com.evil.io"
        ));
        assert!(origin_matches(
            "https://app.example.com",
            "https://app.example.com"
        ));
        assert!(!origin_matches(
            "https://app.example.com",
            "http://app.example.com"
        ));
        assert!(origin_matches("localhost:9000", "http://localhost:9000"));
    }
}
