//! Configuration (SPEC §1–2): defaults < `--config` file < `.env` < environment < flags, read
//! strictly. Every problem is collected and reported at once, each naming its variable; the
//! binary exits 2 on any. Secrets are redacted wherever the configuration is printed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use authura_backend_hasura::HasuraSettings;
use authura_backend_http::HttpSettings;
use authura_backend_pg::{PgSettings, UsersTable};
use authura_core::extension::{ClaimsExtension, EnvExtension, HasuraExtension};
use authura_core::keys::{AccessKey, Algorithm, PrivateKey};
use authura_core::policy::PasswordPolicy;
use authura_core::token::TokenSettings;
use authura_core::{Email, Role, Secret, duration};
use authura_mail::{MailTls, SmtpSettings};
use url::Url;

/// Variables that hold secrets: redacted when printed, and each may be given as `NAME_FILE`.
pub const SECRET_VARIABLES: &[&str] = &[
    "JWT_SECRET",
    "JWT_REFRESH_SECRET",
    "JWT_VERIFY_SECRET",
    "JWT_PRIVATE_KEY",
    "JWT_PREVIOUS_KEYS",
    "MAIL_PASS",
    "SQLITE_INITIAL_USER_PASSWORD",
    "POSTGRES_DSN",
    "POSTGRES_INITIAL_USER_PASSWORD",
    "HASURA_GRAPHQL_ADMIN_SECRET",
    "HTTP_AUTH_HEADER_VALUE",
    "HOOK_AUTH_HEADER_VALUE",
    "TURNSTILE_SECRET_KEY",
    "GOOGLE_CLIENT_SECRET",
    "GITHUB_CLIENT_SECRET",
    "MICROSOFT_CLIENT_SECRET",
    "OIDC_CLIENT_SECRET",
    "LDAP_BIND_PASSWORD",
];

/// Variables of features this build does not have yet, with the feature's name. Setting one is
/// a startup error: a protection such as `CAPTCHA` must never be silently ignored.
const FUTURE_VARIABLES: &[(&str, &str)] = &[
    ("OAUTH_PROVIDERS", "oauth"),
    ("GOOGLE_CLIENT_ID", "oauth"),
    ("GOOGLE_CLIENT_SECRET", "oauth"),
    ("GITHUB_CLIENT_ID", "oauth"),
    ("GITHUB_CLIENT_SECRET", "oauth"),
    ("MICROSOFT_TENANT", "oauth"),
    ("MICROSOFT_CLIENT_ID", "oauth"),
    ("MICROSOFT_CLIENT_SECRET", "oauth"),
    ("OIDC_ISSUER_URL", "oauth"),
    ("OIDC_CLIENT_ID", "oauth"),
    ("OIDC_CLIENT_SECRET", "oauth"),
    ("GOOGLE_AUTH_URL", "oauth"),
    ("GOOGLE_TOKEN_URL", "oauth"),
    ("GOOGLE_USERINFO_URL", "oauth"),
    ("GITHUB_AUTH_URL", "oauth"),
    ("GITHUB_TOKEN_URL", "oauth"),
    ("GITHUB_USERINFO_URL", "oauth"),
    ("MICROSOFT_AUTH_URL", "oauth"),
    ("MICROSOFT_TOKEN_URL", "oauth"),
    ("MICROSOFT_USERINFO_URL", "oauth"),
    ("OIDC_AUTH_URL", "oauth"),
    ("OIDC_TOKEN_URL", "oauth"),
    ("OIDC_USERINFO_URL", "oauth"),
    ("SESSIONS_ENABLED", "sessions"),
    ("SESSIONS_DSN", "sessions"),
    ("MAX_ACTIVE_SESSIONS", "sessions"),
    ("LDAP_URL", "the ldap backend"),
    ("LDAP_STARTTLS", "the ldap backend"),
    ("LDAP_BIND_DN", "the ldap backend"),
    ("LDAP_BIND_PASSWORD", "the ldap backend"),
    ("LDAP_BASE_DN", "the ldap backend"),
    ("LDAP_USER_FILTER", "the ldap backend"),
    ("LDAP_ROLE_MAP", "the ldap backend"),
    ("LDAP_ID_ATTRIBUTE", "the ldap backend"),
];

