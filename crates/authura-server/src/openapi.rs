//! The OpenAPI 3.1 document of the HTTP API, generated from the code and served at
//! `GET /openapi.json`: each handler's `#[utoipa::path]` (path, method, body, success answer and
//! its error set), the wire types' `ToSchema`, and here the error answers of SPEC §3a per route,
//! the Bearer scheme, and what every route shares (JSON or form bodies, HTML pages for browsers).
//! Every route joins [`ApiDoc`]; the route-coverage test in `tests/it/openapi.rs` fails when the
//! app routes a (path, method) the document does not describe, or the reverse.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::openapi::content::Content;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::header::Header;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type,
};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{RefOr, SchemaFormat};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::error::ApiError;

/// The media type `/openapi.json` is answered with: the one the OpenAPI specification
/// registers. Not `application/json`, so a browser opening it sees the document rather than an
/// HTML result page (those replace JSON answers for clients that prefer HTML).
pub const MEDIA_TYPE: &str = "application/vnd.oai.openapi+json;version=3.1";

/// The name of the Bearer security scheme (utoipa's `security(("bearer" = []))` takes only a
/// literal, so the handlers spell it out).
pub const BEARER: &str = "bearer";

/// The name of the `Authorization: Session <key>` security scheme.
pub const SESSION_KEY: &str = "session";

/// The name of the session cookie's security scheme.
pub const SESSION_COOKIE: &str = "session_cookie";

/// The document's tags, one per area of the API.
pub mod tag {
    /// Signing up, verifying, logging in, refreshing, resetting.
    pub const AUTH: &str = "auth";
    /// What a signed-in user does: who am I, change password or email, invite.
    pub const ACCOUNT: &str = "account";
    /// The `/form` pages.
    pub const FORM: &str = "form";
    /// Probes and monitoring.
    pub const HEALTH: &str = "health";
    /// Server-side sessions and the questions proxies ask (`/check`).
    pub const SESSIONS: &str = "sessions";
    /// What describes the service: its public keys and this document.
    pub const META: &str = "meta";
    /// Server-side sessions (only with `SESSIONS_ENABLED=true`).
    pub const SESSION: &str = "session";
    /// Signing in with an OAuth or OpenID provider.
    pub const OAUTH: &str = "oauth";
    /// User administration (`ADMIN_ROLE` only).
    pub const ADMIN: &str = "admin";
}

/// The OpenAPI document: every route of the app, and the schemas their bodies and answers use.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Authura",
        description = "Authura's HTTP API (docs/api.md). Request bodies are JSON or \
            form-urlencoded, up to 64 KiB. Answers are JSON, or an HTML result page when the \
            request's Accept header prefers text/html. Errors are `{\"error\", \"message\"}` \
            with a code of the closed list; each operation lists the codes it can answer. Not \
            per operation: an unknown path is 404 `not_found`, another method on a known path \
            405 `method_not_allowed`, a refused CORS preflight 400 `cors_refused`. HEAD is \
            answered for every GET operation, as GET without the body.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0"),
    ),
    paths(
        crate::routes::health::healthz,
        crate::routes::health::readyz,
        crate::routes::health::metrics,
        crate::routes::health::jwks,
        openapi_json,
        crate::routes::form::form,
        crate::routes::auth::signup,
        crate::routes::auth::verify_email,
        crate::routes::auth::token,
        crate::routes::auth::refresh,
        crate::routes::account::user,
        crate::routes::account::change_password,
        crate::routes::account::change_email,
        crate::routes::account::invite,
        crate::routes::auth::reset_password,
        crate::routes::check::check,
        crate::routes::check::forward_auth,
        crate::routes::session::create,
        crate::routes::session::current,
        crate::routes::session::end_current,
        crate::routes::session::logout,
        crate::routes::session::list,
        crate::routes::session::end_others,
        crate::routes::session::end_one,
        crate::routes::oauth::start,
        crate::routes::oauth::callback,
        crate::routes::oauth::token,
        crate::routes::admin::users::list,
        crate::routes::admin::users::create,
        crate::routes::admin::users::show,
        crate::routes::admin::users::update,
        crate::routes::admin::users::delete,
        crate::routes::admin::users::end_sessions,
        crate::routes::admin::users::reset_password,
        crate::routes::admin::account::lock,
        crate::routes::admin::account::unlock,
        crate::routes::admin::account::archive,
        crate::routes::admin::account::restore,
        crate::routes::admin::audit::list,
        crate::routes::permits::list_groups,
        crate::routes::permits::create_group,
        crate::routes::permits::get_group,
        crate::routes::permits::update_group,
        crate::routes::permits::delete_group,
        crate::routes::permits::get_permit,
        crate::routes::permits::set_permit,
    ),
    // Schemas only a query parameter names (utoipa collects those of bodies by itself).
    components(schemas(crate::html::FormAction)),
    modifiers(&Shared),
    tags(
        (name = tag::AUTH, description = "Sign up, verify, log in, refresh, reset a password."),
        (name = tag::ACCOUNT, description = "The signed-in user (Bearer access token)."),
        (name = tag::FORM, description = "HTML forms for browsers (a development aid)."),
        (name = tag::SESSIONS, description = "Server-side sessions and /check (served with SESSIONS_ENABLED=true)."),
        (name = tag::HEALTH, description = "Probes and Prometheus metrics; not rate limited, not host-checked."),
        (name = tag::META, description = "The public keys that verify access tokens, and this document."),
        (name = tag::OAUTH, description = "Sign in with Google, GitHub, Microsoft or an OpenID provider (OAUTH_PROVIDERS; a provider not listed is 404)."),
        (name = tag::ADMIN, description = "User administration (SPEC §11), role groups and permits (SPEC §8a, served with SESSIONS_ENABLED=true): a Bearer access token or a session of an ADMIN_ROLE user, whose current record is read on every request."),
        (name = tag::SESSION, description = "Server-side sessions: only with SESSIONS_ENABLED=true; otherwise these paths are 404. Credentials: the session cookie, `Authorization: Session <key>`, or a Bearer access token bound to a session."),
    ),
)]
pub struct ApiDoc;

