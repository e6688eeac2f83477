//! The session endpoints of SPEC §8, registered only when `SESSIONS_ENABLED=true`: `POST
//! /session` (sign in: a session cookie, or its key for apps that are not browsers), `GET` and
//! `DELETE /session`, `POST /logout`, `GET` and `DELETE /sessions`, `DELETE /sessions/{id}`.
//!
//! Credentials are the session cookie, `Authorization: Session <key>` or a Bearer access token
//! bound to a session ([`SessionCredentials`]). A state-changing request authenticated by the
//! cookie alone must come from a trusted origin ([`csrf`](crate::principal::csrf)): the browser attaches the cookie to
//! requests any site makes.

use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use authura_core::flows::{self, Context, UserView};
use authura_core::hook::HookUser;
use authura_core::state::{Session, SessionMethod};
use authura_core::types::format_time;
use authura_core::{CoreError, Email, Secret, User};
use authura_session::{Opening, SessionError};
use serde::{Deserialize, Deserializer, Serialize};

use crate::answer::{self, Answer, UserOut};
use crate::error::ApiError;
use crate::extract::{Body, Captcha, CaptchaFields, ClientInfo, State, Tenant};
use crate::html;
use crate::principal::{CredentialKind, Principal, SessionCredentials, csrf, session_error};
use crate::routes::refuse_others;
use crate::state::{AppState, SessionsState};

/// Registers this area's routes (only called with sessions on).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/session")
            .route(web::post().to(create))
            .route(web::get().to(current))
            .route(web::head().to(current))
            .route(web::delete().to(end_current))
            .default_service(refuse_others("GET, HEAD, POST, DELETE")),
    )
    .service(
        web::resource("/logout")
            .route(web::post().to(logout))
            .default_service(refuse_others("POST")),
    )
    .service(
        web::resource("/sessions")
            .route(web::get().to(list))
            .route(web::head().to(list))
            .route(web::delete().to(end_others))
            .default_service(refuse_others("GET, HEAD, DELETE")),
    )
    .service(
        web::resource("/sessions/{id}")
            .route(web::delete().to(end_one))
            .default_service(refuse_others("DELETE")),
    );
}

/// The body of `POST /session`.
// No `Debug`: it carries a password.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SessionBody {
    #[schema(format = Email)]
    email: String,
    password: String,
    /// `true`: answer the session's key in the body (`session.key`) and set no cookie, for
    /// apps that are not browsers (they send `Authorization: Session <key>`).
    #[serde(default, deserialize_with = "flag")]
    #[schema(value_type = Option<bool>)]
    return_key: bool,
    /// Where to send the browser once signed in (303), when it passes `ALLOWED_REDIRECT_URLS`:
    /// what `/form?action=session&rd=…` carries through.
    #[schema(format = "uri")]
    rd: Option<String>,
    #[serde(flatten)]
    captcha: CaptchaFields,
}

/// `S`, a session as answered.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Session)]
pub struct SessionOut<'a> {
    /// The public id (the tokens' `sid`).
    #[schema(value_type = String, format = "uuid")]
    id: String,
    /// When it was opened (RFC 3339).
    #[schema(format = DateTime)]
    created_at: String,
    /// When it was last used (written at most once a minute).
    #[schema(format = DateTime)]
    last_seen_at: String,
    /// When it ends at the latest (`SESSION_EXPIRATION` after sign-in).
    #[schema(format = DateTime)]
    expires_at: String,
    /// The address it was opened from, when known.
    #[schema(required = true)]
    ip: Option<&'a str>,
    /// The `User-Agent` it was opened with (its first 256 characters), when sent.
    #[schema(required = true)]
    user_agent: Option<&'a str>,
    /// How it was opened: `password`, `oauth:<provider>`, `verify-email` or `impersonation`.
    method: String,
    /// The key (only in `POST /session`'s answer with `return_key`): send it as
    /// `Authorization: Session <key>`. It is never shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    /// In `GET /sessions`: whether this is the session the request was made with.
    #[serde(skip_serializing_if = "Option::is_none")]
    current: Option<bool>,
}

