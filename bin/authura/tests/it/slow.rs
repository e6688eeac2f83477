//! Clients that stop sending (issue 19, defect 1), over raw TCP against the binary: a body cut
//! short, a chunked body that never ends and a head that dribbles in are answered 408 and
//! closed within their timeouts; meanwhile `/healthz` answers; and a SIGTERM is not held up by
//! them.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::cli::GOOD;
use crate::run::{Proc, spawn};

/// A body that says 100 bytes and sends 10.
fn cut_short(port: u16) -> TcpStream {
    let mut conn = connect(port);
    conn.write_all(
        b"POST /signup HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"email\": ",
    )
    .unwrap();
    conn
}

/// A chunked body that sends one chunk and never the last.
fn endless_chunks(port: u16) -> TcpStream {
    let mut conn = connect(port);
    conn.write_all(
        b"POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
          Transfer-Encoding: chunked\r\n\r\n5\r\n{\"ema\r\n",
    )
    .unwrap();
    conn
}

/// A head that stops before its blank line.
fn slow_head(port: u16) -> TcpStream {
    let mut conn = connect(port);
    conn.write_all(b"POST /signup HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1")
        .unwrap();
    conn
}

fn connect(port: u16) -> TcpStream {
    let conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // Long enough for any timeout under test; a server that never answers fails the read.
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    conn
}

/// Everything the server sends until it closes the connection.
#[track_caller]
fn answer(mut conn: TcpStream) -> String {
    let mut buf = Vec::new();
    match conn.read_to_end(&mut buf) {
        Ok(_) => {}
        // A reset after the answer (the server closed with our unread bytes pending) is fine.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !buf.is_empty() => {}
        Err(e) => panic!(
            "no answer and no close: {e} (read so far: {:?})",
            String::from_utf8_lossy(&buf)
        ),
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// `GET /healthz` on a fresh connection.
fn healthz(port: u16) -> String {
    let mut conn = connect(port);
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    answer(conn)
}

/// How many times the log says a request of `path` started.
fn started(proc: &Proc, path: &str) -> usize {
    proc.log()
        .matches(&format!("request started method=POST path={path}"))
        .count()
}

/// Waits until `n` requests of `path` are inside the server.
fn wait_started(proc: &Proc, path: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while started(proc, path) < n {
        assert!(
            Instant::now() < deadline,
            "{path} started {} times",
            started(proc, path)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn stalled_bodies_and_heads_are_answered_408_while_healthz_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut vars = GOOD.to_vec();
    vars.extend([
        ("REQUEST_TIMEOUT", "2s"),
        ("HEADER_TIMEOUT", "2s"),
        ("RUST_LOG", "info,authura_server=debug"),
    ]);
    let proc = spawn(&["serve"], &vars, dir.path());
    let began = Instant::now();
    let cut: Vec<_> = (0..4).map(|_| cut_short(proc.port)).collect();
    let chunked: Vec<_> = (0..4).map(|_| endless_chunks(proc.port)).collect();
    let heads: Vec<_> = (0..4).map(|_| slow_head(proc.port)).collect();
    wait_started(&proc, "/signup", 4);
    wait_started(&proc, "/token", 4);
    // Every stalled connection is still open, and the service answers others.
    let health = healthz(proc.port);
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    for conn in cut.into_iter().chain(chunked) {
        let res = answer(conn);
        assert!(res.starts_with("HTTP/1.1 408"), "{res}");
        assert!(res.contains("\"error\":\"invalid_body\""), "{res}");
        assert!(
            res.to_ascii_lowercase().contains("connection: close"),
            "{res}"
        );
    }
    for conn in heads {
        let res = answer(conn);
        assert!(res.starts_with("HTTP/1.1 408"), "{res}");
    }
    let took = began.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(10),
        "the stalled requests were cut off after {took:?}, with 2 s timeouts"
    );
    let health = healthz(proc.port);
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
}

#[test]
fn stalled_clients_do_not_hold_up_a_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let mut vars = GOOD.to_vec();
    // The default timeouts (10 s for a head, 20 s for a body): the shutdown must not wait them.
    vars.push(("RUST_LOG", "info,authura_server=debug"));
    let mut proc = spawn(&["serve"], &vars, dir.path());
    let cut: Vec<_> = (0..3).map(|_| cut_short(proc.port)).collect();
    let chunked: Vec<_> = (0..3).map(|_| endless_chunks(proc.port)).collect();
    let heads: Vec<_> = (0..3).map(|_| slow_head(proc.port)).collect();
    wait_started(&proc, "/signup", 3);
    wait_started(&proc, "/token", 3);

    let signalled = Instant::now();
    Command::new("kill")
        .args(["-TERM", &proc.child.id().to_string()])
        .status()
        .unwrap();
    let status = proc.child.wait().unwrap();
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(0));
    assert!(took < Duration::from_secs(6), "the shutdown took {took:?}");
    // The requests whose body never came were answered, not dropped.
    for conn in cut.into_iter().chain(chunked) {
        let res = answer(conn);
        assert!(res.starts_with("HTTP/1.1 408"), "{res}");
    }
    drop(heads);
}

/// Malformed HTTP (issue 19, item 7) is the client's fault: answered 400 by the HTTP layer and
/// logged, if at all, below WARN, so a client cannot fill the error log.
#[test]
fn malformed_http_is_not_logged_as_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut vars = GOOD.to_vec();
    vars.push(("RUST_LOG", "info"));
    let proc = spawn(&["serve"], &vars, dir.path());
    let garbage: [&[u8]; 4] = [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
        b"POST /signup HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
        b"POST /signup HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ];
    for bytes in garbage {
        let mut conn = connect(proc.port);
        conn.write_all(bytes).unwrap();
        let res = answer(conn);
        assert!(res.is_empty() || res.starts_with("HTTP/1.1 400"), "{res}");
    }
    let health = healthz(proc.port);
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let log = proc.log();
    assert!(!log.contains("ERROR"), "{log}");
    assert!(!log.contains("WARN"), "{log}");
}

/// Malformed HTTP is still visible to an operator who asks: at DEBUG, under its own target.
#[test]
fn malformed_http_is_logged_at_debug_under_its_own_target() {
    let dir = tempfile::tempdir().unwrap();
    let mut vars = GOOD.to_vec();
    vars.push(("RUST_LOG", "info,authura::malformed_http=debug"));
    let proc = spawn(&["serve"], &vars, dir.path());
    let mut conn = connect(proc.port);
    conn.write_all(b"GET / HTTP/9.9\r\nHost: x\r\n\r\n")
        .unwrap();
    let res = answer(conn);
    assert!(res.is_empty() || res.starts_with("HTTP/1.1 400"), "{res}");
    let log = proc.wait_for_log("malformed request");
    let line = log
        .lines()
        .find(|l| l.contains("malformed request"))
        .unwrap();
    assert!(
        line.contains("DEBUG") && line.contains("authura::malformed_http"),
        "{line}"
    );
    assert!(!log.contains("ERROR"), "{log}");
}
