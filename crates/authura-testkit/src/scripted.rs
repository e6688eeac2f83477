//! A real HTTP/1.1 server on 127.0.0.1 that answers every request as scripted (status, body,
//! delay) and records what it received: the stand-in for webhooks and other HTTP peers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}{path}", listener.local_addr()?);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(Mutex::new(answer));
        let (log, script) = (Arc::clone(&seen), Arc::clone(&answer));
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let (log, script) = (Arc::clone(&log), Arc::clone(&script));
                tokio::spawn(async move {
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

async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<(String, String)> {
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
