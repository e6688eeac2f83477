//! Configuration (SPEC §1–2): defaults < `--config` file < `.env` < environment < flags, read
//! strictly. Every problem is collected and reported at once, each naming its variable; the
//! binary exits 2 on any. Secrets are redacted wherever the configuration is printed.
//!
//! Each section (`server`, `flows`, `tokens`, `backend`, `mail`, `captcha`, `hooks`, and
//! `future` for features not built yet) declares its variables once, as [`var::Var`]s, and reads
//! them through `reader::Reader`, which takes a declaration, never a name. The known names,
//! `NAME_FILE`, the refusal of unbuilt features, check-config's listing and the tables of
//! docs/configuration.md all derive from [`SECTIONS`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use authura_backend_hasura::HasuraSettings;
use authura_backend_http::HttpSettings;
use authura_backend_pg::PgSettings;
use authura_core::policy::PasswordPolicy;
use authura_core::token::TokenSettings;
use authura_core::{Email, Role, Secret};
use authura_mail::SmtpSettings;
use url::Url;

use crate::config::reader::Reader;
use crate::config::var::{Need, Var};

mod backend;
mod captcha;
mod flows;
mod future;
mod hooks;
mod ldap;
mod mail;
mod oauth;
pub mod permits;
pub mod policies;
mod reader;
mod server;
pub mod sessions;
mod tokens;
pub mod var;

#[cfg(test)]
mod docs;
#[cfg(test)]
mod tests;

/// Every section's declarations, in the order of docs/configuration.md. A new section is a new
/// file with a `declare!` block, its `mod` line above, and its line here.
pub static SECTIONS: &[(&str, &[&Var])] = &[
    ("server", server::VARS),
    ("flows", flows::VARS),
    ("tokens", tokens::VARS),
    ("backend", backend::VARS),
    ("ldap", ldap::VARS),
    ("mail", mail::VARS),
    ("captcha", captcha::VARS),
    ("hooks", hooks::VARS),
    ("sessions", sessions::VARS),
    ("oauth", oauth::VARS),
    ("policies", policies::VARS),
    ("permits", permits::VARS),
    ("future", future::VARS),
];

/// Every declared variable, section by section.
pub fn declared() -> impl Iterator<Item = &'static Var> {
    SECTIONS.iter().flat_map(|(_, vars)| vars.iter().copied())
}

/// Variables that hold secrets: redacted when printed, and each may be given as `NAME_FILE`.
pub static SECRET_VARIABLES: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    declared()
        .filter(|var| var.secret)
        .map(|var| var.name)
        .collect()
});

/// Where configuration comes from. Built by the binary from the process; tests build it by hand.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `--config FILE` (TOML; keys are the variable names, in any case).
    pub file: Option<PathBuf>,
    /// A `.env` file, if one is to be read.
    pub dotenv: Option<PathBuf>,
    /// The process environment.
    pub env: BTreeMap<String, String>,
    /// Command-line flags, as variables (`--port 8080` is `PORT=8080`).
    pub flags: BTreeMap<String, String>,
    /// `serve --dev`: no configuration needed.
    pub dev: bool,
    /// Where `--dev` keeps its generated secrets (default `./.authura-dev-secrets`).
    pub dev_secrets: Option<PathBuf>,
}

impl Sources {
    /// The process's environment, and `./.env` when it exists.
    pub fn from_process(file: Option<PathBuf>, flags: BTreeMap<String, String>, dev: bool) -> Self {
        let dotenv = Path::new(".env").is_file().then(|| PathBuf::from(".env"));
        Sources {
            file,
            dotenv,
            env: std::env::vars().collect(),
            flags,
            dev,
            dev_secrets: None,
        }
    }
}

/// The backend to use.
#[derive(Debug, Clone)]
pub enum BackendConfig {
    /// Embedded SQLite.
    Sqlite { path: PathBuf, pool_size: usize },
    /// PostgreSQL (`POSTGRES_*`).
    Postgres(PgSettings),
    /// Hasura's GraphQL API (`HASURA_*`).
    Hasura(HasuraSettings),
    /// The operator's REST service (`HTTP_*`, docs/backends/http.md).
    Http(HttpSettings),
    /// A directory, read-only (`LDAP_*`, docs/backends/ldap.md).
    Ldap(authura_backend_ldap::LdapSettings),
}

