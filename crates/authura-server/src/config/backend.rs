//! The backend section: `AUTH_BACKEND`, each backend's variables, and the initial user, whose
//! variables are named after the backend.

use std::path::PathBuf;

use authura_backend_hasura::HasuraSettings;
use authura_backend_http::HttpSettings;
use authura_backend_pg::{PgSettings, UsersTable};
use authura_core::policy::PasswordPolicy;
use authura_core::{Email, Secret, TenantId};

use crate::config::reader::Reader;
use crate::config::var::{Var, declare};
use crate::config::{BackendConfig, InitialUser, parse_http_url};

/// The backends that read `SQLITE_INITIAL_USER`: every one but postgres.
const INITIAL_USER_IN_SQLITE_VARIABLES: &[&str] = &["sqlite", "hasura", "http"];

declare! {
    AUTH_BACKEND = Var::new(
        "backend",
        "`sqlite`, `postgres`, `hasura`, `http` or `ldap` (see [PostgreSQL](#postgresql), \
         [Hasura](#hasura), [HTTP](#http) and [LDAP](#ldap) below); \
         anything else is `AUTH_BACKEND: unknown backend \"mongo\" (expected sqlite, postgres, \
         hasura, http or ldap)`.",
    )
    .default("sqlite");
    SQLITE_DB_PATH = Var::new(
        "backend",
        "The SQLite file, created if missing. The `users` table and its unique index are created \
         at startup and by `authura migrate`. `:memory:` does not work (each pooled connection \
         would see its own database). With less than 1 MiB free on its filesystem, `/readyz` \
         answers 503 `backend_unavailable`; a write that finds the disk full answers the same, \
         while reads are still served.",
    )
    .default("./authura.db")
    .backends(&["sqlite"]);
    SQLITE_POOL_SIZE = Var::new(
        "backend",
        "Connections in the pool, a number; `0` is taken as 1.",
    )
    .default("8")
    .backends(&["sqlite"])
    .new_variable();
    SQLITE_INITIAL_USER = Var::new(
        "backend",
        "An email address. With the next variable: at startup, if no user without a tenant (with \
         multi-tenancy: in `INITIAL_USER_TENANT`) has this address, one is created, verified, \
         with `ADMIN_ROLE`. Both or neither \
         (`SQLITE_INITIAL_USER and SQLITE_INITIAL_USER_PASSWORD go together`).",
    )
    .backends(INITIAL_USER_IN_SQLITE_VARIABLES)
    .new_variable();
    SQLITE_INITIAL_USER_PASSWORD = Var::new(
        "backend",
        "Its password. Secret. Must meet the password policy; checked by `check-config` and at \
         startup (exit 2).",
    )
    .backends(INITIAL_USER_IN_SQLITE_VARIABLES)
    .secret()
    .new_variable();
    INITIAL_USER_TENANT = Var::new(
        "backend",
        "The tenant the initial user (`SQLITE_INITIAL_USER` or `POSTGRES_INITIAL_USER`) is \
         created in, and looked up in, when `MULTI_TENANT_ENABLED=true`; required then (a \
         tenant-less admin could sign in nowhere): `INITIAL_USER_TENANT is required with \
         MULTI_TENANT_ENABLED=true and an initial user`. Without multi-tenancy it is ignored \
         with a warning.",
    )
    .unset("unset")
    .new_variable();
    POSTGRES_DSN = Var::new(
        "postgres",
        "libpq URL or key/value DSN, e.g. \
         `postgres://authura:pw@db:5432/app?sslmode=verify-full`. Secret (redacted; \
         `POSTGRES_DSN_FILE` works). Checked without connecting at startup and by \
         `check-config`: `POSTGRES_DSN: unknown sslmode \"sometimes\" (…)`, `POSTGRES_DSN: \
         cannot parse it: …`; the message never repeats the DSN. `sslmode` = `disable`, `allow`, \
         `prefer` (default), `require`, `verify-ca`, `verify-full` with libpq's meaning; \
         `sslrootcert=FILE` adds roots; `EXTRA_CA_FILE` is trusted too.",
    )
    .required("required")
    .backends(&["postgres"])
    .secret();
    POSTGRES_POOL_SIZE = Var::new(
        "postgres",
        "Connections in the pool; `0` is refused (`POSTGRES_POOL_SIZE: expected at least 1`).",
    )
    .default("10")
    .backends(&["postgres"])
    .new_variable();
    POSTGRES_USERS_TABLE = Var::new(
        "postgres",
        "The users table, optionally schema-qualified (`auth.users`); letters, digits, `_`, `$`. \
         Anything else: `POSTGRES_USERS_TABLE: \"users; drop table users\" is not a table name \
         (…)`.",
    )
    .default("users")
    .backends(&["postgres"])
    .new_variable();
    POSTGRES_TIMEOUT = Var::new(
        "postgres",
        "How long one statement may wait for PostgreSQL's answer, as a Go duration; past it the \
         request answers 503 `backend_unavailable` and that connection is closed (a server that \
         stopped answering, or a network that silently drops traffic, which TCP alone notices \
         only after many minutes). A write that timed out may still have been committed by the \
         server. Must be longer than zero.",
    )
    .default("10s")
    .backends(&["postgres"])
    .new_variable();
    POSTGRES_INITIAL_USER = Var::new(
        "postgres",
        "As `SQLITE_INITIAL_USER`, for PostgreSQL.",
    )
    .backends(&["postgres"]);
    POSTGRES_INITIAL_USER_PASSWORD = Var::new(
        "postgres",
        "Its password. Secret. Must meet the password policy.",
    )
    .backends(&["postgres"])
    .secret();
    HASURA_URL = Var::new(
        "hasura",
        "Hasura's GraphQL endpoint, `http` or `https`, e.g. \
         `https://hasura.internal/v1/graphql`; a URL without a path (`http://hasura:8080`) means \
         its `/v1/graphql`. `EXTRA_CA_FILE` is trusted for `https`. Missing: `HASURA_URL is \
         required with AUTH_BACKEND=hasura (…)`; malformed: `HASURA_URL: \"ftp://h\" must be an \
         http or https URL`.",
    )
    .required("required")
    .backends(&["hasura"]);
    HASURA_GRAPHQL_ADMIN_SECRET = Var::new(
        "hasura",
        "Hasura's admin secret (the same value Hasura has), sent as `x-hasura-admin-secret`. \
         Secret (redacted; `HASURA_GRAPHQL_ADMIN_SECRET_FILE` works). Missing or empty: \
         `HASURA_GRAPHQL_ADMIN_SECRET is required with AUTH_BACKEND=hasura (…)`.",
    )
    .required("required")
    .backends(&["hasura"])
    .secret();
    HASURA_TIMEOUT = Var::new(
        "hasura",
        "How long one GraphQL request may take, connection included, as a Go duration; past it \
         the request answers 503 `backend_unavailable`. Must be longer than zero \
         (`HASURA_TIMEOUT must be longer than zero`).",
    )
    .default("10s")
    .backends(&["hasura"])
    .new_variable();
    HTTP_URL = Var::new(
        "http",
        "The users collection, e.g. `https://api.example.com/authura/users`: `http` or `https`, \
         no query or fragment (`HTTP_URL: expected the users collection's URL, without query or \
         fragment`), no credentials in it (`HTTP_URL: must not carry credentials; put them in \
         HTTP_AUTH_HEADER_VALUE`). Missing: `HTTP_URL is required with AUTH_BACKEND=http (…)`. \
         Plain `http` to a host other than localhost with a credential set: a startup warning. \
         `EXTRA_CA_FILE` is trusted for it.",
    )
    .required("required")
    .backends(&["http"]);
    HTTP_AUTH_HEADER_KEY = Var::new(
        "http",
        "The header that carries the credential; a valid header name (`HTTP_AUTH_HEADER_KEY: \
         \"Bad Header\" is not a valid header name`).",
    )
    .default("Authorization")
    .backends(&["http"]);
    HTTP_AUTH_HEADER_VALUE = Var::new(
        "http",
        "The header's value, e.g. `Bearer …`. Secret (redacted; `HTTP_AUTH_HEADER_VALUE_FILE` \
         works; never logged). Unset: no auth header is sent.",
    )
    .backends(&["http"])
    .secret();
    HTTP_TIMEOUT = Var::new(
        "http",
        "How long one call to the service may take, connection included, as a Go duration. Must \
         be longer than zero (`HTTP_TIMEOUT must be longer than zero`).",
    )
    .default("10s")
    .backends(&["http"])
    .new_variable();
}

