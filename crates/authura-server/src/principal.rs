//! Who a request's session credentials name (SPEC §8): the session cookie, `Authorization:
//! Session <key>`, or `Authorization: Bearer <access token>` bound to a session (`sid`), first
//! found wins. [`SessionCredentials`] is the extractor (it never fails, so SPEC §3's order
//! holds: the handler resolves it after the body); [`SessionCredentials::resolve`] answers the
//! [`Principal`] or 401 `invalid_session`.
//!
//! The "my sessions" endpoints and `/check` share this; a credential is never compared by value
//! (a key is looked up by its SHA-256, a token by its signature).

use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpRequest};
use authura_core::flows;
use authura_core::state::Session;
use authura_core::{CoreError, TenantId, User, UserId};
use authura_session::SessionError;
use std::future::{Ready, ready};

use crate::error::ApiError;
use crate::extract::{ClientInfo, State};
use crate::middleware::cors::trusted_origin;
use crate::state::AppState;

/// Where a request's session credential came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialKind {
    /// The session cookie: a browser sends it by itself, so a state-changing request
    /// authenticated by it alone must pass the CSRF rule (SPEC §8).
    Cookie,
    /// `Authorization: Session <key>`.
    SessionHeader,
    /// `Authorization: Bearer <access token>` whose `sid` names the session.
    Bearer,
}

/// A request's session credential, unchecked. Extracting it never fails.
pub struct SessionCredentials {
    state: Option<State>,
    found: Option<(CredentialKind, String)>,
    /// More than one `Authorization` header was sent.
    repeated: bool,
}

impl std::fmt::Debug for SessionCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCredentials")
            .field("kind", &self.found.as_ref().map(|(kind, _)| kind))
            .finish_non_exhaustive()
    }
}

/// A live session and its user's current record.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The session (presented by its key, its `last_seen_at` is brought up to date).
    pub session: Session,
    /// The user, read again from the users store (never trusted from a token).
    pub user: User,
    /// How the request proved it.
    pub kind: CredentialKind,
}

impl SessionCredentials {
    /// How the request presented a credential, if it did.
    pub fn kind(&self) -> Option<CredentialKind> {
        self.found.as_ref().map(|(kind, _)| *kind)
    }

    /// The session key presented (cookie or `Authorization: Session`), if that is the
    /// credential; `None` for a Bearer token or none.
    pub fn key(&self) -> Option<&str> {
        match &self.found {
            Some((CredentialKind::Cookie | CredentialKind::SessionHeader, key)) => Some(key),
            _ => None,
        }
    }

    /// The live session the credential opens, in the request's tenant, and its user.
    ///
    /// # Errors
    /// 401 `invalid_session` for no credential, a malformed, unknown, expired, idle or ended
    /// one, a token bound to no session, a session of another tenant, or a user who is gone;
    /// 503/502 when the state store or the users backend fails.
    pub async fn resolve(&self, tenant: Option<&TenantId>) -> Result<Principal, ApiError> {
        let (Some(state), Some((kind, credential))) = (&self.state, &self.found) else {
            return Err(CoreError::InvalidSession.into());
        };
        let Some(sessions) = state.sessions() else {
            return Err(CoreError::InvalidSession.into());
        };
        let policy = sessions.policy();
        let session = match kind {
            CredentialKind::Cookie | CredentialKind::SessionHeader => {
                policy.authenticate(credential).await
            }
            CredentialKind::Bearer => {
                let ctx = state.ctx();
                let claims = ctx
                    .tokens
                    .verify_bearer(credential, ctx.clock.now())
                    .map_err(|_| CoreError::InvalidSession)?;
                let sid = claims
                    .sid
                    .as_deref()
                    .and_then(|sid| uuid::Uuid::parse_str(sid).ok())
                    .ok_or(CoreError::InvalidSession)?;
                match policy.find(sid).await {
                    Ok(session)
                        if session.user_id == UserId::from_subject(&claims.sub)
                            && session.tenant.as_ref().map(TenantId::as_str)
                                == claims.tid.as_deref() =>
                    {
                        Ok(session)
                    }
                    Ok(_) => Err(SessionError::NotFound),
                    Err(e) => Err(e),
                }
            }
        }
        .map_err(session_error)?;
        if session.tenant.as_ref() != tenant {
            return Err(CoreError::InvalidSession.into());
        }
        let user = state
            .ctx()
            .store
            .find_by_id(session.tenant.as_ref(), &session.user_id)
            .await
            .map_err(CoreError::from)?
            .ok_or(CoreError::InvalidSession)?;
        Ok(Principal {
            session,
            user,
            kind: *kind,
        })
    }
}

/// The caller of an administration endpoint (SPEC §8a, §11): a user of `ADMIN_ROLE`, as their
/// current record says (a role in a token is never trusted: a demoted admin's token stops
/// opening these endpoints at once).
#[derive(Debug, Clone)]
pub struct Admin {
    /// The administrator's current record.
    pub user: User,
    /// The session the request was authenticated by, if it was (a cookie, `Authorization:
    /// Session`, or an access token bound to a session); `None` for a stateless access token.
    pub session: Option<Session>,
}

