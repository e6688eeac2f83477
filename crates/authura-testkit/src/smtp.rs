//! A real SMTP server catching mail for tests: Python's aiosmtpd in a child process, plain,
//! STARTTLS or implicit TLS (with a throwaway CA), optionally requiring AUTH.
//!
//! The server (`smtp_sink.py`, embedded here) writes every message it accepts as a JSON file in
//! a temporary directory; [`SmtpSink::wait_for`] polls that directory. Any crate's tests can
//! start one:
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::time::Duration;
//! let sink = authura_testkit::smtp::SmtpSink::start()?;
//! // ... point the code under test at 127.0.0.1:sink.port(), make it send a mail ...
//! let mail = sink.wait_for("alice@example.com", Duration::from_secs(10)).await?;
//! let link = mail.link();
//! # Ok(()) }
//! ```

use std::collections::HashSet;
use std::fs;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde::Deserialize;
use tempfile::TempDir;

/// How the sink secures its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkTls {
    /// Plain SMTP (what a local relay speaks).
    None,
    /// Plain SMTP that requires `STARTTLS` before `MAIL`.
    StartTls,
    /// TLS from the first byte (SMTPS, as on port 465).
    Implicit,
}

/// What kind of server to start.
#[derive(Clone, Debug)]
pub struct SinkOptions {
    /// Connection security.
    pub tls: SinkTls,
    /// `Some((user, password))`: AUTH (PLAIN or LOGIN) with exactly these is required.
    pub auth: Option<(String, String)>,
}

/// A running SMTP server that keeps every message it accepts. Dropping it kills the server.
#[derive(Debug)]
pub struct SmtpSink {
    child: Mutex<Child>,
    port: u16,
    ca_pem: Option<Vec<u8>>,
    mail_dir: PathBuf,
    log_path: PathBuf,
    /// Files already handed out by `wait_for`.
    taken: Mutex<HashSet<String>>,
    // Last: the directory goes once the server is dead.
    _dir: TempDir,
}

/// A message as the sink received it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ReceivedMail {
    /// Envelope recipients (`RCPT TO`).
    pub to: Vec<String>,
    /// The `From` header.
    pub from: String,
    /// The decoded `Subject` header.
    pub subject: String,
    /// The decoded `text/plain` part (empty if none), with `\n` line ends.
    pub text: String,
    /// The decoded `text/html` part (empty if none), with `\n` line ends.
    pub html: String,
    /// The whole message as transmitted.
    pub raw: String,
    /// The envelope sender (`MAIL FROM`).
    pub mail_from: String,
    /// Whether the message came over TLS (implicit, or after `STARTTLS`).
    pub tls: bool,
    /// The user the client authenticated as, if it did.
    pub auth_user: Option<String>,
}

impl ReceivedMail {
    /// The first `http://` or `https://` URL in the text part, without trailing punctuation.
    pub fn link(&self) -> Option<String> {
        first_link(&self.text)
    }
}

impl SmtpSink {
    /// Starts a plain SMTP server without AUTH.
    ///
    /// # Errors
    /// When python3 or its `aiosmtpd` module is missing (the message says what to install), or
    /// the server does not come up.
    pub fn start() -> anyhow::Result<SmtpSink> {
        SmtpSink::start_with(SinkOptions {
            tls: SinkTls::None,
            auth: None,
        })
    }

