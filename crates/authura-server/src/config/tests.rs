//! In-process, data-driven tests of the configuration: `Sources` in, problems or check-config
//! lines out, no process spawned. The binary's tests (bin/authura/tests/it/cli.rs) keep what
//! needs the process: exit codes, printing, flags, `migrate`.
//!
//! Also the tests that hold the declarations together: every variable read is declared, every
//! declared variable is read, and docs/configuration.md's tables are what the declarations
//! generate (`UPDATE_DOCS=1 cargo test -p authura-server --lib config::tests::docs` rewrites
//! them).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use authura_testkit::config::GOOD;

use crate::config::reader::Reader;
use crate::config::var::{Need, Var};
use crate::config::{
    ReadNames, Sources, declared, docs, load, load_backend, load_listen, load_reading, read,
};

/// What a configuration comes to.
#[derive(Debug)]
enum Expect<'a> {
    /// Refused, with a problem containing each of these.
    Refused(&'a [&'a str]),
    /// Loaded, check-config printing each of these lines (`NAME=value`).
    Loaded(&'a [&'a str]),
}

/// The environment alone.
fn env(vars: &[(&str, &str)]) -> Sources {
    Sources {
        env: vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Sources::default()
    }
}

/// `GOOD` with `overrides` (an empty value removes the variable).
fn with(overrides: &[(&str, &str)]) -> Sources {
    let mut sources = env(GOOD);
    for (k, v) in overrides {
        sources.env.remove(*k);
        if !v.is_empty() {
            sources.env.insert((*k).to_owned(), (*v).to_owned());
        }
    }
    sources
}

/// check-config's output for a loaded configuration.
fn printed(effective: &BTreeMap<String, String>) -> String {
    effective
        .iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect()
}

#[track_caller]
fn check(sources: &Sources, expected: Expect<'_>) {
    match (load(sources), expected) {
        (Err(e), Expect::Refused(problems)) => {
            let all = e.problems.join("\n");
            for p in problems {
                assert!(
                    all.contains(p),
                    "{:?}: expected {p:?} in\n{all}",
                    sources.env
                );
            }
        }
        (Ok(config), Expect::Loaded(lines)) => {
            let out = printed(&config.effective);
            for line in lines {
                assert!(
                    out.lines().any(|l| l == *line),
                    "{:?}: expected {line:?} in\n{out}",
                    sources.env
                );
            }
        }
        (Ok(config), expected) => panic!(
            "{:?}: loaded, expected {expected:?}; printed\n{}",
            sources.env,
            printed(&config.effective)
        ),
        (Err(e), expected) => panic!("{:?}: expected {expected:?}, got {e}", sources.env),
    }
}