/// `AUTH_BACKEND` and the chosen backend's variables: the backend's name and its settings.
pub fn read_backend(
    r: &mut Reader,
    extra_ca_pem: Option<&Vec<u8>>,
) -> (String, Option<BackendConfig>) {
    let backend_name = r.text(&AUTH_BACKEND);
    let backend = match backend_name.as_str() {
        "sqlite" => Some(BackendConfig::Sqlite {
            path: PathBuf::from(r.text(&SQLITE_DB_PATH)),
            pool_size: r.number::<usize>(&SQLITE_POOL_SIZE).max(1),
        }),
        "postgres" => read_postgres(r, extra_ca_pem.cloned()),
        "hasura" => read_hasura(r, extra_ca_pem.cloned()),
        "http" => read_http(r, extra_ca_pem.cloned()),
        "ldap" => crate::config::ldap::read_ldap(r, extra_ca_pem.cloned()),
        other => {
            r.problem(format!("AUTH_BACKEND: unknown backend {other:?} (expected sqlite, postgres, hasura, http or ldap)"));
            None
        }
    };
    (backend_name, backend)
}

/// `POSTGRES_DSN` (required, checked without connecting), `POSTGRES_POOL_SIZE` (10, at least
/// 1), `POSTGRES_USERS_TABLE` (users) and `POSTGRES_TIMEOUT` (10s, the wait for one statement).
fn read_postgres(r: &mut Reader, extra_ca_pem: Option<Vec<u8>>) -> Option<BackendConfig> {
    let dsn = r.secret(&POSTGRES_DSN);
    let query_timeout = r.positive_duration(&POSTGRES_TIMEOUT);
    let pool_size = r.number::<usize>(&POSTGRES_POOL_SIZE);
    if pool_size == 0 {
        r.problem("POSTGRES_POOL_SIZE: expected at least 1".into());
    }
    let table_name = r.text(&POSTGRES_USERS_TABLE);
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
    let url = match r.string(&HASURA_URL) {
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
    let timeout = r.positive_duration(&HASURA_TIMEOUT);
    let admin_secret = r.secret(&HASURA_GRAPHQL_ADMIN_SECRET);
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
    let auth_header_key = r.header_name(&HTTP_AUTH_HEADER_KEY);
    let auth_header_value = r.secret(&HTTP_AUTH_HEADER_VALUE);
    let timeout = r.positive_duration(&HTTP_TIMEOUT);
    let Some(raw) = r.string(&HTTP_URL) else {
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
        r.record(&HTTP_URL, "[redacted]");
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

/// The initial user, from the variables named after `backend_name` (`POSTGRES_INITIAL_USER`
/// with postgres, `SQLITE_INITIAL_USER` otherwise; the other pair is ignored with a warning),
/// its password checked against `policy`, in `INITIAL_USER_TENANT` when `multi_tenant`.
pub fn read_initial_user(
    r: &mut Reader,
    backend_name: &str,
    policy: &PasswordPolicy,
    multi_tenant: bool,
) -> Option<InitialUser> {
    let sqlite = [&SQLITE_INITIAL_USER, &SQLITE_INITIAL_USER_PASSWORD];
    let postgres = [&POSTGRES_INITIAL_USER, &POSTGRES_INITIAL_USER_PASSWORD];
    let ([user_var, password_var], other) = if backend_name == "postgres" {
        (postgres, sqlite)
    } else {
        (sqlite, postgres)
    };
    for var in other {
        if r.is_set(var) {
            r.warnings.push(format!(
                "{} is ignored: AUTH_BACKEND={backend_name} reads {}",
                var.name, user_var.name
            ));
        }
    }
    let tenant = read_initial_tenant(r, r.is_set(user_var), multi_tenant);
    if backend_name == "ldap" {
        // A directory is only read: no user can be created in it.
        if r.is_set(user_var) || r.is_set(password_var) {
            r.problem(format!(
                "{} is not used with AUTH_BACKEND=ldap: the directory's users sign in; admins \
                 are the members of the groups LDAP_ROLE_MAP maps to ADMIN_ROLE",
                user_var.name
            ));
        }
        return None;
    }
    let initial_user = match (r.string(user_var), r.secret(password_var)) {
        (Some(email), Some(password)) => match Email::parse(&email) {
            Ok(email) => Some(InitialUser {
                email,
                password,
                tenant: tenant?,
            }),
            Err(_) => {
                r.problem(format!(
                    "{}: {email:?} is not an email address",
                    user_var.name
                ));
                None
            }
        },
        (None, None) => None,
        _ => {
            r.problem(format!(
                "{} and {} go together",
                user_var.name, password_var.name
            ));
            None
        }
    };
    if let Some(initial) = &initial_user {
        let unmet = policy.unmet(initial.password.expose());
        if !unmet.is_empty() {
            let rules: Vec<&str> = unmet.iter().map(|r| r.as_str()).collect();
            r.problem(format!(
                "{} does not meet the password policy ({})",
                password_var.name,
                rules.join(", ")
            ));
        }
    }
    initial_user
}

/// `INITIAL_USER_TENANT`: `Some(None)` without multi-tenancy (ignored, with a warning when set),
/// `Some(Some(tenant))` with it, `None` (a problem recorded) when it is needed and missing or
/// not a tenant id.
fn read_initial_tenant(
    r: &mut Reader,
    has_initial_user: bool,
    multi_tenant: bool,
) -> Option<Option<TenantId>> {
    let value = r.string(&INITIAL_USER_TENANT);
    if !multi_tenant {
        if value.is_some() {
            r.warnings.push(
                "INITIAL_USER_TENANT is ignored: MULTI_TENANT_ENABLED is off, so the initial \
                 user has no tenant"
                    .into(),
            );
        }
        return Some(None);
    }
    match value {
        Some(tenant) => match TenantId::parse(&tenant) {
            Ok(tenant) => Some(Some(tenant)),
            Err(_) => {
                r.problem(format!(
                    "INITIAL_USER_TENANT: {tenant:?} is not a tenant id"
                ));
                None
            }
        },
        None if has_initial_user => {
            r.problem(
                "INITIAL_USER_TENANT is required with MULTI_TENANT_ENABLED=true and an initial \
                 user (a tenant-less admin could sign in nowhere)"
                    .into(),
            );
            None
        }
        None => Some(None),
    }
}