impl BackendConfig {
    /// The backend's name, for the startup line.
    pub fn name(&self) -> &'static str {
        match self {
            BackendConfig::Sqlite { .. } => "sqlite",
            BackendConfig::Postgres(_) => "postgres",
            BackendConfig::Hasura(_) => "hasura",
            BackendConfig::Http(_) => "http",
            BackendConfig::Ldap(_) => "ldap",
        }
    }
}

/// How mail is delivered.
#[derive(Debug, Clone)]
pub enum MailConfig {
    /// `MAIL_HOST=dummy`: each mail is written to the log with its link.
    Dummy,
    /// A real SMTP relay.
    Smtp(SmtpSettings),
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// A user created at startup if absent (`SQLITE_INITIAL_USER` or `POSTGRES_INITIAL_USER`).
#[derive(Debug, Clone)]
pub struct InitialUser {
    pub email: Email,
    pub password: Secret,
    /// `INITIAL_USER_TENANT`, with multi-tenancy on.
    pub tenant: Option<authura_core::TenantId>,
}

/// The validated configuration. There is no `Default`: it is loaded, or the process stops.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub port: u16,
    /// CORS origins as configured (`*`, `https://app.example.com`, `app.example.com`).
    pub allowed_origins: Vec<String>,
    /// Lower-cased `host[:port]` values, when the host check is on.
    pub allowed_hosts: Option<Vec<String>>,
    pub host_header: String,
    /// 0 = off.
    pub rate_per_minute: u32,
    /// Proxies whose `X-Forwarded-For` names the client (default none: the socket peer is).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Failed logins per account within `login_failure_window` before it is locked (0 = off).
    pub login_failures_per_account: u32,
    /// Password hashing threads (`HASH_THREADS`, default one per core).
    pub hash_threads: usize,
    pub login_failure_window: Duration,
    /// `HEADER_TIMEOUT`: the most a request's head may take to arrive.
    pub header_timeout: Duration,
    /// `REQUEST_TIMEOUT`: the most a request's body may take to arrive after its head.
    pub request_timeout: Duration,
    /// PEM bundle trusted by outgoing TLS clients in addition to the system roots.
    pub extra_ca_pem: Option<Vec<u8>>,
    pub admin_role: Role,
    pub default_role: Role,
    pub external_url: Url,
    pub verify_redirect_url: Url,
    pub allowed_redirect_urls: Vec<Url>,
    pub signup_disabled: bool,
    /// `/token` with an empty password and an admin's Bearer token acts as the named user.
    pub impersonation_enabled: bool,
    /// `METRICS_ENABLED`: serve `GET /metrics`.
    pub metrics_enabled: bool,
    pub multi_tenant: bool,
    pub tenant_id_header: String,
    pub tokens: TokenSettings,
    pub policy: PasswordPolicy,
    pub backend: BackendConfig,
    pub initial_user: Option<InitialUser>,
    pub mail: MailConfig,
    pub mail_templates_dir: Option<PathBuf>,
    /// Turnstile, when `CAPTCHA=turnstile`.
    pub captcha: Option<crate::captcha::CaptchaSettings>,
    /// The webhook (`HOOK_URL`), when one is configured.
    pub hook: Option<authura_hooks::HookSettings>,
    /// The OAuth providers of `OAUTH_PROVIDERS`, in its order (none: OAuth is off).
    pub oauth: Vec<authura_oauth::ProviderSettings>,
    /// Server-side sessions, when `SESSIONS_ENABLED=true`.
    pub sessions: Option<sessions::SessionsConfig>,
    /// The account policies and the audit log (SPEC §11).
    pub policies: policies::PoliciesConfig,
    /// `PERMISSION_NAMES` (SPEC §8a): empty when unset.
    pub permission_names: authura_core::permit::PermissionNames,
    /// `HASURA_ROLES_FROM_GROUPS=true` (SPEC §8a): group names join `x-hasura-allowed-roles`.
    pub hasura_roles_from_groups: bool,
    /// Where the state store is, when a feature that needs it is on.
    pub state: Option<sessions::StateConfig>,
    pub log_format: LogFormat,
    pub dev: bool,
    /// The effective value of every variable, secrets redacted, for `check-config`.
    pub effective: BTreeMap<String, String>,
    /// Non-fatal remarks to log at startup (e.g. variables that were ignored).
    pub warnings: Vec<String>,
}