/// `GET /openapi.json`: the document, built and serialized once.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = tag::META,
    summary = "This OpenAPI 3.1 document",
    description = "The same for every tenant and request; it changes only with the version. \
        Rate limited and host-checked like the other endpoints.",
    responses(
        (status = 200, description = "The document.",
            content((serde_json::Value = MEDIA_TYPE))),
        errors::Document,
    ),
)]
pub async fn openapi_json() -> Result<HttpResponse, ApiError> {
    let json = document().map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().content_type(MEDIA_TYPE).body(json))
}

/// The document as JSON, serialized on first use and kept.
///
/// # Errors
/// The serializer's message, should it ever refuse the document.
pub fn document() -> Result<&'static str, &'static str> {
    static JSON: OnceLock<Result<String, String>> = OnceLock::new();
    JSON.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .map_err(|e| format!("cannot serialize the OpenAPI document: {e}"))
    })
    .as_ref()
    .map(String::as_str)
    .map_err(String::as_str)
}

/// `{}`: the answer of the routes that only say "done".
#[derive(Debug, ToSchema)]
#[schema(max_properties = 0)]
pub struct Empty {}

/// `T`, the token pair (`authura_core::token::TokenPair` as it is written).
#[derive(Debug, ToSchema)]
pub struct TokenPair {
    /// The access token, a JWT; send it as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// The refresh token, a JWT; `POST /refresh` trades it for a new pair.
    pub refresh_token: String,
    /// Always `Bearer`.
    #[schema(pattern = "^Bearer$")]
    pub token_type: String,
    /// The access token's lifetime in seconds (`JWT_EXPIRATION`).
    #[schema(minimum = 0)]
    pub expires_in: u64,
}

/// A user id as the backend stores it: a number or a string.
#[derive(Debug, ToSchema)]
#[serde(untagged)]
pub enum UserId {
    /// A numeric id (SQLite, and PostgreSQL's default table).
    Int(i64),
    /// A text id (a UUID column, Hasura, the HTTP backend).
    Text(String),
}

/// The answer of the probes.
#[derive(Debug, ToSchema)]
pub struct Status {
    /// `ok` from `/healthz`, `ready` from `/readyz`.
    #[schema(pattern = "^(ok|ready)$")]
    pub status: String,
}

/// A JSON Web Key Set (RFC 7517): the public keys that verify access tokens.
#[derive(Debug, ToSchema)]
pub struct Jwks {
    /// The current key first (when `JWT_ALGORITHM` is asymmetric), then `JWT_PREVIOUS_KEYS`'.
    pub keys: Vec<Jwk>,
}

/// One public key (RFC 7517, RFC 7518, RFC 8037).
#[derive(Debug, ToSchema)]
pub struct Jwk {
    /// `RSA`, `EC` or `OKP`.
    pub kty: String,
    /// The key's RFC 7638 thumbprint, equal to the `kid` of the tokens it verifies.
    pub kid: String,
    /// `RS256`, `ES256` or `EdDSA`.
    pub alg: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// RSA modulus.
    pub n: Option<String>,
    /// RSA exponent.
    pub e: Option<String>,
    /// `P-256` or `Ed25519`.
    pub crv: Option<String>,
    /// EC or OKP x coordinate.
    pub x: Option<String>,
    /// EC y coordinate.
    pub y: Option<String>,
}

/// One error code of SPEC §3a that this build answers, with its status and what it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Code {
    InvalidBody,
    InvalidEmail,
    WeakPassword,
    InvalidRedirectUrl,
    TokenUsed,
    InvalidVerificationToken,
    InvalidAction,
    PasswordReused,
    InvalidPermission,
    InvalidState,
    InvalidCode,
    HostNotAllowed,
    TenantRequired,
    CaptchaFailed,
    InvalidCredentials,
    InvalidSession,
    InvalidToken,
    Forbidden,
    SignupDisabled,
    EmailNotVerified,
    PasswordExpired,
    NotFound,
    EmailTaken,
    NameTaken,
    SelfModification,
    BodyTooLarge,
    RateLimited,
    BackendError,
    HookFailed,
    BackendUnavailable,
    CaptchaUnavailable,
    Overloaded,
    NotSupported,
    InternalError,
}

/// A header some error answers carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ErrorHeader {
    RetryAfter,
    WwwAuthenticate,
}

