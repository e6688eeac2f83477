//! The actix-web application: shared state, the routes of SPEC §3, and the middleware that runs
//! the checks in the contract's order (rate limit, host, then tenant, body and authentication in
//! each handler).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use authura_core::clock::SystemClock;
use authura_core::flows::{self, Context, FlowSettings, SignedIn, UserView};
use authura_core::hook::NoHook;
use authura_core::mail::{Mail, Mailer};
use authura_core::redirect::RedirectPolicy;
use authura_core::store::UserStore;
use authura_core::token::Tokens;
use authura_core::types::format_time;
use authura_core::{CoreError, Email, Role, Secret, TenantId};
use futures_util::StreamExt as _;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::config::{Config, MailConfig};
use crate::error::ApiError;
use crate::hashpool::HashPool;
use crate::html::{self, FormAction};
use crate::ratelimit::RateLimiter;

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Mail delivery counters.
#[derive(Debug, Default)]
pub struct MailStats {
    /// Mails the flows asked for (queued for sending after the response).
    pub queued: AtomicU64,
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct AppState {
    pub ctx: Context,
    pub hash_pool: HashPool,
    pub limiter: RateLimiter,
    /// Turnstile, when `CAPTCHA=turnstile`.
    pub captcha: Option<crate::captcha::Turnstile>,
    /// Failed logins per account.
    pub login_failures: crate::ratelimit::FailureLimiter,
    trusted_proxies: Vec<ipnet::IpNet>,
    pub mail_stats: Arc<MailStats>,
    /// Request counters, when `METRICS_ENABLED=true`.
    pub metrics: Option<crate::metrics::Metrics>,
    mail_queue: tokio::sync::mpsc::Sender<Mail>,
    multi_tenant: bool,
    tenant_header: String,
    host_header: String,
    allowed_hosts: Option<Vec<String>>,
    allowed_origins: Vec<String>,
    external_origin: String,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the {backend} backend: {detail}")]
    Backend {
        backend: &'static str,
        detail: String,
    },
    #[error("mail: {0}")]
    Mail(String),
    #[error("hook: {0}")]
    Hook(String),
    #[error("initial user: {0}")]
    InitialUser(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl AppState {
    /// Queues a mail to be sent after the response; a full queue drops it (logged and counted).
    pub fn send_mail(&self, mail: Option<Mail>) {
        let Some(mail) = mail else { return };
        self.mail_stats.queued.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.mail_queue.try_send(mail) {
            self.mail_stats.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "mail queue full; mail dropped");
        }
    }

    /// Checks the captcha when one is configured (SPEC §3's order: after the body, before
    /// authentication).
    async fn check_captcha(
        &self,
        req: &HttpRequest,
        captcha: &CaptchaFields,
    ) -> Result<(), ApiError> {
        match &self.captcha {
            Some(turnstile) => {
                turnstile
                    .verify(captcha.response(), self.client_ip(req))
                    .await
            }
            None => Ok(()),
        }
    }

    /// The client's address: the peer, or what a trusted proxy says in `X-Forwarded-For`.
    pub fn client_ip(&self, req: &actix_web::HttpRequest) -> Option<IpAddr> {
        let peer = req.peer_addr()?.ip();
        if self.trusted_proxies.is_empty() {
            return Some(peer);
        }
        let forwarded: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .collect();
        Some(crate::ratelimit::client_ip(
            peer,
            &forwarded,
            &self.trusted_proxies,
        ))
    }

    /// The request's tenant: `TENANT_ID_HEADER`, else the host (port dropped); `None` when
    /// multi-tenancy is off.
    fn tenant(&self, req: &HttpRequest) -> Result<Option<TenantId>, ApiError> {
        if !self.multi_tenant {
            return Ok(None);
        }
        let header_value = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let tenant = match header_value(&self.tenant_header) {
            Some(t) => t.to_owned(),
            None => match header_value(&self.host_header) {
                Some(host) => strip_port(host).to_ascii_lowercase(),
                None => return Err(ApiError::tenant_required(&self.tenant_header)),
            },
        };
        TenantId::parse(&tenant)
            .map(Some)
            .map_err(|_| ApiError::tenant_required(&self.tenant_header))
    }
}

/// Opens the backend, the mailer and the hashing pool, and creates the initial user.
///
/// # Errors
/// `StartError` naming what failed.
pub async fn build_state(config: &Config) -> Result<Arc<AppState>, StartError> {
    let store = crate::backend::open(&config.backend).await?;
    let state = build_state_with_store(config, store).await?;
    ensure_initial_user(&state.ctx, config).await?;
    Ok(state)
}

/// Creates the configured initial admin (`*_INITIAL_USER`) unless a user with that email exists.
///
/// # Errors
/// `StartError::InitialUser` when the backend fails or the password breaks the policy.
pub async fn ensure_initial_user(ctx: &Context, config: &Config) -> Result<(), StartError> {
    if let Some(initial) = &config.initial_user {
        match ctx.store.find_by_email(None, &initial.email).await {
            Ok(Some(_)) => tracing::info!(email = %initial.email, "initial user exists"),
            Ok(None) => {
                let created = flows::create_verified_user(
                    ctx,
                    None,
                    &initial.email,
                    initial.password.clone(),
                    &config.admin_role,
                )
                .await;
                match created {
                    Ok(_) => {
                        tracing::info!(email = %initial.email, role = %config.admin_role, "initial user created")
                    }
                    // Another instance starting at the same time created it first.
                    Err(CoreError::EmailTaken) => {
                        tracing::info!(email = %initial.email, "initial user exists")
                    }
                    Err(e) => return Err(StartError::InitialUser(e.to_string())),
                }
            }
            Err(e) => return Err(StartError::InitialUser(e.to_string())),
        }
    }
    Ok(())
}

/// [`build_state`] over a given store (embedders, and tests of other stores), without the
/// initial user: call [`ensure_initial_user`] once the store is reachable.
///
/// # Errors
/// `StartError` naming what failed.
pub async fn build_state_with_store(
    config: &Config,
    store: Arc<dyn UserStore>,
) -> Result<Arc<AppState>, StartError> {
    // One TLS crypto provider for every client (lettre, later reqwest and ldap3).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let templates = match &config.mail_templates_dir {
        Some(dir) => {
            authura_mail::Templates::load(dir).map_err(|e| StartError::Mail(e.to_string()))?
        }
        None => authura_mail::Templates::builtin(),
    };
    let mailer: Arc<dyn Mailer> = match &config.mail {
        MailConfig::Dummy => Arc::new(authura_mail::DummyMailer::new(templates)),
        MailConfig::Smtp(settings) => Arc::new(
            authura_mail::SmtpMailer::new(settings.clone(), templates)
                .map_err(|e| StartError::Mail(e.to_string()))?,
        ),
    };
    let tokens = Tokens::new(config.tokens.clone()).map_err(StartError::InitialUser)?;
    let hash_pool = HashPool::for_threads(config.hash_threads)?;
    let ctx = Context {
        store,
        hasher: Arc::new(hash_pool.clone()),
        hook: match &config.hook {
            Some(settings) => Arc::new(
                authura_hooks::HttpHook::new(settings.clone())
                    .map_err(|e| StartError::Hook(e.to_string()))?,
            ),
            None => Arc::new(NoHook),
        },
        tokens,
        clock: Arc::new(SystemClock),
        settings: FlowSettings {
            admin_role: config.admin_role.clone(),
            default_role: config.default_role.clone(),
            signup_disabled: config.signup_disabled,
            impersonation_enabled: config.impersonation_enabled,
            policy: config.policy.clone(),
            verify_redirect_url: config.verify_redirect_url.clone(),
            redirects: RedirectPolicy::new(config.allowed_redirect_urls.clone()),
        },
    };
    let mail_stats = Arc::new(MailStats::default());
    let (mail_queue, mut rx) = tokio::sync::mpsc::channel::<Mail>(1024);
    {
        let stats = Arc::clone(&mail_stats);
        tokio::spawn(async move {
            while let Some(mail) = rx.recv().await {
                let (mailer, stats) = (Arc::clone(&mailer), Arc::clone(&stats));
                tokio::spawn(async move {
                    match mailer.send(&mail).await {
                        Ok(()) => {
                            stats.sent.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            stats.failed.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(action = mail.action.as_str(), error = %e, "mail not sent");
                        }
                    }
                });
            }
        });
    }
    Ok(Arc::new(AppState {
        ctx,
        hash_pool,
        limiter: RateLimiter::new(config.rate_per_minute),
        captcha: match &config.captcha {
            Some(settings) => Some(
                crate::captcha::Turnstile::new(settings.clone(), config.extra_ca_pem.as_deref())
                    .map_err(StartError::Mail)?,
            ),
            None => None,
        },
        login_failures: crate::ratelimit::FailureLimiter::new(
            config.login_failures_per_account,
            config.login_failure_window,
        ),
        trusted_proxies: config.trusted_proxies.clone(),
        mail_stats,
        metrics: config
            .metrics_enabled
            .then(|| crate::metrics::Metrics::new(config.backend.name())),
        mail_queue,
        multi_tenant: config.multi_tenant,
        tenant_header: config.tenant_id_header.to_ascii_lowercase(),
        host_header: config.host_header.to_ascii_lowercase(),
        allowed_hosts: config.allowed_hosts.clone(),
        allowed_origins: config
            .allowed_origins
            .iter()
            .map(|o| o.to_ascii_lowercase())
            .collect(),
        external_origin: config
            .external_url
            .origin()
            .ascii_serialization()
            .to_ascii_lowercase(),
    }))
}

/// A bound, not yet awaited server.
pub struct Running {
    /// The address it listens on (useful with port 0).
    pub addr: SocketAddr,
    /// Await it to serve; it stops on SIGINT/SIGTERM, or through `server.handle()`.
    pub server: actix_web::dev::Server,
    pub state: Arc<AppState>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Binds the HTTP server to `config.host:config.port` with `workers` worker threads (0 = one
/// per core).
///
/// # Errors
/// `StartError::Bind` when the address cannot be used.
pub fn bind(state: Arc<AppState>, config: &Config, workers: usize) -> Result<Running, StartError> {
    bind_to(state, config, workers, None)
}

/// [`bind`] on an already bound listener (tests bind port 0 first to learn their URL).
///
/// # Errors
/// `StartError::Bind` when the listener cannot be used.
pub fn bind_to(
    state: Arc<AppState>,
    config: &Config,
    workers: usize,
    listener: Option<std::net::TcpListener>,
) -> Result<Running, StartError> {
    let data = web::Data::from(Arc::clone(&state));
    let mut server = HttpServer::new(move || app(data.clone()))
        .shutdown_timeout(30)
        .client_request_timeout(std::time::Duration::from_secs(10));
    if workers > 0 {
        server = server.workers(workers);
    }
    let addr = format!("{}:{}", config.host, config.port);
    let server = match listener {
        Some(l) => server.listen(l),
        None => server.bind(&addr),
    }
    .map_err(|source| StartError::Bind {
        addr: addr.clone(),
        source,
    })?;
    let bound = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| StartError::Bind {
            addr,
            source: std::io::Error::other("no address bound"),
        })?;
    Ok(Running {
        addr: bound,
        server: server.run(),
        state,
    })
}

/// The application with its routes and middleware.
pub fn app(
    data: web::Data<AppState>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let cors = cors(&data);
    App::new()
        .app_data(data)
        .service(resource("/healthz", Method::GET, healthz))
        .service(resource("/readyz", Method::GET, readyz))
        .service(resource("/metrics", Method::GET, metrics))
        .service(resource(
            "/.well-known/jwks.json",
            Method::GET,
            crate::jwks::jwks,
        ))
        .service(resource(
            "/openapi.json",
            Method::GET,
            crate::openapi::openapi_json,
        ))
        .service(resource("/form", Method::GET, form))
        .service(resource("/signup", Method::POST, signup))
        .service(resource("/verify-email", Method::POST, verify_email))
        .service(resource("/token", Method::POST, token))
        .service(resource("/refresh", Method::POST, refresh))
        .service(resource("/user", Method::GET, user))
        .service(resource("/change-password", Method::POST, change_password))
        .service(resource("/change-email", Method::POST, change_email))
        .service(resource("/invite", Method::POST, invite))
        .service(resource("/reset-password", Method::POST, reset_password))
        .default_service(web::to(|| async {
            Err::<HttpResponse, _>(ApiError::not_found())
        }))
        .wrap(from_fn(host_check))
        .wrap(from_fn(rate_limit))
        .wrap(cors)
        .wrap(from_fn(html_results))
        .wrap(from_fn(request_log))
}

fn resource<F, Args>(path: &str, method: Method, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    let mut resource = web::resource(path);
    let allow = if method == Method::GET {
        // HEAD is GET without the body (actix drops it), as probes and HTTP expect.
        resource = resource.route(web::head().to(handler.clone()));
        "GET, HEAD".to_owned()
    } else {
        method.to_string()
    };
    resource
        .route(web::method(method).to(handler))
        .default_service(web::to(move || {
            let refused = ApiError::method_not_allowed(&allow);
            async move { Err::<HttpResponse, _>(refused) }
        }))
}

fn cors(state: &AppState) -> actix_cors::Cors {
    let origins = state.allowed_origins.clone();
    let own = state.external_origin.clone();
    actix_cors::Cors::default()
        .allowed_origin_fn(move |origin, _| {
            let origin = origin.to_str().unwrap_or("").to_ascii_lowercase();
            origin == own
                || origins
                    .iter()
                    .any(|allowed| origin_matches(allowed, &origin))
        })
        .allowed_methods([Method::GET, Method::POST])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
        .allow_any_header()
        .expose_headers([header::RETRY_AFTER, header::WWW_AUTHENTICATE])
        .max_age(3600)
        // A disallowed origin gets no CORS headers (the browser then blocks it); the request is
        // not refused, so same-site form posts and non-browser clients are unaffected.
        .block_on_origin_mismatch(false)
}

/// `*` matches any origin; an entry without a scheme matches http and https.
fn origin_matches(allowed: &str, origin: &str) -> bool {
    allowed == "*"
        || allowed == origin
        || (!allowed.contains("://")
            && (origin.strip_prefix("http://") == Some(allowed)
                || origin.strip_prefix("https://") == Some(allowed)))
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| h.trim_start_matches('['));
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

fn exempt(req: &ServiceRequest) -> bool {
    matches!(req.path(), "/healthz" | "/readyz" | "/metrics")
}

/// A CORS preflight: `OPTIONS` with `Access-Control-Request-Method`.
fn is_preflight(req: &ServiceRequest) -> bool {
    req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The state, borrowed (middleware read it before passing the request on; no `Arc` clone).
fn state_ref(req: &ServiceRequest) -> Option<&AppState> {
    req.app_data::<web::Data<AppState>>().map(|d| &***d)
}

async fn rate_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // A CORS preflight is not counted.
    let wait = state_ref(&req)
        .filter(|state| state.limiter.is_enabled() && !exempt(&req) && !is_preflight(&req))
        .and_then(|state| {
            let client = state.client_ip(req.request())?;
            state.limiter.check(client, Instant::now()).err()
        });
    if let Some(wait) = wait {
        return Ok(req.error_response(ApiError::rate_limited(wait)));
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_boxed_body)
}

async fn host_check(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let refused = !exempt(&req)
        && state_ref(&req).is_some_and(|state| {
            state.allowed_hosts.as_ref().is_some_and(|allowed| {
                let host = req
                    .headers()
                    .get(state.host_header.as_str())
                    .and_then(|v| v.to_str().ok())
                    .map(|h| h.trim().to_ascii_lowercase());
                !host.is_some_and(|h| allowed.contains(&h))
            })
        });
    if refused {
        return Ok(req.error_response(ApiError::host_not_allowed()));
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_boxed_body)
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

/// For requests preferring HTML, turns JSON answers (errors included) into result pages; and
/// gives a preflight the CORS layer refused Authura's error format (`refused_preflight`).
async fn html_results(
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
    if preflight && res.status() == actix_web::http::StatusCode::BAD_REQUEST {
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

/// One line per request: method, path (never the query: it may carry a token), status, time.
async fn request_log(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let start = Instant::now();
    let (method, path) = (req.method().clone(), req.path().to_owned());
    // The client's address is looked up only when a line that shows it will be written.
    let client = if tracing::enabled!(tracing::Level::INFO) {
        state_ref(&req)
            .and_then(|s| s.client_ip(req.request()))
            .map(|ip| ip.to_string())
            .unwrap_or_default()
    } else {
        String::new()
    };
    if path != "/healthz" && path != "/readyz" {
        tracing::debug!(%method, %path, %client, "request started");
    }
    let res = next.call(req).await;
    let status = match &res {
        Ok(r) => r.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    let elapsed = start.elapsed();
    // The state, borrowed from the answered request (the request itself is not cloned: actix
    // needs it unshared while routing). Every route and middleware of Authura answers errors as
    // responses, so an `Err` here (which has no request to read) does not occur in practice.
    if let Ok(r) = &res
        && let Some(metrics) = r
            .request()
            .app_data::<web::Data<AppState>>()
            .and_then(|s| s.metrics.as_ref())
    {
        metrics.observe(&path, status, elapsed);
    }
    let ms = elapsed.as_secs_f64() * 1000.0;
    if path == "/healthz" || path == "/readyz" {
        tracing::debug!(%method, %path, status, ms, "request");
    } else {
        tracing::info!(%method, %path, %client, status, ms, "request");
    }
    res.map(ServiceResponse::map_into_boxed_body)
}

/// Reads and parses a body: JSON for `application/json` and `+json`, else form-urlencoded.
async fn read_body<T: DeserializeOwned>(
    req: &HttpRequest,
    mut payload: web::Payload,
) -> Result<T, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT) {
        return Err(ApiError::body_too_large(BODY_LIMIT));
    }
    let mut bytes = web::BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::invalid_body("the body could not be read"))?;
        if bytes.len() + chunk.len() > BODY_LIMIT {
            return Err(ApiError::body_too_large(BODY_LIMIT));
        }
        bytes.extend_from_slice(&chunk);
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if content_type == "application/json" || content_type.ends_with("+json") {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::invalid_body(format!("invalid JSON body: {e}")))
    } else {
        serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| ApiError::invalid_body(format!("invalid form body: {e}")))
    }
}

/// `T` as a JSON answer. Tokens are compact JWS (base64url and dots), which JSON never escapes,
/// so the body is written directly instead of through serde_json's byte-by-byte escaping: this
/// is every `/refresh` answer. Anything else goes through serde_json.
fn token_pair_answer(pair: &authura_core::token::TokenPair) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ))
        .body(token_pair_json(pair))
}

