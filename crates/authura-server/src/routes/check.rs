//! Authaus's question, "who is this and what may they do" (SPEC §8): `GET /check` for apps and
//! nginx's `auth_request`, and `GET /check/forward-auth` for reverse proxies that forward a
//! request's credentials and its original URL (Traefik, Caddy), which sends an anonymous browser
//! to the sign-in form instead of answering 401. Registered only with sessions on.
//!
//! Credentials, first found wins: the session cookie, `Authorization: Session`, a Bearer access
//! token bound to a session, and only with `CHECK_BASIC_ENABLED=true` `Authorization: Basic`
//! (a once-off password check, no session). [`identify`] is the one place credentials become an
//! [`Identity`]; the session cache slots in there.
//!
//! Every answer carries the user's role groups, permissions and Authaus permit blob (SPEC §8a),
//! resolved against the groups that exist; a cache hit carries them too, so it answers without
//! a database. `?permission=` takes numbers, or names from `PERMISSION_NAMES`.

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use authura_core::permit::{Access, Permission, PermissionNames};
use authura_core::state::Session;
use authura_core::types::format_time;
use authura_core::{CoreError, Email, Secret, TenantId, User, flows};
use authura_session::{LAST_SEEN_GRANULARITY, SessionKey};
use base64::Engine as _;
use serde::Serialize;
use std::future::{Ready, ready};
use std::sync::Arc;
use url::Url;

use crate::answer::{self, Answer, IdOut};
use crate::error::ApiError;
use crate::extract::{State, Tenant};
use crate::permits::{Checked, GroupRef, Rendered};
use crate::principal::SessionCredentials;
use crate::routes::resource;
use crate::state::{AppState, SessionsState};

/// The identity headers of a 200 answer, in this order. Always all of them: a header left out
/// could otherwise be supplied by the client and passed on by a proxy that copies what it gets.
pub const IDENTITY_HEADERS: [&str; 5] = [
    "x-authura-user-id",
    "x-authura-email",
    "x-authura-role",
    "x-authura-groups",
    "x-authura-session-id",
];

/// Registers this area's routes (only when sessions are on: see [`crate::routes::app`]).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/check", Method::GET, check))
        .service(resource("/check/forward-auth", Method::GET, forward_auth));
}

/// `GET /check`: the identity behind the request's credentials.
#[utoipa::path(
    get,
    path = "/check",
    tag = crate::openapi::tag::SESSIONS,
    summary = "Who is this and what may they do (Authaus's /check)",
    description = "Credentials, first found wins: the session cookie, `Authorization: Session \
        <key>`, `Authorization: Bearer <access token>` bound to a session (`sid`), and only \
        with `CHECK_BASIC_ENABLED=true` `Authorization: Basic base64(email:password)` (a \
        once-off check: no session; counted by the per-IP and per-account limits). Not rate \
        limited per IP otherwise. `groups`, `permissions` and `permit` come from the user's \
        permit (SPEC §8a); `permission_names` only with `PERMISSION_NAMES`. `?permission=` \
        (repeatable, all required): a number or a `PERMISSION_NAMES` name; one not held is \
        403 `forbidden`, an unknown name 400 `invalid_permission` (checked before the \
        credentials).",
    params(CheckQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The identity.", body = CheckAnswer, headers(
            ("Cache-Control" = String, description = "`no-store`."),
            ("X-Authura-User-Id" = String, description = "The user's id."),
            ("X-Authura-Email" = String, description = "The user's email."),
            ("X-Authura-Role" = String, description = "The user's role."),
            ("X-Authura-Groups" = String, description = "The user's group names, comma-separated (empty without groups)."),
            ("X-Authura-Session-Id" = String, description = "The session's id; empty for Basic credentials."),
        )),
        crate::openapi::errors::Check,
    ),
)]
pub async fn check(
    state: State,
    tenant: Tenant,
    req: HttpRequest,
    credentials: CheckCredentials,
) -> Answer {
    let wanted = wanted_permissions(req.query_string(), state.permission_names())?;
    let identity = identify(&state, tenant.get(), &credentials).await?;
    answer(&state, &identity, &wanted)
}