impl Code {
    /// Every code, in the order of SPEC §3a.
    pub const ALL: [Code; 34] = [
        Code::InvalidBody,
        Code::InvalidEmail,
        Code::WeakPassword,
        Code::InvalidRedirectUrl,
        Code::TokenUsed,
        Code::InvalidVerificationToken,
        Code::InvalidAction,
        Code::PasswordReused,
        Code::InvalidPermission,
        Code::InvalidState,
        Code::InvalidCode,
        Code::HostNotAllowed,
        Code::TenantRequired,
        Code::CaptchaFailed,
        Code::InvalidCredentials,
        Code::InvalidSession,
        Code::InvalidToken,
        Code::Forbidden,
        Code::SignupDisabled,
        Code::EmailNotVerified,
        Code::PasswordExpired,
        Code::NotFound,
        Code::EmailTaken,
        Code::NameTaken,
        Code::SelfModification,
        Code::BodyTooLarge,
        Code::RateLimited,
        Code::BackendError,
        Code::HookFailed,
        Code::BackendUnavailable,
        Code::CaptchaUnavailable,
        Code::Overloaded,
        Code::NotSupported,
        Code::InternalError,
    ];

    /// The code as the `error` field spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Code::InvalidBody => "invalid_body",
            Code::InvalidEmail => "invalid_email",
            Code::WeakPassword => "weak_password",
            Code::InvalidRedirectUrl => "invalid_redirect_url",
            Code::TokenUsed => "token_used",
            Code::InvalidVerificationToken => "invalid_verification_token",
            Code::InvalidAction => "invalid_action",
            Code::PasswordReused => "password_reused",
            Code::PasswordExpired => "password_expired",
            Code::InvalidPermission => "invalid_permission",
            Code::InvalidState => "invalid_state",
            Code::InvalidCode => "invalid_code",
            Code::HostNotAllowed => "host_not_allowed",
            Code::TenantRequired => "tenant_required",
            Code::CaptchaFailed => "captcha_failed",
            Code::InvalidCredentials => "invalid_credentials",
            Code::InvalidSession => "invalid_session",
            Code::InvalidToken => "invalid_token",
            Code::Forbidden => "forbidden",
            Code::SignupDisabled => "signup_disabled",
            Code::EmailNotVerified => "email_not_verified",
            Code::NotFound => "not_found",
            Code::EmailTaken => "email_taken",
            Code::NameTaken => "name_taken",
            Code::SelfModification => "self_modification",
            Code::NotSupported => "not_supported",
            Code::BodyTooLarge => "body_too_large",
            Code::RateLimited => "rate_limited",
            Code::BackendError => "backend_error",
            Code::HookFailed => "hook_failed",
            Code::BackendUnavailable => "backend_unavailable",
            Code::CaptchaUnavailable => "captcha_unavailable",
            Code::Overloaded => "overloaded",
            Code::InternalError => "internal_error",
        }
    }

    /// Its status. `hook_failed` is 502, or the hook's own 4xx, relayed (see [`errors`]).
    pub const fn status(self) -> u16 {
        match self {
            Code::InvalidBody
            | Code::InvalidEmail
            | Code::WeakPassword
            | Code::InvalidRedirectUrl
            | Code::TokenUsed
            | Code::InvalidVerificationToken
            | Code::InvalidAction
            | Code::PasswordReused
            | Code::InvalidPermission
            | Code::InvalidState
            | Code::InvalidCode
            | Code::HostNotAllowed
            | Code::TenantRequired
            | Code::CaptchaFailed => 400,
            Code::InvalidCredentials | Code::InvalidToken | Code::InvalidSession => 401,
            Code::Forbidden
            | Code::SignupDisabled
            | Code::EmailNotVerified
            | Code::PasswordExpired => 403,
            Code::NotFound => 404,
            Code::EmailTaken | Code::NameTaken | Code::SelfModification => 409,
            Code::NotSupported => 501,
            Code::BodyTooLarge => 413,
            Code::RateLimited => 429,
            Code::BackendError | Code::HookFailed => 502,
            Code::BackendUnavailable | Code::CaptchaUnavailable | Code::Overloaded => 503,
            Code::InternalError => 500,
        }
    }

    /// When it is answered, in a few words.
    const fn when(self) -> &'static str {
        match self {
            Code::InvalidBody => {
                "the body cannot be read or parsed, or a field is missing or mistyped"
            }
            Code::InvalidEmail => "`email` is not an address",
            Code::WeakPassword => "the new password fails the policy; `rules` lists what it lacks",
            Code::InvalidRedirectUrl => "`redirect_url` is not under `ALLOWED_REDIRECT_URLS`",
            Code::TokenUsed => "the mail link's user changed since it was issued",
            Code::InvalidVerificationToken => {
                "the mail link's token is malformed, expired, of another kind or tenant"
            }
            Code::InvalidAction => "unknown or missing `action`, or `change-password`",
            Code::PasswordReused => {
                "the new password is the current one or one of the last `PASSWORD_HISTORY`"
            }
            Code::PasswordExpired => {
                "the right password, older than `PASSWORD_MAX_AGE`; `reset_token` sets a new one \
                 through `/verify-email`"
            }
            Code::InvalidPermission => {
                "a `permission` parameter is neither a permission number (0–65535) nor a name in \
                 `PERMISSION_NAMES`"
            }
            Code::InvalidState => {
                "an OAuth callback whose `state` is tampered with or expired (a valid state \
                 redirects to its `redirect_url` with `?error=` instead)"
            }
            Code::InvalidCode => {
                "`POST /oauth/token`: the one-time code is unknown, used or expired"
            }
            Code::HostNotAllowed => "`ALLOWED_HOSTS` is set and does not list the request's host",
            Code::TenantRequired => "multi-tenancy is on and the request names no valid tenant",
            Code::CaptchaFailed => "`CAPTCHA` is on and the response token is missing or rejected",
            Code::InvalidCredentials => "wrong email or password",
            Code::InvalidSession => {
                "no session credential, or a malformed, unknown, expired or ended one, or one of \
                 another tenant"
            }
            Code::InvalidToken => {
                "the Bearer or refresh token is missing, invalid, expired, or its user is gone"
            }
            Code::Forbidden => {
                "not `ADMIN_ROLE`, impersonation is off, or a `/check` permission is not held; or \
                 a state-changing request authenticated by the session cookie alone without a \
                 trusted `Origin` or `Referer` (CSRF)"
            }
            Code::SignupDisabled => "`SIGNUP_DISABLED=true`",
            Code::EmailNotVerified => "the right password for a user whose `verified_at` is null",
            Code::NotFound => {
                "no such resource (`/metrics`: `METRICS_ENABLED` is not true; a session route: \
                 `SESSIONS_ENABLED` is not true; `/sessions/{id}`: not one of the user's)"
            }
            Code::EmailTaken => "the address has a user",
            Code::NameTaken => "a role group of that name exists",
            Code::SelfModification => {
                "an administrator tried to delete, archive, lock or demote their own account"
            }
            Code::NotSupported => {
                "the users backend cannot do this (an HTTP backend without the optional list or \
                 delete endpoints of its contract)"
            }
            Code::BodyTooLarge => "the body is over 64 KiB",
            Code::RateLimited => "the client's (or the account's) rate limit is used up",
            Code::BackendError => "the user backend answered with an error",
            Code::HookFailed => "the hook (`HOOK_URL`) failed; its own 4xx status is relayed",
            Code::BackendUnavailable => "the user backend cannot be reached",
            Code::CaptchaUnavailable => "siteverify could not be asked",
            Code::Overloaded => "the password hashing queue is full",
            Code::InternalError => {
                "a bug or an unexpected failure; `correlation_id` finds it in the log"
            }
        }
    }

    /// The header this code's answers always carry.
    const fn header(self) -> Option<ErrorHeader> {
        match self {
            Code::RateLimited | Code::Overloaded => Some(ErrorHeader::RetryAfter),
            Code::InvalidToken | Code::InvalidSession => Some(ErrorHeader::WwwAuthenticate),
            _ => None,
        }
    }

    /// The field beside `error` and `message` this code's body always carries.
    const fn extra(self) -> Option<&'static str> {
        match self {
            Code::WeakPassword => Some("rules"),
            Code::PasswordExpired => Some("reset_token"),
            Code::InternalError => Some("correlation_id"),
            _ => None,
        }
    }
}