impl<'a> SessionOut<'a> {
    fn new(session: &'a Session) -> Self {
        SessionOut {
            id: session.id.to_string(),
            created_at: format_time(&session.created_at),
            last_seen_at: format_time(&session.last_seen_at),
            expires_at: format_time(&session.expires_at),
            ip: session.ip.as_deref(),
            user_agent: session.user_agent.as_deref(),
            method: session.method.as_text(),
            key: None,
            current: None,
        }
    }
}

/// `{"user": U, "session": S}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionAnswer<'a> {
    /// The session's user, as `GET /user` answers it.
    pub user: UserOut<'a>,
    /// The session.
    pub session: SessionOut<'a>,
}

/// `{"sessions": [S…]}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionsAnswer<'a> {
    /// The user's live sessions, newest first, each with `current`.
    pub sessions: Vec<SessionOut<'a>>,
}

/// `POST /session`: signs in with a password and opens a session: its cookie, or (`return_key`)
/// its key in the body.
#[utoipa::path(
    post,
    path = "/session",
    tag = crate::openapi::tag::SESSION,
    summary = "Sign in: open a session (cookie, or the key with return_key)",
    description = "Only with `SESSIONS_ENABLED=true` (else 404). The same checks, limits and \
        timing as `POST /token`. Sets the session cookie (`HttpOnly; SameSite=Lax; Path=/`, \
        `Secure` unless `SESSION_COOKIE_SECURE=false`, `Max-Age` the session's life), unless \
        `return_key` is true: then `session.key` is in the body and no cookie is set. With a \
        valid `rd`, or from a browser form, the answer is 303 (to `rd`, or to \
        `/form?action=session`).",
    request_body = SessionBody,
    responses(
        (status = 200, description = "`{\"user\": U, \"session\": S}`.", body = SessionAnswer,
            headers(
                ("Cache-Control" = String, description = "`no-store`."),
                ("Set-Cookie" = String, description = "The session cookie (not with `return_key`)."),
            )),
        (status = 303, description = "Signed in from a browser form: to `rd`, or to the session page.",
            headers(
                ("Location" = String, description = "`rd`, or `EXTERNAL_URL/form?action=session`."),
                ("Set-Cookie" = String, description = "The session cookie."),
                ("Cache-Control" = String, description = "`no-store`."),
            )),
        crate::openapi::errors::SessionCreate,
    ),
)]
pub async fn create(
    state: State,
    tenant: Tenant,
    Body(body): Body<SessionBody>,
    captcha: Captcha,
    client: ClientInfo,
    req: HttpRequest,
) -> Answer {
    let sessions = sessions(&state)?;
    let email = Email::parse(&body.email)?;
    captcha.check(&body.captcha).await?;
    let rd = match body.rd.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(rd) if !body.return_key => Some(state.ctx().settings.redirects.check(rd)?),
        _ => None,
    };
    let ctx = state.ctx();
    let client = client.client_after_captcha(&captcha);
    let checked = flows::check_login_from(
        ctx,
        tenant.get(),
        &email,
        Secret::new(body.password),
        client,
    )
    .await?;
    // The hook answers before the session opens, so a refusing hook leaves none behind.
    let view = user_view(ctx, checked.user).await?;
    let opened = sessions
        .policy()
        .open_until(
            Opening {
                user_id: &view.user.id,
                tenant: view.user.tenant.as_ref(),
                method: SessionMethod::Password,
                ip: client.ip,
                user_agent: client.user_agent,
            },
            // A session ends when the password expires at the latest (SPEC §11).
            checked.password_expires_at,
        )
        .await
        .map_err(session_error)?;
    let mut out = SessionOut::new(&opened.session);
    if body.return_key {
        out.key = Some(opened.key.expose());
        return Ok(answer::no_store(session_answer(&state, &view, out)));
    }
    let cookie = session_cookie(sessions, opened.key.expose(), &opened.session, ctx);
    let location = match rd {
        Some(rd) => Some(rd.to_string()),
        None if from_browser_form(&req) => Some(state.session_form_url()),
        None => None,
    };
    let mut res = match location {
        Some(location) => see_other(&location),
        None => session_answer(&state, &view, out),
    };
    set_cookie(&mut res, &cookie)?;
    Ok(answer::no_store(res))
}

