//! Faults of the services around Authura (issue 19), each made real: an SMTP relay that is
//! down, never answers or refuses the mail; a hook that is slow or gone; the SQLite file's
//! filesystem full (a real tmpfs, mounted for the test). PostgreSQL killed under traffic is in
//! `postgres.rs`, the process killed mid-signup in the binary's `kill.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use authura_testkit::scripted::{Answer, Scripted};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;

use crate::harness::{PW, ROOT, ROOT_PW, TestServer, s};

/// Polls `check` every 20 ms; fails naming `what` after `bound`.
async fn wait_until<F, Fut>(what: &str, bound: Duration, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + bound;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of `authura_mail_total{result="<result>"}` in `srv`'s `/metrics`.
async fn mail_metric(srv: &TestServer, result: &str) -> u64 {
    let text = srv.get("/metrics", None).await.text;
    let prefix = format!("authura_mail_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix)?.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in /metrics:\n{text}"))
}

// ---------------------------------------------------------------------------------------------
// SMTP

/// How a relay misbehaves.
#[derive(Clone, Copy, Debug)]
enum Relay {
    /// Nothing listens on the port.
    Down,
    /// Accepts the connection and never says a word.
    Silent,
    /// Greets, then refuses every recipient (550).
    Refusing,
}

/// A port where `relay` misbehaves; the listener lives as long as the test's runtime.
async fn relay(relay: Relay) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    match relay {
        Relay::Down => drop(listener),
        Relay::Silent => {
            tokio::spawn(async move {
                let mut held = Vec::new();
                while let Ok((sock, _)) = listener.accept().await {
                    held.push(sock);
                }
            });
        }
        Relay::Refusing => {
            tokio::spawn(async move {
                while let Ok((sock, _)) = listener.accept().await {
                    tokio::spawn(refuse_recipients(sock));
                }
            });
        }
    }
    port
}

/// An SMTP conversation that accepts everything but the recipients.
async fn refuse_recipients(sock: tokio::net::TcpStream) {
    let (read, mut write) = sock.into_split();
    let mut lines = BufReader::new(read).lines();
    let _ = write.write_all(b"220 refusing.test ESMTP\r\n").await;
    while let Ok(Some(line)) = lines.next_line().await {
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 refusing.test\r\n",
            "RCPT" => b"550 5.1.1 mailbox unavailable\r\n",
            "QUIT" => {
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            }
            _ => b"250 OK\r\n",
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}

/// With the relay down, silent or refusing, every answer is what it is with a working relay
/// (mail goes out after the response), and each mail is counted as failed in `/metrics`, none
/// as sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_down_silent_or_refusing_changes_no_answer_and_counts_the_mail_failed() {
    let healthy = TestServer::with(&[("METRICS_ENABLED", "true")]).await;
    let expected = answers(&healthy).await;
    healthy.mail_to("new@example.com").await;
    healthy.mail_to(ROOT).await;

    let faults = [Relay::Down, Relay::Silent, Relay::Refusing];
    let runs = faults.map(|fault| async move {
        let port = relay(fault).await.to_string();
        let srv = TestServer::with(&[("METRICS_ENABLED", "true"), ("MAIL_PORT", &port)]).await;
        let got = answers(&srv).await;
        let stats = srv.state.mail_stats();
        if let Relay::Silent = fault {
            // The answers came while the relay had not said a word: nothing waited for it.
            assert_eq!(stats.sent.load(Ordering::Relaxed), 0);
            assert_eq!(stats.failed.load(Ordering::Relaxed), 0);
        }
        // The relay's exchange times out after 10 s at most.
        wait_until(
            "both mails counted as failed",
            Duration::from_secs(40),
            || async { stats.failed.load(Ordering::Relaxed) >= 2 },
        )
        .await;
        assert_eq!(
            (
                mail_metric(&srv, "failed").await,
                mail_metric(&srv, "sent").await
            ),
            (2, 0),
            "{fault:?}"
        );
        // The service still serves while its mail fails.
        srv.login(ROOT, ROOT_PW).await;
        srv.get("/readyz", None).await.ok();
        (fault, got)
    });
    for (fault, got) in futures_util::future::join_all(runs).await {
        assert_eq!(got, expected, "answers with the relay {fault:?}");
    }
}

/// What a client sees for a signup and a reset (of an existing and an unknown address).
async fn answers(srv: &TestServer) -> Vec<(u16, Value)> {
    let mut got = Vec::new();
    for (path, email) in [
        ("/signup", "new@example.com"),
        ("/reset-password", ROOT),
        ("/reset-password", "nobody@example.com"),
    ] {
        let r = srv.post(path, json!({ "email": email })).await;
        got.push((r.status, r.body.clone()));
    }
    got
}

// ---------------------------------------------------------------------------------------------
// Hooks

