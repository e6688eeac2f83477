//! A running server for one test: a real SMTP sink, a reqwest client, and the backend the test
//! runs on: a temp SQLite file, or a fresh database on the test PostgreSQL cluster. Tests that
//! use `both_backends!(name)` run once on each.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use authura_backend_pg::{PgSettings, PgStore, UsersTable};
use authura_backend_sqlite::SqliteStore;
use authura_core::{Secret, TenantId, UserId, UserStore as _};
use authura_server::config::{self, Sources};
use authura_server::{AppState, bind_to, build_state};
use authura_testkit::postgres::Database;
use authura_testkit::smtp::{ReceivedMail, SmtpSink};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

pub const ROOT: &str = "root@example.com";
pub const ROOT_PW: &str = "R00t!passw0rd";
pub const PW: &str = "Str0ng!pass";

/// The backend a test's servers use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    Hasura,
    Http,
}

tokio::task_local! {
    static BACKEND: Backend;
}

/// The backend the current test's servers use.
pub fn backend() -> Backend {
    BACKEND.try_with(|b| *b).unwrap_or(Backend::Sqlite)
}

/// Runs a test body with its servers on `backend` (tests outside [`both_backends!`] use SQLite).
pub async fn on<F: std::future::Future>(backend: Backend, body: F) -> F::Output {
    BACKEND.scope(backend, body).await
}

/// Runs the test `async fn $name()` declared next to it once per backend, as the tests
/// `$name::sqlite` and `$name::postgres`; the body stays as it is.
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                $crate::harness::on($crate::harness::Backend::Sqlite, super::$name()).await
            }
            #[tokio::test]
            async fn postgres() {
                $crate::harness::on($crate::harness::Backend::Postgres, super::$name()).await
            }
            #[tokio::test]
            async fn hasura() {
                $crate::harness::on($crate::harness::Backend::Hasura, super::$name()).await
            }
            #[tokio::test]
            async fn http() {
                $crate::harness::on($crate::harness::Backend::Http, super::$name()).await
            }
        }
    };
}
pub(crate) use both_backends;

/// Runs the test `async fn $name()` beside it on SQLite and on PostgreSQL (the backends that
/// keep the state store beside their users table).
macro_rules! sql_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                $crate::harness::on($crate::harness::Backend::Sqlite, super::$name()).await
            }
            #[tokio::test]
            async fn postgres() {
                $crate::harness::on($crate::harness::Backend::Postgres, super::$name()).await
            }
        }
    };
}
pub(crate) use sql_backends;

/// One server with its mail sink.
pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    pub smtp: SmtpSink,
    pub state: Arc<AppState>,
    pub db_path: PathBuf,
    /// The PostgreSQL database's URL, when the server runs on PostgreSQL.
    pub dsn: Option<String>,
    /// The test's PostgreSQL database, when the harness made it (dropped after the server).
    _pg: Option<Database>,
    /// The service the backend talks to (a stand-in), kept alive as long as the server.
    pub backend_service: Option<Box<dyn std::any::Any + Send + Sync>>,
    handle: actix_web::dev::ServerHandle,
    _dir: tempfile::TempDir,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // The stop command is sent at call time; the returned future only waits for it.
        drop(self.handle.stop(false));
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Resp {
    /// The `error` code of an error body.
    pub fn code(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }

    #[track_caller]
    pub fn expect(&self, status: u16, code: &str) -> &Self {
        assert_eq!(
            (self.status, self.code()),
            (status, code),
            "body: {}",
            self.text
        );
        self
    }

    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert_eq!(self.status, 200, "body: {}", self.text);
        &self.body
    }
}