/// `GET /session`: the current session and its user.
#[utoipa::path(
    get,
    path = "/session",
    tag = crate::openapi::tag::SESSION,
    summary = "The current session and its user",
    description = "Only with `SESSIONS_ENABLED=true` (else 404).",
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "`{\"user\": U, \"session\": S}`.", body = SessionAnswer,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        crate::openapi::errors::SessionRead,
    ),
)]
pub async fn current(state: State, tenant: Tenant, credentials: SessionCredentials) -> Answer {
    let principal = credentials.resolve(tenant.get()).await?;
    let view = user_view(state.ctx(), principal.user).await?;
    let session = SessionOut::new(&principal.session);
    Ok(answer::no_store(session_answer(&state, &view, session)))
}

/// 200 `{"user": U, "session": S}`: `POST /session`'s answer and `GET /session`'s, built here
/// only.
fn session_answer(state: &AppState, view: &UserView, session: SessionOut<'_>) -> HttpResponse {
    HttpResponse::Ok().json(SessionAnswer {
        user: UserOut::new(state, view),
        session,
    })
}

/// `DELETE /session`: ends the current session (a logout).
#[utoipa::path(
    delete,
    path = "/session",
    tag = crate::openapi::tag::SESSION,
    summary = "End the current session (log out)",
    description = "Only with `SESSIONS_ENABLED=true` (else 404). Clears the cookie; the \
        session's refresh tokens stop working. Authenticated by the cookie alone, the request \
        needs a trusted `Origin` or `Referer` (CSRF).",
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "`{}`.", body = crate::openapi::Empty,
            headers(("Set-Cookie" = String, description = "The cookie, cleared."))),
        crate::openapi::errors::SessionWrite,
    ),
)]
pub async fn end_current(
    state: State,
    tenant: Tenant,
    credentials: SessionCredentials,
    req: HttpRequest,
) -> Answer {
    end_current_session(&state, &tenant, &credentials, &req).await?;
    cleared(&state, HttpResponse::Ok().json(serde_json::json!({})))
}

/// `POST /logout`: `DELETE /session` for HTML forms; a browser form post is sent back to the
/// session page (303).
#[utoipa::path(
    post,
    path = "/logout",
    tag = crate::openapi::tag::SESSION,
    summary = "End the current session (log out), for HTML forms",
    description = "Only with `SESSIONS_ENABLED=true` (else 404). As `DELETE /session`; a \
        browser's form post (a form body, `Accept` preferring HTML) is answered 303 to \
        `/form?action=session`.",
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "`{}`.", body = crate::openapi::Empty,
            headers(("Set-Cookie" = String, description = "The cookie, cleared."))),
        (status = 303, description = "A browser form post: back to the session page.",
            headers(
                ("Location" = String, description = "`EXTERNAL_URL/form?action=session`."),
                ("Set-Cookie" = String, description = "The cookie, cleared."),
            )),
        crate::openapi::errors::SessionWrite,
    ),
)]
pub async fn logout(
    state: State,
    tenant: Tenant,
    credentials: SessionCredentials,
    req: HttpRequest,
) -> Answer {
    end_current_session(&state, &tenant, &credentials, &req).await?;
    let res = if from_browser_form(&req) {
        see_other(&state.session_form_url())
    } else {
        HttpResponse::Ok().json(serde_json::json!({}))
    };
    cleared(&state, res)
}