/// The variables this build reads (besides the future ones), for file-key checking.
const KNOWN_VARIABLES: &[&str] = &[
    "HOST",
    "PORT",
    "ALLOWED_ORIGINS",
    "ALLOWED_HOSTS",
    "HOST_HEADER",
    "RATE_PER_MINUTE",
    "CAPTCHA",
    "TURNSTILE_SITE_KEY",
    "TURNSTILE_SCRIPT",
    "TURNSTILE_VERIFY_URL",
    "HOOK_URL",
    "HOOK_AUTH_HEADER_KEY",
    "HOOK_AUTH_HEADER_VALUE",
    "HOOK_TIMEOUT",
    "TRUSTED_PROXIES",
    "LOGIN_FAILURES_PER_ACCOUNT",
    "LOGIN_FAILURE_WINDOW",
    "HASH_THREADS",
    "EXTRA_CA_FILE",
    "ADMIN_ROLE",
    "DEFAULT_ROLE",
    "VERIFY_REDIRECT_URL",
    "EXTERNAL_URL",
    "SIGNUP_DISABLED",
    "IMPERSONATION_ENABLED",
    "METRICS_ENABLED",
    "ALLOWED_REDIRECT_URLS",
    "MULTI_TENANT_ENABLED",
    "TENANT_ID_HEADER",
    "JWT_SECRET",
    "JWT_REFRESH_SECRET",
    "JWT_VERIFY_SECRET",
    "JWT_EXPIRATION",
    "JWT_REFRESH_EXPIRATION",
    "JWT_VERIFY_EXPIRATION",
    "JWT_EXTENSIONS",
    "JWT_ENV_EXTENSION_NAMESPACE",
    "JWT_ENV_EXTENSION_CLAIMS",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "JWT_ALGORITHM",
    "JWT_PRIVATE_KEY",
    "JWT_PREVIOUS_KEYS",
    "PASSWORD_MIN_LENGTH",
    "PASSWORD_MAX_LENGTH",
    "PASSWORD_REQUIRE_CLASSES",
    "AUTH_BACKEND",
    "SQLITE_DB_PATH",
    "SQLITE_INITIAL_USER",
    "SQLITE_INITIAL_USER_PASSWORD",
    "SQLITE_POOL_SIZE",
    "POSTGRES_DSN",
    "POSTGRES_INITIAL_USER",
    "POSTGRES_INITIAL_USER_PASSWORD",
    "POSTGRES_POOL_SIZE",
    "POSTGRES_USERS_TABLE",
    "POSTGRES_TIMEOUT",
    "HTTP_URL",
    "HTTP_AUTH_HEADER_KEY",
    "HTTP_AUTH_HEADER_VALUE",
    "HTTP_TIMEOUT",
    "HASURA_URL",
    "HASURA_GRAPHQL_ADMIN_SECRET",
    "HASURA_TIMEOUT",
    "MAIL_HOST",
    "MAIL_PORT",
    "MAIL_USER",
    "MAIL_PASS",
    "MAIL_FROM",
    "MAIL_TLS",
    "MAIL_TEMPLATES_DIR",
    "LOG_FORMAT",
];

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
}

