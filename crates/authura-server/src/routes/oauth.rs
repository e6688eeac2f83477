//! OAuth sign-in (SPEC §9): `GET /oauth/{provider}` sends the browser to the provider,
//! `GET /oauth/{provider}/callback` brings it back, and `POST /oauth/token` trades the one-time
//! code for tokens. Served for the providers in `OAUTH_PROVIDERS`; any other is 404.
//!
//! The `state` is stateless: a token signed with `JWT_VERIFY_SECRET`'s key under its own
//! purpose (10 minutes), naming the provider, the validated `redirect_url`, the mode, the nonce
//! and `bind`, the SHA-256 of a random value that only the browser that started has, in the
//! `HttpOnly` cookie [`STATE_COOKIE`] (`Path=/oauth/`, 10 minutes). That value is also the
//! PKCE verifier: a callback replayed in another browser has neither.
//!
//! The one-time codes live in this instance's memory ([`OneTimeCodes`]: 60 s, single use under
//! concurrency, at most [`MAX_CODES`]): a code must be redeemed at the instance that issued it,
//! so several instances need the load balancer to keep a client on one (docs/oauth.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::Method;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use authura_core::flows::{self, ProviderIdentity};
use authura_core::state::SessionMethod;
use authura_core::token::{OAuthStateClaims, Purpose};
use authura_core::{CoreError, TenantId, UserId};
use authura_oauth::{Kind, OAuthError, Provider, ProviderSettings, random_token};
use authura_session::Opening;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use url::Url;

use crate::answer::{self, Answer};
use crate::error::ApiError;
use crate::extract::{Body, ClientInfo, State, Tenant};
use crate::principal::session_error;
use crate::routes::resource;
use crate::routes::session::{session_cookie, set_cookie, user_view};
use crate::state::AppState;

/// The cookie that binds a sign-in's `state` to the browser that started it.
pub const STATE_COOKIE: &str = "authura_oauth";
/// How long a one-time code can be redeemed.
pub const CODE_TTL: Duration = Duration::from_secs(60);
/// The most one-time codes an instance holds; past it the oldest is dropped.
pub const MAX_CODES: usize = 10_000;

/// The routes (registered for every configuration: a provider not enabled answers 404).
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Before `/oauth/{provider}`, so `token` is never taken for a provider's name.
    cfg.service(resource("/oauth/token", Method::POST, token));
    cfg.service(resource("/oauth/{provider}", Method::GET, start));
    cfg.service(resource(
        "/oauth/{provider}/callback",
        Method::GET,
        callback,
    ));
}

/// The enabled providers and this instance's one-time codes.
#[derive(Debug)]
pub struct OAuthState {
    providers: Vec<Arc<Provider>>,
    codes: OneTimeCodes,
    /// `EXTERNAL_URL`, the base of the callback URLs.
    external_url: Url,
    /// `Secure` on the state cookie: when `EXTERNAL_URL` is https.
    secure: bool,
}

impl OAuthState {
    /// The providers as configured, and `EXTERNAL_URL`.
    ///
    /// # Errors
    /// A provider that cannot be set up (its HTTP client).
    pub fn new(settings: &[ProviderSettings], external_url: &Url) -> Result<Self, String> {
        let providers = settings
            .iter()
            .map(|s| {
                Provider::new(s.clone())
                    .map(Arc::new)
                    .map_err(|e| format!("{}: {e}", s.kind.name()))
            })
            .collect::<Result<_, _>>()?;
        Ok(OAuthState {
            providers,
            codes: OneTimeCodes::default(),
            external_url: external_url.clone(),
            secure: external_url.scheme() == "https",
        })
    }

    /// The enabled providers' kinds, in `OAUTH_PROVIDERS`' order (the form's buttons).
    pub fn kinds(&self) -> Vec<Kind> {
        self.providers.iter().map(|p| p.kind()).collect()
    }

    /// `(name, label)` of each enabled provider, for the sign-in buttons of the form pages.
    pub fn buttons(&self) -> Vec<(&'static str, &'static str)> {
        self.providers
            .iter()
            .map(|p| (p.kind().name(), p.kind().label()))
            .collect()
    }

    fn provider(&self, name: &str) -> Result<&Arc<Provider>, ApiError> {
        self.providers
            .iter()
            .find(|p| p.kind().name() == name)
            .ok_or_else(ApiError::not_found)
    }

    /// `EXTERNAL_URL/oauth/<provider>/callback`.
    fn callback_url(&self, provider: Kind) -> Url {
        let mut url = self.external_url.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}/oauth/{}/callback", provider.name()));
        url.set_query(None);
        url
    }
}

/// A one-time code's sign-in, waiting to be redeemed.
#[derive(Debug, Clone)]
struct Pending {
    tenant: Option<TenantId>,
    user_id: UserId,
    provider: Kind,
    expires: Instant,
}