/// `GET /check/forward-auth`: `/check` for reverse proxies; an anonymous browser navigation is
/// sent to the sign-in form and back to the original URL.
#[utoipa::path(
    get,
    path = "/check/forward-auth",
    tag = crate::openapi::tag::SESSIONS,
    summary = "/check for reverse proxies (Traefik, Caddy): sign-in redirect for browsers",
    description = "Authenticated: exactly as `/check`. Not: a browser navigation (GET or HEAD, \
        from `X-Forwarded-Method` when given, whose `Accept` includes `text/html`) gets 302 to \
        `EXTERNAL_URL/form?action=session&rd=<original URL>`, anything else 401 \
        `invalid_session`. The original URL is `X-Original-URL` (nginx), else \
        `X-Forwarded-Proto`, `X-Forwarded-Host` and `X-Forwarded-Uri`; it is passed as `rd` \
        only when `ALLOWED_REDIRECT_URLS` allows it (else the form is reached without `rd`).",
    params(CheckQuery, ForwardedHeaders),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The identity, as `/check`.", body = CheckAnswer, headers(
            ("Cache-Control" = String, description = "`no-store`."),
            ("X-Authura-User-Id" = String, description = "The user's id."),
            ("X-Authura-Email" = String, description = "The user's email."),
            ("X-Authura-Role" = String, description = "The user's role."),
            ("X-Authura-Groups" = String, description = "The user's group names, comma-separated (empty without groups)."),
            ("X-Authura-Session-Id" = String, description = "The session's id; empty for Basic credentials."),
        )),
        (status = 302, description = "An anonymous browser navigation: to the sign-in form.",
            headers(
                ("Location" = String, description = "`EXTERNAL_URL/form?action=session&rd=<original URL>`."),
                ("Cache-Control" = String, description = "`no-store`."),
            )),
        crate::openapi::errors::Check,
    ),
)]
pub async fn forward_auth(
    state: State,
    tenant: Tenant,
    req: HttpRequest,
    credentials: CheckCredentials,
) -> Answer {
    let wanted = wanted_permissions(req.query_string(), state.permission_names())?;
    match identify(&state, tenant.get(), &credentials).await {
        Ok(identity) => answer(&state, &identity, &wanted),
        Err(e) if e.status() == StatusCode::UNAUTHORIZED && is_navigation(&req) => {
            Ok(to_sign_in(&state, &req))
        }
        Err(e) => Err(e),
    }
}

/// Who a request is: a user, what their permit grants, and the live session the credentials
/// opened (none for Basic).
#[derive(Debug, Clone)]
pub struct Identity {
    /// The user's current record.
    pub user: User,
    /// Their permit, resolved against the groups that exist, and rendered.
    pub access: Arc<Rendered>,
    /// The session, when the credentials were a session's.
    pub session: Option<Session>,
}

/// `user`'s permit resolved, from the state store (none open: the empty permit), and rendered.
async fn access_of(state: &AppState, user: &User) -> Result<Arc<Rendered>, ApiError> {
    let access = match state.state_store() {
        Some(store) => store
            .access(user.tenant.as_ref(), &user.id)
            .await
            .map_err(CoreError::from)?,
        None => Access::default(),
    };
    Ok(Arc::new(Rendered::new(access, state.permission_names())))
}

/// The credentials `/check` reads: a session's (see [`SessionCredentials`]), or, when none is
/// there, `Authorization: Basic`. Extracting them never fails.
#[derive(Debug)]
pub struct CheckCredentials {
    session: SessionCredentials,
    basic: Option<BasicCredentials>,
}

/// The base64 text of `Authorization: Basic`, undecoded.
struct BasicCredentials(String);

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BasicCredentials([redacted])")
    }
}

impl FromRequest for CheckCredentials {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let session = match SessionCredentials::from_request(req, payload).into_inner() {
            Ok(session) => session,
            Err(e) => return ready(Err(e)),
        };
        let basic = session
            .kind()
            .is_none()
            .then(|| basic_credentials(req))
            .flatten()
            .map(BasicCredentials);
        ready(Ok(CheckCredentials { session, basic }))
    }
}

/// The credentials of `Authorization: Basic <base64>`, if that is the header's scheme.
fn basic_credentials(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("basic")
        .then(|| rest.trim().to_owned())
}