impl BackendConfig {
    /// The backend's name, for the startup line.
    pub fn name(&self) -> &'static str {
        match self {
            BackendConfig::Sqlite { .. } => "sqlite",
            BackendConfig::Postgres(_) => "postgres",
            BackendConfig::Hasura(_) => "hasura",
            BackendConfig::Http(_) => "http",
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
    let mut r = Reader::new(sources);
    let config = read(&mut r, sources);
    if r.problems.is_empty()
        && let Some(mut c) = config
    {
        c.effective = r.effective;
        c.warnings.extend(r.warnings);
        return Ok(c);
    }
    Err(ConfigError {
        problems: r.problems,
    })
}

fn read(r: &mut Reader, sources: &Sources) -> Option<Config> {
    for (name, feature) in FUTURE_VARIABLES {
        if r.raw(name).is_some() {
            r.problem(format!(
                "{name} is set, but {feature} is not in this build yet; unset it"
            ));
        }
    }

    let (host, port) = read_listen(r);
    let allowed_origins = r.list("ALLOWED_ORIGINS");
    let allowed_hosts = r.string("ALLOWED_HOSTS").map(|_| {
        r.list("ALLOWED_HOSTS")
            .into_iter()
            .map(|h| h.to_ascii_lowercase())
            .collect()
    });
    let host_header = r.header_name("HOST_HEADER", "Host");
    let rate_per_minute = r.number::<u32>("RATE_PER_MINUTE", 60);
    let trusted_proxies = r
        .list("TRUSTED_PROXIES")
        .into_iter()
        .filter_map(|entry| {
            // A bare address is a one-host network.
            let parsed = entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            parsed
                .map_err(|_| {
                    r.problem(format!(
                        "TRUSTED_PROXIES: {entry:?} is not an address or CIDR network"
                    ))
                })
                .ok()
        })
        .collect();
    let login_failures_per_account = r.number::<u32>("LOGIN_FAILURES_PER_ACCOUNT", 10);
    let login_failure_window = r.duration("LOGIN_FAILURE_WINDOW", "15m");
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    let hash_threads = r.number::<usize>("HASH_THREADS", cores);
    if hash_threads == 0 {
        r.problem("HASH_THREADS must be at least 1".into());
    }
    let extra_ca_pem = read_extra_ca(r);

    let admin_role = r.role("ADMIN_ROLE", "admin");
    let default_role = r.role("DEFAULT_ROLE", "user");
    // The default follows the port, so `serve --dev --port 8080` links to itself.
    let external_url = r.url("EXTERNAL_URL", &format!("http://localhost:{port}"));
    let default_verify = external_url
        .as_ref()
        .map(|u| format!("{}/form", u.as_str().trim_end_matches('/')));
    let verify_redirect_url = match default_verify {
        Some(d) => r.url("VERIFY_REDIRECT_URL", &d),
        None => r.url("VERIFY_REDIRECT_URL", "http://localhost:9000/form"),
    };
    let signup_disabled = r.bool("SIGNUP_DISABLED", false);
    let impersonation_enabled = r.bool("IMPERSONATION_ENABLED", false);
    let metrics_enabled = r.bool("METRICS_ENABLED", false);
    let multi_tenant = r.bool("MULTI_TENANT_ENABLED", false);
    let tenant_id_header = r.header_name("TENANT_ID_HEADER", "X-Tenant-ID");

    // Redirect prefixes: explicit, or VERIFY_REDIRECT_URL plus the CORS origins (never `*`).
    let allowed_redirect_urls = match r.string("ALLOWED_REDIRECT_URLS") {
        Some(_) => r
            .list("ALLOWED_REDIRECT_URLS")
            .into_iter()
            .filter_map(|u| {
                parse_http_url(&u)
                    .map_err(|e| r.problem(format!("ALLOWED_REDIRECT_URLS: {e}")))
                    .ok()
            })
            .collect(),
        None => {
            let mut v: Vec<Url> = verify_redirect_url.iter().cloned().collect();
            for origin in &allowed_origins {
                if origin == "*" {
                    continue;
                }
                if origin.contains("://") {
                    v.extend(Url::parse(origin).ok());
                } else {
                    v.extend(Url::parse(&format!("http://{origin}")).ok());
                    v.extend(Url::parse(&format!("https://{origin}")).ok());
                }
            }
            r.effective.insert(
                "ALLOWED_REDIRECT_URLS".into(),
                v.iter().map(Url::as_str).collect::<Vec<_>>().join(","),
            );
            v
        }
    };

    let tokens = read_tokens(r, sources);
    let policy = PasswordPolicy {
        min_length: r.number::<usize>("PASSWORD_MIN_LENGTH", 8),
        max_length: r.number::<usize>("PASSWORD_MAX_LENGTH", 128),
        require_classes: r.bool("PASSWORD_REQUIRE_CLASSES", true),
    };
    if policy.min_length == 0 || policy.min_length > policy.max_length || policy.max_length > 4096 {
        r.problem(
            "PASSWORD_MIN_LENGTH / PASSWORD_MAX_LENGTH: expected 1 ≤ min ≤ max ≤ 4096".into(),
        );
    }

    let (backend_name, backend) = read_backend(r, extra_ca_pem.as_ref());
    // The initial user's variables are named after the backend (SPEC §2); the other backend's
    // are ignored, with a warning.
    let (prefix, other) = if backend_name == "postgres" {
        ("POSTGRES", "SQLITE")
    } else {
        ("SQLITE", "POSTGRES")
    };
    for name in ["INITIAL_USER", "INITIAL_USER_PASSWORD"] {
        let name = format!("{other}_{name}");
        if r.raw(&name).is_some() {
            r.warnings.push(format!(
                "{name} is ignored: AUTH_BACKEND={backend_name} reads {prefix}_INITIAL_USER"
            ));
        }
    }
    let user_var = format!("{prefix}_INITIAL_USER");
    let password_var = format!("{prefix}_INITIAL_USER_PASSWORD");
    let initial_user = match (r.string(&user_var), r.secret(&password_var)) {
        (Some(email), Some(password)) => match Email::parse(&email) {
            Ok(email) => Some(InitialUser { email, password }),
            Err(_) => {
                r.problem(format!("{user_var}: {email:?} is not an email address"));
                None
            }
        },
        (None, None) => None,
        _ => {
            r.problem(format!("{user_var} and {password_var} go together"));
            None
        }
    };

    if let Some(initial) = &initial_user {
        let unmet = policy.unmet(initial.password.expose());
        if !unmet.is_empty() {
            let rules: Vec<&str> = unmet.iter().map(|r| r.as_str()).collect();
            r.problem(format!(
                "{password_var} does not meet the password policy ({})",
                rules.join(", ")
            ));
        }
    }
    let mail = read_mail(r, sources, extra_ca_pem.clone());
    let mail_templates_dir = r.string("MAIL_TEMPLATES_DIR").map(PathBuf::from);
    if let Some(dir) = &mail_templates_dir {
        if !dir.is_dir() {
            r.problem(format!(
                "MAIL_TEMPLATES_DIR: {} is not a directory",
                dir.display()
            ));
        } else if let Err(e) = authura_mail::Templates::load(dir) {
            r.problem(format!("MAIL_TEMPLATES_DIR: {e}"));
        }
    }
    let hook = read_hook(r, extra_ca_pem.clone());
    let captcha = read_captcha(r);
    let log_format = match r
        .string("LOG_FORMAT")
        .unwrap_or_else(|| r.default("LOG_FORMAT", "pretty"))
        .as_str()
    {
        "pretty" => LogFormat::Pretty,
        "json" => LogFormat::Json,
        other => {
            r.problem(format!(
                "LOG_FORMAT: expected json or pretty, got {other:?}"
            ));
            LogFormat::Pretty
        }
    };

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
        log_format,
        dev: sources.dev,
        effective: BTreeMap::new(),
        warnings: Vec::new(),
    })
}

/// `EXTRA_CA_FILE`: the PEM bundle, checked to hold a certificate.
fn read_extra_ca(r: &mut Reader) -> Option<Vec<u8>> {
    r.string("EXTRA_CA_FILE")
        .and_then(|p| match std::fs::read(&p) {
            Ok(pem) if String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") => {
                Some(pem)
            }
            Ok(_) => {
                r.problem(format!("EXTRA_CA_FILE: {p} holds no PEM certificate"));
                None
            }
            Err(e) => {
                r.problem(format!("EXTRA_CA_FILE: cannot read {p}: {e}"));
                None
            }
        })
}

/// `AUTH_BACKEND` and the chosen backend's variables: the backend's name and its settings.
fn read_backend(r: &mut Reader, extra_ca_pem: Option<&Vec<u8>>) -> (String, Option<BackendConfig>) {
    let backend_name = r
        .string("AUTH_BACKEND")
        .unwrap_or_else(|| r.default("AUTH_BACKEND", "sqlite"));
    let backend = match backend_name.as_str() {
        "sqlite" => Some(BackendConfig::Sqlite {
            path: PathBuf::from(
                r.string("SQLITE_DB_PATH")
                    .unwrap_or_else(|| r.default("SQLITE_DB_PATH", "./authura.db")),
            ),
            pool_size: r.number::<usize>("SQLITE_POOL_SIZE", 8).max(1),
        }),
        "postgres" => read_postgres(r, extra_ca_pem.cloned()),
        "hasura" => read_hasura(r, extra_ca_pem.cloned()),
        "http" => read_http(r, extra_ca_pem.cloned()),
        "ldap" => {
            r.problem(format!(
                "AUTH_BACKEND={backend_name} is not in this build yet (available: sqlite, postgres, hasura, http)"
            ));
            None
        }
        other => {
            r.problem(format!("AUTH_BACKEND: unknown backend {other:?} (expected sqlite, postgres, hasura, http or ldap)"));
            None
        }
    };
    (backend_name, backend)
}