fn token_pair_json(pair: &authura_core::token::TokenPair) -> String {
    // What JSON escapes: `"`, `\` and control characters. Folded without short-circuit so
    // the compiler vectorizes it.
    let plain = |s: &str| {
        !s.bytes().fold(false, |bad, b| {
            bad | (b == b'"') | (b == b'\\') | (b < 0x20)
        })
    };
    let authura_core::token::TokenPair {
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

/// The Bearer token of a request.
fn bearer(req: &HttpRequest) -> Result<&str, ApiError> {
    req.headers()
        .get(header::AUTHORIZATION)
        // UTF-8 rather than `HeaderValue::to_str`'s byte-by-byte check for visible ASCII: the
        // token is checked strictly by its verifier, and this runs on every authorized request.
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(|| CoreError::InvalidToken.into())
}

/// `U`, serialized straight from the record (no intermediate `Value`): fields in alphabetical
/// order, `tenant_id` only with multi-tenancy on, `hook_data` only when a hook answered.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = User)]
struct UserOut<'a> {
    email: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    hook_data: Option<&'a authura_core::hook::HookData>,
    #[schema(value_type = crate::openapi::UserId)]
    id: IdOut<'a>,
    role: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    tenant_id: Option<Option<&'a str>>,
    #[schema(format = DateTime, required = true)]
    verified_at: Option<String>,
}

/// An id as stored: a JSON number or string.
struct IdOut<'a>(&'a authura_core::UserId);

