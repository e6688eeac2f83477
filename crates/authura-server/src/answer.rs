//! The shapes of successful answers (SPEC §3): `U` ([`UserOut`]), `T` (a token pair, written by
//! [`token_pair_answer`]), `{"user": U}`, `{"user": U, "tokens": T}`, and the empty `{}` of the
//! flows that answer nothing ([`empty`], and [`mailed`] for those that send mail).

use actix_web::HttpResponse;
use actix_web::http::header::{self, HeaderValue};
use authura_core::CoreError;
use authura_core::UserId;
use authura_core::flows::UserView;
use authura_core::hook::HookData;
use authura_core::mail::Mail;
use authura_core::token::TokenPair;
use authura_core::types::format_time;
use serde::Serialize;

use crate::error::ApiError;
use crate::state::AppState;

/// What a handler returns.
pub type Answer = Result<HttpResponse, ApiError>;

/// `U`, serialized straight from the record (no intermediate `Value`): fields in alphabetical
/// order, `tenant_id` only with multi-tenancy on, `hook_data` only when a hook answered.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = User)]
pub struct UserOut<'a> {
    email: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    hook_data: Option<&'a HookData>,
    #[schema(value_type = crate::openapi::UserId)]
    id: IdOut<'a>,
    role: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    tenant_id: Option<Option<&'a str>>,
    #[schema(format = DateTime, required = true)]
    verified_at: Option<String>,
}

impl<'a> UserOut<'a> {
    /// `U` for `view`, as `state` shows users (with `tenant_id` when multi-tenancy is on).
    pub fn new(state: &AppState, view: &'a UserView) -> Self {
        let u = &view.user;
        UserOut {
            email: u.email.as_str(),
            hook_data: view.hook_data.as_ref(),
            id: IdOut(&u.id),
            role: u.role.as_str(),
            tenant_id: state
                .multi_tenant()
                .then(|| u.tenant.as_ref().map(|t| t.as_str())),
            verified_at: u.verified_at.as_ref().map(format_time),
        }
    }
}

/// An id as stored: a JSON number or string.
#[derive(Debug)]
pub struct IdOut<'a>(pub &'a UserId);

impl Serialize for IdOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            UserId::Int(n) => s.serialize_i64(*n),
            UserId::Text(t) => s.serialize_str(t),
        }
    }
}

/// `{"user": U}` (`GET /user`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserAnswer<'a> {
    /// The user.
    pub user: UserOut<'a>,
}

/// `{"user": U, "tokens": T}` (`POST /verify-email`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignedInAnswer<'a> {
    /// The new token pair.
    #[schema(value_type = crate::openapi::TokenPair)]
    pub tokens: &'a TokenPair,
    /// The user signed in.
    pub user: UserOut<'a>,
}

/// Queues the mail a flow returned and answers `{}`; a flow's error is answered as it is.
///
/// # Errors
/// The flow's error, as an `ApiError`.
pub fn mailed(state: &AppState, flow: Result<Option<Mail>, CoreError>) -> Answer {
    state.send_mail(flow?);
    Ok(empty())
}

/// The empty answer, `{}`.
pub fn empty() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({}))
}

/// `res` with `Cache-Control: no-store`: answers carrying tokens must not be cached by browsers
/// or proxies.
pub fn no_store(mut res: HttpResponse) -> HttpResponse {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// `T` as a JSON answer, not to be stored. Tokens are compact JWS (base64url and dots), which
/// JSON never escapes, so the body is written directly instead of through serde_json's
/// byte-by-byte escaping: this is every `/refresh` answer. Anything else goes through serde_json.
pub fn token_pair_answer(pair: &TokenPair) -> HttpResponse {
    no_store(
        HttpResponse::Ok()
            .insert_header((
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ))
            .body(token_pair_json(pair)),
    )
}

fn token_pair_json(pair: &TokenPair) -> String {
    // What JSON escapes: `"`, `\` and control characters. Folded without short-circuit so
    // the compiler vectorizes it.
    let plain = |s: &str| {
        !s.bytes().fold(false, |bad, b| {
            bad | (b == b'"') | (b == b'\\') | (b < 0x20)
        })
    };
    let TokenPair {
        access_token,
        refresh_token,
        token_type,
        expires_in,
    } = pair;
    if plain(access_token) && plain(refresh_token) && plain(token_type) {
        let mut json = String::with_capacity(access_token.len() + refresh_token.len() + 96);
        for part in [
            r#"{"access_token":""#,
            access_token,
            r#"","refresh_token":""#,
            refresh_token,
            r#"","token_type":""#,
            token_type,
            r#"","expires_in":"#,
            &expires_in.to_string(),
            "}",
        ] {
            json.push_str(part);
        }
        json
    } else {
        serde_json::to_string(pair).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_pairs_are_written_as_serde_json_writes_them() {
        let mut pair = TokenPair {
            access_token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-_0".into(),
            refresh_token: "a.b.c".into(),
            token_type: "Bearer".into(),
            expires_in: 300,
        };
        let expected = serde_json::to_string(&pair).unwrap();
        assert_eq!(token_pair_json(&pair), expected);
        // Anything JSON would escape goes through serde_json.
        pair.access_token = "a\"b\\c\u{1}".into();
        let expected = serde_json::to_string(&pair).unwrap();
        assert_eq!(token_pair_json(&pair), expected);
        let back: TokenPair = serde_json::from_str(&expected).unwrap();
        assert_eq!(back, pair);
    }
}