/// `GOOD` with the overrides, and a problem containing the text.
const REFUSED: &[(&[(&str, &str)], &str)] = &[
    (&[("JWT_SECRET", "")], "JWT_SECRET is required"),
    (
        &[("JWT_SECRET", "short")],
        "JWT_SECRET must be at least 32 bytes",
    ),
    (
        &[(
            "JWT_VERIFY_SECRET",
            "access-secret-0123456789abcdefghijklmnop",
        )],
        "JWT_SECRET and JWT_VERIFY_SECRET must be different",
    ),
    (&[("JWT_EXPIRATION", "5 minutes")], "JWT_EXPIRATION"),
    (&[("HASH_THREADS", "0")], "HASH_THREADS must be at least 1"),
    (
        &[("HASH_THREADS", "-1")],
        "HASH_THREADS: expected a non-negative",
    ),
    (&[("PORT", "http")], "PORT: expected"),
    (&[("RATE_PER_MINUTE", "-1")], "RATE_PER_MINUTE"),
    (&[("EXTERNAL_URL", "not a url")], "EXTERNAL_URL"),
    (&[("MAIL_HOST", "")], "MAIL_HOST is required"),
    (
        &[("MAIL_HOST", "smtp.example.com")],
        "MAIL_FROM is required",
    ),
    (
        &[
            ("MAIL_HOST", "smtp.example.com"),
            ("MAIL_FROM", "a@b.c"),
            ("MAIL_TLS", "ssl"),
        ],
        "MAIL_TLS",
    ),
    (
        &[("SIGNUP_DISABLED", "maybe")],
        "SIGNUP_DISABLED: expected true or false",
    ),
    (
        &[("JWT_EXTENSIONS", "hasura,magic")],
        "unknown extension \"magic\"",
    ),
    (
        &[("JWT_EXTENSIONS", "env")],
        "JWT_ENV_EXTENSION_NAMESPACE and JWT_ENV_EXTENSION_CLAIMS are required",
    ),
    (
        &[
            ("JWT_EXTENSIONS", "env"),
            ("JWT_ENV_EXTENSION_NAMESPACE", "x"),
            ("JWT_ENV_EXTENSION_CLAIMS", "{\"a\": \"{{.Password}}\"}"),
        ],
        "unknown template field",
    ),
    (&[("AUTH_BACKEND", "mysql")], "unknown backend"),
    (
        &[("AUTH_BACKEND", "ldap")],
        "LDAP_URL is required with AUTH_BACKEND=ldap",
    ),
    (
        &[
            ("AUTH_BACKEND", "ldap"),
            ("LDAP_URL", "http://h"),
            ("LDAP_BASE_DN", "dc=x"),
        ],
        "LDAP_URL: \"http://h\" must be an ldap:// or ldaps:// URL",
    ),
    (
        &[("AUTH_BACKEND", "ldap"), ("LDAP_URL", "ldap://h")],
        "LDAP_BASE_DN is required with AUTH_BACKEND=ldap",
    ),
    (
        &[
            ("AUTH_BACKEND", "ldap"),
            ("LDAP_URL", "ldaps://h"),
            ("LDAP_STARTTLS", "true"),
            ("LDAP_BASE_DN", "dc=x"),
        ],
        "LDAP_STARTTLS: an ldaps:// URL is TLS already",
    ),
    (
        &[
            ("AUTH_BACKEND", "ldap"),
            ("LDAP_URL", "ldap://h"),
            ("LDAP_BASE_DN", "dc=x"),
            ("LDAP_BIND_DN", "cn=svc,dc=x"),
        ],
        "LDAP_BIND_PASSWORD is required with LDAP_BIND_DN",
    ),
    (
        &[
            ("AUTH_BACKEND", "ldap"),
            ("LDAP_URL", "ldap://h"),
            ("LDAP_BASE_DN", "dc=x"),
            ("LDAP_USER_FILTER", "(uid=x)"),
        ],
        "LDAP_USER_FILTER: must contain {email}",
    ),
    (
        &[
            ("AUTH_BACKEND", "ldap"),
            ("LDAP_URL", "ldap://h"),
            ("LDAP_BASE_DN", "dc=x"),
            ("LDAP_ROLE_MAP", "{\"cn=a\": \"two words\"}"),
        ],
        "LDAP_ROLE_MAP: \"two words\" (for \"cn=a\") is not a role",
    ),
    (
        &[
            ("AUTH_BACKEND", "ldap"),
            ("LDAP_URL", "ldap://h"),
            ("LDAP_BASE_DN", "dc=x"),
            ("SQLITE_INITIAL_USER", "root@example.com"),
            ("SQLITE_INITIAL_USER_PASSWORD", "a-long-password-1"),
        ],
        "SQLITE_INITIAL_USER is not used with AUTH_BACKEND=ldap",
    ),
    (
        &[("AUTH_BACKEND", "hasura")],
        "HASURA_URL is required with AUTH_BACKEND=hasura",
    ),
    (
        &[("AUTH_BACKEND", "hasura"), ("HASURA_URL", "ftp://h")],
        "HASURA_URL: \"ftp://h\" must be an http or https URL",
    ),
    (
        &[
            ("AUTH_BACKEND", "hasura"),
            ("HASURA_URL", "http://hasura:8080"),
        ],
        "HASURA_GRAPHQL_ADMIN_SECRET is required with AUTH_BACKEND=hasura",
    ),
    (
        &[("AUTH_BACKEND", "postgres")],
        "POSTGRES_DSN is required with AUTH_BACKEND=postgres",
    ),
    (
        &[
            ("AUTH_BACKEND", "postgres"),
            (
                "POSTGRES_DSN",
                "postgres://u:hunter2@db/app?sslmode=sometimes",
            ),
        ],
        "POSTGRES_DSN: unknown sslmode \"sometimes\"",
    ),
    (
        &[
            ("AUTH_BACKEND", "postgres"),
            ("POSTGRES_DSN", "postgres://db/app"),
            ("POSTGRES_USERS_TABLE", "users; drop table users"),
        ],
        "POSTGRES_USERS_TABLE: \"users; drop table users\" is not a table name",
    ),
    (
        &[
            ("AUTH_BACKEND", "postgres"),
            ("POSTGRES_DSN", "postgres://db/app"),
            ("POSTGRES_POOL_SIZE", "0"),
        ],
        "POSTGRES_POOL_SIZE: expected at least 1",
    ),
    (
        &[("SQLITE_INITIAL_USER", "root@example.com")],
        "go together",
    ),
    (
        &[
            ("SQLITE_INITIAL_USER", "root@example.com"),
            ("SQLITE_INITIAL_USER_PASSWORD", "weak"),
        ],
        "SQLITE_INITIAL_USER_PASSWORD does not meet the password policy (min_length, uppercase, digit, special)",
    ),
    (
        &[
            ("AUTH_BACKEND", "postgres"),
            ("POSTGRES_DSN", "postgres://db/app"),
            ("POSTGRES_INITIAL_USER", "not an address"),
            ("POSTGRES_INITIAL_USER_PASSWORD", "Str0ng!pass"),
        ],
        "POSTGRES_INITIAL_USER: \"not an address\" is not an email address",
    ),
    (
        &[
            ("MULTI_TENANT_ENABLED", "true"),
            ("SQLITE_INITIAL_USER", "root@example.com"),
            ("SQLITE_INITIAL_USER_PASSWORD", "Str0ng!pass"),
        ],
        "INITIAL_USER_TENANT is required with MULTI_TENANT_ENABLED=true and an initial user",
    ),
    (
        &[
            ("MULTI_TENANT_ENABLED", "true"),
            ("SQLITE_INITIAL_USER", "root@example.com"),
            ("SQLITE_INITIAL_USER_PASSWORD", "Str0ng!pass"),
            ("INITIAL_USER_TENANT", "acme\u{7}"),
        ],
        "INITIAL_USER_TENANT: \"acme\\u{7}\" is not a tenant id",
    ),
    // Protections this build does not have are refused, never ignored.
    (
        &[("CAPTCHA", "turnstile")],
        "CAPTCHA=turnstile: TURNSTILE_SECRET_KEY is required",
    ),
    (&[("CAPTCHA", "recaptcha")], "CAPTCHA: unknown provider"),
    (&[("TURNSTILE_SITE_KEY", "k")], "but CAPTCHA is not"),
    (&[("HOOK_URL", "ftp://hooks.example.com")], "HOOK_URL: "),
    (
        &[
            ("STATE_DSN", "sqlite:/tmp/state.db"),
            ("SESSIONS_ENABLED", "true"),
        ],
        "STATE_DSN is set, but the sqlite backend keeps Authura's tables beside the users table",
    ),
    (
        &[
            ("AUTH_BACKEND", "http"),
            ("HTTP_URL", "http://localhost/users"),
            ("SESSIONS_ENABLED", "true"),
        ],
        "SESSIONS_ENABLED=true with the http backend needs STATE_DSN",
    ),
    (
        &[
            ("AUTH_BACKEND", "hasura"),
            ("HASURA_URL", "http://localhost:8080"),
            ("HASURA_GRAPHQL_ADMIN_SECRET", "s"),
            ("SESSIONS_ENABLED", "true"),
            ("STATE_DSN", "mysql://db/state"),
        ],
        "STATE_DSN: ",
    ),
    (
        &[("SESSIONS_ENABLED", "true"), ("SESSION_EXPIRATION", "0s")],
        "SESSION_EXPIRATION must be longer than zero",
    ),
    (
        &[
            ("SESSIONS_ENABLED", "true"),
            ("SESSION_IDLE_TIMEOUT", "an hour"),
        ],
        "SESSION_IDLE_TIMEOUT: ",
    ),
    (
        &[("SESSIONS_ENABLED", "true"), ("MAX_ACTIVE_SESSIONS", "-1")],
        "MAX_ACTIVE_SESSIONS: expected a non-negative whole number",
    ),
    (
        &[
            ("SESSIONS_ENABLED", "true"),
            ("SESSION_COOKIE_NAME", "my session"),
        ],
        "SESSION_COOKIE_NAME: \"my session\" is not a cookie name",
    ),
    (
        &[
            ("SESSIONS_ENABLED", "true"),
            ("SESSION_COOKIE_DOMAIN", "example.com; Path=/x"),
        ],
        "SESSION_COOKIE_DOMAIN: ",
    ),
    (
        &[
            ("SESSIONS_ENABLED", "true"),
            ("SESSION_COOKIE_SECURE", "maybe"),
        ],
        "SESSION_COOKIE_SECURE: expected true or false",
    ),
    (
        &[("SESSIONS_ENABLED", "sometimes")],
        "SESSIONS_ENABLED: expected true or false",
    ),
    (
        &[("HOOK_AUTH_HEADER_VALUE", "Bearer x")],
        "set without HOOK_URL",
    ),
    (
        &[
            ("HOOK_URL", "http://localhost/hook"),
            ("HOOK_TIMEOUT", "soon"),
        ],
        "HOOK_TIMEOUT",
    ),
    (
        &[
            ("HOOK_URL", "http://localhost/hook"),
            ("HOOK_TIMEOUT", "0s"),
        ],
        "HOOK_TIMEOUT must be longer than zero",
    ),
    (
        &[
            ("AUTH_BACKEND", "http"),
            ("HTTP_URL", "http://localhost/users"),
            ("HTTP_TIMEOUT", "0s"),
        ],
        "HTTP_TIMEOUT must be longer than zero",
    ),
    (
        &[
            ("AUTH_BACKEND", "hasura"),
            ("HASURA_URL", "http://localhost:8080"),
            ("HASURA_GRAPHQL_ADMIN_SECRET", "s"),
            ("HASURA_TIMEOUT", "a while"),
        ],
        "HASURA_TIMEOUT: ",
    ),
    (
        &[
            ("AUTH_BACKEND", "postgres"),
            ("POSTGRES_DSN", "postgres://u@localhost/app"),
            ("POSTGRES_TIMEOUT", "0s"),
        ],
        "POSTGRES_TIMEOUT must be longer than zero",
    ),
    (
        &[("METRICS_ENABLED", "sometimes")],
        "METRICS_ENABLED: expected true or false, got \"sometimes\"",
    ),
    (
        &[("JWT_ALGORITHM", "HS512")],
        "JWT_ALGORITHM: expected HS256, RS256, ES256 or EdDSA",
    ),
    (
        &[("OAUTH_PROVIDERS", "google")],
        "OAUTH_PROVIDERS has google: GOOGLE_CLIENT_ID is required",
    ),
    (
        &[("AUTH_BACKEND", "http")],
        "HTTP_URL is required with AUTH_BACKEND=http",
    ),
    (
        &[
            ("AUTH_BACKEND", "http"),
            ("HTTP_URL", "ftp://api.example.com/users"),
        ],
        "HTTP_URL: \"ftp://api.example.com/users\" must be an http or https URL",
    ),
    (
        &[
            ("AUTH_BACKEND", "http"),
            ("HTTP_URL", "https://api.example.com/users?all=1"),
        ],
        "HTTP_URL: expected the users collection's URL, without query or fragment",
    ),
    (
        &[
            ("AUTH_BACKEND", "http"),
            ("HTTP_URL", "https://bob:hunter2@api.example.com/users"),
        ],
        "HTTP_URL: must not carry credentials",
    ),
    (
        &[
            ("AUTH_BACKEND", "http"),
            ("HTTP_URL", "https://api.example.com/users"),
            ("HTTP_AUTH_HEADER_KEY", "Bad Header"),
            ("HTTP_AUTH_HEADER_VALUE", "Bearer x"),
        ],
        "HTTP_AUTH_HEADER_KEY: \"Bad Header\" is not a valid header name",
    ),
    // Startup's own checks happen at load.
    (
        &[
            ("MAIL_HOST", "smtp.example.com"),
            ("MAIL_FROM", "not an address"),
        ],
        "MAIL_*: ",
    ),
    (
        &[
            ("JWT_EXTENSIONS", "env"),
            ("JWT_ENV_EXTENSION_NAMESPACE", "sub"),
            ("JWT_ENV_EXTENSION_CLAIMS", "{\"a\": \"{{.ID}}\"}"),
        ],
        "\"sub\" is a standard claim",
    ),
    (
        &[("PASSWORD_MIN_LENGTH", "0")],
        "PASSWORD_MIN_LENGTH / PASSWORD_MAX_LENGTH: expected 1 ≤ min ≤ max ≤ 4096",
    ),
    (
        &[("TRUSTED_PROXIES", "10.0.0.0/8,proxy")],
        "TRUSTED_PROXIES: \"proxy\" is not an address or CIDR network",
    ),
    (
        &[("ALLOWED_REDIRECT_URLS", "https://app.example.com,ftp://x")],
        "ALLOWED_REDIRECT_URLS: \"ftp://x\" must be an http or https URL",
    ),
    (
        &[("ADMIN_ROLE", "a b")],
        "ADMIN_ROLE: \"a b\" is not a valid role name",
    ),
    (
        &[("TENANT_ID_HEADER", "bad header")],
        "TENANT_ID_HEADER: \"bad header\" is not a valid header name",
    ),
    (
        &[("LOG_FORMAT", "xml")],
        "LOG_FORMAT: expected json or pretty, got \"xml\"",
    ),
    (
        &[("EXTRA_CA_FILE", "/nonexistent/ca.pem")],
        "EXTRA_CA_FILE: cannot read /nonexistent/ca.pem",
    ),
];