impl serde::Serialize for IdOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            authura_core::UserId::Int(n) => s.serialize_i64(*n),
            authura_core::UserId::Text(t) => s.serialize_str(t),
        }
    }
}

fn user_out<'a>(state: &AppState, view: &'a UserView) -> UserOut<'a> {
    let u = &view.user;
    UserOut {
        email: u.email.as_str(),
        hook_data: view.hook_data.as_ref(),
        id: IdOut(&u.id),
        role: u.role.as_str(),
        tenant_id: state
            .multi_tenant
            .then(|| u.tenant.as_ref().map(|t| t.as_str())),
        verified_at: u.verified_at.as_ref().map(format_time),
    }
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct UserAnswer<'a> {
    user: UserOut<'a>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct SignedInAnswer<'a> {
    #[schema(value_type = crate::openapi::TokenPair)]
    tokens: &'a authura_core::token::TokenPair,
    user: UserOut<'a>,
}

fn ok_empty() -> HttpResponse {
    HttpResponse::Ok().json(json!({}))
}

fn no_store(mut res: HttpResponse) -> HttpResponse {
    // Answers carrying tokens must not be cached by browsers or proxies.
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn secret(s: String) -> Secret {
    Secret::new(s)
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = crate::openapi::tag::HEALTH,
    summary = "Liveness: the process runs",
    responses((status = 200, description = "`{\"status\": \"ok\"}`.", body = crate::openapi::Status)),
)]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = crate::openapi::tag::HEALTH,
    summary = "Prometheus metrics (with METRICS_ENABLED=true)",
    responses(
        (status = 200, description = "The text exposition format 0.0.4.",
            content((String = "text/plain; version=0.0.4; charset=utf-8"))),
        crate::openapi::errors::Metrics,
    ),
)]
/// Prometheus's text format; 404 (as for any unknown path) unless `METRICS_ENABLED=true`.
async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let metrics = state.metrics.as_ref().ok_or_else(ApiError::not_found)?;
    let text = metrics.render(
        &state.mail_stats,
        state.hash_pool.stats(),
        state.ctx.store.pool_status(),
    );
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(text))
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = crate::openapi::tag::HEALTH,
    summary = "Readiness: the user backend answers",
    responses(
        (status = 200, description = "`{\"status\": \"ready\"}`.", body = crate::openapi::Status),
        crate::openapi::errors::Ready,
    ),
)]
async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.ctx.store.ping().await.map_err(CoreError::from)?;
    Ok(HttpResponse::Ok().json(json!({"status": "ready"})))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct FormQuery {
    #[param(value_type = Option<crate::html::FormAction>)]
    action: Option<String>,
    token: Option<String>,
}

