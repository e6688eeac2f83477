//! `authura healthcheck`: asks the running service whether it is alive (`GET /healthz`) or,
//! with `--ready`, ready to serve (`GET /readyz`), for container health checks in images that
//! have no HTTP client of their own. Plain HTTP/1.1 over a TCP connection to `HOST:PORT` (an
//! unspecified listen address such as `0.0.0.0` means this machine's loopback).

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs as _};
use std::time::{Duration, Instant};

/// Longest the whole check may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The status code `path` answers with on `host:port`, or why there is none.
pub fn status(host: &str, port: u16, path: &str) -> Result<u16, String> {
    let deadline = Instant::now() + TIMEOUT;
    let addrs = addresses(host, port)?;
    let mut last = String::from("no address");
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        match TcpStream::connect_timeout(&addr, left.max(Duration::from_millis(1))) {
            Ok(stream) => return ask(stream, host, port, path, deadline),
            Err(e) => last = format!("cannot connect to {addr}: {e}"),
        }
    }
    Err(last)
}

/// `host:port` resolved; an unspecified address (`0.0.0.0`, `::`) is the loopback of its family.
fn addresses(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        let ip = match ip {
            IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            other => other,
        };
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    (bare, port)
        .to_socket_addrs()
        .map(Iterator::collect)
        .map_err(|e| format!("cannot resolve {host}: {e}"))
}

fn ask(
    mut stream: TcpStream,
    host: &str,
    port: u16,
    path: &str,
    deadline: Instant,
) -> Result<u16, String> {
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    let io = |e: std::io::Error| format!("no answer from {host}:{port}: {e}");
    stream.set_read_timeout(Some(left)).map_err(io)?;
    stream.set_write_timeout(Some(left)).map_err(io)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: authura-healthcheck\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(io)?;
    // The status line is all that is needed: `HTTP/1.1 200 OK`.
    let mut head = Vec::with_capacity(64);
    let mut byte = [0_u8; 1];
    while !head.ends_with(b"\r\n") && head.len() < 256 {
        match stream.read(&mut byte).map_err(io)? {
            0 => break,
            _ => head.push(byte[0]),
        }
    }
    let line = String::from_utf8_lossy(&head);
    line.strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            format!(
                "not an HTTP answer from {host}:{port}: {:?}",
                line.trim_end()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_addresses_mean_loopback() {
        assert_eq!(
            addresses("0.0.0.0", 9000).unwrap(),
            vec!["127.0.0.1:9000".parse().unwrap()]
        );
        assert_eq!(
            addresses("::", 9000).unwrap(),
            vec!["[::1]:9000".parse().unwrap()]
        );
        assert_eq!(
            addresses("[::]", 9000).unwrap(),
            vec!["[::1]:9000".parse().unwrap()]
        );
        assert_eq!(
            addresses("10.1.2.3", 80).unwrap(),
            vec!["10.1.2.3:80".parse().unwrap()]
        );
        assert!(
            addresses("localhost", 9000)
                .unwrap()
                .iter()
                .all(|a| a.ip().is_loopback())
        );
    }
}