#[test]
fn bad_configurations_are_refused_naming_the_variable() {
    for (overrides, expected) in REFUSED {
        check(&with(overrides), Expect::Refused(&[expected]));
    }
}

#[test]
fn every_problem_is_listed_at_once() {
    check(
        &env(&[("PORT", "x")]),
        Expect::Refused(&[
            "JWT_SECRET is required",
            "JWT_REFRESH_SECRET is required",
            "JWT_VERIFY_SECRET is required",
            "MAIL_HOST is required",
            "PORT: expected",
        ]),
    );
    // Problems do not hide each other.
    check(
        &env(&[
            ("JWT_SECRET", "short"),
            ("JWT_REFRESH_SECRET", "short"),
            (
                "JWT_VERIFY_SECRET",
                "verify-secret-0123456789abcdefghijklmno",
            ),
            ("JWT_EXPIRATION", "5d"),
            ("MAIL_HOST", "smtp.example.com"),
            ("MAIL_TLS", "ssl"),
            ("MAIL_USER", "u"),
        ]),
        Expect::Refused(&[
            "JWT_SECRET must be at least 32 bytes",
            "JWT_REFRESH_SECRET must be at least 32 bytes",
            "JWT_SECRET and JWT_REFRESH_SECRET must be different",
            "JWT_EXPIRATION",
            "MAIL_TLS",
            "MAIL_USER and MAIL_PASS go together",
            "MAIL_FROM is required",
        ]),
    );
}