/// The error answers of each route, as types for `responses(...)`. Each set is the union of the
/// groups below and the route's own codes: one answer per status, its `error` an enum of exactly
/// the codes of that status.
pub mod errors {
    use super::Code;

    /// Every route but the probes: the rate limit, then the host check (SPEC §3's order).
    pub const EDGE: &[Code] = &[Code::RateLimited, Code::HostNotAllowed];
    /// Every route that reads a tenant when multi-tenancy is on.
    pub const TENANT: &[Code] = &[Code::TenantRequired];
    /// Every route with a body.
    pub const BODY: &[Code] = &[Code::InvalidBody, Code::BodyTooLarge];
    /// Every route with a captcha (when `CAPTCHA` is set).
    pub const CAPTCHA: &[Code] = &[Code::CaptchaFailed, Code::CaptchaUnavailable];
    /// Every route that reaches the user backend.
    pub const BACKEND: &[Code] = &[
        Code::BackendError,
        Code::BackendUnavailable,
        Code::InternalError,
    ];

    macro_rules! error_sets {
        ($($(#[$doc:meta])* $name:ident = [$($group:expr),* $(,)?];)*) => {$(
            $(#[$doc])*
            #[derive(Debug)]
            pub struct $name;

            impl utoipa::IntoResponses for $name {
                fn responses() -> std::collections::BTreeMap<
                    String,
                    utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
                > {
                    let groups: &[&[Code]] = &[$($group),*];
                    super::error_responses(&groups.concat())
                }
            }
        )*};
    }

    error_sets! {
        /// `GET /readyz`: not rate limited, not host-checked.
        Ready = [&[Code::BackendError, Code::BackendUnavailable]];
        /// `GET /metrics`: not rate limited, not host-checked.
        Metrics = [&[Code::NotFound]];
        /// `GET /.well-known/jwks.json`: the same keys for every tenant.
        Keys = [EDGE];
        /// `GET /openapi.json`: the same document for every tenant.
        Document = [EDGE, &[Code::InternalError]];
        /// `GET /form`: not tenant-checked; `rd` of `action=session` is.
        Form = [EDGE, &[Code::InvalidAction, Code::InvalidRedirectUrl]];
        /// `POST /signup`.
        Signup = [EDGE, TENANT, BODY, CAPTCHA, BACKEND, &[
            Code::InvalidEmail,
            Code::SignupDisabled,
            Code::InvalidRedirectUrl,
        ]];
        /// `POST /verify-email`.
        VerifyEmail = [EDGE, TENANT, BODY, BACKEND, &[
            Code::InvalidVerificationToken,
            Code::TokenUsed,
            Code::WeakPassword,
            Code::PasswordReused,
            Code::EmailTaken,
            Code::InvalidToken,
            Code::Overloaded,
            Code::HookFailed,
        ]];
        /// `POST /token`, password logins and impersonation.
        Token = [EDGE, TENANT, BODY, CAPTCHA, BACKEND, &[
            Code::InvalidEmail,
            Code::InvalidCredentials,
            Code::EmailNotVerified,
            Code::PasswordExpired,
            Code::InvalidToken,
            Code::Forbidden,
            Code::Overloaded,
            Code::HookFailed,
        ]];
        /// `POST /refresh`.
        Refresh = [EDGE, TENANT, BODY, BACKEND, &[Code::InvalidToken, Code::HookFailed]];
        /// `GET /user`.
        User = [EDGE, TENANT, BACKEND, &[Code::InvalidToken, Code::HookFailed]];
        /// `POST /change-password`.
        ChangePassword = [EDGE, TENANT, BODY, BACKEND, &[
            Code::InvalidToken,
            Code::InvalidCredentials,
            Code::WeakPassword,
            Code::PasswordReused,
            Code::Overloaded,
            Code::HookFailed,
        ]];
        /// `POST /change-email`.
        ChangeEmail = [EDGE, TENANT, BODY, BACKEND, &[
            Code::InvalidEmail,
            Code::InvalidToken,
            Code::InvalidRedirectUrl,
        ]];
        /// `POST /invite`.
        Invite = [EDGE, TENANT, BODY, BACKEND, &[
            Code::InvalidEmail,
            Code::InvalidToken,
            Code::Forbidden,
            Code::InvalidRedirectUrl,
            Code::EmailTaken,
        ]];
        /// `GET /check` and `/check/forward-auth`: not rate limited per IP, except for Basic
        /// credentials, which answer as a login does.
        Check = [EDGE, TENANT, BACKEND, &[
            Code::InvalidPermission,
            Code::InvalidSession,
            Code::InvalidCredentials,
            Code::EmailNotVerified,
            Code::PasswordExpired,
            Code::CaptchaFailed,
            Code::Forbidden,
            Code::Overloaded,
        ]];
        /// `POST /reset-password`.
        ResetPassword = [EDGE, TENANT, BODY, CAPTCHA, BACKEND, &[
            Code::InvalidEmail,
            Code::InvalidRedirectUrl,
        ]];
        /// `POST /session`: `/token`'s password login, and `rd`.
        SessionCreate = [EDGE, TENANT, BODY, CAPTCHA, BACKEND, &[
            Code::NotFound,
            Code::InvalidEmail,
            Code::InvalidRedirectUrl,
            Code::InvalidCredentials,
            Code::EmailNotVerified,
            Code::PasswordExpired,
            Code::Overloaded,
            Code::HookFailed,
        ]];
        /// `GET /oauth/{provider}`: an unknown or disabled provider is 404; the provider's
        /// discovery failing is 502.
        OAuthStart = [EDGE, TENANT, &[
            Code::NotFound,
            Code::InvalidRedirectUrl,
            Code::BackendError,
        ]];
        /// `GET /oauth/{provider}/callback`: what is not redirected.
        OAuthCallback = [EDGE, TENANT, &[Code::NotFound, Code::InvalidState]];
        /// `POST /oauth/token`: 404 while no provider is enabled.
        OAuthToken = [EDGE, TENANT, BODY, BACKEND, &[
            Code::NotFound,
            Code::InvalidCode,
            Code::InvalidToken,
            Code::HookFailed,
        ]];
        /// `GET /session`, `GET /sessions`.
        SessionRead = [EDGE, TENANT, BACKEND, &[
            Code::NotFound,
            Code::InvalidSession,
            Code::HookFailed,
        ]];
        /// `DELETE /session`, `POST /logout`, `DELETE /sessions`, `DELETE /sessions/{id}`: the
        /// CSRF rule.
        SessionWrite = [EDGE, TENANT, BACKEND, &[
            Code::NotFound,
            Code::InvalidSession,
            Code::Forbidden,
        ]];
        /// `GET /admin/users` and `GET /admin/users/{id}`: an administrator's Bearer token or
        /// session (SPEC §11).
        AdminRead = [EDGE, TENANT, BACKEND, &[
            Code::InvalidBody,
            Code::InvalidToken,
            Code::InvalidSession,
            Code::Forbidden,
            Code::NotFound,
            Code::NotSupported,
            Code::HookFailed,
        ]];
        /// The state-changing `/admin/users…` operations: the CSRF rule for a cookie, the
        /// password policy, a taken address, an administrator acting on themself.
        AdminWrite = [EDGE, TENANT, BODY, BACKEND, &[
            Code::InvalidEmail,
            Code::WeakPassword,
            Code::InvalidRedirectUrl,
            Code::InvalidToken,
            Code::InvalidSession,
            Code::Forbidden,
            Code::NotFound,
            Code::EmailTaken,
            Code::SelfModification,
            Code::NotSupported,
            Code::Overloaded,
            Code::HookFailed,
        ]];
        /// `POST /admin/users/{id}/lock|unlock|archive|restore` (SPEC §11): no body; the CSRF
        /// rule for a cookie; an administrator may not lock or archive themself; 501 without
        /// the state store.
        AdminAccount = [EDGE, TENANT, BACKEND, &[
            Code::InvalidToken,
            Code::InvalidSession,
            Code::Forbidden,
            Code::NotFound,
            Code::SelfModification,
            Code::NotSupported,
        ]];
        /// `GET /admin/audit` (SPEC §11): 501 `not_supported` while `AUDIT_ENABLED` is off.
        AdminAudit = [EDGE, TENANT, BACKEND, &[
            Code::InvalidBody,
            Code::InvalidToken,
            Code::InvalidSession,
            Code::Forbidden,
            Code::NotSupported,
        ]];
        /// `GET /rolegroups`, `GET /rolegroups/{id}`, `GET /permits/{user_id}` (SPEC §8a): an
        /// administrator's Bearer token or session; an unknown group or user is 404.
        PermitRead = [EDGE, TENANT, BACKEND, &[
            Code::InvalidBody,
            Code::InvalidToken,
            Code::InvalidSession,
            Code::Forbidden,
            Code::NotFound,
        ]];
        /// `POST /rolegroups`, `PUT /rolegroups/{id}`: a bad name or permission, a taken name.
        PermitWrite = [EDGE, TENANT, BODY, BACKEND, &[
            Code::InvalidToken,
            Code::InvalidSession,
            Code::Forbidden,
            Code::NotFound,
            Code::NameTaken,
        ]];
        /// `DELETE /rolegroups/{id}`: the CSRF rule for a cookie.
        PermitDelete = [EDGE, TENANT, BACKEND, &[
            Code::InvalidBody,
            Code::InvalidToken,
            Code::InvalidSession,
            Code::Forbidden,
            Code::NotFound,
        ]];
        /// `PUT /permits/{user_id}`: an unknown user or group is 404.
        PermitSet = [EDGE, TENANT, BODY, BACKEND, &[
            Code::InvalidToken,
            Code::InvalidSession,
            Code::Forbidden,
            Code::NotFound,
        ]];

    }
}

/// The error answers for `codes`, one per status. A route whose hook can fail also answers the
/// hook's own 4xx (relayed with `hook_failed`): that code joins every 4xx it lists, and a `4XX`
/// range covers the statuses it does not.
fn error_responses(codes: &[Code]) -> BTreeMap<String, RefOr<Response>> {
    let mut by_status: BTreeMap<String, Vec<Code>> = BTreeMap::new();
    for &code in codes {
        by_status
            .entry(code.status().to_string())
            .or_default()
            .push(code);
    }
    if codes.contains(&Code::HookFailed) {
        for (status, group) in &mut by_status {
            if status.starts_with('4') {
                group.push(Code::HookFailed);
            }
        }
        by_status.insert("4XX".to_owned(), vec![Code::HookFailed]);
    }
    by_status
        .into_iter()
        .map(|(status, mut group)| {
            group.sort();
            group.dedup();
            (status, RefOr::T(error_response(&group)))
        })
        .collect()
}

/// One status's answer: the codes it can carry, described; its body schema; its headers.
fn error_response(group: &[Code]) -> Response {
    let description = group
        .iter()
        .map(|c| format!("`{}`: {}.", c.name(), c.when()))
        .collect::<Vec<_>>()
        .join(" ");
    // One body shape per extra field; several shapes are alternatives told apart by `error`.
    let mut shapes: Vec<(Option<&str>, Vec<&str>)> = Vec::new();
    for code in group {
        match shapes.iter_mut().find(|(extra, _)| *extra == code.extra()) {
            Some((_, names)) => names.push(code.name()),
            None => shapes.push((code.extra(), vec![code.name()])),
        }
    }
    let mut bodies: Vec<Schema> = shapes
        .into_iter()
        .map(|(extra, names)| error_body(&names, extra))
        .collect();
    let schema = if bodies.len() == 1 {
        bodies.remove(0)
    } else {
        bodies
            .into_iter()
            .fold(OneOfBuilder::new(), OneOfBuilder::item)
            .build()
            .into()
    };
    let mut response = ResponseBuilder::new()
        .description(description)
        .content("application/json", Content::new(Some(schema)));
    for (header, name, what) in [
        (
            ErrorHeader::RetryAfter,
            "Retry-After",
            "Seconds until a retry can succeed (`rate_limited`, `overloaded`).",
        ),
        (
            ErrorHeader::WwwAuthenticate,
            "WWW-Authenticate",
            "`Bearer` (`invalid_token`) or `Session` (`invalid_session`).",
        ),
    ] {
        let carried = group.iter().filter(|c| c.header() == Some(header)).count();
        if carried > 0 {
            let schema = ObjectBuilder::new().schema_type(match header {
                ErrorHeader::RetryAfter => Type::Integer,
                ErrorHeader::WwwAuthenticate => Type::String,
            });
            let mut h = Header::new(schema);
            h.description = Some(what.to_owned());
            // Required when every code of this status carries it. utoipa's `Header` has no
            // `required` field (OpenAPI's has): it is written through the flattened extensions.
            if carried == group.len() {
                h.extensions = Some(Extensions::from_iter([("required", true)]));
            }
            response = response.header(name, h);
        }
    }
    response.build()
}

/// `{"error", "message"}` with `error` one of `names`, and `extra` when given; nothing else.
fn error_body(names: &[&str], extra: Option<&str>) -> Schema {
    let string = || ObjectBuilder::new().schema_type(Type::String);
    let mut body = ObjectBuilder::new()
        .property("error", string().enum_values(Some(names.iter().copied())))
        .required("error")
        .property("message", string().description(Some("A human sentence.")))
        .required("message")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    match extra {
        Some("rules") => {
            let rule = string().enum_values(Some([
                "min_length",
                "max_length",
                "uppercase",
                "lowercase",
                "digit",
                "special",
            ]));
            body = body
                .property(
                    "rules",
                    ArrayBuilder::new()
                        .items(rule)
                        .description(Some("The unmet password rules, in this order.")),
                )
                .required("rules");
        }
        Some(field) => {
            body = body
                .property(
                    field,
                    string()
                        .format(Some(SchemaFormat::Custom("uuid".to_owned())))
                        .description(Some("Also in the server's log line for this error.")),
                )
                .required(field);
        }
        None => {}
    }
    body.into()
}

/// What every operation shares, added once here rather than on each handler: the Bearer scheme,
/// form-urlencoded beside every JSON body (SPEC §3 reads anything but JSON as a form), and an
/// HTML page beside every JSON answer (for clients whose `Accept` prefers `text/html`).
#[derive(Debug)]
struct Shared;

impl Modify for Shared {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            SESSION_KEY,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`Session <key>`: the key `POST /session` answers with `return_key`.",
            ))),
        );
        components.add_security_scheme(
            SESSION_COOKIE,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "authura_session",
                "The session cookie (`SESSION_COOKIE_NAME`, `authura_session` by default), set by \
                 `POST /session`. Every operation that takes `session` or `bearer` under the \
                 `session` tag takes it too, first (not listed per operation: the browser sends \
                 it by itself).",
            ))),
        );
        for item in openapi.paths.paths.values_mut() {
            for operation in operations(item) {
                share(operation);
            }
        }
    }
}