/// Only what `authura migrate` needs: the backend (with `EXTRA_CA_FILE`). The rest of the
/// configuration (token secrets, mail) is neither required nor checked, so a deploy step can
/// migrate with the database's variables alone.
///
/// The warnings come with it (a `.env` typo, plain http with a credential).
///
/// # Errors
/// Every problem with those variables, at once.
pub fn load_backend(sources: &Sources) -> Result<(BackendConfig, Vec<String>), ConfigError> {
    let mut r = Reader::new(sources);
    let extra_ca_pem = read_extra_ca(&mut r);
    let (_, backend) = read_backend(&mut r, extra_ca_pem.as_ref());
    match backend {
        Some(backend) if r.problems.is_empty() => Ok((backend, r.warnings)),
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
    let (host, port) = read_listen(&mut r);
    if r.problems.is_empty() {
        Ok((host, port))
    } else {
        Err(ConfigError {
            problems: r.problems,
        })
    }
}

/// `HOST` (localhost) and `PORT` (9000).
fn read_listen(r: &mut Reader) -> (String, u16) {
    let host = r
        .string("HOST")
        .unwrap_or_else(|| r.default("HOST", "localhost"));
    (host, r.number::<u16>("PORT", 9000))
}

/// `POSTGRES_DSN` (required, checked without connecting), `POSTGRES_POOL_SIZE` (10, at least
/// 1), `POSTGRES_USERS_TABLE` (users) and `POSTGRES_TIMEOUT` (10s, the wait for one statement).
fn read_postgres(r: &mut Reader, extra_ca_pem: Option<Vec<u8>>) -> Option<BackendConfig> {
    let dsn = r.secret("POSTGRES_DSN");
    let query_timeout = r.positive_duration("POSTGRES_TIMEOUT", "10s");
    let pool_size = r.number::<usize>("POSTGRES_POOL_SIZE", 10);
    if pool_size == 0 {
        r.problem("POSTGRES_POOL_SIZE: expected at least 1".into());
    }
    let table_name = r
        .string("POSTGRES_USERS_TABLE")
        .unwrap_or_else(|| r.default("POSTGRES_USERS_TABLE", "users"));
    let table = UsersTable::parse(&table_name);
    if table.is_none() {
        r.problem(format!(
            "POSTGRES_USERS_TABLE: {table_name:?} is not a table name (expected an identifier of \
             letters, digits and _, optionally schema-qualified: users, auth.users)"
        ));
    }
    let Some(dsn) = dsn else {
        r.problem(
            "POSTGRES_DSN is required with AUTH_BACKEND=postgres (e.g. \
             postgres://user:password@host:5432/database?sslmode=verify-full)"
                .into(),
        );
        return None;
    };
    if let Err(e) = authura_backend_pg::check_dsn(dsn.expose()) {
        r.problem(e.to_string().replace("backend error: ", ""));
    }
    Some(BackendConfig::Postgres(PgSettings {
        dsn,
        pool_size,
        table: table?,
        extra_ca_pem,
        query_timeout: query_timeout?,
    }))
}

/// `HASURA_URL` (required: Hasura's GraphQL endpoint, http or https; no path means
/// `/v1/graphql`) and `HASURA_GRAPHQL_ADMIN_SECRET` (required, a secret).
fn read_hasura(r: &mut Reader, extra_ca_pem: Option<Vec<u8>>) -> Option<BackendConfig> {
    let url = match r.string("HASURA_URL") {
        Some(v) => parse_http_url(&v)
            .map_err(|e| r.problem(format!("HASURA_URL: {e}")))
            .ok(),
        None => {
            r.problem(
                "HASURA_URL is required with AUTH_BACKEND=hasura (e.g. \
                 https://hasura.internal/v1/graphql)"
                    .into(),
            );
            None
        }
    };
    let timeout = r.positive_duration("HASURA_TIMEOUT", "10s");
    let admin_secret = r.secret("HASURA_GRAPHQL_ADMIN_SECRET");
    if admin_secret.as_ref().is_none_or(Secret::is_empty) {
        r.problem(
            "HASURA_GRAPHQL_ADMIN_SECRET is required with AUTH_BACKEND=hasura (Hasura's admin \
             secret, or HASURA_GRAPHQL_ADMIN_SECRET_FILE)"
                .into(),
        );
    }
    Some(BackendConfig::Hasura(HasuraSettings {
        url: url?,
        admin_secret: admin_secret?,
        timeout: timeout?,
        extra_ca_pem,
    }))
}

/// `HTTP_URL` (required: the users collection, http or https, no credentials in it),
/// `HTTP_AUTH_HEADER_KEY` (Authorization) and `HTTP_AUTH_HEADER_VALUE` (a secret; unset = no
/// header), checked without connecting.
fn read_http(r: &mut Reader, extra_ca_pem: Option<Vec<u8>>) -> Option<BackendConfig> {
    let auth_header_key = r.header_name("HTTP_AUTH_HEADER_KEY", "Authorization");
    let auth_header_value = r.secret("HTTP_AUTH_HEADER_VALUE");
    let timeout = r.positive_duration("HTTP_TIMEOUT", "10s");
    let Some(raw) = r.string("HTTP_URL") else {
        r.problem(
            "HTTP_URL is required with AUTH_BACKEND=http (the users collection of the service, \
             e.g. https://api.example.com/authura/users)"
                .into(),
        );
        return None;
    };
    let url = parse_http_url(&raw)
        .map_err(|e| r.problem(format!("HTTP_URL: {e}")))
        .ok()?;
    if !url.username().is_empty() || url.password().is_some() {
        // It would be printed by check-config and logged; the credential has its own variable.
        r.effective.insert("HTTP_URL".into(), "[redacted]".into());
        r.problem(
            "HTTP_URL: must not carry credentials; put them in HTTP_AUTH_HEADER_VALUE".into(),
        );
        return None;
    }
    if url.scheme() == "http"
        && auth_header_value.is_some()
        && !matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
    {
        r.warnings.push(
            "HTTP_URL is plain http: HTTP_AUTH_HEADER_VALUE and password hashes travel \
             unencrypted; use https"
                .into(),
        );
    }
    let settings = HttpSettings {
        url,
        auth_header_key,
        auth_header_value,
        timeout: timeout?,
        extra_ca_pem,
    };
    if let Err(e) = settings.check() {
        r.problem(e.to_string().replace("backend error: ", ""));
        return None;
    }
    Some(BackendConfig::Http(settings))
}

fn read_tokens(r: &mut Reader, sources: &Sources) -> Option<TokenSettings> {
    let algorithm = match r.string("JWT_ALGORITHM") {
        None => {
            r.default("JWT_ALGORITHM", "HS256");
            Some(Algorithm::HS256)
        }
        Some(v) => v
            .parse::<Algorithm>()
            .map_err(|e| r.problem(format!("JWT_ALGORITHM: {e}")))
            .ok(),
    };
    // With an asymmetric algorithm JWT_SECRET signs nothing.
    let asymmetric = algorithm.is_some_and(Algorithm::is_asymmetric);
    let mut secrets = [
        r.secret("JWT_SECRET"),
        r.secret("JWT_REFRESH_SECRET"),
        r.secret("JWT_VERIFY_SECRET"),
    ];
    const NAMES: [&str; 3] = ["JWT_SECRET", "JWT_REFRESH_SECRET", "JWT_VERIFY_SECRET"];
    let needed = |i: usize| i > 0 || !asymmetric;
    if sources.dev
        && secrets
            .iter()
            .enumerate()
            .any(|(i, s)| s.is_none() && needed(i))
    {
        let path = sources
            .dev_secrets
            .clone()
            .unwrap_or_else(|| PathBuf::from(".authura-dev-secrets"));
        match dev_secrets(&path) {
            Ok(generated) => {
                for (i, slot) in secrets.iter_mut().enumerate() {
                    if slot.is_none() && needed(i) {
                        *slot = Some(generated[i].clone());
                        r.effective.insert(
                            NAMES[i].into(),
                            format!("[redacted, from {}]", path.display()),
                        );
                    }
                }
            }
            Err(e) => r.problem(format!(
                "--dev: cannot keep secrets in {}: {e}",
                path.display()
            )),
        }
    }
    for (i, s) in secrets.iter().enumerate() {
        if s.is_none() && !sources.dev && needed(i) {
            r.problem(format!(
                "{} is required (at least 32 random bytes; generate one with: openssl rand -base64 48)",
                NAMES[i]
            ));
        }
    }
    let private_key = r.secret("JWT_PRIVATE_KEY");
    let access_key = match algorithm {
        Some(Algorithm::HS256) => {
            if private_key.is_some() {
                r.problem(
                    "JWT_PRIVATE_KEY is set, but JWT_ALGORITHM is HS256 (the default), which signs with JWT_SECRET; set JWT_ALGORITHM to the key's algorithm (RS256, ES256 or EdDSA), or unset JWT_PRIVATE_KEY".into(),
                );
            }
            secrets[0].clone().map(AccessKey::Hs256)
        }
        Some(alg) => {
            if secrets[0].is_some() {
                r.problem(format!(
                    "JWT_SECRET is set, but JWT_ALGORITHM={alg} signs access tokens with JWT_PRIVATE_KEY; unset JWT_SECRET, or move it to JWT_PREVIOUS_KEYS if access tokens signed with it must keep verifying until they expire"
                ));
            }
            match private_key {
                None => {
                    r.problem(format!(
                        "JWT_PRIVATE_KEY (or JWT_PRIVATE_KEY_FILE) is required with JWT_ALGORITHM={alg}: {} in PEM (generate one with: {})",
                        alg.key_kind(),
                        openssl_command(alg)
                    ));
                    None
                }
                Some(pem) => match PrivateKey::from_pem(pem.expose()) {
                    Ok(key) if key.algorithm() == alg => Some(AccessKey::Private(key)),
                    Ok(key) => {
                        r.problem(format!(
                            "JWT_PRIVATE_KEY is {}, but JWT_ALGORITHM={alg} needs {} (or set JWT_ALGORITHM={})",
                            key.algorithm().key_kind(),
                            alg.key_kind(),
                            key.algorithm()
                        ));
                        None
                    }
                    Err(e) => {
                        r.problem(format!("JWT_PRIVATE_KEY: {e}"));
                        None
                    }
                },
            }
        }
        None => None,
    };
    let previous_keys = match r.secret("JWT_PREVIOUS_KEYS") {
        None => Vec::new(),
        Some(text) => {
            authura_core::keys::parse_previous_keys(text.expose()).unwrap_or_else(|problems| {
                for p in problems {
                    r.problem(format!("JWT_PREVIOUS_KEYS: {p}"));
                }
                Vec::new()
            })
        }
    };
    let access_ttl = r.duration("JWT_EXPIRATION", "5m");
    let refresh_ttl = r.duration("JWT_REFRESH_EXPIRATION", "720h");
    let verify_ttl = r.duration("JWT_VERIFY_EXPIRATION", "1h");
    let mut extensions: Vec<Arc<dyn ClaimsExtension>> = Vec::new();
    for name in r.list("JWT_EXTENSIONS") {
        match name.as_str() {
            "hasura" => extensions.push(Arc::new(HasuraExtension)),
            "env" => {
                let ns = r.string("JWT_ENV_EXTENSION_NAMESPACE");
                let claims = r.string("JWT_ENV_EXTENSION_CLAIMS");
                match (ns, claims) {
                    (Some(ns), Some(claims)) => match EnvExtension::parse(&ns, &claims) {
                        Ok(ext) => extensions.push(Arc::new(ext)),
                        Err(e) => r.problem(format!("JWT_ENV_EXTENSION_CLAIMS: {e}")),
                    },
                    _ => r.problem(
                        "JWT_EXTENSIONS includes env: JWT_ENV_EXTENSION_NAMESPACE and JWT_ENV_EXTENSION_CLAIMS are required".into(),
                    ),
                }
            }
            other => r.problem(format!(
                "JWT_EXTENSIONS: unknown extension {other:?} (expected hasura, env)"
            )),
        }
    }
    let issuer = r.string("JWT_ISSUER");
    let audience = r.string("JWT_AUDIENCE");
    // Checked whatever else is wrong, so every problem is reported at once.
    let [_, refresh_secret, verify_secret] = secrets;
    match (&access_key, &refresh_secret, &verify_secret) {
        (Some(access), Some(refresh), Some(verify)) => {
            for p in authura_core::token::key_problems(access, &previous_keys, refresh, verify) {
                r.problem(p);
            }
        }
        (access, refresh, verify) => {
            let named: Vec<(&str, &Secret)> = [
                (
                    "JWT_SECRET",
                    match access {
                        Some(AccessKey::Hs256(s)) => Some(s),
                        _ => None,
                    },
                ),
                ("JWT_REFRESH_SECRET", refresh.as_ref()),
                ("JWT_VERIFY_SECRET", verify.as_ref()),
            ]
            .into_iter()
            .filter_map(|(name, s)| s.map(|s| (name, s)))
            .collect();
            for p in authura_core::token::secret_problems(&named) {
                r.problem(p);
            }
        }
    }
    for p in authura_core::token::extension_problems(&extensions) {
        r.problem(format!("JWT_EXTENSIONS: {p}"));
    }
    let (Some(access_key), Some(refresh_secret), Some(verify_secret)) =
        (access_key, refresh_secret, verify_secret)
    else {
        return None;
    };
    let settings = TokenSettings {
        access_key,
        previous_keys,
        refresh_secret,
        verify_secret,
        access_ttl: access_ttl?,
        refresh_ttl: refresh_ttl?,
        verify_ttl: verify_ttl?,
        issuer,
        audience,
        extensions,
    };
    for (name, ttl) in [
        ("JWT_EXPIRATION", settings.access_ttl),
        ("JWT_REFRESH_EXPIRATION", settings.refresh_ttl),
        ("JWT_VERIFY_EXPIRATION", settings.verify_ttl),
    ] {
        if ttl.is_zero() {
            r.problem(format!("{name} must be longer than zero"));
        }
    }
    // Everything `Tokens::new` checks was reported above; this only guards against drift.
    match authura_core::token::Tokens::new(settings.clone()) {
        Ok(_) => Some(settings),
        Err(e) => {
            if r.problems.is_empty() {
                r.problem(e);
            }
            None
        }
    }
}

fn read_mail(
    r: &mut Reader,
    sources: &Sources,
    extra_ca_pem: Option<Vec<u8>>,
) -> Option<MailConfig> {
    let host = match r.string("MAIL_HOST") {
        Some(h) => h,
        None if sources.dev => r.default("MAIL_HOST", "dummy"),
        None => {
            r.problem(
                "MAIL_HOST is required (an SMTP relay, or dummy to write mail to the log)".into(),
            );
            return None;
        }
    };
    if host == "dummy" {
        return Some(MailConfig::Dummy);
    }
    // Every mail variable is read even when one is wrong, so all problems are listed at once.
    let tls_name = r
        .string("MAIL_TLS")
        .unwrap_or_else(|| r.default("MAIL_TLS", "starttls"));
    let tls = MailTls::parse(&tls_name);
    if tls.is_none() {
        r.problem(format!(
            "MAIL_TLS: expected starttls, tls or none, got {tls_name:?}"
        ));
    }
    let port = r.number::<u16>("MAIL_PORT", tls.unwrap_or(MailTls::StartTls).default_port());
    let user = r.string("MAIL_USER");
    let password = r.secret("MAIL_PASS");
    if user.is_some() != password.is_some() {
        r.problem("MAIL_USER and MAIL_PASS go together".into());
    }
    let from = r.string("MAIL_FROM");
    if from.is_none() {
        r.problem("MAIL_FROM is required with a real MAIL_HOST".into());
    }
    let settings = SmtpSettings {
        host,
        port,
        tls: tls?,
        user,
        password,
        from: from?,
        extra_ca_pem,
        timeout: Duration::from_secs(10),
    };
    // The mailer's own checks (the From mailbox, the CA bundle), without connecting.
    if let Err(e) =
        authura_mail::SmtpMailer::new(settings.clone(), authura_mail::Templates::builtin())
    {
        r.problem(format!("MAIL_*: {e}"));
        return None;
    }
    Some(MailConfig::Smtp(settings))
}

fn read_captcha(r: &mut Reader) -> Option<crate::captcha::CaptchaSettings> {
    let provider = r.string("CAPTCHA");
    let secret = r.secret("TURNSTILE_SECRET_KEY");
    let site_key = r.string("TURNSTILE_SITE_KEY");
    let script = r.url(
        "TURNSTILE_SCRIPT",
        "https://challenges.cloudflare.com/turnstile/v0/api.js",
    );
    let verify_url = r.url(
        "TURNSTILE_VERIFY_URL",
        "https://challenges.cloudflare.com/turnstile/v0/siteverify",
    );
    match provider.as_deref() {
        None => {
            if secret.is_some() || site_key.is_some() {
                r.problem("TURNSTILE_SECRET_KEY / TURNSTILE_SITE_KEY are set but CAPTCHA is not (set CAPTCHA=turnstile)".into());
            }
            None
        }
        Some("turnstile") => {
            if secret.is_none() {
                r.problem("CAPTCHA=turnstile: TURNSTILE_SECRET_KEY is required".into());
            }
            if site_key.is_none() {
                r.problem("CAPTCHA=turnstile: TURNSTILE_SITE_KEY is required (the /form pages show the widget)".into());
            }
            Some(crate::captcha::CaptchaSettings {
                secret: secret?,
                site_key: site_key?,
                script: script?,
                verify_url: verify_url?,
            })
        }
        Some(other) => {
            r.problem(format!(
                "CAPTCHA: unknown provider {other:?} (expected turnstile)"
            ));
            None
        }
    }
}

fn read_hook(r: &mut Reader, extra_ca_pem: Option<Vec<u8>>) -> Option<authura_hooks::HookSettings> {
    let url = r.string("HOOK_URL");
    let key = r.string("HOOK_AUTH_HEADER_KEY");
    let value = r.secret("HOOK_AUTH_HEADER_VALUE");
    let timeout = r.positive_duration("HOOK_TIMEOUT", "5s");
    let Some(url) = url else {
        if key.is_some() || value.is_some() {
            r.problem(
                "HOOK_AUTH_HEADER_KEY / HOOK_AUTH_HEADER_VALUE are set without HOOK_URL".into(),
            );
        }
        return None;
    };
    let url = parse_http_url(&url)
        .map_err(|e| r.problem(format!("HOOK_URL: {e}")))
        .ok()?;
    let settings = authura_hooks::HookSettings {
        url,
        auth_header: value.map(|v| (key.unwrap_or_else(|| "Authorization".to_owned()), v)),
        timeout: timeout?,
        extra_ca_pem,
    };
    // The client's own checks (header name and value, CA bundle), without calling the hook.
    if let Err(e) = authura_hooks::HttpHook::new(settings.clone()) {
        r.problem(e.to_string());
        return None;
    }
    Some(settings)
}

/// Reads (or creates, mode 0600) the three dev secrets.
/// The command that makes a private key for `alg`, for messages and the documentation.
fn openssl_command(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS256 => "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048",
        Algorithm::ES256 => "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256",
        Algorithm::EdDSA | Algorithm::HS256 => "openssl genpkey -algorithm ed25519",
    }
}