#[test]
fn mail_templates_are_checked_at_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("verify-email.subject"), "{{ unclosed").unwrap();
    check(
        &with(&[("MAIL_TEMPLATES_DIR", dir.path().to_str().unwrap())]),
        Expect::Refused(&["MAIL_TEMPLATES_DIR: ", "verify-email.subject"]),
    );
    let missing = dir.path().join("missing");
    check(
        &with(&[("MAIL_TEMPLATES_DIR", missing.to_str().unwrap())]),
        Expect::Refused(&[&format!(
            "MAIL_TEMPLATES_DIR: {} is not a directory",
            missing.display()
        )]),
    );
}

#[test]
fn defaults_and_values_are_printed() {
    check(
        &with(&[]),
        Expect::Loaded(&[
            "HOST=localhost",
            "PORT=9000",
            "AUTH_BACKEND=sqlite",
            "SQLITE_DB_PATH=./authura.db",
            "JWT_ALGORITHM=HS256",
            "JWT_EXPIRATION=5m",
            "MAIL_HOST=dummy",
            "EXTERNAL_URL=http://localhost:9000",
            "VERIFY_REDIRECT_URL=http://localhost:9000/form",
            "ALLOWED_REDIRECT_URLS=http://localhost:9000/form",
            "JWT_SECRET=[redacted]",
            "TURNSTILE_SCRIPT=https://challenges.cloudflare.com/turnstile/v0/api.js",
        ]),
    );
    // The defaults that follow other settings.
    check(
        &with(&[
            ("PORT", "8123"),
            ("ALLOWED_ORIGINS", "app.example.com,*"),
            ("MAIL_HOST", "smtp.example.com"),
            ("MAIL_FROM", "a@example.com"),
            ("MAIL_TLS", "tls"),
        ]),
        Expect::Loaded(&[
            "EXTERNAL_URL=http://localhost:8123",
            "VERIFY_REDIRECT_URL=http://localhost:8123/form",
            "ALLOWED_REDIRECT_URLS=http://localhost:8123/form,http://app.example.com/,https://app.example.com/",
            "MAIL_PORT=465",
        ]),
    );
    // The LDAP backend: the service password redacted, the group base following the base.
    check(
        &with(&[
            ("AUTH_BACKEND", "ldap"),
            ("LDAP_URL", "ldaps://ldap.example.com"),
            ("LDAP_BIND_DN", "cn=authura,dc=example,dc=com"),
            ("LDAP_BIND_PASSWORD", "hidden-0123"),
            ("LDAP_BASE_DN", "ou=people,dc=example,dc=com"),
            (
                "LDAP_ROLE_MAP",
                r#"{"cn=admins,dc=example,dc=com": "admin"}"#,
            ),
        ]),
        Expect::Loaded(&[
            "AUTH_BACKEND=ldap",
            "LDAP_URL=ldaps://ldap.example.com",
            "LDAP_BIND_PASSWORD=[redacted]",
            "LDAP_GROUP_BASE_DN=ou=people,dc=example,dc=com",
            "LDAP_USER_FILTER=(mail={email})",
            "LDAP_TIMEOUT=10s",
        ]),
    );
    // The HTTP backend's credential is redacted, its header name printed.
    check(
        &with(&[
            ("AUTH_BACKEND", "http"),
            ("HTTP_URL", "https://api.example.com/authura/users"),
            ("HTTP_AUTH_HEADER_KEY", "X-Api-Key"),
            ("HTTP_AUTH_HEADER_VALUE", "Bearer hidden-0123"),
        ]),
        Expect::Loaded(&[
            "AUTH_BACKEND=http",
            "HTTP_URL=https://api.example.com/authura/users",
            "HTTP_AUTH_HEADER_KEY=X-Api-Key",
            "HTTP_AUTH_HEADER_VALUE=[redacted]",
        ]),
    );
    check(
        &with(&[
            ("AUTH_BACKEND", "hasura"),
            ("HASURA_URL", "https://hasura.internal/v1/graphql"),
            ("HASURA_GRAPHQL_ADMIN_SECRET", "hasura-admin"),
        ]),
        Expect::Loaded(&[
            "AUTH_BACKEND=hasura",
            "HASURA_URL=https://hasura.internal/v1/graphql",
            "HASURA_GRAPHQL_ADMIN_SECRET=[redacted]",
        ]),
    );
}

