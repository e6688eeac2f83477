//! The state every request shares (`AppState`), how it is built from the configuration, the
//! mail queue that sends mail after the response, and `StartError`, which names what failed.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use authura_core::CoreError;
use authura_core::clock::SystemClock;
use authura_core::flows::Policies;
use authura_core::flows::{self, Context, FlowSettings};
use authura_core::hook::NoHook;
use authura_core::lockout::FailureLimiter;
use authura_core::mail::{Mail, Mailer, Outbox};
use authura_core::permit::PermissionNames;
use authura_core::redirect::RedirectPolicy;
use authura_core::sessions::Sessions;
use authura_core::state::{AccountStore, AuditStore, PermitStore, StateStore};
use authura_core::store::UserStore;
use authura_core::token::Tokens;
use authura_session::{CacheSettings, SessionCache, SessionPolicy, follow_events};

use crate::audit::AuditQueue;
use crate::backend::Stores;
use crate::captcha::Turnstile;
use crate::config::sessions::{CookieSettings, SessionsConfig};
use crate::config::{Config, MailConfig};
use crate::hashpool::HashPool;
use crate::metrics::Metrics;
use crate::permits::Checked;
use crate::ratelimit::RateLimiter;

/// How many mails may wait for the sender before new ones are dropped.
const MAIL_QUEUE: usize = 1024;

/// Mail delivery counters.
#[derive(Debug, Default)]
pub struct MailStats {
    /// Mails the flows asked for (queued for sending after the response).
    pub queued: AtomicU64,
    /// Mails the mailer accepted.
    pub sent: AtomicU64,
    /// Mails the mailer failed to send (logged).
    pub failed: AtomicU64,
    /// Mails dropped because the queue was full (logged).
    pub dropped: AtomicU64,
}

/// How often expired sessions are deleted from the state store.
const SESSION_PURGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Server-side sessions (SPEC §8), when `SESSIONS_ENABLED=true`.
#[derive(Debug)]
pub struct SessionsState {
    policy: SessionPolicy,
    store: Arc<dyn StateStore>,
    /// Key hash → the session, its user and their permit resolved, for `/check` (SPEC §8
    /// "The cache").
    cache: Arc<SessionCache<Checked>>,
    config: SessionsConfig,
}

impl SessionsState {
    /// The session rules over the state store (the flows reach the same through
    /// `Context::sessions`).
    pub fn policy(&self) -> &SessionPolicy {
        &self.policy
    }

    /// This instance's session cache (`SESSION_CACHE_SIZE`, `SESSION_CACHE_TTL`), kept in step
    /// with the other instances by the state events.
    pub fn cache(&self) -> &SessionCache<Checked> {
        &self.cache
    }

    /// The state store itself: sessions, role groups and permits (and `/readyz`'s ping).
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    /// The session cookie's name and attributes.
    pub fn cookie(&self) -> &CookieSettings {
        &self.config.cookie
    }

    /// `CHECK_BASIC_ENABLED`.
    pub fn check_basic(&self) -> bool {
        self.config.check_basic
    }

    /// The sessions section as configured (cache size and TTL included).
    pub fn config(&self) -> &SessionsConfig {
        &self.config
    }
}