fn dev_secrets(path: &Path) -> std::io::Result<[Secret; 3]> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        if let [a, b, c] = lines[..]
            && [a, b, c]
                .iter()
                .all(|s| s.len() >= authura_core::token::MIN_SECRET_BYTES)
        {
            return Ok([Secret::new(a), Secret::new(b), Secret::new(c)]);
        }
    }
    let fresh = [0, 1, 2].map(|_| authura_core::hash::random_token(32));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    std::io::Write::write_all(&mut file, format!("{}\n", fresh.join("\n")).as_bytes())?;
    Ok(fresh.map(Secret::new))
}

fn parse_http_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| format!("{s:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{s:?} must be an http or https URL"));
    }
    Ok(url)
}

/// Reads raw values by precedence and records problems and effective values.
/// The known name within two edits of `name` (a likely typo), if there is one.
fn close_name<'a>(name: &str, known: &'a BTreeSet<String>) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k.as_str())
}

/// Levenshtein distance over bytes (setting names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

struct Reader {
    values: BTreeMap<String, String>,
    problems: Vec<String>,
    warnings: Vec<String>,
    effective: BTreeMap<String, String>,
}

impl Reader {
    fn new(sources: &Sources) -> Self {
        let mut problems = Vec::new();
        let mut dotenv_warnings = Vec::new();
        let mut values = BTreeMap::new();
        let known: BTreeSet<String> = KNOWN_VARIABLES
            .iter()
            .chain(FUTURE_VARIABLES.iter().map(|(n, _)| n))
            .map(|s| s.to_string())
            .chain(SECRET_VARIABLES.iter().map(|s| format!("{s}_FILE")))
            .collect();
        if let Some(path) = &sources.file {
            match read_file(path) {
                Ok(map) => {
                    for (k, v) in map {
                        if known.contains(&k) {
                            values.insert(k, v);
                        } else {
                            problems.push(format!("{}: unknown setting {k:?}", path.display()));
                        }
                    }
                }
                Err(e) => problems.push(e),
            }
        }
        if let Some(path) = &sources.dotenv {
            match dotenvy::from_path_iter(path) {
                Ok(iter) => {
                    for item in iter {
                        match item {
                            Ok((k, v)) => {
                                // A `.env` is often shared with the app, so other names are
                                // fine; one a letter or two from a setting is a likely typo.
                                if !known.contains(&k)
                                    && let Some(close) = close_name(&k, &known)
                                {
                                    dotenv_warnings.push(format!(
                                        "{}: {k:?} is not a setting and is ignored; did you mean {close}?",
                                        path.display()
                                    ));
                                }
                                values.insert(k, v);
                            }
                            Err(e) => problems.push(format!("{}: {e}", path.display())),
                        }
                    }
                }
                Err(e) => problems.push(format!("{}: {e}", path.display())),
            }
        }
        for (k, v) in sources.env.iter().chain(&sources.flags) {
            values.insert(k.clone(), v.clone());
        }
        // Empty values are unset (an `.env` line `CAPTCHA=` means off).
        values.retain(|_, v| !v.trim().is_empty());
        let mut reader = Reader {
            values,
            problems,
            warnings: dotenv_warnings,
            effective: BTreeMap::new(),
        };
        for name in SECRET_VARIABLES {
            reader.resolve_file(name);
        }
        reader
    }