#[utoipa::path(
    get,
    path = "/form",
    tag = crate::openapi::tag::FORM,
    summary = "An HTML form that posts to the right endpoint",
    params(FormQuery),
    responses(
        (status = 200, description = "The form page.", content((String = "text/html; charset=utf-8"))),
        crate::openapi::errors::Form,
    ),
)]
async fn form(
    query: Result<web::Query<FormQuery>, actix_web::Error>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query =
        query.map_err(|_| ApiError::invalid_action("the query string could not be read"))?;
    let action = query.action.as_deref().unwrap_or("");
    let Some(action) = FormAction::parse(action) else {
        return Err(ApiError::invalid_action(if action == "change-password" {
            "change-password needs a Bearer token, which a browser form cannot send"
        } else {
            "unknown form action (expected signup, login, verify-email, invite, reset-password, change-email or forgot-password)"
        }));
    };
    let widget = state.captcha.as_ref().map(|t| html::Widget {
        script: t.settings().script.as_str(),
        site_key: &t.settings().site_key,
    });
    let page = html::form_page(action, query.token.as_deref().unwrap_or(""), widget);
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .content_type("text/html; charset=utf-8")
        .body(page))
}

/// The captcha response, under either of its names.
#[derive(Deserialize, Default, utoipa::ToSchema)]
struct CaptchaFields {
    captcha_token: Option<String>,
    #[serde(rename = "cf-turnstile-response")]
    cf_turnstile_response: Option<String>,
}