/// Whether `Authorization` carries Basic credentials (the rate limit counts those on `/check`).
pub fn has_basic(headers: &actix_web::http::header::HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
}

/// The user (and session) behind `credentials` in `tenant`: the one place credentials are
/// resolved, where the session cache slots in.
///
/// # Errors
/// 401 `invalid_session` for no credentials, dead or malformed ones, or Basic while
/// `CHECK_BASIC_ENABLED` is off; for Basic, what a login answers: 401 `invalid_credentials`,
/// 403 `email_not_verified`, 429 `rate_limited` (the account's limit), 503 `overloaded`; store
/// failures.
pub async fn identify(
    state: &AppState,
    tenant: Option<&TenantId>,
    credentials: &CheckCredentials,
) -> Result<Identity, ApiError> {
    if let (Some(key), Some(sessions)) = (credentials.session.key(), state.sessions())
        && let Some(key) = SessionKey::parse(key)
    {
        return cached(state, sessions, &key, tenant, &credentials.session).await;
    }
    if credentials.session.kind().is_some() {
        let principal = credentials.session.resolve(tenant).await?;
        let access = access_of(state, &principal.user).await?;
        return Ok(Identity {
            user: principal.user,
            access,
            session: Some(principal.session),
        });
    }
    match (&credentials.basic, state.sessions()) {
        (Some(basic), Some(sessions)) if sessions.check_basic() => {
            let user = basic_login(state, tenant, &basic.0).await?;
            let access = access_of(state, &user).await?;
            Ok(Identity {
                user,
                access,
                session: None,
            })
        }
        _ => Err(CoreError::InvalidSession.into()),
    }
}

/// A session key through this instance's cache (SPEC §8 "The cache"): a hit answers without
/// touching any database; a miss resolves the key as any session credential and fills the
/// cache. A hit whose `last_seen_at` is [`LAST_SEEN_GRANULARITY`] old is taken as a miss, so
/// the store's `last_seen_at` stays as current as without a cache (the idle timeout keeps
/// working) at one database round trip per session per minute at most. The ticket is taken
/// before the database is read, so an invalidation racing the fill wins.
async fn cached(
    state: &AppState,
    sessions: &SessionsState,
    key: &SessionKey,
    tenant: Option<&TenantId>,
    credentials: &SessionCredentials,
) -> Result<Identity, ApiError> {
    let cache = sessions.cache();
    let hash = key.hash();
    if let Some(hit) = cache.get(&hash)
        && hit.session.tenant.as_ref() == tenant
        && chrono::Utc::now() - hit.session.last_seen_at
            < chrono::Duration::from_std(LAST_SEEN_GRANULARITY).unwrap_or(chrono::Duration::MAX)
    {
        return Ok(Identity {
            user: hit.value.user.clone(),
            access: Arc::clone(&hit.value.access),
            session: Some(hit.session.clone()),
        });
    }
    let ticket = cache.ticket();
    let principal = credentials.resolve(tenant).await?;
    let access = access_of(state, &principal.user).await?;
    cache.insert(
        ticket,
        principal.session.clone(),
        Checked {
            user: principal.user.clone(),
            access: Arc::clone(&access),
        },
    );
    Ok(Identity {
        user: principal.user,
        access,
        session: Some(principal.session),
    })
}

/// A once-off password check of `base64(email:password)` (RFC 7617: the password may contain
/// colons; the email cannot).
async fn basic_login(
    state: &AppState,
    tenant: Option<&TenantId>,
    encoded: &str,
) -> Result<User, ApiError> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map(Secret::new)
        .ok_or(CoreError::InvalidSession)?;
    let (email, password) = decoded
        .expose()
        .split_once(':')
        .ok_or(CoreError::InvalidSession)?;
    // No address, no user: the same answer as a wrong password.
    let email = Email::parse(email).map_err(|_| CoreError::InvalidCredentials)?;
    let password = Secret::new(password);
    Ok(flows::check_login(state.ctx(), tenant, &email, password).await?)
}