#[test]
fn the_other_backends_initial_user_is_ignored_with_a_warning() {
    let config = load(&with(&[
        ("POSTGRES_INITIAL_USER", "root@example.com"),
        ("POSTGRES_INITIAL_USER_PASSWORD", "Str0ng!pass"),
    ]))
    .unwrap();
    assert!(config.initial_user.is_none());
    assert_eq!(
        config.warnings,
        [
            "POSTGRES_INITIAL_USER is ignored: AUTH_BACKEND=sqlite reads SQLITE_INITIAL_USER",
            "POSTGRES_INITIAL_USER_PASSWORD is ignored: AUTH_BACKEND=sqlite reads SQLITE_INITIAL_USER",
        ]
    );
}

#[test]
fn the_initial_user_takes_its_tenant_only_with_multi_tenancy() {
    let initial = [
        ("SQLITE_INITIAL_USER", "root@example.com"),
        ("SQLITE_INITIAL_USER_PASSWORD", "Str0ng!pass"),
        ("INITIAL_USER_TENANT", "acme"),
    ];
    let mut vars = initial.to_vec();
    vars.push(("MULTI_TENANT_ENABLED", "true"));
    let config = load(&with(&vars)).unwrap();
    let tenant = config.initial_user.and_then(|u| u.tenant);
    assert_eq!(tenant.as_ref().map(|t| t.as_str()), Some("acme"));
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);

    let config = load(&with(&initial)).unwrap();
    assert!(config.initial_user.is_some_and(|u| u.tenant.is_none()));
    assert_eq!(
        config.warnings,
        [
            "INITIAL_USER_TENANT is ignored: MULTI_TENANT_ENABLED is off, so the initial user has no tenant"
        ]
    );
}

#[test]
fn files_dotenv_environment_and_flags_take_precedence_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("authura.toml");
    std::fs::write(
        &toml,
        "port = 8123\nhost = \"file\"\njwt_expiration = \"10m\"\nrate_per_minute = 10\n\
         allowed_origins = [\"app.example.com\", \"https://x.example\"]\n",
    )
    .unwrap();
    let dotenv = dir.path().join(".env");
    std::fs::write(&dotenv, "PORT=7001\nHOST=0.0.0.0\nCAPTCHA=\n").unwrap();
    let mut sources = with(&[("JWT_EXPIRATION", "15m"), ("RATE_PER_MINUTE", " ")]);
    sources.file = Some(toml.clone());
    check(
        &sources,
        Expect::Loaded(&[
            "PORT=8123",
            "JWT_EXPIRATION=15m",
            "RATE_PER_MINUTE=60",
            "ALLOWED_ORIGINS=app.example.com,https://x.example",
        ]),
    );
    sources.dotenv = Some(dotenv);
    check(&sources, Expect::Loaded(&["PORT=7001", "HOST=0.0.0.0"]));
    sources.env.insert("PORT".into(), "7002".into());
    check(&sources, Expect::Loaded(&["PORT=7002"]));
    sources.flags.insert("PORT".into(), "7003".into());
    check(&sources, Expect::Loaded(&["PORT=7003", "HOST=0.0.0.0"]));
    assert_eq!(load_listen(&sources).unwrap(), ("0.0.0.0".to_owned(), 7003));

    // Unknown keys in the file are refused; a non-secret has no `_FILE` form.
    for (key, name) in [
        ("jwt_secert", "JWT_SECERT"),
        ("mail_user_file", "MAIL_USER_FILE"),
    ] {
        std::fs::write(&toml, format!("{key} = \"x\"\n")).unwrap();
        let mut sources = with(&[]);
        sources.file = Some(toml.clone());
        check(
            &sources,
            Expect::Refused(&[&format!("unknown setting \"{name}\"")]),
        );
    }
}

#[test]
fn likely_typos_in_dotenv_are_warned_about_and_other_names_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let dotenv = dir.path().join(".env");
    std::fs::write(
        &dotenv,
        "JWT_EXPIRATON=10m\nDATABASE_URL=postgres://app\nRATE_PER_MINUT=5\n",
    )
    .unwrap();
    let mut sources = with(&[]);
    sources.dotenv = Some(dotenv.clone());
    let config = load(&sources).unwrap();
    let path = dotenv.display();
    assert_eq!(
        config.warnings,
        [
            format!(
                "{path}: \"JWT_EXPIRATON\" is not a setting and is ignored; did you mean JWT_EXPIRATION?"
            ),
            format!(
                "{path}: \"RATE_PER_MINUT\" is not a setting and is ignored; did you mean RATE_PER_MINUTE?"
            ),
        ]
    );
    assert_eq!(config.effective["JWT_EXPIRATION"], "5m");
    // `migrate` reads only the backend, and warns too.
    std::fs::write(&dotenv, "SQLITE_DB_PAHT=typo.db\n").unwrap();
    let sources = Sources {
        dotenv: Some(dotenv),
        ..env(&[("SQLITE_DB_PATH", "only-db.db")])
    };
    assert!(load(&sources).is_err(), "no token secrets, no mail");
    let (storage, warnings) = load_backend(&sources).unwrap();
    assert_eq!(storage.backend.name(), "sqlite");
    assert!(storage.state.is_none());
    assert!(
        warnings[0].ends_with("did you mean SQLITE_DB_PATH?"),
        "{warnings:?}"
    );
    let refused = load_backend(&env(&[
        ("AUTH_BACKEND", "postgres"),
        ("POSTGRES_POOL_SIZE", "0"),
    ]))
    .unwrap_err()
    .problems;
    assert_eq!(
        refused[..2],
        [
            "POSTGRES_POOL_SIZE: expected at least 1",
            "POSTGRES_DSN is required with AUTH_BACKEND=postgres (e.g. postgres://user:password@host:5432/database?sslmode=verify-full)",
        ]
    );
}

