//! The binary serving: `serve --dev`, secret-free logs at every level, JSON logs, graceful shutdown.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use authura_testkit::smtp::{ReceivedMail, SinkOptions, SinkTls, SmtpSink};
use serde_json::{Value, json};

use crate::cli::{GOOD, good_without};

const BIN: &str = env!("CARGO_BIN_EXE_authura");

pub(crate) struct Proc {
    pub(crate) child: Child,
    pub(crate) port: u16,
    log: Arc<Mutex<String>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn spawn(args: &[&str], vars: &[(&str, &str)], dir: &std::path::Path) -> Proc {
    let port = free_port();
    let port_text = port.to_string();
    let mut all = args.to_vec();
    all.extend(["--host", "127.0.0.1", "--port", &port_text]);
    spawn_exactly(&all, vars, dir, port)
}

/// Starts the binary with exactly `args` and `vars` (nothing added); `port` is where it will
/// listen, as those say.
pub(crate) fn spawn_exactly(
    args: &[&str],
    vars: &[(&str, &str)],
    dir: &std::path::Path,
    port: u16,
) -> Proc {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().unwrap();
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let proc = Proc { child, port, log };
    proc.wait_for_log("authura started");
    proc
}

impl Proc {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Polls the captured log until it contains `needle`.
    pub(crate) fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(Instant::now() < deadline, "{needle:?} never logged:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap()
    }
}

pub(crate) async fn post(client: &reqwest::Client, url: String, body: Value) -> Value {
    let res = client.post(url).json(&body).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// Signs `email` up and returns the verification mail `sink` received.
pub(crate) async fn signup_mail(
    client: &reqwest::Client,
    proc: &Proc,
    sink: &SmtpSink,
    email: &str,
) -> ReceivedMail {
    post(client, proc.url("/signup"), json!({ "email": email })).await;
    sink.wait_for(email, Duration::from_secs(15)).await.unwrap()
}

/// The `token` parameter of a mailed link.
pub(crate) fn link_token(link: &str) -> String {
    url::Url::parse(link)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "token")
        .unwrap()
        .1
        .into_owned()
}

pub(crate) fn dev_link(log: &str) -> String {
    let at = log.rfind("token=").expect("a link in the log");
    log[at + 6..]
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_'))
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn serve_dev_needs_no_configuration_and_keeps_its_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let access = {
        let proc = spawn(&["serve", "--dev"], &[], dir.path());
        let log = proc.log();
        assert!(
            log.contains(&format!(
                "sign up at http://localhost:{}/form?action=signup",
                proc.port
            )),
            "{log}"
        );
        post(
            &client,
            proc.url("/signup"),
            json!({"email": "dev@example.com"}),
        )
        .await;
        let log = proc.wait_for_log("dev@example.com");
        let token = dev_link(&log);
        let v = post(
            &client,
            proc.url("/verify-email"),
            json!({"token": token, "password": "Str0ng!pass"}),
        )
        .await;
        v["tokens"]["access_token"].as_str().unwrap().to_owned()
    };
    let secrets = dir.path().join(".authura-dev-secrets");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(dir.path().join("authura.db").is_file());
    // A restart reuses the secrets and the database: the earlier token still works.
    let proc = spawn(&["serve", "--dev"], &[], dir.path());
    let me = client
        .get(proc.url("/user"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
}

#[tokio::test]
async fn logs_never_contain_secrets_at_any_level() {
    let dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start_with(SinkOptions {
        tls: SinkTls::StartTls,
        auth: Some(("mailer".into(), "smtp-Pa55word-xyz".into())),
    })
    .unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, sink.ca_pem().unwrap()).unwrap();
    let smtp_port = sink.port().to_string();
    let mut vars = good_without("MAIL_HOST");
    vars.extend([
        ("MAIL_HOST", "localhost"),
        ("MAIL_PORT", smtp_port.as_str()),
        ("MAIL_TLS", "starttls"),
        ("MAIL_USER", "mailer"),
        ("MAIL_PASS", "smtp-Pa55word-xyz"),
        ("MAIL_FROM", "auth@example.com"),
        ("EXTRA_CA_FILE", ca.to_str().unwrap()),
        ("SQLITE_INITIAL_USER", "root@example.com"),
        ("SQLITE_INITIAL_USER_PASSWORD", "Initial-Adm1n-pw"),
        ("LOG_FORMAT", "json"),
        ("IMPERSONATION_ENABLED", "true"),
        // The most revealing filter an operator could set, naming the leaky target itself.
        (
            "RUST_LOG",
            "trace,lettre=trace,lettre::transport::smtp::client::async_connection=trace",
        ),
    ]);
    let mut proc = spawn(&["serve"], &vars, dir.path());
    let client = reqwest::Client::new();
    let mail = signup_mail(&client, &proc, &sink, "ann@example.com").await;
    assert!(mail.tls && mail.auth_user.as_deref() == Some("mailer"));
    let link = mail.link().unwrap();
    let verify_token = link_token(&link);
    let page = client.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let v = post(
        &client,
        proc.url("/verify-email"),
        json!({"token": verify_token, "password": "User-Passw0rd!"}),
    )
    .await;
    let t = post(
        &client,
        proc.url("/token"),
        json!({"email": "ann@example.com", "password": "User-Passw0rd!"}),
    )
    .await;
    let r = post(
        &client,
        proc.url("/refresh"),
        json!({"refresh_token": t["refresh_token"]}),
    )
    .await;
    let wrong = client
        .post(proc.url("/token"))
        .json(&json!({"email": "ann@example.com", "password": "Wrong-Passw0rd!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let me = client
        .get(proc.url("/user"))
        .bearer_auth(r["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    // An impersonation leaves an INFO line naming both users.
    let admin = post(
        &client,
        proc.url("/token"),
        json!({"email": "root@example.com", "password": "Initial-Adm1n-pw"}),
    )
    .await;
    let imp = client
        .post(proc.url("/token"))
        .bearer_auth(admin["access_token"].as_str().unwrap())
        .json(&json!({"email": "ann@example.com", "password": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(imp.status(), 200);
    let imp: Value = imp.json().await.unwrap();
    // The impersonation's audit event (SPEC §11), logged under `authura::audit`.
    let needle = r#""event":"impersonation.started""#;
    let audit = proc.wait_for_log(needle);
    let line = audit.lines().find(|l| l.contains(needle)).unwrap();
    let line: Value = serde_json::from_str(line).unwrap();
    assert_eq!(
        (
            line["level"].as_str(),
            line["target"].as_str(),
            line["actor_id"].as_str(),
            line["user_id"].as_str()
        ),
        (Some("INFO"), Some("authura::audit"), Some("1"), Some("2"))
    );
    assert_eq!(proc.terminate().code(), Some(0));

    let log = proc.log();
    assert!(
        log.contains("authura started") && log.lines().count() > 10,
        "{log}"
    );
    for line in log.lines() {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "LOG_FORMAT=json, but: {line}"
        );
    }
    let mut secrets: Vec<String> = GOOD
        .iter()
        .filter(|(k, _)| k.starts_with("JWT"))
        .map(|(_, v)| (*v).to_owned())
        .collect();
    secrets.extend(
        [
            "smtp-Pa55word-xyz",
            "Initial-Adm1n-pw",
            "User-Passw0rd!",
            "Wrong-Passw0rd!",
            "$argon2id$",
        ]
        .map(String::from),
    );
    secrets.push(verify_token);
    for tokens in [&v["tokens"], &t, &r, &admin, &imp] {
        secrets.push(tokens["access_token"].as_str().unwrap().to_owned());
        secrets.push(tokens["refresh_token"].as_str().unwrap().to_owned());
    }
    // Signatures alone must not leak either (a token split across fields).
    let sigs: Vec<String> = secrets
        .iter()
        .filter_map(|s| s.rsplit_once('.').map(|(_, sig)| sig.to_owned()))
        .filter(|s| s.len() > 20)
        .collect();
    // SMTP AUTH PLAIN carries the password base64-encoded.
    use base64::Engine as _;
    let auth_plain =
        base64::engine::general_purpose::STANDARD.encode("\0mailer\0smtp-Pa55word-xyz");
    for secret in secrets.iter().chain(&sigs).chain([&auth_plain]) {
        assert!(
            !log.contains(secret.as_str()),
            "the log contains a secret ({}…):\n{log}",
            &secret[..secret.len().min(12)]
        );
    }
}

#[test]
fn sigterm_finishes_in_flight_requests_then_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut vars = GOOD.to_vec();
    vars.push(("RUST_LOG", "info,authura_server=debug"));
    let mut proc = spawn(&["serve"], &vars, dir.path());
    let mut conn = TcpStream::connect(("127.0.0.1", proc.port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // A request whose body is still arriving when the signal comes…
    let body = br#"{"email": "late@example.com"}"#;
    write!(
        conn,
        "POST /signup HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    conn.write_all(&body[..10]).unwrap();
    conn.flush().unwrap();
    // …once the server is inside it (a connection whose request has not been read yet is
    // idle, and an idle connection is closed at shutdown, as HTTP allows).
    proc.wait_for_log("request started method=POST path=/signup");
    Command::new("kill")
        .args(["-TERM", &proc.child.id().to_string()])
        .status()
        .unwrap();
    proc.wait_for_log("SIGTERM");
    conn.write_all(&body[10..]).unwrap();
    let mut response = String::new();
    let _ = conn.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("{}"), "{response}");
    assert_eq!(proc.child.wait().unwrap().code(), Some(0));
    // New connections are refused once it has stopped.
    assert!(TcpStream::connect(("127.0.0.1", proc.port)).is_err());
}

#[tokio::test]
async fn postgres_down_at_startup_answers_503_then_recovers() {
    use authura_testkit::postgres::{Cluster, Database};
    let cluster = Cluster::start().unwrap();
    let db = Database::create(&cluster.url()).await;
    cluster.stop().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut vars = GOOD.to_vec();
    vars.extend([
        ("AUTH_BACKEND", "postgres"),
        ("POSTGRES_DSN", db.url.as_str()),
        ("POSTGRES_INITIAL_USER", "root@example.com"),
        ("POSTGRES_INITIAL_USER_PASSWORD", "Initial-Adm1n-pw"),
    ]);
    // It listens at once, although PostgreSQL is down…
    let proc = spawn(&["serve"], &vars, dir.path());
    let client = reqwest::Client::new();
    let status = |path: &'static str| {
        let (client, url) = (client.clone(), proc.url(path));
        async move { client.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status("/healthz").await, 200);
    let ready = client.get(proc.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(
        ready.json::<Value>().await.unwrap()["error"],
        "backend_unavailable"
    );
    let login = json!({"email": "root@example.com", "password": "Initial-Adm1n-pw"});
    let res = client
        .post(proc.url("/token"))
        .json(&login)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    proc.wait_for_log("postgres is not reachable; retrying");
    // …and serves once it is up, without a restart, having created the initial user.
    cluster.start_again().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while status("/readyz").await != 200 {
        assert!(
            Instant::now() < deadline,
            "never became ready:\n{}",
            proc.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // As generous as readiness: on a loaded machine (CI runs the suite two tests at a time) the
    // initial user's Argon2id hash may wait for a core.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let res = client
            .post(proc.url("/token"))
            .json(&login)
            .send()
            .await
            .unwrap();
        if res.status() == 200 {
            break;
        }
        // The initial user is created right after the connection; allow for that moment.
        assert!(
            Instant::now() < deadline,
            "login never worked: {}\n{}",
            res.status(),
            proc.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `kid` in a token's header.
pub(crate) fn header_kid(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// The hashing threads of a running server, by name.
fn hashing_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|name| name.starts_with("authura-hash-"))
        })
        .count()
}

/// The hashing threads once `expected` of them are named, or what is there after 10 s: a thread
/// names itself after it starts, so a count taken at once can miss the last one.
fn settled_hashing_threads(pid: u32, expected: usize) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let n = hashing_threads(pid);
        if n == expected || std::time::Instant::now() >= deadline {
            return n;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn hash_threads_sets_the_size_of_the_hashing_pool() {
    let dir = tempfile::tempdir().unwrap();
    let cores = std::thread::available_parallelism().unwrap().get();
    let proc = spawn(&["serve"], GOOD, dir.path());
    assert_eq!(settled_hashing_threads(proc.child.id(), cores), cores);
    drop(proc);
    let mut vars = GOOD.to_vec();
    vars.push(("HASH_THREADS", "3"));
    let proc = spawn(&["serve"], &vars, dir.path());
    assert_eq!(settled_hashing_threads(proc.child.id(), 3), 3);
}
