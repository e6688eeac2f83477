//! A running server for one test: temp SQLite, a real SMTP sink, a reqwest client.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use authura_server::config::{self, Sources};
use authura_server::{AppState, app};
use authura_testkit::smtp::{ReceivedMail, SmtpSink};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

pub const ROOT: &str = "root@example.com";
pub const ROOT_PW: &str = "R00t!passw0rd";
pub const PW: &str = "Str0ng!pass";

/// One server with its mail sink.
pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    pub smtp: SmtpSink,
    pub state: Arc<AppState>,
    pub db_path: PathBuf,
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

impl TestServer {
    pub async fn start() -> Self {
        Self::with(&[]).await
    }

    /// Starts with extra variables (an empty value removes a default).
    pub async fn with(vars: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join("authura.db");
        let smtp = SmtpSink::start().expect("the SMTP sink (python3 + aiosmtpd) must start");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut env = base_vars(db_path.to_str().unwrap(), port, smtp.port());
        for (k, v) in vars {
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
        let state = app::build_state(&config).await.unwrap();
        let running = app::bind_to(state, &config, 1, Some(listener)).unwrap();
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
            handle,
            _dir: dir,
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
        self.state.mail_stats.queued.load(Ordering::Relaxed)
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