#[test]
fn dev_mode_generates_and_keeps_the_token_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secrets");
    let sources = Sources {
        dev: true,
        dev_secrets: Some(file.clone()),
        ..Sources::default()
    };
    let shown = format!("[redacted, from {}]", file.display());
    let first = load(&sources).unwrap();
    for name in ["JWT_SECRET", "JWT_REFRESH_SECRET", "JWT_VERIFY_SECRET"] {
        assert_eq!(first.effective[name], shown);
    }
    assert_eq!(first.effective["MAIL_HOST"], "dummy");
    let again = load(&sources).unwrap();
    assert_eq!(
        again.tokens.refresh_secret.expose(),
        first.tokens.refresh_secret.expose()
    );
}

/// Loads `sources` and returns what was read, whatever the outcome.
fn reads(sources: &Sources) -> ReadNames {
    load_reading(sources).1
}

/// One configuration per branch: every backend, a real mail relay, the env extension, captcha
/// and a hook on. With the backend each one uses.
fn branches() -> Vec<(&'static str, Sources)> {
    vec![
        ("sqlite", with(&[])),
        (
            "postgres",
            with(&[
                ("AUTH_BACKEND", "postgres"),
                ("POSTGRES_DSN", "postgres://db/app"),
            ]),
        ),
        (
            "hasura",
            with(&[
                ("AUTH_BACKEND", "hasura"),
                ("HASURA_URL", "http://hasura:8080"),
                ("HASURA_GRAPHQL_ADMIN_SECRET", "s"),
            ]),
        ),
        (
            "http",
            with(&[
                ("AUTH_BACKEND", "http"),
                ("HTTP_URL", "http://localhost/users"),
            ]),
        ),
        (
            "ldap",
            with(&[
                ("AUTH_BACKEND", "ldap"),
                ("LDAP_URL", "ldap://localhost"),
                ("LDAP_BIND_DN", "cn=authura,dc=example,dc=com"),
                ("LDAP_BIND_PASSWORD", "service-secret"),
                ("LDAP_BASE_DN", "dc=example,dc=com"),
            ]),
        ),
        (
            "sqlite",
            with(&[
                ("MAIL_HOST", "smtp.example.com"),
                ("MAIL_FROM", "a@example.com"),
                ("JWT_EXTENSIONS", "env,hasura"),
                ("JWT_ENV_EXTENSION_NAMESPACE", "https://example.com/claims"),
                ("JWT_ENV_EXTENSION_CLAIMS", "{\"x-id\": \"{{.ID}}\"}"),
                ("CAPTCHA", "turnstile"),
                ("TURNSTILE_SECRET_KEY", "secret"),
                ("TURNSTILE_SITE_KEY", "site"),
                ("HOOK_URL", "http://localhost/hook"),
            ]),
        ),
        (
            "sqlite",
            with(&[
                ("OAUTH_PROVIDERS", "google,github,microsoft,oidc"),
                ("GOOGLE_CLIENT_ID", "g"),
                ("GOOGLE_CLIENT_SECRET", "gs"),
                ("GITHUB_CLIENT_ID", "h"),
                ("GITHUB_CLIENT_SECRET", "hs"),
                ("MICROSOFT_CLIENT_ID", "m"),
                ("MICROSOFT_CLIENT_SECRET", "ms"),
                ("OIDC_ISSUER_URL", "https://id.example.com"),
                ("OIDC_CLIENT_ID", "o"),
                ("OIDC_CLIENT_SECRET", "os"),
            ]),
        ),
        (
            "http",
            with(&[
                ("AUTH_BACKEND", "http"),
                ("HTTP_URL", "http://localhost/users"),
                ("SESSIONS_ENABLED", "true"),
                ("STATE_DSN", "sqlite:/tmp/authura-state.db"),
            ]),
        ),
    ]
}

#[test]
fn every_declared_variable_is_read_and_every_read_one_declared() {
    let branches: Vec<(&str, ReadNames)> = branches()
        .iter()
        .map(|(backend, sources)| {
            let (result, read) = load_reading(sources);
            assert!(result.is_ok(), "{backend}: {result:?}");
            (*backend, read)
        })
        .collect();
    for (backend, read) in &branches {
        for name in read {
            let var = declared().find(|var| var.name == *name);
            assert!(
                var.is_some_and(Var::is_built),
                "{name} is read ({backend}) but no section declares it as built"
            );
        }
    }
    for var in declared() {
        let read_with = |backend: &str| {
            branches
                .iter()
                .any(|(b, read)| *b == backend && read.contains(var.name))
        };
        match var.need {
            Need::Always => assert!(
                branches.iter().all(|(_, read)| read.contains(var.name)),
                "{} is declared as always read, but a load does not read it",
                var.name
            ),
            Need::Backends(backends) => {
                for backend in backends {
                    assert!(
                        read_with(backend),
                        "{} is declared for AUTH_BACKEND={backend}, which does not read it",
                        var.name
                    );
                }
            }
            Need::When(_) => assert!(
                branches.iter().any(|(_, read)| read.contains(var.name)),
                "{} is declared but never read",
                var.name
            ),
            Need::Future(_) => assert!(
                branches.iter().all(|(_, read)| !read.contains(var.name)),
                "{} is declared as not built, but is read",
                var.name
            ),
        }
    }
}