    /// `NAME_FILE=/path` becomes `NAME`; both together is an error.
    fn resolve_file(&mut self, name: &str) {
        let file_var = format!("{name}_FILE");
        let Some(path) = self.values.remove(&file_var) else {
            return;
        };
        if self.values.contains_key(name) {
            self.problems
                .push(format!("{name} and {file_var} are both set; keep one"));
            return;
        }
        match std::fs::read_to_string(&path) {
            Ok(content) => {
                let value = content.trim_end_matches(['\n', '\r']).to_owned();
                self.values.insert(name.to_owned(), value);
                self.effective
                    .insert(name.to_owned(), format!("[redacted, from {path}]"));
            }
            Err(e) => self
                .problems
                .push(format!("{file_var}: cannot read {path}: {e}")),
        }
    }

    fn problem(&mut self, p: String) {
        self.problems.push(p);
    }

    fn raw(&self, name: &str) -> Option<&String> {
        self.values.get(name)
    }

    fn string(&mut self, name: &str) -> Option<String> {
        let v = self.values.get(name)?.trim().to_owned();
        self.effective
            .entry(name.to_owned())
            .or_insert_with(|| v.clone());
        Some(v)
    }

    fn default(&mut self, name: &str, value: &str) -> String {
        self.effective.insert(name.to_owned(), value.to_owned());
        value.to_owned()
    }