/// `GET /sessions`: the user's live sessions, newest first.
#[utoipa::path(
    get,
    path = "/sessions",
    tag = crate::openapi::tag::SESSION,
    summary = "My live sessions, newest first",
    description = "Only with `SESSIONS_ENABLED=true` (else 404). `current` is true on the \
        session the request was made with.",
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "`{\"sessions\": [S…]}`.", body = SessionsAnswer,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        crate::openapi::errors::SessionRead,
    ),
)]
pub async fn list(state: State, tenant: Tenant, credentials: SessionCredentials) -> Answer {
    let principal = credentials.resolve(tenant.get()).await?;
    let all = sessions(&state)?
        .policy()
        .list(tenant.get(), &principal.user.id)
        .await
        .map_err(session_error)?;
    let sessions = all
        .iter()
        .map(|s| SessionOut {
            current: Some(s.id == principal.session.id),
            ..SessionOut::new(s)
        })
        .collect();
    Ok(answer::no_store(
        HttpResponse::Ok().json(SessionsAnswer { sessions }),
    ))
}

/// `DELETE /sessions`: ends every session of the user but the current one.
#[utoipa::path(
    delete,
    path = "/sessions",
    tag = crate::openapi::tag::SESSION,
    summary = "End all my other sessions",
    description = "Only with `SESSIONS_ENABLED=true` (else 404). The current session stays. \
        Authenticated by the cookie alone, the request needs a trusted `Origin` or `Referer` \
        (CSRF).",
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "`{}`.", body = crate::openapi::Empty),
        crate::openapi::errors::SessionWrite,
    ),
)]
pub async fn end_others(
    state: State,
    tenant: Tenant,
    credentials: SessionCredentials,
    req: HttpRequest,
) -> Answer {
    csrf(&state, &credentials, &req)?;
    let principal = credentials.resolve(tenant.get()).await?;
    sessions(&state)?
        .policy()
        .end_others(tenant.get(), &principal.user.id, principal.session.id)
        .await
        .map_err(session_error)?;
    Ok(answer::empty())
}

/// `DELETE /sessions/{id}`: ends one of the user's sessions.
#[utoipa::path(
    delete,
    path = "/sessions/{id}",
    tag = crate::openapi::tag::SESSION,
    summary = "End one of my sessions",
    description = "Only with `SESSIONS_ENABLED=true` (else 404). Another user's session, an \
        unknown or malformed id: 404 `not_found`. Ending the current one clears the cookie. \
        Authenticated by the cookie alone, the request needs a trusted `Origin` or `Referer` \
        (CSRF).",
    params(("id" = String, Path, description = "The session's id (a UUID).")),
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "`{}`.", body = crate::openapi::Empty,
            headers(("Set-Cookie" = String, description = "The cookie, cleared, when the current session was ended with it."))),
        crate::openapi::errors::SessionWrite,
    ),
)]
pub async fn end_one(
    state: State,
    tenant: Tenant,
    id: web::Path<String>,
    credentials: SessionCredentials,
    req: HttpRequest,
) -> Answer {
    csrf(&state, &credentials, &req)?;
    let principal = credentials.resolve(tenant.get()).await?;
    // A malformed id names no session: the same 404 as another user's.
    let id = uuid::Uuid::parse_str(&id).map_err(|_| no_such_session())?;
    sessions(&state)?
        .policy()
        .end_own(tenant.get(), &principal.user.id, id)
        .await
        .map_err(|e| match e {
            SessionError::NotFound => no_such_session(),
            e => session_error(e),
        })?;
    let res = answer::empty();
    if id == principal.session.id && principal.kind == CredentialKind::Cookie {
        cleared(&state, res)
    } else {
        Ok(res)
    }
}

