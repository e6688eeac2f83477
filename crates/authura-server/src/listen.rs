//! Binding the HTTP server: [`bind`] and [`bind_to`] give a [`Running`] server, not yet awaited.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{HttpServer, web};

use crate::config::Config;
use crate::state::{AppState, StartError};

/// How long in-flight requests get when the server stops.
const SHUTDOWN_SECS: u64 = 30;

/// A bound, not yet awaited server.
pub struct Running {
    /// The address it listens on (useful with port 0).
    pub addr: SocketAddr,
    /// Await it to serve; it stops on SIGINT/SIGTERM, or through `server.handle()`.
    pub server: actix_web::dev::Server,
    /// The state its workers share.
    pub state: Arc<AppState>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Binds the HTTP server to `config.host:config.port` with `workers` worker threads (0 = one
/// per core).
///
/// # Errors
/// `StartError::Bind` when the address cannot be used.
pub fn bind(state: Arc<AppState>, config: &Config, workers: usize) -> Result<Running, StartError> {
    bind_to(state, config, workers, None)
}

/// [`bind`] on an already bound listener (tests bind port 0 first to learn their URL).
///
/// # Errors
/// `StartError::Bind` when the listener cannot be used.
pub fn bind_to(
    state: Arc<AppState>,
    config: &Config,
    workers: usize,
    listener: Option<std::net::TcpListener>,
) -> Result<Running, StartError> {
    let data = web::Data::from(Arc::clone(&state));
    let mut server = HttpServer::new(move || crate::routes::app(data.clone()))
        .shutdown_timeout(SHUTDOWN_SECS)
        .client_request_timeout(config.header_timeout);
    if workers > 0 {
        server = server.workers(workers);
    }
    let addr = format!("{}:{}", config.host, config.port);
    let server = match listener {
        Some(l) => server.listen(l),
        None => server.bind(&addr),
    }
    .map_err(|source| StartError::Bind {
        addr: addr.clone(),
        source,
    })?;
    let bound = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| StartError::Bind {
            addr,
            source: std::io::Error::other("no address bound"),
        })?;
    Ok(Running {
        addr: bound,
        server: server.run(),
        state,
    })
}