/// The `permission` parameters of a query string, each required: numbers (0–65535), or names
/// from `PERMISSION_NAMES`.
///
/// # Errors
/// 400 `invalid_permission` for one that is neither.
fn wanted_permissions(query: &str, names: &PermissionNames) -> Result<Vec<Permission>, ApiError> {
    url::form_urlencoded::parse(query.as_bytes())
        .filter(|(name, _)| name == "permission")
        .map(|(_, value)| {
            let value = value.trim();
            if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
                value.parse::<u16>().ok().map(Permission)
            } else {
                names.number(value)
            }
            .ok_or_else(|| ApiError::invalid_permission(value))
        })
        .collect()
}

/// The 200 answer for `identity`, or 403 `forbidden` when a wanted permission is not held. The
/// body is [`CheckAnswer`]: its session part serialised here, its permit part as rendered once
/// ([`Rendered::json`]).
fn answer(state: &AppState, identity: &Identity, wanted: &[Permission]) -> Answer {
    let rendered = &identity.access;
    if wanted.iter().any(|p| !rendered.access.has(*p)) {
        return Err(CoreError::Forbidden.into());
    }
    let user = &identity.user;
    let session_id = identity.session.as_ref().map(|s| s.id.to_string());
    let head = CheckHead {
        user_id: IdOut(&user.id),
        email: user.email.as_str(),
        role: user.role.as_str(),
        tenant_id: state
            .multi_tenant()
            .then(|| user.tenant.as_ref().map(TenantId::as_str)),
        session_id: session_id.as_deref(),
        expires_at: identity
            .session
            .as_ref()
            .map(|s| format_time(&s.expires_at)),
    };
    let body = head.body(rendered)?;
    let user_id = user.id.to_string();
    let values = [
        user_id.as_str(),
        user.email.as_str(),
        user.role.as_str(),
        rendered.groups_header.as_str(),
        session_id.as_deref().unwrap_or(""),
    ];
    let mut res = HttpResponse::Ok()
        .content_type("application/json")
        .body(body);
    for (name, value) in IDENTITY_HEADERS.iter().zip(values) {
        let value = HeaderValue::from_bytes(value.as_bytes())
            .map_err(|_| ApiError::internal(&format!("{name} cannot carry the stored value")))?;
        res.headers_mut()
            .insert(HeaderName::from_static(name), value);
    }
    Ok(answer::no_store(res))
}

/// [`CheckAnswer`]'s members before the permit's, as [`answer`] serialises them.
#[derive(Serialize)]
struct CheckHead<'a> {
    user_id: IdOut<'a>,
    email: &'a str,
    role: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_id: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<&'a str>,
    expires_at: Option<String>,
}

impl CheckHead<'_> {
    /// The whole [`CheckAnswer`]: these members serialised, the closing brace replaced by the
    /// permit's members as rendered once per cache fill ([`Rendered::json`], each after a
    /// comma), and closed again. The one place the answer is put together.
    fn body(&self, rendered: &Rendered) -> Result<String, ApiError> {
        let mut body =
            serde_json::to_string(self).map_err(|e| ApiError::internal(&e.to_string()))?;
        body.reserve(rendered.json.len() + 1);
        body.pop();
        body.push_str(&rendered.json);
        body.push('}');
        Ok(body)
    }
}

/// `/check`'s answer (SPEC §8), as the OpenAPI document describes it; [`answer`] writes it as
/// [`CheckHead`] followed by [`Rendered::json`] (a test holds the two equal).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[cfg_attr(not(test), allow(dead_code))]
pub struct CheckAnswer<'a> {
    /// The user's id, as stored.
    #[schema(value_type = crate::openapi::UserId)]
    user_id: IdOut<'a>,
    #[schema(format = Email)]
    email: &'a str,
    role: &'a str,
    /// With multi-tenancy on: the user's tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    tenant_id: Option<Option<&'a str>>,
    /// The session's id; absent for Basic credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    session_id: Option<&'a str>,
    /// When the session ends; `null` for Basic credentials (no session).
    #[schema(format = DateTime, required = true)]
    expires_at: Option<String>,
    /// The user's role groups that exist, ascending by id.
    #[schema(value_type = Vec<GroupRef>)]
    groups: Vec<GroupRef<'a>>,
    /// The permission numbers the user holds (the union of their groups'), ascending.
    permissions: Vec<u16>,
    /// With `PERMISSION_NAMES`: the names of the permissions held that have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    permission_names: Option<Vec<&'a str>>,
    /// The Authaus permit blob (group ids as big-endian u32s), standard base64 (`""` for the
    /// empty permit).
    permit: String,
}

