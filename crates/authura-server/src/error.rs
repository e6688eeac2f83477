//! `ApiError`: the one place a status code and an error code are chosen (SPEC §3a). A 500 carries
//! only a correlation id that is also in the log; internal detail never reaches a client.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use authura_core::CoreError;
use serde_json::{Value, json};

/// An error as the client sees it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Extra fields in the body (`rules` for `weak_password`).
    extra: Option<(&'static str, Value)>,
    retry_after: Option<u64>,
    /// `Allow`, for 405 (boxed: it is rare, and errors travel in `Result`s).
    allow: Option<Box<HeaderValue>>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: None,
            retry_after: None,
            allow: None,
        }
    }

    /// 400 `invalid_body`.
    pub fn invalid_body(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_body", message)
    }

    /// 400 `invalid_code`: `POST /oauth/token` with a one-time code that is unknown, used or
    /// expired.
    pub fn invalid_code() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_code",
            "the sign-in code is unknown, used or expired",
        )
    }

    /// 502 `backend_error`: an OAuth provider that cannot be asked where to send the browser
    /// (its discovery document is unreachable or for another issuer). The detail is logged.
    pub fn provider_unavailable(detail: &str) -> Self {
        tracing::error!(error = %detail, "OAuth provider failed");
        Self::new(
            StatusCode::BAD_GATEWAY,
            "backend_error",
            "the sign-in provider could not be reached",
        )
    }

    /// 400 `invalid_action` (`/form`).
    pub fn invalid_action(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_action", message)
    }

    /// 400 `host_not_allowed`.
    pub fn host_not_allowed() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "host_not_allowed",
            "this host is not served here",
        )
    }

    /// 400 `cors_refused`: a CORS preflight from an origin, or for a method or header, that is
    /// not allowed. `reason` is the CORS layer's own sentence.
    pub fn cors_refused(reason: &str) -> Self {
        let reason = reason.trim();
        Self::new(
            StatusCode::BAD_REQUEST,
            "cors_refused",
            if reason.is_empty() {
                "this cross-origin request is not allowed".to_owned()
            } else {
                format!("this cross-origin request is not allowed: {reason}")
            },
        )
    }

    /// 400 `tenant_required`.
    pub fn tenant_required(header: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "tenant_required",
            format!("a tenant is required: send the {header} header"),
        )
    }

    /// 400 `tenant_required`: the tenant header is there but is not one valid tenant (not
    /// visible ASCII, empty, too long, or sent more than once). Never replaced by the host's.
    pub fn tenant_invalid(header: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "tenant_required",
            format!("the {header} header must be sent once, with a valid tenant id"),
        )
    }

    /// 400 `captcha_failed`.
    pub fn captcha_failed() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "captcha_failed",
            "the captcha is missing or was not solved",
        )
    }

    /// 503 `captcha_unavailable`.
    pub fn captcha_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "captcha_unavailable",
            "the captcha could not be checked; try again",
        )
    }

    /// 400 `invalid_permission` (`/check?permission=`): `name` names no known permission.
    pub fn invalid_permission(name: &str) -> Self {
        let shown: String = name.chars().take(64).collect();
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_permission",
            format!("{shown:?} is not a known permission"),
        )
    }

    /// 403 `forbidden`: a state-changing request authenticated by the session cookie alone,
    /// without a trusted `Origin` or `Referer` (SPEC §8's CSRF rule).
    pub fn csrf_refused() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "a request authenticated by the session cookie must come from a trusted origin",
        )
    }

    /// 404 `not_found`.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
    }

    /// 404 `not_found` for a thing that does not exist (a role group, a user), saying which.
    pub fn no_such(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    /// 409 `name_taken`: a role group of that name exists (SPEC §8a).
    pub fn name_taken() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "name_taken",
            "a role group of that name exists",
        )
    }

    /// 405 `method_not_allowed`, with the `Allow` header RFC 9110 requires: `allow` lists the
    /// methods the path does accept.
    pub fn method_not_allowed(allow: &str) -> Self {
        let mut e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this endpoint does not accept that method",
        );
        e.allow = HeaderValue::from_str(allow).ok().map(Box::new);
        e
    }

    /// 413 `body_too_large`.
    pub fn body_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is larger than {} KiB", limit / 1024),
        )
    }

    /// 408 `invalid_body`: the body did not arrive within `REQUEST_TIMEOUT` (or the server is
    /// stopping). SPEC §3a has no code of its own for it; the body is what is at fault, so it
    /// is `invalid_body`, with the status that tells a client the request was not processed.
    /// The connection is closed after it: what is left of the body is never read.
    pub fn request_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_body",
            "the request body did not arrive in time",
        )
    }

    /// 415 `invalid_body`: the body has a `Content-Encoding` (gzip, br, …) this service does
    /// not decode. SPEC §3a has no code of its own for it; the body is what cannot be read.
    pub fn unsupported_encoding() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_body",
            "the body's Content-Encoding is not supported; send it uncompressed",
        )
    }

    /// 429 `rate_limited` with `Retry-After`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests; slow down",
        );
        e.retry_after = Some(retry_after_secs.max(1));
        e
    }

    /// 500 `internal_error`: logs `detail` with a fresh correlation id and returns only the id.
    pub fn internal(detail: &str) -> Self {
        let id = uuid::Uuid::new_v4();
        tracing::error!(correlation_id = %id, error = %detail, "internal error");
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "something went wrong on our side",
        );
        e.extra = Some(("correlation_id", Value::from(id.to_string())));
        e
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The error code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        use StatusCode as S;
        let msg = e.to_string();
        match e {
            CoreError::InvalidBody(m) => ApiError::invalid_body(m),
            CoreError::InvalidEmail => ApiError::new(S::BAD_REQUEST, "invalid_email", msg),
            CoreError::InvalidTenant => ApiError::new(
                S::BAD_REQUEST,
                "tenant_required",
                "the tenant id is not valid",
            ),
            CoreError::WeakPassword(rules) => {
                let mut e = ApiError::new(S::BAD_REQUEST, "weak_password", msg);
                e.extra = Some((
                    "rules",
                    rules.iter().map(|r| r.as_str()).collect::<Vec<_>>().into(),
                ));
                e
            }
            CoreError::InvalidRedirectUrl => {
                ApiError::new(S::BAD_REQUEST, "invalid_redirect_url", msg)
            }
            CoreError::TokenUsed => ApiError::new(S::BAD_REQUEST, "token_used", msg),
            CoreError::InvalidVerificationToken => {
                ApiError::new(S::BAD_REQUEST, "invalid_verification_token", msg)
            }
            CoreError::InvalidState => ApiError::new(S::BAD_REQUEST, "invalid_state", msg),
            CoreError::InvalidCredentials => {
                ApiError::new(S::UNAUTHORIZED, "invalid_credentials", msg)
            }
            CoreError::InvalidToken => ApiError::new(S::UNAUTHORIZED, "invalid_token", msg),
            CoreError::InvalidSession => ApiError::new(S::UNAUTHORIZED, "invalid_session", msg),
            CoreError::Forbidden => ApiError::new(S::FORBIDDEN, "forbidden", msg),
            CoreError::SignupDisabled => ApiError::new(S::FORBIDDEN, "signup_disabled", msg),
            CoreError::EmailNotVerified => ApiError::new(S::FORBIDDEN, "email_not_verified", msg),
            CoreError::ManagedByDirectory => {
                ApiError::new(S::FORBIDDEN, "managed_by_directory", msg)
            }
            CoreError::EmailTaken => ApiError::new(S::CONFLICT, "email_taken", msg),
            CoreError::BackendUnavailable(detail) => {
                tracing::warn!(error = %detail, "backend unavailable");
                ApiError::new(
                    S::SERVICE_UNAVAILABLE,
                    "backend_unavailable",
                    "the user backend is unavailable; try again",
                )
            }
            CoreError::Backend(detail) => {
                tracing::error!(error = %detail, "backend error");
                ApiError::new(
                    S::BAD_GATEWAY,
                    "backend_error",
                    "the user backend answered with an error",
                )
            }
            CoreError::HookFailed { status, body } => match status {
                Some(s) if (400..500).contains(&s) => ApiError::new(
                    S::from_u16(s).unwrap_or(S::BAD_REQUEST),
                    "hook_failed",
                    body,
                ),
                _ => ApiError::new(S::BAD_GATEWAY, "hook_failed", body),
            },
            CoreError::Overloaded => {
                let mut e = ApiError::new(
                    S::SERVICE_UNAVAILABLE,
                    "overloaded",
                    "the server is busy; try again shortly",
                );
                e.retry_after = Some(1);
                e
            }
            // Today's answer of the per-IP limit: a client need not tell the two apart.
            CoreError::TooManyAttempts { retry_after } => {
                ApiError::rate_limited(retry_after.as_secs())
            }
            CoreError::NotFound => ApiError::new(S::NOT_FOUND, "not_found", msg),
            // The refresh flow answers `InvalidToken` itself; a reuse reaching here is the same.
            CoreError::RefreshReused => ApiError::new(
                S::UNAUTHORIZED,
                "invalid_token",
                CoreError::InvalidToken.to_string(),
            ),
            CoreError::PasswordReused => ApiError::new(S::BAD_REQUEST, "password_reused", msg),
            CoreError::PasswordExpired { reset_token } => {
                let mut e = ApiError::new(S::FORBIDDEN, "password_expired", msg);
                e.extra = Some(("reset_token", reset_token.expose().into()));
                e
            }
            CoreError::CaptchaRequired => ApiError::new(
                S::BAD_REQUEST,
                "captcha_failed",
                "too many failed logins on this account: solve the captcha to sign in",
            ),
            CoreError::SelfModification => ApiError::new(S::CONFLICT, "self_modification", msg),
            CoreError::Unsupported(_) => ApiError::new(S::NOT_IMPLEMENTED, "not_supported", msg),
            CoreError::Internal(detail) => ApiError::internal(&detail),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = json!({"error": self.code, "message": self.message});
        if let (Some((k, v)), Some(obj)) = (&self.extra, body.as_object_mut()) {
            obj.insert((*k).to_owned(), v.clone());
        }
        let mut res = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if let Some(allow) = &self.allow {
            res.insert_header((header::ALLOW, HeaderValue::clone(allow)));
        }
        if self.status == StatusCode::UNAUTHORIZED && self.code == "invalid_token" {
            res.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        if self.status == StatusCode::UNAUTHORIZED && self.code == "invalid_session" {
            res.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Session"),
            ));
        }
        if self.status == StatusCode::REQUEST_TIMEOUT {
            res.force_close();
        }
        res.json(body)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use actix_web::ResponseError as _;
    use authura_core::CoreError;

    use crate::error::ApiError;

    /// The status, code, `Retry-After` and body of a `CoreError` as a client sees it.
    async fn check(e: CoreError, status: u16, code: &str, retry_after: Option<&str>) {
        let api = ApiError::from(e);
        assert_eq!((api.status().as_u16(), api.code()), (status, code));
        let res = api.error_response();
        assert_eq!(
            res.headers()
                .get(actix_web::http::header::RETRY_AFTER)
                .map(|v| v.to_str().unwrap()),
            retry_after,
            "{code}"
        );
        let body = actix_web::body::to_bytes(res.into_body()).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], code);
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    #[tokio::test]
    async fn domain_errors_choose_their_status() {
        check(CoreError::NotFound, 404, "not_found", None).await;
        check(
            CoreError::Unsupported("listing users".into()),
            501,
            "not_supported",
            None,
        )
        .await;
        // A locked account answers as the per-IP limit does (whole seconds, at least one).
        check(
            CoreError::TooManyAttempts {
                retry_after: Duration::from_millis(899_600),
            },
            429,
            "rate_limited",
            Some("899"),
        )
        .await;
        check(
            CoreError::TooManyAttempts {
                retry_after: Duration::from_millis(300),
            },
            429,
            "rate_limited",
            Some("1"),
        )
        .await;
        // A token whose user is gone stays 401.
        check(CoreError::InvalidToken, 401, "invalid_token", None).await;
        check(CoreError::InvalidSession, 401, "invalid_session", None).await;
        assert_eq!(
            ApiError::from(CoreError::TooManyAttempts {
                retry_after: Duration::from_secs(5)
            })
            .to_string(),
            ApiError::rate_limited(5).to_string()
        );
    }
}