    /// Starts a server with the given security and AUTH requirement. For TLS modes a fresh CA
    /// and a certificate for `localhost` and `127.0.0.1` are generated ([`SmtpSink::ca_pem`]).
    ///
    /// # Errors
    /// As [`SmtpSink::start`].
    pub fn start_with(opts: SinkOptions) -> anyhow::Result<SmtpSink> {
        let dir = tempfile::Builder::new()
            .prefix("authura-smtp-sink-")
            .tempdir()
            .context("creating the smtp sink's directory")?;
        let script = dir.path().join("smtp_sink.py");
        fs::write(&script, SCRIPT).context("writing smtp_sink.py")?;
        let mail_dir = dir.path().join("mail");
        fs::create_dir(&mail_dir).context("creating the smtp sink's mail directory")?;
        let log_path = dir.path().join("sink.log");
        let log = fs::File::create(&log_path).context("creating the smtp sink's log")?;

        let mut command = Command::new(PYTHON);
        command.arg(&script).arg("--dir").arg(&mail_dir);
        let mut ca_pem = None;
        if opts.tls != SinkTls::None {
            let certs = crate::tls::make_certificates("authura test ca")?;
            let cert_path = dir.path().join("cert.pem");
            let key_path = dir.path().join("key.pem");
            fs::write(&cert_path, &certs.chain_pem).context("writing the sink's certificate")?;
            fs::write(&key_path, &certs.key_pem).context("writing the sink's key")?;
            let mode = if opts.tls == SinkTls::StartTls {
                "starttls"
            } else {
                "implicit"
            };
            command
                .args(["--tls", mode])
                .arg("--cert")
                .arg(cert_path)
                .arg("--key")
                .arg(key_path);
            ca_pem = Some(certs.ca_pem.into_bytes());
        }
        if let Some((user, password)) = &opts.auth {
            command.args(["--auth-user", user, "--auth-password", password]);
        }
        // stdin stays open for the server's life: it exits when it reads end of file, so it
        // never outlives this process even when the test binary is killed.
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));

        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                bail!("{PYTHON} not found on PATH; the smtp sink needs it: {INSTALL_HINT}")
            }
            Err(e) => return Err(anyhow!(e).context(format!("starting {PYTHON} smtp_sink.py"))),
        };
        match read_ready_port(&mut child) {
            Ok(port) => Ok(SmtpSink {
                child: Mutex::new(child),
                port,
                ca_pem,
                mail_dir,
                log_path,
                taken: Mutex::new(HashSet::new()),
                _dir: dir,
            }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(startup_error(e, &log_path))
            }
        }
    }

    /// The port the server listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The PEM of the CA the server's certificate chains to (TLS modes only).
    pub fn ca_pem(&self) -> Option<Vec<u8>> {
        self.ca_pem.clone()
    }

    /// Every message received so far, oldest first.
    ///
    /// # Panics
    /// When the sink's directory cannot be read (a harness bug: messages are written atomically).
    pub fn messages(&self) -> Vec<ReceivedMail> {
        match self.read_messages() {
            Ok(all) => all.into_iter().map(|(_, mail)| mail).collect(),
            Err(e) => panic!("smtp sink: {e:#}"),
        }
    }

    /// Waits for the oldest message to `to` (an envelope recipient, compared case-insensitively)
    /// that no earlier `wait_for` returned, polling the sink's directory.
    ///
    /// # Errors
    /// When none arrives within `timeout` (the message lists what did arrive), or the server died.
    pub async fn wait_for(&self, to: &str, timeout: Duration) -> anyhow::Result<ReceivedMail> {
        let deadline = Instant::now() + timeout;
        loop {
            let all = self.read_messages()?;
            {
                let mut taken = self
                    .taken
                    .lock()
                    .map_err(|_| anyhow!("smtp sink lock poisoned"))?;
                let found = all.iter().find(|(name, mail)| {
                    !taken.contains(name) && mail.to.iter().any(|r| r.eq_ignore_ascii_case(to))
                });
                if let Some((name, mail)) = found {
                    taken.insert(name.clone());
                    return Ok(mail.clone());
                }
            }
            self.check_alive()?;
            if Instant::now() >= deadline {
                let seen: Vec<String> = all
                    .iter()
                    .map(|(_, m)| format!("{:?} to {:?}", m.subject, m.to))
                    .collect();
                bail!("no new mail to {to} within {timeout:?}; received so far: {seen:?}");
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Reads the message files, oldest first, with their file names.
    fn read_messages(&self) -> anyhow::Result<Vec<(String, ReceivedMail)>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.mail_dir).context("reading the smtp sink's directory")? {
            let name = entry
                .context("reading the smtp sink's directory")?
                .file_name();
            let name = name.to_string_lossy().into_owned();
            // Temporary files start with a dot; finished ones are renamed into place.
            if name.ends_with(".json") && !name.starts_with('.') {
                names.push(name);
            }
        }
        names.sort();
        names
            .into_iter()
            .map(|name| {
                let path = self.mail_dir.join(&name);
                let json =
                    fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                let mail = serde_json::from_slice(&json)
                    .with_context(|| format!("parsing {}", path.display()))?;
                Ok((name, mail))
            })
            .collect()
    }

    /// Fails with the server's log when it has exited.
    fn check_alive(&self) -> anyhow::Result<()> {
        let mut child = self
            .child
            .lock()
            .map_err(|_| anyhow!("smtp sink lock poisoned"))?;
        if let Some(status) = child.try_wait().context("checking the smtp sink")? {
            bail!(
                "the smtp sink exited ({status}); its log:\n{}",
                read_log(&self.log_path)
            );
        }
        Ok(())
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let child = match self.child.get_mut() {
            Ok(child) => child,
            Err(poisoned) => poisoned.into_inner(),
        };
        let _ = child.kill();
        let _ = child.wait();
    }
}

const SCRIPT: &str = include_str!("../smtp_sink.py");
const PYTHON: &str = "python3";
const INSTALL_HINT: &str = "install python3 and the aiosmtpd module (`python3 -m pip install \
                            aiosmtpd`, or Debian's `apt-get install python3-aiosmtpd`); \
                            `cargo xtask test` installs it";