/// One-time codes by the SHA-256 of the code (the code itself is not kept). Taking one removes
/// it under the lock, so of two concurrent redemptions exactly one gets it.
#[derive(Debug, Default)]
struct OneTimeCodes {
    codes: Mutex<HashMap<[u8; 32], Pending>>,
}

impl OneTimeCodes {
    fn issue(&self, pending: Pending) -> String {
        let code = random_token();
        let mut codes = self.codes.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        codes.retain(|_, p| p.expires > now);
        if codes.len() >= MAX_CODES
            && let Some(oldest) = codes.iter().min_by_key(|(_, p)| p.expires).map(|(k, _)| *k)
        {
            codes.remove(&oldest);
        }
        codes.insert(Sha256::digest(code.as_bytes()).into(), pending);
        code
    }

    fn take(&self, code: &str) -> Option<Pending> {
        let key: [u8; 32] = Sha256::digest(code.as_bytes()).into();
        let pending = self
            .codes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key)?;
        (pending.expires > Instant::now()).then_some(pending)
    }
}

fn oauth(state: &AppState) -> Result<&OAuthState, ApiError> {
    state.oauth().ok_or_else(ApiError::not_found)
}

/// The query of `GET /oauth/{provider}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StartQuery {
    /// Where the browser goes afterwards (`ALLOWED_REDIRECT_URLS`); default
    /// `VERIFY_REDIRECT_URL`.
    redirect_url: Option<String>,
    /// `session`: sign in with a session cookie instead of a one-time code (sessions on).
    mode: Option<String>,
}

/// `GET /oauth/{provider}`: 302 to the provider.
#[utoipa::path(
    get,
    path = "/oauth/{provider}",
    tag = crate::openapi::tag::OAUTH,
    summary = "Start signing in with a provider",
    description = "302 to the provider's authorization endpoint: the code flow with PKCE \
        (S256), a signed `state` (10 minutes) bound to this browser by the `HttpOnly` cookie \
        `authura_oauth`, and for OpenID providers a `nonce`. A provider not in \
        `OAUTH_PROVIDERS` is 404, and so is `mode=session` without sessions. A provider whose \
        discovery document cannot be read is 502 `backend_error`.",
    params(
        ("provider" = String, Path, description = "`google`, `github`, `microsoft` or `oidc`."),
        StartQuery,
    ),
    responses(
        (status = 302, description = "To the provider.",
            headers(
                ("Location" = String, description = "The provider's authorization URL."),
                ("Set-Cookie" = String, description = "`authura_oauth`, the browser binding."),
                ("Cache-Control" = String, description = "`no-store`."),
            )),
        crate::openapi::errors::OAuthStart,
    ),
)]
pub async fn start(
    state: State,
    tenant: Tenant,
    provider: web::Path<String>,
    query: web::Query<StartQuery>,
) -> Answer {
    let oauth = oauth(&state)?;
    let provider = oauth.provider(&provider)?;
    let ctx = state.ctx();
    let redirect = match query.redirect_url.as_deref().map(str::trim) {
        Some(url) if !url.is_empty() => ctx.settings.redirects.check(url)?,
        _ => ctx.settings.verify_redirect_url.clone(),
    };
    let mode = match query.mode.as_deref() {
        None | Some("") => None,
        Some("session") if state.sessions().is_some() => Some("session".to_owned()),
        Some(_) => return Err(ApiError::not_found()),
    };
    let verifier = random_token();
    let nonce = random_token();
    let claims = OAuthStateClaims {
        provider: provider.kind().name().to_owned(),
        redirect_url: redirect.to_string(),
        mode,
        nonce: nonce.clone(),
        bind: binding(&verifier),
        tid: tenant.get().map(|t| t.as_str().to_owned()),
        iat: 0,
        exp: 0,
        jti: String::new(),
        nbf: None,
        purpose: Purpose::OAuthState,
        iss: None,
        aud: None,
    };
    let signed = ctx.tokens.issue_oauth_state(claims, ctx.clock.now())?;
    let url = provider
        .authorize_url(
            &oauth.callback_url(provider.kind()),
            &signed,
            &nonce,
            &verifier,
        )
        .await
        .map_err(|e| ApiError::provider_unavailable(&e.to_string()))?;
    let mut res = HttpResponse::Found()
        .insert_header((header::LOCATION, url.as_str()))
        .finish();
    let mut cookie = state_cookie(oauth, &verifier);
    cookie.set_max_age(CookieDuration::seconds(600));
    set_cookie(&mut res, &cookie)?;
    Ok(answer::no_store(res))
}