/// `/check`'s query, as the document describes it (read by [`wanted_permissions`], since a
/// repeated parameter does not fit a struct).
#[derive(Debug, utoipa::IntoParams)]
#[expect(dead_code, reason = "describes the query for the OpenAPI document")]
#[into_params(parameter_in = Query)]
pub struct CheckQuery {
    /// A permission the user must hold (repeatable: all are required): a number, or a name
    /// from `PERMISSION_NAMES`.
    #[param(style = Form, explode)]
    pub permission: Option<Vec<String>>,
}

/// What a reverse proxy says about the request it asks about, as the document describes it
/// (read by [`original_url`] and [`is_navigation`]).
#[derive(Debug, utoipa::IntoParams)]
#[expect(dead_code, reason = "describes the headers for the OpenAPI document")]
#[into_params(parameter_in = Header)]
pub struct ForwardedHeaders {
    /// nginx: the original URL.
    #[param(rename = "X-Original-URL")]
    pub x_original_url: Option<String>,
    /// Traefik, Caddy: the original method.
    #[param(rename = "X-Forwarded-Method")]
    pub x_forwarded_method: Option<String>,
    /// Traefik, Caddy: `http` or `https`.
    #[param(rename = "X-Forwarded-Proto")]
    pub x_forwarded_proto: Option<String>,
    /// Traefik, Caddy: the original host.
    #[param(rename = "X-Forwarded-Host")]
    pub x_forwarded_host: Option<String>,
    /// Traefik, Caddy: the original path and query.
    #[param(rename = "X-Forwarded-Uri")]
    pub x_forwarded_uri: Option<String>,
}

/// A browser navigating: GET or HEAD (the original method when the proxy says it) whose
/// `Accept` includes `text/html`.
fn is_navigation(req: &HttpRequest) -> bool {
    let method = req
        .headers()
        .get("x-forwarded-method")
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| req.method().as_str().to_owned(), |m| m.trim().to_owned());
    let reading = method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD");
    let html = req
        .headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            range
                .split(';')
                .next()
                .is_some_and(|media| media.trim().eq_ignore_ascii_case("text/html"))
        });
    reading && html
}

/// The 302 to the sign-in form, with the original URL as `rd` when it is allowed.
fn to_sign_in(state: &AppState, req: &HttpRequest) -> HttpResponse {
    let mut location = state.sign_in_form().clone();
    {
        let mut query = location.query_pairs_mut();
        query.append_pair("action", "session");
        match original_url(req).map(|url| state.ctx().settings.redirects.check(&url)) {
            Some(Ok(rd)) => {
                query.append_pair("rd", rd.as_str());
            }
            Some(Err(_)) => tracing::warn!(
                "forward auth: the original URL is not under ALLOWED_REDIRECT_URLS; \
                 the sign-in form is reached without it"
            ),
            None => {}
        }
    }
    answer::no_store(
        HttpResponse::Found()
            .insert_header((header::LOCATION, location.as_str()))
            .finish(),
    )
}

/// The URL the proxied request was for: `X-Original-URL`, else `X-Forwarded-Proto`://
/// `X-Forwarded-Host` `X-Forwarded-Uri` (`http` and `/` when those two are missing). `None`
/// without a host. Unvalidated: only [`to_sign_in`]'s check makes it a redirect.
fn original_url(req: &HttpRequest) -> Option<String> {
    let first = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            // A chain of proxies lists several, the first being the client's.
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    if let Some(url) = req
        .headers()
        .get("x-original-url")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        return Some(url.to_owned());
    }
    let host = first("x-forwarded-host")?;
    let proto = first("x-forwarded-proto").unwrap_or("http");
    let uri = req
        .headers()
        .get("x-forwarded-uri")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| v.starts_with('/'))
        .unwrap_or("/");
    Some(format!("{proto}://{host}{uri}"))
}