/// Everything the handlers and middleware share, built once by [`build_state`].
#[derive(Debug)]
pub struct AppState {
    ctx: Context,
    sessions: Option<SessionsState>,
    /// The OAuth providers and one-time codes, when `OAUTH_PROVIDERS` names any.
    oauth: Option<crate::routes::oauth::OAuthState>,
    hash_pool: HashPool,
    limiter: RateLimiter,
    /// The pacing of malformed HTTP (`None` with the rate limiter off).
    pacer: Option<Arc<crate::pacing::Pacer>>,
    captcha: Option<Turnstile>,
    trusted_proxies: Vec<ipnet::IpNet>,
    mail_stats: Arc<MailStats>,
    metrics: Option<Metrics>,
    mail_queue: tokio::sync::mpsc::Sender<Mail>,
    /// The audit sink the flows report to (its counters for `/metrics`).
    audit: AuditQueue,
    /// The audit table, for `GET /admin/audit` (`AUDIT_ENABLED=true`).
    audit_store: Option<Arc<dyn AuditStore>>,
    /// The state store, every part of it, when a feature that needs it is on.
    state_store: Option<Arc<dyn StateStore>>,
    /// `PERMISSION_NAMES` (SPEC §8a).
    permission_names: PermissionNames,
    multi_tenant: bool,
    /// `TENANT_ID_HEADER`, lower-cased.
    tenant_header: String,
    /// `HOST_HEADER`, lower-cased.
    host_header: String,
    allowed_hosts: Option<Vec<String>>,
    /// `ALLOWED_ORIGINS`, lower-cased.
    allowed_origins: Vec<String>,
    /// `EXTERNAL_URL`'s origin, lower-cased.
    external_origin: String,
    /// `EXTERNAL_URL/form`, where forward auth sends an anonymous browser.
    sign_in_form: url::Url,
    /// `REQUEST_TIMEOUT`: how long a body may take to arrive.
    request_timeout: std::time::Duration,
    /// `true` once the server has begun to stop ([`AppState::begin_shutdown`]).
    stopping: tokio::sync::watch::Sender<bool>,
    /// The `Content-Security-Policy` of the HTML pages, built once.
    content_security_policy: actix_web::http::header::HeaderValue,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The user backend could not be opened.
    #[error("cannot open the {backend} backend: {detail}")]
    Backend {
        /// The backend's name (`AUTH_BACKEND`).
        backend: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// The mail templates or the SMTP client could not be set up.
    #[error("mail: {0}")]
    Mail(String),
    /// The hook client could not be set up.
    #[error("hook: {0}")]
    Hook(String),
    /// An OAuth provider's client could not be set up.
    #[error("oauth: {0}")]
    OAuth(String),
    /// The captcha client could not be set up.
    #[error("captcha: {0}")]
    Captcha(String),
    /// The state store (SPEC §13) could not be opened or migrated.
    #[error("state store: {0}")]
    State(String),
    /// The token keys could not be loaded.
    #[error("token keys: {0}")]
    Keys(String),
    /// The initial user could not be looked up or created.
    #[error("initial user: {0}")]
    InitialUser(String),
    /// The listening address could not be used.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address, as configured.
        addr: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Any other I/O failure (the hashing threads, the server itself).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl AppState {
    /// The flows' context: store, hasher, hook, tokens, clock and settings.
    pub fn ctx(&self) -> &Context {
        &self.ctx
    }

    /// The OAuth providers, when `OAUTH_PROVIDERS` names any.
    pub fn oauth(&self) -> Option<&crate::routes::oauth::OAuthState> {
        self.oauth.as_ref()
    }

    /// Server-side sessions, when `SESSIONS_ENABLED=true`.
    pub fn sessions(&self) -> Option<&SessionsState> {
        self.sessions.as_ref()
    }

    /// The password-hashing pool.
    pub fn hash_pool(&self) -> &HashPool {
        &self.hash_pool
    }

    /// The per-client request limiter.
    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    /// The pacing of malformed HTTP, when the rate limiter is on.
    pub fn pacer(&self) -> Option<&Arc<crate::pacing::Pacer>> {
        self.pacer.as_ref()
    }

    /// Turnstile, when `CAPTCHA=turnstile`.
    pub fn captcha(&self) -> Option<&Turnstile> {
        self.captcha.as_ref()
    }

    /// The mail counters.
    pub fn mail_stats(&self) -> &MailStats {
        &self.mail_stats
    }

    /// Request counters, when `METRICS_ENABLED=true`.
    pub fn metrics(&self) -> Option<&Metrics> {
        self.metrics.as_ref()
    }

    /// The audit sink (its counters).
    pub fn audit(&self) -> &AuditQueue {
        &self.audit
    }

    /// The audit table, when `AUDIT_ENABLED=true`.
    pub fn audit_store(&self) -> Option<&Arc<dyn AuditStore>> {
        self.audit_store.as_ref()
    }

    /// The state store (SPEC §13: sessions, role groups, permits, account state, audit; take
    /// the part needed by upcasting), when a feature that needs it is on.
    pub fn state_store(&self) -> Option<&Arc<dyn StateStore>> {
        self.state_store.as_ref()
    }

    /// `PERMISSION_NAMES` (empty when unset).
    pub fn permission_names(&self) -> &PermissionNames {
        &self.permission_names
    }

    /// Whether multi-tenancy is on.
    pub fn multi_tenant(&self) -> bool {
        self.multi_tenant
    }

    /// `TENANT_ID_HEADER`, lower-cased.
    pub(crate) fn tenant_header(&self) -> &str {
        &self.tenant_header
    }

    /// `HOST_HEADER`, lower-cased.
    pub(crate) fn host_header(&self) -> &str {
        &self.host_header
    }

    /// `ALLOWED_HOSTS`, when set.
    pub(crate) fn allowed_hosts(&self) -> Option<&[String]> {
        self.allowed_hosts.as_deref()
    }

    /// `ALLOWED_ORIGINS`, lower-cased.
    pub(crate) fn allowed_origins(&self) -> &[String] {
        &self.allowed_origins
    }

    /// `EXTERNAL_URL`'s origin, lower-cased (always allowed by CORS).
    pub(crate) fn external_origin(&self) -> &str {
        &self.external_origin
    }

    /// `EXTERNAL_URL/form`: the sign-in page forward auth redirects a browser to.
    pub fn sign_in_form(&self) -> &url::Url {
        &self.sign_in_form
    }

    /// `EXTERNAL_URL` + `/form?action=session`, the sign-in page (built from the configuration,
    /// never from a request's Host).
    pub(crate) fn session_form_url(&self) -> String {
        let mut url = self.sign_in_form.clone();
        url.query_pairs_mut().append_pair("action", "session");
        url.into()
    }

    /// `REQUEST_TIMEOUT`: how long a request's body may take to arrive after its head.
    pub(crate) fn request_timeout(&self) -> std::time::Duration {
        self.request_timeout
    }

    /// Tells requests whose body is still arriving that the server is stopping: each gets a
    /// short grace to finish, not its whole `REQUEST_TIMEOUT`. [`crate::serve`] calls it on
    /// SIGTERM/SIGINT; an embedder stopping the server itself calls it first.
    pub fn begin_shutdown(&self) {
        self.stopping.send_replace(true);
    }

    /// The `Content-Security-Policy` of the HTML pages.
    pub(crate) fn content_security_policy(&self) -> &actix_web::http::header::HeaderValue {
        &self.content_security_policy
    }

    /// Watches for [`AppState::begin_shutdown`].
    pub(crate) fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Queues a mail to be sent after the response; a full queue drops it (logged and counted).
    pub fn send_mail(&self, mail: Option<Mail>) {
        let Some(mail) = mail else { return };
        queue_mail(&self.mail_queue, &self.mail_stats, mail);
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
}

/// Queues `mail` for the sender; a full queue drops it (logged and counted).
fn queue_mail(queue: &tokio::sync::mpsc::Sender<Mail>, stats: &MailStats, mail: Mail) {
    stats.queued.fetch_add(1, Ordering::Relaxed);
    if let Err(e) = queue.try_send(mail) {
        stats.dropped.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %e, "mail queue full; mail dropped");
    }
}

/// The flows' outbox (the `account-locked` notice): the same queue as every other mail.
#[derive(Debug)]
struct MailOutbox {
    queue: tokio::sync::mpsc::Sender<Mail>,
    stats: Arc<MailStats>,
}

impl Outbox for MailOutbox {
    fn post(&self, mail: Mail) {
        queue_mail(&self.queue, &self.stats, mail);
    }
}

/// Opens the backend, the mailer and the hashing pool, and creates the initial user.
///
/// # Errors
/// `StartError` naming what failed.
pub async fn build_state(config: &Config) -> Result<Arc<AppState>, StartError> {
    let stores = crate::backend::open(
        &config.backend,
        config.state.as_ref(),
        config.extra_ca_pem.as_deref(),
    )
    .await?;
    let state = build_state_with_stores(config, stores).await?;
    ensure_initial_user(&state.ctx, config).await?;
    Ok(state)
}

/// Creates the configured initial admin (`*_INITIAL_USER`, in `INITIAL_USER_TENANT` with
/// multi-tenancy on) unless a user with that email exists there.
///
/// # Errors
/// `StartError::InitialUser` when the backend fails or the password breaks the policy.
pub async fn ensure_initial_user(ctx: &Context, config: &Config) -> Result<(), StartError> {
    if let Some(initial) = &config.initial_user {
        let tenant = initial.tenant.as_ref();
        match ctx.store.find_by_email(tenant, &initial.email).await {
            Ok(Some(_)) => tracing::info!(email = %initial.email, "initial user exists"),
            Ok(None) => {
                let created = flows::create_verified_user(
                    ctx,
                    tenant,
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

/// [`build_state`] over a given users store and no state store (embedders, and tests of other
/// stores), without the initial user: call [`ensure_initial_user`] once the store is reachable.
///
/// # Errors
/// `StartError` naming what failed; `StartError::State` when the configuration turns on a
/// feature that needs a state store (use [`build_state_with_stores`]).
pub async fn build_state_with_store(
    config: &Config,
    store: Arc<dyn UserStore>,
) -> Result<Arc<AppState>, StartError> {
    let stores = Stores {
        users: store,
        state: None,
    };
    build_state_with_stores(config, stores).await
}

/// [`build_state`] over given stores, without the initial user.
///
/// # Errors
/// `StartError` naming what failed; `StartError::State` when sessions are on and `stores` has
/// no state store.
pub async fn build_state_with_stores(
    config: &Config,
    stores: Stores,
) -> Result<Arc<AppState>, StartError> {
    let Stores {
        users: store,
        state,
    } = stores;
    let state_store = state.as_ref().map(|(store, _)| Arc::clone(store));
    let sessions = match (&config.sessions, state) {
        (None, _) => None,
        (Some(sessions), Some((store, events))) => {
            let clock: Arc<dyn authura_core::clock::Clock> = Arc::new(SystemClock);
            let cache = Arc::new(SessionCache::new(
                CacheSettings {
                    capacity: sessions.cache_size,
                    ttl: sessions.cache_ttl,
                },
                sessions.settings.clone(),
                Arc::clone(&clock),
            ));
            // Subscribed before the first lookup, so no event is missed.
            tokio::spawn(follow_events(Arc::clone(&cache), events.subscribe()));
            Some(SessionsState {
                policy: SessionPolicy::new(store.clone(), clock, sessions.settings.clone())
                    .with_events(events)
                    .with_cache(cache.clone()),
                store,
                cache,
                config: sessions.clone(),
            })
        }
        (Some(_), None) => {
            return Err(StartError::State(
                "SESSIONS_ENABLED=true, but no state store was opened".into(),
            ));
        }
    };
    // One TLS crypto provider for every client (lettre, later reqwest and ldap3).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mailer = mailer(config)?;
    let tokens = Tokens::new(config.tokens.clone()).map_err(StartError::Keys)?;
    let hash_pool = HashPool::for_threads(config.hash_threads)?;
    let mail_stats = Arc::new(MailStats::default());
    let mail_queue = start_mail_sender(mailer, Arc::clone(&mail_stats));
    let policies = &config.policies;
    if state_store.is_none() && !policies.stateful().is_empty() {
        return Err(StartError::State(format!(
            "{} needs the state store, but none was opened (set STATE_DSN with the hasura and \
             http backends)",
            policies.stateful().join(", ")
        )));
    }
    let audit = match (&policies.audit, &state_store) {
        (Some(audit), Some(store)) => AuditQueue::start(
            Arc::clone(store) as Arc<dyn AuditStore>,
            audit.queue_size,
            audit.retention,
            Arc::new(SystemClock),
        ),
        _ => AuditQueue::log_only(),
    };
    let audit_store = match (&policies.audit, &state_store) {
        (Some(_), Some(store)) => Some(Arc::clone(store) as Arc<dyn AuditStore>),
        _ => None,
    };
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
        login_failures: Arc::new(FailureLimiter::new(
            config.login_failures_per_account,
            config.login_failure_window,
        )),
        sessions: sessions
            .as_ref()
            .map(|s| Arc::new(s.policy.clone()) as Arc<dyn Sessions>),
        settings: FlowSettings {
            admin_role: config.admin_role.clone(),
            default_role: config.default_role.clone(),
            signup_disabled: config.signup_disabled,
            impersonation_enabled: config.impersonation_enabled,
            captcha: config.captcha.is_some(),
            policy: config.policy.clone(),
            verify_redirect_url: config.verify_redirect_url.clone(),
            redirects: RedirectPolicy::new(config.allowed_redirect_urls.clone()),
        },
        policies: Policies {
            accounts: state_store
                .as_ref()
                .map(|store| Arc::clone(store) as Arc<dyn AccountStore>),
            settings: policies.settings.clone(),
            audit: Arc::new(audit.clone()),
            outbox: Arc::new(MailOutbox {
                queue: mail_queue.clone(),
                stats: Arc::clone(&mail_stats),
            }),
            token_groups: state_store
                .as_ref()
                .filter(|_| config.hasura_roles_from_groups)
                .map(|store| Arc::clone(store) as Arc<dyn PermitStore>),
        },
    };
    if let Some(sessions) = &sessions {
        start_session_purge(sessions.policy.clone());
    }
    let oauth = match config.oauth.as_slice() {
        [] => None,
        providers => Some(
            crate::routes::oauth::OAuthState::new(providers, &config.external_url)
                .map_err(StartError::OAuth)?,
        ),
    };
    Ok(Arc::new(AppState {
        ctx,
        sessions,
        oauth,
        hash_pool,
        limiter: RateLimiter::new(config.rate_per_minute),
        pacer: crate::pacing::Pacer::new(config.rate_per_minute, config.header_timeout),
        captcha: match &config.captcha {
            Some(settings) => Some(
                Turnstile::new(settings.clone(), config.extra_ca_pem.as_deref())
                    .map_err(StartError::Captcha)?,
            ),
            None => None,
        },
        trusted_proxies: config.trusted_proxies.clone(),
        mail_stats,
        metrics: config
            .metrics_enabled
            .then(|| Metrics::new(config.backend.name())),
        mail_queue,
        audit,
        audit_store,
        state_store,
        permission_names: config.permission_names.clone(),
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
        sign_in_form: crate::routes::check::sign_in_form(&config.external_url),
        request_timeout: config.request_timeout,
        stopping: tokio::sync::watch::channel(false).0,
        content_security_policy: crate::html::content_security_policy(
            config.captcha.as_ref().map(|c| &c.script),
        )
        .try_into()
        .map_err(|_| StartError::Captcha("TURNSTILE_SCRIPT cannot be named in a header".into()))?,
    }))
}

/// Deletes expired sessions every [`SESSION_PURGE_INTERVAL`] (they are already refused when
/// presented; this keeps the table small). A failure is logged and tried again next time.
fn start_session_purge(policy: SessionPolicy) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(SESSION_PURGE_INTERVAL);
        every.tick().await;
        loop {
            every.tick().await;
            match policy.purge_expired().await {
                Ok(0) => {}
                Ok(purged) => tracing::debug!(purged, "expired sessions purged"),
                Err(e) => tracing::warn!(error = %e, "expired sessions not purged"),
            }
        }
    });
}

/// The configured mailer, with its templates loaded (and test-rendered).
pub fn mailer(config: &Config) -> Result<Arc<dyn Mailer>, StartError> {
    let templates = match &config.mail_templates_dir {
        Some(dir) => {
            authura_mail::Templates::load(dir).map_err(|e| StartError::Mail(e.to_string()))?
        }
        None => authura_mail::Templates::builtin(),
    };
    Ok(match &config.mail {
        MailConfig::Dummy => Arc::new(authura_mail::DummyMailer::new(templates)),
        MailConfig::Smtp(settings) => Arc::new(
            authura_mail::SmtpMailer::new(settings.clone(), templates)
                .map_err(|e| StartError::Mail(e.to_string()))?,
        ),
    })
}

/// Starts the task that sends queued mail, each in its own task, and returns the queue.
fn start_mail_sender(
    mailer: Arc<dyn Mailer>,
    stats: Arc<MailStats>,
) -> tokio::sync::mpsc::Sender<Mail> {
    let (queue, mut rx) = tokio::sync::mpsc::channel::<Mail>(MAIL_QUEUE);
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
    queue
}