impl CaptchaFields {
    fn response(&self) -> Option<&str> {
        self.captcha_token
            .as_deref()
            .or(self.cf_turnstile_response.as_deref())
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
struct EmailBody {
    #[schema(format = Email)]
    email: String,
    redirect_url: Option<String>,
    #[serde(flatten)]
    captcha: CaptchaFields,
}

#[utoipa::path(
    post,
    path = "/signup",
    tag = crate::openapi::tag::AUTH,
    summary = "Sign up: mails a verification link",
    description = "Creates nobody: following the link does. A taken address gets the same answer and no mail.",
    request_body = EmailBody,
    responses(
        (status = 200, description = "`{}`.", body = crate::openapi::Empty),
        crate::openapi::errors::Signup,
    ),
)]
async fn signup(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tenant = state.tenant(&req)?;
    let body: EmailBody = read_body(&req, payload).await?;
    let email = Email::parse(&body.email)?;
    state.check_captcha(&req, &body.captcha).await?;
    let mail = flows::signup(
        &state.ctx,
        tenant.as_ref(),
        &email,
        body.redirect_url.as_deref(),
    )
    .await?;
    state.send_mail(mail);
    Ok(ok_empty())
}

#[derive(Deserialize, utoipa::ToSchema)]
struct VerifyBody {
    token: String,
    password: Option<String>,
}