/// The variables every test server starts with (tests add or override).
pub fn base_vars(db: &str, port: u16, smtp_port: u16) -> BTreeMap<String, String> {
    [
        ("JWT_SECRET", "access-secret-0123456789abcdefghijklmnop"),
        (
            "JWT_REFRESH_SECRET",
            "refresh-secret-0123456789abcdefghijklmn",
        ),
        (
            "JWT_VERIFY_SECRET",
            "verify-secret-0123456789abcdefghijklmno",
        ),
        ("MAIL_HOST", "127.0.0.1"),
        ("MAIL_PORT", &smtp_port.to_string()),
        ("MAIL_TLS", "none"),
        ("MAIL_FROM", "Authura <auth@example.com>"),
        ("SQLITE_DB_PATH", db),
        ("SQLITE_INITIAL_USER", ROOT),
        ("SQLITE_INITIAL_USER_PASSWORD", ROOT_PW),
        ("HOST", "127.0.0.1"),
        ("PORT", &port.to_string()),
        ("EXTERNAL_URL", &format!("http://127.0.0.1:{port}")),
        ("RATE_PER_MINUTE", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// SQLite's initial-user variables and their PostgreSQL names.
const POSTGRES_NAMES: [(&str, &str); 2] = [
    ("SQLITE_INITIAL_USER", "POSTGRES_INITIAL_USER"),
    (
        "SQLITE_INITIAL_USER_PASSWORD",
        "POSTGRES_INITIAL_USER_PASSWORD",
    ),
];

impl TestServer {
    pub async fn start() -> Self {
        Self::with(&[]).await
    }

    /// Starts with extra variables (an empty value removes a default).
    pub async fn with(vars: &[(&str, &str)]) -> Self {
        let backend = backend();
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(authura_testkit::postgres::database().await),
            Backend::Hasura => return crate::hasura_backend::server(vars).await,
            Backend::Http => return crate::http_backend::start(vars).await,
        };
        let dsn = pg.as_ref().map(|db| db.url.clone());
        Self::on(dsn, pg, vars).await
    }

    /// Starts on the PostgreSQL database at `dsn` (a test's own cluster), with extra variables.
    pub async fn with_postgres(dsn: &str, vars: &[(&str, &str)]) -> Self {
        Self::on(Some(dsn.to_owned()), None, vars).await
    }

    pub(crate) async fn on(
        dsn: Option<String>,
        pg: Option<Database>,
        vars: &[(&str, &str)],
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join("authura.db");
        let smtp = SmtpSink::start().expect("the SMTP sink (python3 + aiosmtpd) must start");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut env = base_vars(db_path.to_str().unwrap(), port, smtp.port());
        if let Some(dsn) = &dsn {
            env.remove("SQLITE_DB_PATH");
            for (from, to) in POSTGRES_NAMES {
                if let Some(v) = env.remove(from) {
                    env.insert(to.to_owned(), v);
                }
            }
            env.insert("AUTH_BACKEND".into(), "postgres".into());
            env.insert("POSTGRES_DSN".into(), dsn.clone());
            env.insert("POSTGRES_POOL_SIZE".into(), "4".into());
        }
        for (k, v) in vars {
            // A test written against SQLite's variable names means the backend's.
            let k = match POSTGRES_NAMES.iter().find(|(from, _)| from == k) {
                Some((_, to)) if dsn.is_some() => to,
                _ => k,
            };
            if v.is_empty() {
                env.remove(*k);
            } else {
                env.insert((*k).to_owned(), (*v).to_owned());
            }
        }
        let config = config::load(&Sources {
            env,
            ..Sources::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let state = build_state(&config).await.unwrap();
        let running = bind_to(state, &config, 1, Some(listener)).unwrap();
        let handle = running.server.handle();
        tokio::spawn(running.server);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        TestServer {
            base: format!("http://127.0.0.1:{port}"),
            client,
            smtp,
            state: running.state,
            db_path,
            dsn,
            _pg: pg,
            backend_service: None,
            handle,
            _dir: dir,
        }
    }

    /// Stops serving, as a process that exits would (the first half of a restart); its files
    /// and database stay until the value is dropped.
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }

    /// Deletes a user through the backend's own `delete` (the service never deletes users).
    pub async fn delete_user(&self, tenant: Option<&TenantId>, id: &UserId) -> bool {
        if let Some(deleted) = crate::hasura_backend::delete_user(self, tenant, id).await {
            return deleted;
        }
        if let Some(http) = crate::http_backend::standin(self) {
            return crate::http_backend::delete_user(http, tenant, id).await;
        }
        match &self.dsn {
            Some(dsn) => PgStore::connect(&PgSettings {
                dsn: Secret::new(dsn.clone()),
                pool_size: 1,
                table: UsersTable::parse("users").unwrap(),
                extra_ca_pem: None,
                query_timeout: PgSettings::DEFAULT_QUERY_TIMEOUT,
            })
            .await
            .unwrap()
            .delete(tenant, id)
            .await
            .unwrap(),
            None => SqliteStore::open(&self.db_path, 1)
                .await
                .unwrap()
                .delete(tenant, id)
                .await
                .unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            text,
            body,
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(self.client.post(self.url(path)).json(&body))
            .await
    }

    pub async fn post_as(&self, path: &str, bearer: &str, body: Value) -> Resp {
        self.send(
            self.client
                .post(self.url(path))
                .bearer_auth(bearer)
                .json(&body),
        )
        .await
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> Resp {
        let mut req = self.client.get(self.url(path));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        self.send(req).await
    }

    /// The next mail to `to` the sink caught.
    pub async fn mail_to(&self, to: &str) -> ReceivedMail {
        self.smtp
            .wait_for(to, Duration::from_secs(15))
            .await
            .unwrap_or_else(|e| panic!("no mail to {to}: {e}"))
    }

    /// How many mails the flows have asked for so far (queued before each response returns).
    pub fn mails_requested(&self) -> u64 {
        self.state.mail_stats().queued.load(Ordering::Relaxed)
    }

    /// The token in a mail's link.
    pub fn token_in(mail: &ReceivedMail) -> String {
        let link = mail.link().expect("a link in the mail");
        let url = url::Url::parse(&link).unwrap();
        url.query_pairs()
            .find(|(k, _)| k == "token")
            .expect("a token in the link")
            .1
            .into_owned()
    }

    /// Signs a user up through the mail link; returns the `/verify-email` answer.
    pub async fn sign_up(&self, email: &str, password: &str) -> Value {
        self.post("/signup", json!({"email": email})).await.ok();
        let mail = self.mail_to(email).await;
        let token = Self::token_in(&mail);
        self.post(
            "/verify-email",
            json!({"token": token, "password": password}),
        )
        .await
        .ok()
        .clone()
    }

    /// Logs in; returns `T`.
    pub async fn login(&self, email: &str, password: &str) -> Value {
        self.post("/token", json!({"email": email, "password": password}))
            .await
            .ok()
            .clone()
    }

    /// The initial admin's access token.
    pub async fn admin_token(&self) -> String {
        self.login(ROOT, ROOT_PW).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

pub fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}