/// `EXTERNAL_URL/form`, the page a forward-auth redirect sends a browser to.
pub fn sign_in_form(external_url: &Url) -> Url {
    let form = format!("{}/form", external_url.as_str().trim_end_matches('/'));
    Url::parse(&form).unwrap_or_else(|_| external_url.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer written in two parts by [`CheckHead::body`] (the session's, serialised per
    /// request; the permit's, rendered once) is exactly the documented [`CheckAnswer`], with
    /// and without groups and permission names, a tenant and a session.
    #[test]
    fn the_rendered_answer_is_the_documented_one() {
        use authura_core::UserId;
        use authura_core::permit::{GroupId, GroupName, Permit, RoleGroup};

        let group = |id: u32, name: &str, permissions: &[u16]| RoleGroup {
            id: GroupId(id),
            name: GroupName::parse(name).unwrap(),
            permissions: permissions.iter().copied().map(Permission).collect(),
        };
        let groups = [
            group(7, "Ops, \"night\"", &[1, 300, 2]),
            group(9, "Élan", &[65535]),
        ];
        let full = Access::resolve(Permit::new([GroupId(9), GroupId(7), GroupId(42)]), &groups);
        let named = PermissionNames::new([("read".to_owned(), Permission(300))]);
        for (access, names) in [
            (Access::default(), PermissionNames::default()),
            (full.clone(), PermissionNames::default()),
            (full, named),
        ] {
            let rendered = Rendered::new(access.clone(), &names);
            let id = UserId::Int(5);
            for (tenant, session) in [(None, None), (Some(Some("acme")), Some("0f3e"))] {
                let expires_at = session.map(|_| "2026-12-06T00:00:00Z".to_owned());
                let head = CheckHead {
                    user_id: IdOut(&id),
                    email: "a@example.com",
                    role: "user",
                    tenant_id: tenant,
                    session_id: session,
                    expires_at: expires_at.clone(),
                };
                let body = head.body(&rendered).unwrap();
                let documented = CheckAnswer {
                    user_id: IdOut(&id),
                    email: "a@example.com",
                    role: "user",
                    tenant_id: tenant,
                    session_id: session,
                    expires_at,
                    groups: access
                        .groups
                        .iter()
                        .map(|(id, name)| GroupRef {
                            id: id.0,
                            name: name.as_str(),
                        })
                        .collect(),
                    permissions: access.permissions.iter().map(|p| p.0).collect(),
                    permission_names: (!names.is_empty()).then(|| names.names(&access.permissions)),
                    permit: access.permit.to_base64(),
                };
                assert_eq!(body, serde_json::to_string(&documented).unwrap());
                let _: serde_json::Value = serde_json::from_str(&body).unwrap();
            }
            let header: Vec<&str> = access.groups.iter().map(|(_, n)| n.as_str()).collect();
            assert_eq!(rendered.groups_header, header.join(","));
        }
    }

    #[test]
    fn permissions_are_numbers_or_configured_names() {
        let none = PermissionNames::default();
        let wanted = |q: &str| wanted_permissions(q, &none).map_err(|e| e.code());
        assert_eq!(wanted(""), Ok(vec![]));
        assert_eq!(
            wanted("permission=3&x=1&permission=65535"),
            Ok(vec![Permission(3), Permission(65535)])
        );
        for bad in [
            "permission=admin",
            "permission=",
            "permission=65536",
            "permission=-1",
        ] {
            assert_eq!(wanted(bad), Err("invalid_permission"), "{bad}");
        }
        let names = PermissionNames::new([
            ("read".to_owned(), Permission(1)),
            ("write".to_owned(), Permission(2)),
        ]);
        let wanted = |q: &str| wanted_permissions(q, &names).map_err(|e| e.code());
        assert_eq!(
            wanted("permission=write&permission=7&permission=read"),
            Ok(vec![Permission(2), Permission(7), Permission(1)])
        );
        for bad in ["permission=Read", "permission=admin", "permission=65536"] {
            assert_eq!(wanted(bad), Err("invalid_permission"), "{bad}");
        }
    }

    #[test]
    fn the_form_is_under_the_external_url() {
        let form = |u: &str| sign_in_form(&Url::parse(u).unwrap()).to_string();
        assert_eq!(
            form("https://auth.example.com"),
            "https://auth.example.com/form"
        );
        assert_eq!(
            form("https://example.com/auth/"),
            "https://example.com/auth/form"
        );
    }
}