#[utoipa::path(
    post,
    path = "/verify-email",
    tag = crate::openapi::tag::AUTH,
    summary = "Complete a mail link: create, reset or change the user",
    request_body = VerifyBody,
    responses(
        (status = 200, description = "The resulting user, signed in.", body = SignedInAnswer,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        crate::openapi::errors::VerifyEmail,
    ),
)]
async fn verify_email(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tenant = state.tenant(&req)?;
    let body: VerifyBody = read_body(&req, payload).await?;
    let signed = flows::verify_email(
        &state.ctx,
        tenant.as_ref(),
        &body.token,
        body.password.map(secret),
    )
    .await?;
    Ok(no_store(HttpResponse::Ok().json(SignedInAnswer {
        tokens: &signed.tokens,
        user: user_out(&state, &signed.user),
    })))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct TokenBody {
    #[schema(format = Email)]
    email: String,
    password: Option<String>,
    #[serde(flatten)]
    captcha: CaptchaFields,
}

#[utoipa::path(
    post,
    path = "/token",
    tag = crate::openapi::tag::AUTH,
    summary = "Log in; or, with an admin's Bearer token and no password, impersonate",
    request_body = TokenBody,
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "`T`.", body = crate::openapi::TokenPair,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        crate::openapi::errors::Token,
    ),
)]
async fn token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tenant = state.tenant(&req)?;
    let body: TokenBody = read_body(&req, payload).await?;
    let email = Email::parse(&body.email)?;
    let has_bearer = req.headers().contains_key(header::AUTHORIZATION);
    let signed: SignedIn = match body.password {
        Some(p) if !p.is_empty() || !has_bearer => {
            // Password logins need the captcha; impersonation (an admin's token) does not.
            state.check_captcha(&req, &body.captcha).await?;
            password_login(&state, tenant.as_ref(), &email, Secret::new(p)).await?
        }
        // An empty password with a Bearer token asks for impersonation.
        _ if has_bearer => {
            flows::impersonate(&state.ctx, tenant.as_ref(), bearer(&req)?, &email).await?
        }
        _ => return Err(ApiError::invalid_body("missing field `password`")),
    };
    if let Some(admin) = &signed.actor {
        // The audit trail of impersonation: who acted as whom.
        tracing::info!(admin_id = %admin, user_id = %signed.user.user.id, tenant = ?tenant.as_ref().map(TenantId::as_str), "impersonation: tokens issued");
    }
    Ok(no_store(token_pair_answer(&signed.tokens)))
}