    fn secret(&mut self, name: &str) -> Option<Secret> {
        let v = self.values.get(name)?.clone();
        self.effective
            .entry(name.to_owned())
            .or_insert_with(|| "[redacted]".into());
        Some(Secret::new(v))
    }

    fn bool(&mut self, name: &str, default: bool) -> bool {
        match self.string(name) {
            None => {
                self.default(name, if default { "true" } else { "false" });
                default
            }
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => {
                    self.problem(format!("{name}: expected true or false, got {v:?}"));
                    default
                }
            },
        }
    }

    fn number<T: FromStr + fmt::Display + Copy>(&mut self, name: &str, default: T) -> T {
        match self.string(name) {
            None => {
                self.default(name, &default.to_string());
                default
            }
            Some(v) => v.parse().unwrap_or_else(|_| {
                self.problem(format!(
                    "{name}: expected a non-negative whole number, got {v:?}"
                ));
                default
            }),
        }
    }

    fn duration(&mut self, name: &str, default: &str) -> Option<Duration> {
        let v = self
            .string(name)
            .unwrap_or_else(|| self.default(name, default));
        duration::parse(&v)
            .map_err(|e| self.problem(format!("{name}: {e}")))
            .ok()
    }

    /// A duration that must be longer than zero (a timeout).
    fn positive_duration(&mut self, name: &str, default: &str) -> Option<Duration> {
        let d = self.duration(name, default)?;
        if d.is_zero() {
            self.problem(format!("{name} must be longer than zero"));
            return None;
        }
        Some(d)
    }

    fn url(&mut self, name: &str, default: &str) -> Option<Url> {
        let v = self
            .string(name)
            .unwrap_or_else(|| self.default(name, default));
        parse_http_url(&v)
            .map_err(|e| self.problem(format!("{name}: {e}")))
            .ok()
    }

    fn role(&mut self, name: &str, default: &str) -> Option<Role> {
        let v = self
            .string(name)
            .unwrap_or_else(|| self.default(name, default));
        Role::parse(&v)
            .map_err(|_| self.problem(format!("{name}: {v:?} is not a valid role name")))
            .ok()
    }

    fn header_name(&mut self, name: &str, default: &str) -> String {
        let v = self
            .string(name)
            .unwrap_or_else(|| self.default(name, default));
        if actix_web::http::header::HeaderName::from_str(&v).is_err() {
            self.problem(format!("{name}: {v:?} is not a valid header name"));
        }
        v
    }

    fn list(&mut self, name: &str) -> Vec<String> {
        self.string(name)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().trim_end_matches('/').to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Reads a TOML file into upper-cased variable names and string values.
fn read_file(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let parsed = config::Config::builder()
        .add_source(config::File::from(path.to_path_buf()).format(config::FileFormat::Toml))
        .build()
        .map_err(|e| format!("--config {}: {e}", path.display()))?;
    let table = parsed
        .try_deserialize::<BTreeMap<String, config::Value>>()
        .map_err(|e| format!("--config {}: {e}", path.display()))?;
    let mut out = BTreeMap::new();
    for (k, v) in table {
        let text = match v.clone().into_array() {
            Ok(items) => items
                .into_iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(","),
            Err(_) => v.to_string(),
        };
        out.insert(k.to_ascii_uppercase(), text);
    }
    Ok(out)
}
