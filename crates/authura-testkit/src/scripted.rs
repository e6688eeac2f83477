//! A real HTTP/1.1 server on 127.0.0.1 that answers every request as scripted (status, body,
//! delay) and records what it received: the stand-in for webhooks and other HTTP peers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// What the server answers: status, body, and a delay before answering.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
    pub content_type: String,
}

impl Answer {
    /// `status` with `body`, at once.
    pub fn new(status: u16, body: &str) -> Self {
        Answer {
            status,
            body: body.to_owned(),
            delay: Duration::ZERO,
            content_type: "application/json".into(),
        }
    }

    /// A 200 JavaScript answer (browsers only run scripts served as JavaScript).
    pub fn javascript(body: &str) -> Self {
        Answer {
            content_type: "text/javascript".into(),
            ..Answer::new(200, body)
        }
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The request line and headers.
    pub head: String,
    pub body: String,
}

/// A running scripted server; it stops with the test's runtime.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    answer: Arc<Mutex<Answer>>,
}

impl Scripted {
    /// Starts a server answering `answer` at `http://127.0.0.1:<port><path>`.
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn start(path: &str, answer: Answer) -> std::io::Result<Scripted> {
        Self::serve(path, answer, None).await
    }

    /// The same over HTTPS at `https://localhost:<port><path>`, with a certificate from a fresh
    /// CA; returns the CA's PEM, for `EXTRA_CA_FILE`.
    ///
    /// # Errors
    /// When no port can be bound or the certificates cannot be made.
    pub async fn start_tls(path: &str, answer: Answer) -> anyhow::Result<(Scripted, String)> {
        let certs = crate::tls::make_certificates("authura test https ca")?;
        let chain = rustls_pemfile::certs(&mut certs.chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()?;
        let key = rustls_pemfile::private_key(&mut certs.key_pem.as_bytes())?
            .ok_or_else(|| anyhow::anyhow!("no private key"))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let server = Self::serve(path, answer, Some(acceptor)).await?;
        Ok((server, certs.ca_pem))
    }

    async fn serve(
        path: &str,
        answer: Answer,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> std::io::Result<Scripted> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let url = match tls {
            Some(_) => format!("https://localhost:{port}{path}"),
            None => format!("http://127.0.0.1:{port}{path}"),
        };
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(Mutex::new(answer));
        let (log, script) = (Arc::clone(&seen), Arc::clone(&answer));
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let (log, script, tls) = (Arc::clone(&log), Arc::clone(&script), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(sock).await {
                                converse(stream, log, script).await;
                            }
                        }
                        None => converse(sock, log, script).await,
                    }
                });
            }
        });
        Ok(Scripted { url, seen, answer })
    }

    /// Answers `answer` from now on.
    pub fn answer(&self, answer: Answer) {
        *self
            .answer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = answer;
    }

    /// The requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Reads one request, records it, and answers as scripted.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    mut sock: S,
    log: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<Answer>>,
) {
    let Some((head, body)) = read_request(&mut sock).await else {
        return;
    };
    log.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(Seen { head, body });
    let answer = script
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    tokio::time::sleep(answer.delay).await;
    let reply = format!(
        "HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        answer.status,
        answer.content_type,
        answer.body.len(),
        answer.body
    );
    let _ = sock.write_all(reply.as_bytes()).await;
    let _ = sock.shutdown().await;
}

async fn read_request<S: AsyncRead + Unpin>(sock: &mut S) -> Option<(String, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((head, rest)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if rest.len() >= len {
                return Some((head.to_owned(), rest.to_owned()));
            }
        }
    }
}