/// A hook that answers too late fails its requests with 502 `hook_failed` after
/// `HOOK_TIMEOUT` (docs/configuration.md, `HOOK_URL`), while the process keeps serving what
/// needs no hook; once it answers again, so does the service. A hook that is gone (nothing
/// listening) is 502 `hook_failed` too, and its refused write leaves nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_or_gone_hook_fails_its_requests_502_and_the_service_keeps_serving() {
    let hook = Scripted::start("/hook", Answer::new(200, "{}"))
        .await
        .unwrap();
    let srv = std::sync::Arc::new(
        TestServer::with(&[("HOOK_URL", hook.url.as_str()), ("HOOK_TIMEOUT", "2s")]).await,
    );
    let access = s(&srv.login(ROOT, ROOT_PW).await["access_token"]).to_owned();
    let calls_before = hook.seen().len();

    hook.answer(Answer {
        delay: Duration::from_secs(120),
        ..Answer::new(200, "{}")
    });
    const WAITING: usize = 8;
    let pending: Vec<_> = (0..WAITING)
        .map(|_| {
            let (srv, access) = (std::sync::Arc::clone(&srv), access.clone());
            tokio::spawn(async move { srv.get("/user", Some(&access)).await })
        })
        .collect();
    wait_until(
        "every request waiting on the hook",
        Duration::from_secs(20),
        || async { hook.seen().len() >= calls_before + WAITING },
    )
    .await;
    // Meanwhile: health, readiness, keys and a refused login answer.
    srv.get("/healthz", None).await.ok();
    srv.get("/readyz", None).await.ok();
    srv.get("/.well-known/jwks.json", None).await.ok();
    srv.post(
        "/token",
        json!({"email": ROOT, "password": "Wr0ng!password"}),
    )
    .await
    .expect(401, "invalid_credentials");
    for r in pending {
        r.await.unwrap().expect(502, "hook_failed");
    }
    hook.answer(Answer::new(200, r#"{"plan": "pro"}"#));
    let me = srv.get("/user", Some(&access)).await;
    assert_eq!(me.ok()["user"]["hook_data"], json!({"plan": "pro"}));

    // Gone: nothing listens where the hook was.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone_url = format!(
        "http://127.0.0.1:{}/hook",
        gone.local_addr().unwrap().port()
    );
    drop(gone);
    let srv = TestServer::with(&[("HOOK_URL", gone_url.as_str()), ("HOOK_TIMEOUT", "2s")]).await;
    srv.post("/token", json!({"email": ROOT, "password": ROOT_PW}))
        .await
        .expect(502, "hook_failed");
    srv.post("/signup", json!({"email": "gone@example.com"}))
        .await
        .ok();
    let token = TestServer::token_in(&srv.mail_to("gone@example.com").await);
    srv.post("/verify-email", json!({"token": token, "password": PW}))
        .await
        .expect(502, "hook_failed");
    srv.get("/healthz", None).await.ok();
    srv.get("/readyz", None).await.ok();
    // The failed create_or_update_user wrote nothing.
    assert!(
        srv.state
            .ctx()
            .store
            .find_by_email(
                None,
                &authura_core::types::Email::parse("gone@example.com").unwrap()
            )
            .await
            .unwrap()
            .is_none()
    );
}

// ---------------------------------------------------------------------------------------------
// SQLite on a full disk

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped. Mounting needs root
/// (`.ci/run` runs as root; elsewhere `sudo -n` is tried): when it fails, the test fails saying
/// so; it is never skipped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

/// `program` as root: directly when this process is root, else through `sudo -n`.
fn as_root(program: &str) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if root {
        Command::new(program)
    } else {
        let mut cmd = Command::new("sudo");
        cmd.args(["-n", program]);
        cmd
    }
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = as_root("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=1777"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .expect("the disk-full test runs `mount` (util-linux)");
        assert!(
            out.status.success(),
            "the disk-full test needs a real full filesystem: `mount -t tmpfs` failed (run the \
             suite as root, as .ci/run does, or with password-less sudo): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the filesystem holding `dir` to the last page; returns the filler file.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write as _;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0xA5_u8; 4096];
    loop {
        match file.write_all(&block).and_then(|()| file.sync_data()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    path
}

/// With the SQLite file's filesystem full, `/readyz` and every write answer 503
/// `backend_unavailable` while reads (logins, `/user`, `/refresh`) are still served; once
/// space is freed the same process is ready again and the refused writes can be made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_makes_sqlite_writes_and_readyz_503_while_reads_are_served() {
    let disk = Tmpfs::mount("8m");
    let db = disk.path().join("authura.db");
    let srv = TestServer::on(None, None, &[("SQLITE_DB_PATH", db.to_str().unwrap())]).await;
    let ann = srv.sign_up("ann@example.com", PW).await;
    let access = s(&ann["tokens"]["access_token"]).to_owned();
    let refresh = s(&ann["tokens"]["refresh_token"]).to_owned();
    srv.post("/signup", json!({"email": "bob@example.com"}))
        .await
        .ok();
    let bob_link = TestServer::token_in(&srv.mail_to("bob@example.com").await);
    srv.get("/readyz", None).await.ok();

    let filler = fill(disk.path());
    srv.get("/readyz", None)
        .await
        .expect(503, "backend_unavailable");
    // Writes: a new user, a password change.
    srv.post("/verify-email", json!({"token": bob_link, "password": PW}))
        .await
        .expect(503, "backend_unavailable");
    srv.post_as(
        "/change-password",
        &access,
        json!({"old_password": PW, "new_password": "N3w!password"}),
    )
    .await
    .expect(503, "backend_unavailable");
    // Reads.
    srv.get("/healthz", None).await.ok();
    srv.login("ann@example.com", PW).await;
    srv.login(ROOT, ROOT_PW).await;
    assert_eq!(
        srv.get("/user", Some(&access)).await.ok()["user"]["email"],
        "ann@example.com"
    );
    srv.post("/refresh", json!({"refresh_token": refresh}))
        .await
        .ok();
    srv.post(
        "/token",
        json!({"email": "bob@example.com", "password": PW}),
    )
    .await
    .expect(401, "invalid_credentials");

    // Space again: ready, and the refused writes go through.
    std::fs::remove_file(filler).unwrap();
    srv.get("/readyz", None).await.ok();
    srv.post("/verify-email", json!({"token": bob_link, "password": PW}))
        .await
        .ok();
    srv.post_as(
        "/change-password",
        &access,
        json!({"old_password": PW, "new_password": "N3w!password"}),
    )
    .await
    .ok();
    srv.login("bob@example.com", PW).await;
    srv.login("ann@example.com", "N3w!password").await;
}