/// Generous: a cold Python start on a loaded CI machine can take seconds.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Reads the `READY <port>` line the script prints once it listens.
fn read_ready_port(child: &mut Child) -> anyhow::Result<u16> {
    let stdout = child
        .stdout
        .take()
        .context("the smtp sink's stdout is not piped")?;
    let (tx, rx) = mpsc::channel();
    // A thread, because std pipes have no read timeout; it ends at the child's end of file.
    thread::spawn(move || {
        let mut line = String::new();
        let result = BufReader::new(stdout).read_line(&mut line).map(|_| line);
        let _ = tx.send(result);
    });
    let line = match rx.recv_timeout(START_TIMEOUT) {
        Ok(line) => line.context("reading the smtp sink's readiness line")?,
        Err(_) => bail!("the smtp sink did not report readiness within {START_TIMEOUT:?}"),
    };
    let port = line
        .trim()
        .strip_prefix("READY ")
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|p| *p != 0);
    match port {
        Some(port) => Ok(port),
        None if line.is_empty() => bail!("the smtp sink exited before it was ready"),
        None => bail!("unexpected readiness line from the smtp sink: {line:?}"),
    }
}

/// Turns a failed start into an error that says what to do.
fn startup_error(error: anyhow::Error, log_path: &Path) -> anyhow::Error {
    let log = read_log(log_path);
    if log.contains("No module named 'aiosmtpd'") {
        anyhow!("{PYTHON} cannot import aiosmtpd; the smtp sink needs it: {INSTALL_HINT}")
    } else {
        error.context(format!("starting the smtp sink; its log:\n{log}"))
    }
}

fn read_log(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| format!("[cannot read {}: {e}]", path.display()))
}

fn first_link(text: &str) -> Option<String> {
    let start = ["https://", "http://"]
        .iter()
        .filter_map(|scheme| text.find(scheme))
        .min()?;
    let rest = &text[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\''))
        .unwrap_or(rest.len());
    let link = rest[..end].trim_end_matches(['.', ',', ';', ':', '!', '?', ')', ']']);
    Some(link.to_owned())
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
    use tokio::net::tcp::OwnedReadHalf;

    use super::*;

    /// Reads one (possibly multi-line) SMTP reply and checks its code.
    async fn expect(lines: &mut Lines<BufReader<OwnedReadHalf>>, code: &str) -> anyhow::Result<()> {
        loop {
            let line = lines.next_line().await?.context("server closed")?;
            anyhow::ensure!(line.starts_with(code), "expected {code}, got {line:?}");
            if line.as_bytes().get(3) == Some(&b' ') {
                return Ok(());
            }
        }
    }

    fn check_link(text: &str, expected: Option<&str>) {
        assert_eq!(first_link(text).as_deref(), expected, "text {text:?}");
    }

    #[test]
    fn links() {
        check_link("no link here", None);
        check_link(
            "Open\nhttps://a.example/form?action=verify-email&token=x.y-z_1\nsoon",
            Some("https://a.example/form?action=verify-email&token=x.y-z_1"),
        );
        check_link(
            "see http://localhost:9000/a.",
            Some("http://localhost:9000/a"),
        );
        check_link("(http://x/a) and https://y/b", Some("http://x/a"));
        check_link("first https://y/b then http://x/a", Some("https://y/b"));
        check_link("<a href=\"https://z/c\">", Some("https://z/c"));
    }

    #[tokio::test]
    async fn catches_a_message_sent_by_a_real_client() -> anyhow::Result<()> {
        let sink = SmtpSink::start()?;
        // A hand-written SMTP dialogue: the sink must work with any client, not just lettre.
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", sink.port())).await?;
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        expect(&mut lines, "220").await?;
        for (command, code) in [
            ("EHLO test\r\n", "250"),
            ("MAIL FROM:<from@example.com>\r\n", "250"),
            ("RCPT TO:<Bob@Example.com>\r\n", "250"),
            ("DATA\r\n", "354"),
            (
                "From: From <from@example.com>\r\nTo: bob@example.com\r\nSubject: hi\r\n\r\n\
                 go to https://example.com/x?a=1&b=2 now\r\n.\r\n",
                "250",
            ),
            ("QUIT\r\n", "221"),
        ] {
            write.write_all(command.as_bytes()).await?;
            expect(&mut lines, code).await?;
        }

        let mail = sink
            .wait_for("bob@example.com", Duration::from_secs(10))
            .await?;
        assert_eq!(mail.to, ["Bob@Example.com"]);
        assert_eq!(mail.from, "From <from@example.com>");
        assert_eq!(mail.mail_from, "from@example.com");
        assert_eq!(mail.subject, "hi");
        assert_eq!(
            mail.link().as_deref(),
            Some("https://example.com/x?a=1&b=2")
        );
        assert!(!mail.tls);
        assert_eq!(mail.auth_user, None);
        assert_eq!(sink.messages(), [mail]);

        // Already handed out: a second wait finds nothing new.
        let err = sink
            .wait_for("bob@example.com", Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("no new mail to bob@example.com"),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn tls_modes_have_a_ca_and_plain_has_none() -> anyhow::Result<()> {
        assert!(SmtpSink::start()?.ca_pem().is_none());
        let sink = SmtpSink::start_with(SinkOptions {
            tls: SinkTls::Implicit,
            auth: None,
        })?;
        let pem = String::from_utf8(sink.ca_pem().context("no ca")?)?;
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
        Ok(())
    }
}