/// A password login behind the per-account failure limit: a locked account (existing or not)
/// is refused before any hashing; a wrong password counts; a right one clears the count.
async fn password_login(
    state: &AppState,
    tenant: Option<&TenantId>,
    email: &Email,
    password: Secret,
) -> Result<SignedIn, ApiError> {
    let key = format!(
        "{}\u{0}{}",
        tenant.map_or("", TenantId::as_str),
        email.as_str()
    );
    if let Err(wait) = state.login_failures.check(&key, Instant::now()) {
        return Err(ApiError::rate_limited(wait));
    }
    match flows::login(&state.ctx, tenant, email, password).await {
        Err(CoreError::InvalidCredentials) => {
            state.login_failures.fail(&key, Instant::now());
            Err(CoreError::InvalidCredentials.into())
        }
        // A correct password, verified or not.
        Err(CoreError::EmailNotVerified) => {
            state.login_failures.succeed(&key);
            Err(CoreError::EmailNotVerified.into())
        }
        Err(e) => Err(e.into()),
        Ok(signed) => {
            state.login_failures.succeed(&key);
            Ok(signed)
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
struct RefreshBody {
    refresh_token: String,
}

#[utoipa::path(
    post,
    path = "/refresh",
    tag = crate::openapi::tag::AUTH,
    summary = "Trade a refresh token for a new pair",
    request_body = RefreshBody,
    responses(
        (status = 200, description = "`T`.", body = crate::openapi::TokenPair,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        crate::openapi::errors::Refresh,
    ),
)]
async fn refresh(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tenant = state.tenant(&req)?;
    let body: RefreshBody = read_body(&req, payload).await?;
    let signed = flows::refresh(&state.ctx, tenant.as_ref(), &body.refresh_token).await?;
    Ok(no_store(token_pair_answer(&signed.tokens)))
}

#[utoipa::path(
    get,
    path = "/user",
    tag = crate::openapi::tag::ACCOUNT,
    summary = "The signed-in user, read from the backend",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`{\"user\": U}`.", body = UserAnswer,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        crate::openapi::errors::User,
    ),
)]
async fn user(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let tenant = state.tenant(&req)?;
    let view = flows::current_user(&state.ctx, tenant.as_ref(), bearer(&req)?).await?;
    Ok(no_store(HttpResponse::Ok().json(UserAnswer {
        user: user_out(&state, &view),
    })))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct ChangePasswordBody {
    old_password: String,
    new_password: String,
}

#[utoipa::path(
    post,
    path = "/change-password",
    tag = crate::openapi::tag::ACCOUNT,
    summary = "Change the password; earlier refresh tokens stop working",
    request_body = ChangePasswordBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`{}`.", body = crate::openapi::Empty),
        crate::openapi::errors::ChangePassword,
    ),
)]
async fn change_password(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tenant = state.tenant(&req)?;
    let body: ChangePasswordBody = read_body(&req, payload).await?;
    let token = bearer(&req)?;
    flows::change_password(
        &state.ctx,
        tenant.as_ref(),
        token,
        secret(body.old_password),
        secret(body.new_password),
    )
    .await?;
    Ok(ok_empty())
}