/// Everything wrong with a configuration, one line per problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Loads and validates the configuration.
///
/// # Errors
/// `ConfigError` listing every problem found.
pub fn load(sources: &Sources) -> Result<Config, ConfigError> {
    load_reading(sources).0
}

/// The names of the variables a load read.
type ReadNames = std::collections::BTreeSet<&'static str>;

/// [`load`], and the names of the variables it read (for the tests that every declared
/// variable is read somewhere).
fn load_reading(sources: &Sources) -> (Result<Config, ConfigError>, ReadNames) {
    let mut r = Reader::new(sources);
    let config = read(&mut r, sources);
    let result = match config {
        Some(mut c) if r.problems.is_empty() => {
            c.effective = std::mem::take(&mut r.effective);
            c.warnings.append(&mut r.warnings);
            Ok(c)
        }
        _ => Err(ConfigError {
            problems: std::mem::take(&mut r.problems),
        }),
    };
    (result, r.read)
}

fn read(r: &mut Reader, sources: &Sources) -> Option<Config> {
    for var in declared() {
        if let Need::Future(feature) = var.need
            && r.is_set(var)
        {
            r.problem(format!(
                "{} is set, but {feature} is not in this build yet; unset it",
                var.name
            ));
        }
    }

    let (host, port) = server::read_listen(r);
    let allowed_origins = r.list(&server::ALLOWED_ORIGINS);
    let allowed_hosts = server::read_allowed_hosts(r);
    let host_header = r.header_name(&server::HOST_HEADER);
    let rate_per_minute = r.number::<u32>(&server::RATE_PER_MINUTE);
    let trusted_proxies = server::read_trusted_proxies(r);
    let login_failures_per_account = r.number::<u32>(&server::LOGIN_FAILURES_PER_ACCOUNT);
    let login_failure_window = r.duration(&server::LOGIN_FAILURE_WINDOW);
    let hash_threads = server::read_hash_threads(r);
    let extra_ca_pem = server::read_extra_ca(r);
    let timeouts = server::read_timeouts(r);

    let admin_role = r.role(&flows::ADMIN_ROLE);
    let default_role = r.role(&flows::DEFAULT_ROLE);
    let (external_url, verify_redirect_url) = flows::read_urls(r, port);
    let signup_disabled = r.bool(&flows::SIGNUP_DISABLED);
    let impersonation_enabled = r.bool(&flows::IMPERSONATION_ENABLED);
    let metrics_enabled = r.bool(&server::METRICS_ENABLED);
    let multi_tenant = r.bool(&flows::MULTI_TENANT_ENABLED);
    let tenant_id_header = r.header_name(&flows::TENANT_ID_HEADER);
    let allowed_redirect_urls =
        flows::read_redirect_urls(r, verify_redirect_url.as_ref(), &allowed_origins);

    let tokens = tokens::read_tokens(r, sources);
    let policy = tokens::read_policy(r);
    let (backend_name, backend) = backend::read_backend(r, extra_ca_pem.as_ref());
    let initial_user = backend::read_initial_user(r, &backend_name, &policy, multi_tenant);
    let mail = mail::read_mail(r, sources, extra_ca_pem.clone());
    let mail_templates_dir = mail::read_templates_dir(r);
    let hook = hooks::read_hook(r, extra_ca_pem.clone());
    let captcha = captcha::read_captcha(r);
    let oauth = oauth::read_oauth(r, extra_ca_pem.as_ref());
    let sessions_config = sessions::read_sessions(r, sources.dev);
    let policies = policies::read_policies(r);
    let permission_names = permits::read_permission_names(r);
    let hasura_roles_from_groups = permits::read_hasura_roles_from_groups(
        r,
        sessions_config.is_some(),
        tokens.as_ref().is_some_and(|t| {
            t.extensions
                .iter()
                .any(|e| e.namespace() == authura_core::extension::HasuraExtension::NAMESPACE)
        }),
    );
    let mut stateful = Vec::new();
    if sessions_config.is_some() {
        stateful.push("SESSIONS_ENABLED=true".to_owned());
    }
    stateful.extend(policies.iter().flat_map(policies::PoliciesConfig::stateful));
    let state = sessions::read_state(r, &backend_name, &stateful);
    let log_format = server::read_log_format(r);

    Some(Config {
        host,
        port,
        allowed_origins,
        allowed_hosts,
        host_header,
        rate_per_minute,
        trusted_proxies,
        login_failures_per_account,
        hash_threads,
        login_failure_window: login_failure_window?,
        header_timeout: timeouts?.0,
        request_timeout: timeouts?.1,
        extra_ca_pem,
        admin_role: admin_role?,
        default_role: default_role?,
        external_url: external_url?,
        verify_redirect_url: verify_redirect_url?,
        allowed_redirect_urls,
        signup_disabled,
        impersonation_enabled,
        metrics_enabled,
        multi_tenant,
        tenant_id_header,
        tokens: tokens?,
        policy,
        backend: backend?,
        initial_user,
        mail: mail?,
        mail_templates_dir,
        hook,
        captcha,
        oauth,
        sessions: sessions_config,
        policies: policies?,
        permission_names,
        hasura_roles_from_groups,
        state,
        log_format,
        dev: sources.dev,
        effective: BTreeMap::new(),
        warnings: Vec::new(),
    })
}