/// The query the provider sends back.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    /// The authorization code.
    code: Option<String>,
    /// Our `state`, as sent.
    state: Option<String>,
    /// The provider's error (`access_denied` when the user declined).
    error: Option<String>,
}

/// Where a sign-in failure is reported, once the state is known to be ours.
enum Failure {
    /// `?error=<code>` on the state's `redirect_url`.
    Redirect(&'static str),
    /// The ordinary error answer (the backend or the hook failed).
    Api(ApiError),
}

/// `GET /oauth/{provider}/callback`: back from the provider.
#[utoipa::path(
    get,
    path = "/oauth/{provider}/callback",
    tag = crate::openapi::tag::OAUTH,
    summary = "The provider's redirect back (the callback URL to register)",
    description = "Checks the `state` (signature, expiry, provider, tenant) and this browser's \
        `authura_oauth` cookie, exchanges the code (with the PKCE verifier), checks the \
        provider's identity (ID token: signature against the provider's JWKS, `iss`, `aud`, \
        `exp`, `nonce`; GitHub: the primary verified address), then finds, links, verifies or \
        creates the user (docs/oauth.md). Success: 302 to `redirect_url?code=<one-time code>`, \
        or with `mode=session` to `redirect_url` with the session cookie set. A failure with a \
        valid state: 302 to `redirect_url?error=` `access_denied`, `invalid_state`, \
        `provider_error`, `email_not_verified` or `signup_disabled`; a missing, tampered or \
        expired state: 400 `invalid_state`. No failure creates or changes anything.",
    params(
        ("provider" = String, Path, description = "`google`, `github`, `microsoft` or `oidc`."),
        CallbackQuery,
    ),
    responses(
        (status = 302, description = "To `redirect_url`, with `code` or `error`.",
            headers(
                ("Location" = String, description = "`redirect_url` with `code=` or `error=` (none with `mode=session`)."),
                ("Set-Cookie" = String, description = "`authura_oauth` cleared; the session cookie with `mode=session`."),
                ("Cache-Control" = String, description = "`no-store`."),
            )),
        crate::openapi::errors::OAuthCallback,
    ),
)]
pub async fn callback(
    state: State,
    tenant: Tenant,
    provider: web::Path<String>,
    query: web::Query<CallbackQuery>,
    client: ClientInfo,
    req: HttpRequest,
) -> Answer {
    let oauth = oauth(&state)?;
    let provider = oauth.provider(&provider)?;
    let ctx = state.ctx();
    let claims = ctx
        .tokens
        .verify_oauth_state(query.state.as_deref().unwrap_or_default(), ctx.clock.now())?;
    if claims.provider != provider.kind().name()
        || claims.tid.as_deref() != tenant.get().map(TenantId::as_str)
    {
        return Err(CoreError::InvalidState.into());
    }
    let redirect = Url::parse(&claims.redirect_url).map_err(|_| CoreError::InvalidState)?;
    let outcome = sign_in(
        &state,
        oauth,
        provider,
        &claims,
        &query,
        tenant.get(),
        &req,
        client.client(),
    )
    .await;
    let mut res = match outcome {
        Ok(SignedInBy::Code(code)) => found(&with_param(&redirect, "code", &code)),
        Ok(SignedInBy::Session(mut res)) => {
            res.headers_mut().insert(
                header::LOCATION,
                header::HeaderValue::from_str(redirect.as_str())
                    .map_err(|_| ApiError::internal("redirect_url is not a header value"))?,
            );
            res
        }
        Err(Failure::Redirect(code)) => found(&with_param(&redirect, "error", code)),
        Err(Failure::Api(e)) => return Err(e),
    };
    let mut cleared = state_cookie(oauth, "");
    cleared.make_removal();
    set_cookie(&mut res, &cleared)?;
    Ok(answer::no_store(res))
}

/// How a successful callback hands over.
enum SignedInBy {
    /// A one-time code for `POST /oauth/token`.
    Code(String),
    /// A 302 with the session cookie set (its `Location` is added by the caller).
    Session(HttpResponse),
}