#[utoipa::path(
    post,
    path = "/change-email",
    tag = crate::openapi::tag::ACCOUNT,
    summary = "Mail a link that changes the email to a new address",
    request_body = EmailBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`{}`, also when the address is taken (then no mail).", body = crate::openapi::Empty),
        crate::openapi::errors::ChangeEmail,
    ),
)]
async fn change_email(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tenant = state.tenant(&req)?;
    let body: EmailBody = read_body(&req, payload).await?;
    let token = bearer(&req)?;
    let email = Email::parse(&body.email)?;
    let mail = flows::change_email(
        &state.ctx,
        tenant.as_ref(),
        token,
        &email,
        body.redirect_url.as_deref(),
    )
    .await?;
    state.send_mail(mail);
    Ok(ok_empty())
}

#[derive(Deserialize, utoipa::ToSchema)]
struct InviteBody {
    #[schema(format = Email)]
    email: String,
    role: String,
    redirect_url: Option<String>,
}

#[utoipa::path(
    post,
    path = "/invite",
    tag = crate::openapi::tag::ACCOUNT,
    summary = "Invite an address with a role (ADMIN_ROLE only)",
    request_body = InviteBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`{}`; an invite mail is sent.", body = crate::openapi::Empty),
        crate::openapi::errors::Invite,
    ),
)]
async fn invite(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tenant = state.tenant(&req)?;
    let body: InviteBody = read_body(&req, payload).await?;
    let token = bearer(&req)?;
    let email = Email::parse(&body.email)?;
    let role = Role::parse(&body.role)?;
    let mail = flows::invite(
        &state.ctx,
        tenant.as_ref(),
        token,
        &email,
        &role,
        body.redirect_url.as_deref(),
    )
    .await?;
    state.send_mail(Some(mail));
    Ok(ok_empty())
}

#[utoipa::path(
    post,
    path = "/reset-password",
    tag = crate::openapi::tag::AUTH,
    summary = "Mail a password-reset link, if the address has a user",
    request_body = EmailBody,
    responses(
        (status = 200, description = "`{}`, whether or not the address has a user.", body = crate::openapi::Empty),
        crate::openapi::errors::ResetPassword,
    ),
)]
async fn reset_password(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tenant = state.tenant(&req)?;
    let body: EmailBody = read_body(&req, payload).await?;
    let email = Email::parse(&body.email)?;
    state.check_captcha(&req, &body.captcha).await?;
    let mail = flows::reset_password(
        &state.ctx,
        tenant.as_ref(),
        &email,
        body.redirect_url.as_deref(),
    )
    .await?;
    state.send_mail(mail);
    Ok(ok_empty())
}

#[cfg(test)]
mod tests {
    #[test]
    fn token_pairs_are_written_as_serde_json_writes_them() {
        let mut pair = authura_core::token::TokenPair {
            access_token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-_0".into(),
            refresh_token: "a.b.c".into(),
            token_type: "Bearer".into(),
            expires_in: 300,
        };
        let expected = serde_json::to_string(&pair).unwrap();
        assert_eq!(super::token_pair_json(&pair), expected);
        // Anything JSON would escape goes through serde_json.
        pair.access_token = "a\"b\\c\u{1}".into();
        let expected = serde_json::to_string(&pair).unwrap();
        assert_eq!(super::token_pair_json(&pair), expected);
        let back: authura_core::token::TokenPair = serde_json::from_str(&expected).unwrap();
        assert_eq!(back, pair);
    }

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

    #[test]
    fn ports_are_stripped_from_tenant_hosts() {
        assert_eq!(strip_port("example.com:9000"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:9000"), "::1");
    }

    #[test]
    fn status_is_chosen_once() {
        use actix_web::http::StatusCode;
        let e: ApiError = CoreError::EmailTaken.into();
        assert_eq!(
            (e.status(), e.code()),
            (StatusCode::CONFLICT, "email_taken")
        );
    }
}