#[test]
fn reading_a_variable_no_section_declares_is_a_problem() {
    static UNDECLARED: Var = Var::new("server", "").named("UNDECLARED");
    let mut r = Reader::new(&with(&[("UNDECLARED", "x")]));
    assert_eq!(r.string(&UNDECLARED).as_deref(), Some("x"));
    assert_eq!(
        r.problems,
        ["UNDECLARED is read but no configuration section declares it"]
    );
    // The tests above would fail on it.
    assert!(!declared().any(|var| var.name == "UNDECLARED"));
}

#[test]
fn declarations_are_well_formed() {
    let mut names = std::collections::BTreeSet::new();
    for var in declared() {
        assert!(names.insert(var.name), "{} is declared twice", var.name);
        assert!(
            !var.name.is_empty()
                && var
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
            "{:?} is not a variable name",
            var.name
        );
        assert!(
            !var.is_built() || !var.doc.is_empty(),
            "{} has no description",
            var.name
        );
    }
    // Defaults parse: the configuration with nothing but the required values loads.
    assert!(load(&with(&[])).is_ok());
}

#[test]
fn variables_of_features_not_built_are_refused_also_as_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("value");
    std::fs::write(&file, "x\n").unwrap();
    let file = file.to_str().unwrap();
    let mut count = 0;
    for var in declared() {
        let Need::Future(feature) = var.need else {
            continue;
        };
        count += 1;
        let expected = format!(
            "{} is set, but {feature} is not in this build yet; unset it",
            var.name
        );
        check(&with(&[(var.name, "x")]), Expect::Refused(&[&expected]));
        if var.secret {
            let file_var = format!("{}_FILE", var.name);
            check(&with(&[(&file_var, file)]), Expect::Refused(&[&expected]));
        }
    }
    // SPEC §2 and §8–§13: ldap sync (sessions, the state store, permits and permission names,
    // OAuth, the ldap backend, the account policies and the audit log are built).
    assert!(declared().any(|var| var.name == "LDAP_SYNC_INTERVAL" && !var.is_built()));
    for name in [
        "LOCKOUT_THRESHOLD",
        "PASSWORD_HISTORY",
        "PASSWORD_MAX_AGE",
        "AUDIT_ENABLED",
        "OIDC_USERINFO_URL",
        "PERMISSION_NAMES",
        "HASURA_ROLES_FROM_GROUPS",
        "LDAP_URL",
    ] {
        assert!(declared().any(|var| var.name == name && var.is_built()));
    }
    assert!(count >= 3, "{count}");
}

#[test]
fn secrets_are_never_printed_and_may_come_from_files() {
    const SENTINEL: &str = "sentinel-0123456789abcdefghijklmnopqrstuvwxyz";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    std::fs::write(&file, format!("{SENTINEL}\n")).unwrap();
    let file = file.to_str().unwrap();
    let branches = branches();
    for var in declared().filter(|var| var.secret && var.is_built()) {
        let (_, base) = branches
            .iter()
            .find(|(_, sources)| reads(sources).contains(var.name))
            .unwrap_or_else(|| panic!("no configuration reads {}", var.name));
        let file_var = format!("{}_FILE", var.name);
        for (set, shown) in [
            ((var.name, SENTINEL), "[redacted]".to_owned()),
            ((&file_var, file), format!("[redacted, from {file}]")),
        ] {
            let mut sources = base.clone();
            sources.env.remove(var.name);
            sources.env.insert(set.0.to_owned(), set.1.to_owned());
            let mut r = Reader::new(&sources);
            let _ = read(&mut r, &sources);
            assert_eq!(r.effective.get(var.name), Some(&shown), "{}", var.name);
            let everything = format!("{:?}{:?}{:?}", r.effective, r.problems, r.warnings);
            assert!(!everything.contains(SENTINEL), "{}: {everything}", var.name);
        }
        let mut sources = base.clone();
        sources.env.insert(var.name.to_owned(), SENTINEL.to_owned());
        sources.env.insert(file_var.clone(), file.to_owned());
        check(
            &sources,
            Expect::Refused(&[&format!(
                "{} and {file_var} are both set; keep one",
                var.name
            )]),
        );
    }
    let missing = dir.path().join("missing");
    check(
        &with(&[
            ("JWT_SECRET", ""),
            ("JWT_SECRET_FILE", missing.to_str().unwrap()),
        ]),
        Expect::Refused(&[&format!(
            "JWT_SECRET_FILE: cannot read {}: ",
            missing.display()
        )]),
    );
}

fn doc_path() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/configuration.md"
    ))
}

/// docs/configuration.md's tables are what the declarations generate. `UPDATE_DOCS=1`
/// rewrites them.
#[test]
fn docs() {
    let doc = std::fs::read_to_string(doc_path()).unwrap();
    let expected = docs::regenerate(&doc, &docs::blocks()).unwrap_or_else(|e| panic!("{e}"));
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(doc_path(), &expected).unwrap();
        return;
    }
    let differing: Vec<String> = doc
        .lines()
        .zip(expected.lines())
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("- {a}\n+ {b}"))
        .take(10)
        .collect();
    assert!(
        doc == expected,
        "docs/configuration.md's tables differ from the declarations in config/*.rs; run \
         `UPDATE_DOCS=1 cargo test -p authura-server --lib config::tests::docs` to rewrite them:\n{}",
        differing.join("\n")
    );
}