/// The sessions state; the routes are registered only when it exists.
fn sessions(state: &AppState) -> Result<&SessionsState, ApiError> {
    state.sessions().ok_or_else(ApiError::not_found)
}

/// 404 `not_found` for a session id that is not one of the user's.
fn no_such_session() -> ApiError {
    CoreError::NotFound.into()
}

/// The CSRF check, then the current session ended.
async fn end_current_session(
    state: &AppState,
    tenant: &Tenant,
    credentials: &SessionCredentials,
    req: &HttpRequest,
) -> Result<Principal, ApiError> {
    csrf(state, credentials, req)?;
    let principal = credentials.resolve(tenant.get()).await?;
    match sessions(state)?.policy().end(principal.session.id).await {
        // Ended meanwhile (another tab): the logout holds all the same.
        Ok(_) | Err(SessionError::NotFound) => Ok(principal),
        Err(e) => Err(session_error(e)),
    }
}

/// A user as answered (`U`): with what the hook adds, as `GET /user` does.
pub(crate) async fn user_view(ctx: &Context, user: User) -> Result<UserView, CoreError> {
    let hook_data = if ctx.hook.is_active() {
        ctx.hook.get_user(&HookUser::from(&user)).await?
    } else {
        None
    };
    Ok(UserView { user, hook_data })
}

/// The session cookie for `key`: `HttpOnly; SameSite=Lax; Path=/`, `Secure` and `Domain` as
/// configured, `Max-Age` the session's remaining life.
pub(crate) fn session_cookie<'a>(
    sessions: &'a SessionsState,
    key: &'a str,
    session: &Session,
    ctx: &Context,
) -> Cookie<'a> {
    let remaining = (session.expires_at - ctx.clock.now()).num_seconds().max(0);
    let mut cookie = base_cookie(sessions, key);
    cookie.set_max_age(CookieDuration::seconds(remaining));
    cookie
}

/// The cookie's name and attributes, with `value`.
fn base_cookie<'a>(sessions: &'a SessionsState, value: &'a str) -> Cookie<'a> {
    let settings = sessions.cookie();
    let mut cookie = Cookie::new(settings.name.as_str(), value);
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Lax);
    cookie.set_path("/");
    cookie.set_secure(settings.secure);
    if let Some(domain) = &settings.domain {
        cookie.set_domain(domain.as_str());
    }
    cookie
}

/// `res` with the session cookie cleared (the same name, path and domain; empty; `Max-Age=0`).
fn cleared(state: &AppState, mut res: HttpResponse) -> Answer {
    let sessions = sessions(state)?;
    let mut cookie = base_cookie(sessions, "");
    cookie.make_removal();
    set_cookie(&mut res, &cookie)?;
    Ok(answer::no_store(res))
}

pub(crate) fn set_cookie(res: &mut HttpResponse, cookie: &Cookie<'_>) -> Result<(), ApiError> {
    let value = HeaderValue::from_str(&cookie.to_string())
        .map_err(|_| ApiError::internal("the session cookie is not a header value"))?;
    res.headers_mut().append(header::SET_COOKIE, value);
    Ok(())
}

/// 303 See Other to `location`.
fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// A browser posting one of the `/form` pages: a form body, and an `Accept` preferring HTML.
fn from_browser_form(req: &HttpRequest) -> bool {
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| v == "application/json" || v.ends_with("+json"));
    !json
        && html::prefers_html(
            req.headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok()),
        )
}

/// `true`/`false` as JSON's booleans, or as a form's text (`true`, `1`, `on`; `false`, `0`,
/// `off`, or empty).
fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    match Flag::deserialize(d)? {
        Flag::Bool(b) => Ok(b),
        Flag::Text(t) => match t.as_str() {
            "true" | "1" | "on" => Ok(true),
            "false" | "0" | "off" | "" => Ok(false),
            _ => Err(serde::de::Error::custom(
                "return_key: expected true or false",
            )),
        },
    }
}