#[allow(clippy::too_many_arguments)]
async fn sign_in(
    state: &AppState,
    oauth: &OAuthState,
    provider: &Provider,
    claims: &OAuthStateClaims,
    query: &CallbackQuery,
    tenant: Option<&TenantId>,
    req: &HttpRequest,
    client: authura_core::sessions::Client<'_>,
) -> Result<SignedInBy, Failure> {
    let ctx = state.ctx();
    // The browser that started this sign-in has the cookie whose hash the state names.
    let verifier = req
        .cookie(STATE_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or(Failure::Redirect("invalid_state"))?;
    if !bool::from(binding(&verifier).as_bytes().ct_eq(claims.bind.as_bytes())) {
        return Err(Failure::Redirect("invalid_state"));
    }
    match query.error.as_deref() {
        Some("access_denied") => return Err(Failure::Redirect("access_denied")),
        Some(_) => return Err(Failure::Redirect("provider_error")),
        None => {}
    }
    let code = query
        .code
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or(Failure::Redirect("provider_error"))?;
    let identity = provider
        .identify(
            code,
            &oauth.callback_url(provider.kind()),
            &verifier,
            &claims.nonce,
        )
        .await
        .map_err(|e| {
            match &e {
                OAuthError::Misconfigured(_) => tracing::error!(provider = provider.kind().name(), error = %e, "OAuth sign-in failed"),
                _ => tracing::info!(provider = provider.kind().name(), error = %e, "OAuth sign-in refused"),
            }
            Failure::Redirect("provider_error")
        })?;
    let links = state.sessions().and_then(|s| s.store().oauth_links());
    let who = ProviderIdentity {
        provider: provider.kind().name(),
        subject: &identity.subject,
        email: identity.email.as_deref(),
        email_verified: identity.email_verified,
    };
    let user = flows::oauth_user(ctx, links, tenant, &who)
        .await
        .map_err(|e| match e {
            CoreError::EmailNotVerified => Failure::Redirect("email_not_verified"),
            CoreError::SignupDisabled => Failure::Redirect("signup_disabled"),
            CoreError::Forbidden => Failure::Redirect("access_denied"),
            e => Failure::Api(e.into()),
        })?;
    match (claims.mode.as_deref(), state.sessions()) {
        (Some("session"), Some(sessions)) => {
            let view = user_view(ctx, user)
                .await
                .map_err(|e| Failure::Api(e.into()))?;
            let opened = sessions
                .policy()
                .open(Opening {
                    user_id: &view.user.id,
                    tenant: view.user.tenant.as_ref(),
                    method: SessionMethod::OAuth(provider.kind().name().to_owned()),
                    ip: client.ip,
                    user_agent: client.user_agent,
                })
                .await
                .map_err(|e| Failure::Api(session_error(e)))?;
            let cookie = session_cookie(sessions, opened.key.expose(), &opened.session, ctx);
            let mut res = HttpResponse::Found().finish();
            set_cookie(&mut res, &cookie).map_err(Failure::Api)?;
            Ok(SignedInBy::Session(res))
        }
        _ => Ok(SignedInBy::Code(oauth.codes.issue(Pending {
            tenant: tenant.cloned(),
            user_id: user.id,
            provider: provider.kind(),
            expires: Instant::now() + CODE_TTL,
        }))),
    }
}

/// The body of `POST /oauth/token`.
// No `Debug`: it carries a code.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct OAuthTokenBody {
    /// The one-time code from the callback's redirect.
    code: String,
}

/// `POST /oauth/token`: the one-time code for tokens.
#[utoipa::path(
    post,
    path = "/oauth/token",
    tag = crate::openapi::tag::OAUTH,
    summary = "Trade the one-time code of an OAuth sign-in for tokens",
    description = "The code from the callback's redirect, once, within 60 s, at the instance \
        that issued it. With sessions on, the tokens are bound to a new session (method \
        `oauth:<provider>`).",
    request_body = OAuthTokenBody,
    responses(
        (status = 200, description = "`T`.", body = crate::openapi::TokenPair,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        crate::openapi::errors::OAuthToken,
    ),
)]
pub async fn token(
    state: State,
    tenant: Tenant,
    Body(body): Body<OAuthTokenBody>,
    client: ClientInfo,
) -> Answer {
    let oauth = oauth(&state)?;
    let pending = oauth
        .codes
        .take(body.code.trim())
        .filter(|p| p.tenant.as_ref() == tenant.get())
        .ok_or_else(ApiError::invalid_code)?;
    let signed = flows::oauth_sign_in(
        state.ctx(),
        tenant.get(),
        &pending.user_id,
        pending.provider.name(),
        client.client(),
    )
    .await?;
    Ok(answer::token_pair_answer(&signed.tokens))
}

/// The state cookie with `value`: `HttpOnly; SameSite=Lax; Path=/oauth/` (Lax: the provider's
/// redirect back is a top-level navigation from another site).
fn state_cookie<'a>(oauth: &OAuthState, value: &'a str) -> Cookie<'a> {
    let mut cookie = Cookie::new(STATE_COOKIE, value);
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Lax);
    cookie.set_path("/oauth/");
    cookie.set_secure(oauth.secure);
    cookie
}

/// What the state names of the browser's cookie value: its SHA-256, base64url.
fn binding(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// `url` with one more query parameter.
fn with_param(url: &Url, name: &str, value: &str) -> Url {
    let mut url = url.clone();
    url.query_pairs_mut().append_pair(name, value);
    url
}

fn found(url: &Url) -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, url.as_str()))
        .finish()
}