#[test]
fn docs_name_every_variable_and_refuse_missing_blocks() {
    let blocks = docs::blocks();
    let all: String = blocks.values().cloned().collect();
    for var in declared() {
        assert!(
            all.contains(&format!("`{}`", var.name)),
            "{} is in no table",
            var.name
        );
    }
    let doc = "# x\n<!-- generated: server -->\nold\n<!-- end generated -->\nprose\n";
    let err = docs::regenerate(doc, &blocks).unwrap_err();
    assert!(err.contains("no generated block for"), "{err}");
    let only_server: BTreeMap<String, String> = blocks
        .iter()
        .filter(|(k, _)| *k == "server")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let regenerated = docs::regenerate(doc, &only_server).unwrap();
    assert!(regenerated.starts_with("# x\n<!-- generated: server -->\n| variable |"));
    assert!(regenerated.ends_with("<!-- end generated -->\nprose\n"));
    assert!(regenerated.contains("| `HOST` | `localhost` | Listen address. Flag `--host`. |"));
    let unknown = "<!-- generated: nothing -->\n<!-- end generated -->\n";
    assert!(docs::regenerate(unknown, &blocks).is_err());
}

#[test]
fn sessions_read_their_settings_and_find_their_state_store() {
    use crate::config::sessions::StateConfig;

    let config = load(&with(&[])).unwrap();
    assert!(config.sessions.is_none() && config.state.is_none());

    let config = load(&with(&[
        ("SESSIONS_ENABLED", "true"),
        ("SESSION_EXPIRATION", "12h"),
        ("SESSION_IDLE_TIMEOUT", "30m"),
        ("MAX_ACTIVE_SESSIONS", "3"),
        ("SESSION_COOKIE_DOMAIN", "example.com"),
    ]))
    .unwrap();
    let sessions = config.sessions.unwrap();
    assert_eq!(sessions.settings.expiration, Duration::from_secs(12 * 3600));
    assert_eq!(sessions.settings.idle_timeout, Duration::from_secs(1800));
    assert_eq!(sessions.settings.max_active, 3);
    assert_eq!(sessions.settings.reuse_interval, Duration::from_secs(10));
    assert_eq!(sessions.cookie.name, "authura_session");
    assert!(sessions.cookie.secure);
    assert_eq!(sessions.cookie.domain.as_deref(), Some("example.com"));
    assert!(!sessions.check_basic);
    assert_eq!(
        (sessions.cache_size, sessions.cache_ttl),
        (10_000, Duration::from_secs(60))
    );
    assert!(matches!(config.state, Some(StateConfig::Beside)));

    // `serve --dev` serves plain http: the cookie is not `Secure` unless asked.
    let mut dev = with(&[("SESSIONS_ENABLED", "true")]);
    dev.dev = true;
    assert!(!load(&dev).unwrap().sessions.unwrap().cookie.secure);
    dev.env
        .insert("SESSION_COOKIE_SECURE".into(), "true".into());
    assert!(load(&dev).unwrap().sessions.unwrap().cookie.secure);

    let config = load(&with(&[
        ("AUTH_BACKEND", "http"),
        ("HTTP_URL", "http://localhost/users"),
        ("SESSIONS_ENABLED", "true"),
        ("STATE_DSN", "postgres://db/state"),
    ]))
    .unwrap();
    assert!(matches!(config.state, Some(StateConfig::Dsn(_))));
    assert_eq!(
        config.effective.get("STATE_DSN").map(String::as_str),
        Some("[redacted]")
    );

    // Session variables without sessions, and a STATE_DSN nothing needs, are ignored aloud.
    let config = load(&with(&[
        ("MAX_ACTIVE_SESSIONS", "3"),
        ("SESSION_COOKIE_NAME", "sid"),
    ]))
    .unwrap();
    assert!(config.sessions.is_none());
    assert_eq!(
        config.warnings,
        [
            "MAX_ACTIVE_SESSIONS, SESSION_COOKIE_NAME set while SESSIONS_ENABLED is not true; ignored"
        ]
    );
    let config = load(&with(&[
        ("AUTH_BACKEND", "http"),
        ("HTTP_URL", "http://localhost/users"),
        ("STATE_DSN", "sqlite:/tmp/state.db"),
    ]))
    .unwrap();
    assert!(config.state.is_none());
    assert_eq!(
        config.warnings,
        [
            "STATE_DSN is set but no feature that needs the state store is on (SESSIONS_ENABLED, \
             LOCKOUT_THRESHOLD, PASSWORD_HISTORY, PASSWORD_MAX_AGE, AUDIT_ENABLED); ignored"
        ]
    );
}

#[test]
fn the_audit_retention_is_read_in_days_as_spec_writes_it_or_as_a_go_duration() {
    let day = std::time::Duration::from_secs(86_400);
    for (value, expected) in [
        (None, Some(90 * day)),
        (Some("90d"), Some(90 * day)),
        (Some("7d"), Some(7 * day)),
        (Some("2160h"), Some(90 * day)),
        (Some("0"), None),
        (Some("0d"), None),
    ] {
        let mut vars = vec![("AUDIT_ENABLED", "true")];
        vars.extend(value.map(|v| ("AUDIT_RETENTION", v)));
        let config = load(&with(&vars)).unwrap_or_else(|e| panic!("{value:?}: {e}"));
        let audit = config.policies.audit.expect("AUDIT_ENABLED=true");
        assert_eq!(audit.retention, expected, "{value:?}");
    }
    for bad in ["1.5d", "90days", "-1d"] {
        check(
            &with(&[("AUDIT_ENABLED", "true"), ("AUDIT_RETENTION", bad)]),
            Expect::Refused(&["AUDIT_RETENTION: "]),
        );
    }
}