/// What `authura migrate` opens: the users backend, the state store when a feature that needs
/// it is on, and the extra trusted roots.
#[derive(Debug, Clone)]
pub struct Storage {
    pub backend: BackendConfig,
    pub state: Option<sessions::StateConfig>,
    pub extra_ca_pem: Option<Vec<u8>>,
}

/// Only what `authura migrate` needs: the backend (with `EXTRA_CA_FILE`), and `STATE_DSN` with
/// the switches of the features that need the state store. The rest of the configuration (token
/// secrets, mail) is neither required nor checked, so a deploy step can migrate with the
/// database's variables alone.
///
/// The warnings come with it (a `.env` typo, plain http with a credential).
///
/// # Errors
/// Every problem with those variables, at once.
pub fn load_backend(sources: &Sources) -> Result<(Storage, Vec<String>), ConfigError> {
    let mut r = Reader::new(sources);
    let extra_ca_pem = server::read_extra_ca(&mut r);
    let (backend_name, backend) = backend::read_backend(&mut r, extra_ca_pem.as_ref());
    let mut stateful = Vec::new();
    if r.bool(&sessions::SESSIONS_ENABLED) {
        stateful.push("SESSIONS_ENABLED=true".to_owned());
    }
    stateful.extend(
        policies::read_policies(&mut r)
            .iter()
            .flat_map(policies::PoliciesConfig::stateful),
    );
    let state = sessions::read_state(&mut r, &backend_name, &stateful);
    match backend {
        Some(backend) if r.problems.is_empty() => Ok((
            Storage {
                backend,
                state,
                extra_ca_pem,
            },
            r.warnings,
        )),
        _ => Err(ConfigError {
            problems: r.problems,
        }),
    }
}

/// `HOST` and `PORT` alone, from the same sources and with the same defaults as [`load`]: what
/// `authura healthcheck` needs to reach the running service, with nothing else required.
///
/// # Errors
/// A `PORT` that is not a port number.
pub fn load_listen(sources: &Sources) -> Result<(String, u16), ConfigError> {
    let mut r = Reader::new(sources);
    let (host, port) = server::read_listen(&mut r);
    if r.problems.is_empty() {
        Ok((host, port))
    } else {
        Err(ConfigError {
            problems: r.problems,
        })
    }
}

fn parse_http_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| format!("{s:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{s:?} must be an http or https URL"));
    }
    Ok(url)
}