impl Admin {
    /// The administrator as the user-administration flows take them, with the request's client
    /// (for the audit log).
    pub fn actor<'a>(&'a self, client: &'a ClientInfo) -> flows::admin::Actor<'a> {
        flows::admin::Actor {
            admin: Some(&self.user),
            client: client.client(),
        }
    }

    /// [`Admin::actor`] as the role-group and permit operations take it.
    pub fn permit_actor<'a>(&'a self, client: &'a ClientInfo) -> crate::permits::Actor<'a> {
        crate::permits::Actor {
            admin: Some(&self.user.id),
            client: client.client(),
        }
    }
}

impl SessionCredentials {
    /// The administrator making this request: `Authorization: Bearer <access token>` (bound to a
    /// session when it carries a `sid`: that session must be live), `Authorization: Session
    /// <key>` or the session cookie; a state-changing request (not GET or HEAD) authenticated by
    /// the cookie alone must pass the CSRF rule ([`csrf`]).
    ///
    /// # Errors
    /// 400 `invalid_body` for two `Authorization` headers; 401 `invalid_token` for no
    /// credential or a bad access token, 401 `invalid_session` for a dead session; 403
    /// `forbidden` when the caller is not of `ADMIN_ROLE` or fails the CSRF rule; backend errors.
    pub async fn admin(
        &self,
        state: &AppState,
        tenant: Option<&TenantId>,
        req: &HttpRequest,
    ) -> Result<Admin, ApiError> {
        if self.repeated {
            return Err(ApiError::invalid_body(
                "the request has more than one Authorization header",
            ));
        }
        let (user, session) = match &self.found {
            None => return Err(CoreError::InvalidToken.into()),
            Some((CredentialKind::Bearer, token)) => {
                let ctx = state.ctx();
                let claims = ctx.tokens.verify_bearer(token, ctx.clock.now())?;
                if claims.sid.is_some() && state.sessions().is_some() {
                    let principal = self.resolve(tenant).await?;
                    (principal.user, Some(principal.session))
                } else {
                    (flows::authenticate(ctx, tenant, token).await?.user, None)
                }
            }
            Some(_) => {
                // A read changes nothing, and `SameSite=Lax` keeps the cookie off cross-site
                // subrequests: only writes need the CSRF rule.
                if !matches!(*req.method(), Method::GET | Method::HEAD) {
                    csrf(state, self, req)?;
                }
                let principal = self.resolve(tenant).await?;
                (principal.user, Some(principal.session))
            }
        };
        if user.role != state.ctx().settings.admin_role {
            return Err(CoreError::Forbidden.into());
        }
        Ok(Admin { user, session })
    }
}

/// A session error as the HTTP layer answers it.
pub fn session_error(e: SessionError) -> ApiError {
    match e {
        SessionError::NotFound | SessionError::RefreshReused => CoreError::InvalidSession.into(),
        SessionError::Store(e) => CoreError::from(e).into(),
        SessionError::Random(m) => CoreError::Internal(m).into(),
    }
}

impl FromRequest for SessionCredentials {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<State>().cloned();
        let cookie_name = state
            .as_ref()
            .and_then(|s| s.sessions())
            .map(|s| s.cookie().name.clone());
        let found = cookie_name
            .and_then(|name| req.cookie(&name))
            .map(|c| (CredentialKind::Cookie, c.value().to_owned()))
            .filter(|(_, v)| !v.is_empty())
            .or_else(|| {
                let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
                let (scheme, rest) = value.split_once(' ')?;
                let rest = rest.trim();
                if scheme.eq_ignore_ascii_case("session") {
                    Some((CredentialKind::SessionHeader, rest.to_owned()))
                } else if scheme.eq_ignore_ascii_case("bearer") {
                    Some((CredentialKind::Bearer, rest.to_owned()))
                } else {
                    None
                }
            });
        let repeated = req
            .headers()
            .get_all(header::AUTHORIZATION)
            .nth(1)
            .is_some();
        ready(Ok(SessionCredentials {
            state,
            found,
            repeated,
        }))
    }
}

/// SPEC §8's CSRF rule: a state-changing request authenticated by the session cookie alone
/// must carry an `Origin`, or without one a `Referer`, of a trusted origin
/// (`EXTERNAL_URL`'s or one listed in `ALLOWED_ORIGINS`, never through
/// `*`); else 403 `forbidden`. A request with an `Authorization` header is exempt: a page of
/// another site cannot add one without a CORS preflight, which only trusted origins pass.
pub fn csrf(
    state: &AppState,
    credentials: &SessionCredentials,
    req: &HttpRequest,
) -> Result<(), ApiError> {
    if credentials.kind() != Some(CredentialKind::Cookie)
        || req.headers().contains_key(header::AUTHORIZATION)
    {
        return Ok(());
    }
    let header_text = |name| {
        req.headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let origin = match header_text(header::ORIGIN) {
        Some(origin) => Some(origin.to_owned()),
        None => header_text(header::REFERER)
            .and_then(|r| url::Url::parse(r).ok())
            .map(|r| r.origin().ascii_serialization()),
    };
    match origin {
        Some(origin) if trusted_origin(state, &origin) => Ok(()),
        _ => Err(ApiError::csrf_refused()),
    }
}