/// The operations of a path.
fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

fn share(operation: &mut Operation) {
    const JSON: &str = "application/json";
    if let Some(RefOr::T(body)) = &mut operation.request_body
        && let Some(json) = body.content.get(JSON).cloned()
    {
        body.content
            .insert("application/x-www-form-urlencoded".to_owned(), json);
    }
    for response in operation.responses.responses.values_mut() {
        if let RefOr::T(response) = response
            && response.content.contains_key(JSON)
        {
            let page = Content::new(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("The same answer as an HTML result page.")),
            ));
            response.content.insert("text/html".to_owned(), page.into());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use actix_web::ResponseError as _;
    use actix_web::http::header;
    use authura_core::CoreError;
    use serde_json::Value;
    use utoipa::PartialSchema as _;

    use super::*;

    /// The error `ApiError` answers for each code.
    fn api_error(code: Code) -> ApiError {
        match code {
            Code::InvalidBody => ApiError::invalid_body("x"),
            Code::InvalidEmail => CoreError::InvalidEmail.into(),
            Code::WeakPassword => CoreError::WeakPassword(vec![]).into(),
            Code::InvalidRedirectUrl => CoreError::InvalidRedirectUrl.into(),
            Code::TokenUsed => CoreError::TokenUsed.into(),
            Code::InvalidVerificationToken => CoreError::InvalidVerificationToken.into(),
            Code::InvalidAction => ApiError::invalid_action("x"),
            Code::InvalidPermission => ApiError::invalid_permission("x"),
            Code::InvalidState => CoreError::InvalidState.into(),
            Code::InvalidCode => ApiError::invalid_code(),
            Code::HostNotAllowed => ApiError::host_not_allowed(),
            Code::TenantRequired => ApiError::tenant_required("x-tenant-id"),
            Code::CaptchaFailed => ApiError::captcha_failed(),
            Code::InvalidCredentials => CoreError::InvalidCredentials.into(),
            Code::InvalidSession => CoreError::InvalidSession.into(),
            Code::InvalidToken => CoreError::InvalidToken.into(),
            Code::Forbidden => CoreError::Forbidden.into(),
            Code::SignupDisabled => CoreError::SignupDisabled.into(),
            Code::EmailNotVerified => CoreError::EmailNotVerified.into(),
            Code::NotFound => ApiError::not_found(),
            Code::EmailTaken => CoreError::EmailTaken.into(),
            Code::NameTaken => ApiError::name_taken(),
            Code::SelfModification => CoreError::SelfModification.into(),
            Code::PasswordReused => CoreError::PasswordReused.into(),
            Code::PasswordExpired => CoreError::PasswordExpired {
                reset_token: authura_core::Secret::new("x"),
            }
            .into(),
            Code::NotSupported => CoreError::Unsupported("x".into()).into(),
            Code::BodyTooLarge => ApiError::body_too_large(1024),
            Code::RateLimited => ApiError::rate_limited(3),
            Code::BackendError => CoreError::Backend("x".into()).into(),
            Code::HookFailed => CoreError::HookFailed {
                status: None,
                body: "x".into(),
            }
            .into(),
            Code::BackendUnavailable => CoreError::BackendUnavailable("x".into()).into(),
            Code::CaptchaUnavailable => ApiError::captcha_unavailable(),
            Code::Overloaded => CoreError::Overloaded.into(),
            Code::InternalError => ApiError::internal("a test"),
        }
    }

    #[actix_web::test]
    async fn each_code_is_documented_as_api_error_answers_it() {
        for code in Code::ALL {
            let e = api_error(code);
            assert_eq!(
                (e.code(), e.status().as_u16()),
                (code.name(), code.status())
            );
            let res = e.error_response();
            for (header, name) in [
                (ErrorHeader::RetryAfter, header::RETRY_AFTER),
                (ErrorHeader::WwwAuthenticate, header::WWW_AUTHENTICATE),
            ] {
                assert_eq!(
                    res.headers().contains_key(&name),
                    code.header() == Some(header),
                    "{} and {name}",
                    code.name()
                );
            }
            let body = actix_web::body::to_bytes(res.into_body()).await.unwrap();
            let body: BTreeMap<String, Value> = serde_json::from_slice(&body).unwrap();
            let mut expected = vec!["error", "message"];
            expected.extend(code.extra());
            expected.sort_unstable();
            assert_eq!(body.keys().collect::<Vec<_>>(), expected, "{}", code.name());
        }
    }

    /// The document as JSON, read back.
    fn doc() -> Value {
        serde_json::from_str(document().unwrap()).unwrap()
    }

    #[test]
    fn every_code_is_answered_by_some_route_and_described() {
        let doc = doc();
        let mut seen = std::collections::BTreeSet::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for operation in item.as_object().unwrap().values() {
                for (status, response) in operation["responses"].as_object().unwrap() {
                    let schema = &response["content"]["application/json"]["schema"];
                    let shapes = match schema["oneOf"].as_array() {
                        Some(shapes) => shapes.clone(),
                        None => vec![schema.clone()],
                    };
                    for shape in shapes {
                        for name in shape["properties"]["error"]["enum"]
                            .as_array()
                            .into_iter()
                            .flatten()
                        {
                            let name = name.as_str().unwrap();
                            let description = response["description"].as_str().unwrap();
                            assert!(description.contains(&format!("`{name}`")), "{status}");
                            seen.insert(name.to_owned());
                        }
                    }
                }
            }
        }
        let all: std::collections::BTreeSet<_> =
            Code::ALL.iter().map(|c| c.name().to_owned()).collect();
        assert_eq!(seen, all);
    }

    #[test]
    fn every_reference_resolves() {
        fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
            match v {
                Value::Object(map) => {
                    if let Some(Value::String(r)) = map.get("$ref") {
                        out.push(r);
                    }
                    map.values().for_each(|v| refs(v, out));
                }
                Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let doc = doc();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(found.contains(&"#/components/schemas/FormAction"));
        for r in found {
            let pointer = r.strip_prefix('#').unwrap();
            assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
        }
    }

    #[test]
    fn a_hook_can_relay_any_4xx() {
        let responses = error_responses(&[Code::InvalidToken, Code::HookFailed]);
        let statuses: Vec<_> = responses.keys().map(String::as_str).collect();
        assert_eq!(statuses, ["401", "4XX", "502"]);
        let RefOr::T(unauthorized) = &responses["401"] else {
            panic!("an inline answer")
        };
        // `invalid_token` carries WWW-Authenticate, a relayed 401 does not.
        let json = serde_json::to_value(unauthorized).unwrap();
        assert_eq!(json["headers"]["WWW-Authenticate"].get("required"), None);
        // Where every code of the status carries it, the header is required.
        let limited = serde_json::to_value(&error_responses(&[Code::RateLimited])["429"]).unwrap();
        assert_eq!(limited["headers"]["Retry-After"]["required"], true);
        let shape = &json["content"]["application/json"]["schema"];
        assert_eq!(
            shape["properties"]["error"]["enum"],
            serde_json::json!(["invalid_token", "hook_failed"])
        );
    }

    #[test]
    fn weak_passwords_and_internal_errors_have_their_own_shapes() {
        let responses =
            error_responses(&[Code::InvalidBody, Code::WeakPassword, Code::InternalError]);
        let json = serde_json::to_value(&responses).unwrap();
        let bad = &json["400"]["content"]["application/json"]["schema"]["oneOf"];
        assert_eq!(
            bad[0]["properties"]["error"]["enum"],
            serde_json::json!(["invalid_body"])
        );
        assert_eq!(
            bad[1]["properties"]["error"]["enum"],
            serde_json::json!(["weak_password"])
        );
        assert_eq!(
            bad[1]["required"],
            serde_json::json!(["error", "message", "rules"])
        );
        let failed = &json["500"]["content"]["application/json"]["schema"];
        assert_eq!(
            failed["required"],
            serde_json::json!(["error", "message", "correlation_id"])
        );
    }

    #[test]
    fn form_actions_are_the_pages_there_are() {
        let schema = serde_json::to_value(crate::html::FormAction::schema()).unwrap();
        let actions = schema["enum"].as_array().unwrap();
        assert_eq!(actions.len(), 8);
        for action in actions {
            let action = action.as_str().unwrap();
            assert!(crate::html::FormAction::parse(action).is_some(), "{action}");
        }
        assert!(crate::html::FormAction::parse("change-password").is_none());
    }

    #[test]
    fn the_token_pair_schema_names_the_fields_core_writes() {
        let pair = authura_core::token::TokenPair {
            access_token: "a".into(),
            refresh_token: "r".into(),
            token_type: "Bearer".into(),
            expires_in: 300,
        };
        let written = serde_json::to_value(&pair).unwrap();
        let schema = serde_json::to_value(TokenPair::schema()).unwrap();
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&written), keys(&schema["properties"]));
        assert_eq!(schema["required"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn the_document_is_openapi_3_1_with_a_bearer_scheme() {
        let doc = doc();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["title"], "Authura");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(
            doc["components"]["securitySchemes"][BEARER],
            serde_json::json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
        );
        // Every body is JSON or a form; every JSON answer can also be a page.
        let signup = &doc["paths"]["/signup"]["post"];
        let body = signup["requestBody"]["content"].as_object().unwrap();
        assert_eq!(
            body.keys().collect::<Vec<_>>(),
            ["application/json", "application/x-www-form-urlencoded"]
        );
        assert!(signup["responses"]["200"]["content"]["text/html"].is_object());
        let itself = &doc["paths"]["/openapi.json"]["get"]["responses"]["200"]["content"];
        assert!(itself[MEDIA_TYPE].is_object(), "{itself}");
    }
}
