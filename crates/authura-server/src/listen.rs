//! Binding the HTTP server: [`bind`] and [`bind_to`] give a [`Running`] server, not yet awaited.
//!
//! The server is built as actix-web's `HttpServer::listen` builds it (actix-server's accept
//! loop and workers, actix-http's HTTP/1 service over the app), with one step before the HTTP
//! service: [`pacing::accept`], which holds back connections of a peer whose malformed requests
//! used up its budget and watches each connection for the next (`crate::pacing`).

use std::net::{SocketAddr, ToSocketAddrs as _};
use std::sync::Arc;
use std::time::Duration;

use actix_http::error::DispatchError;
use actix_http::{HttpService, KeepAlive, Protocol};
use actix_service::{
    IntoServiceFactory as _, ServiceFactory, ServiceFactoryExt as _, fn_service, map_config,
};
use actix_web::dev::AppConfig;
use actix_web::web;

use crate::pacing::{self, Paced};

use crate::config::Config;
use crate::state::{AppState, StartError};

/// How long in-flight requests get when the server stops.
const SHUTDOWN_SECS: u64 = 30;

/// The listen backlog (actix-web's `HttpServer` default).
const BACKLOG: i32 = 1024;

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
    let addr = format!("{}:{}", config.host, config.port);
    let bind_error = |source| StartError::Bind {
        addr: addr.clone(),
        source,
    };
    let listeners = match listener {
        Some(l) => vec![l],
        None => bind_addrs(&addr).map_err(bind_error)?,
    };
    let mut builder = actix_server::Server::build().shutdown_timeout(SHUTDOWN_SECS);
    if workers > 0 {
        builder = builder.workers(workers);
    }
    let stopping = builder.graceful_shutdown_signal();
    let mut bound = Vec::new();
    for listener in listeners {
        let local = listener.local_addr().map_err(bind_error)?;
        bound.push(local);
        let settings = Settings {
            state: Arc::clone(&state),
            local,
            header_timeout: config.header_timeout,
            stopping: stopping.clone(),
        };
        builder = builder
            .listen(format!("actix-web-service-{local}"), listener, move || {
                settings.service()
            })
            .map_err(bind_error)?;
    }
    let addr = bound.first().copied().ok_or_else(|| StartError::Bind {
        addr,
        source: std::io::Error::other("no address bound"),
    })?;
    Ok(Running {
        addr,
        server: builder.run(),
        state,
    })
}

/// What each worker's service of one listener is built from.
#[derive(Clone)]
struct Settings {
    state: Arc<AppState>,
    local: SocketAddr,
    header_timeout: Duration,
    stopping: actix_server::GracefulShutdownSignal,
}

impl Settings {
    /// One worker's service for an accepted connection: [`pacing::accept`], then actix-http's
    /// HTTP/1 service over the app, set up as actix-web's `HttpServer::listen` sets it up (its
    /// defaults: 5 s keep-alive, 1 s to close, half-closed connections allowed, the app's
    /// `AppConfig` of the listener's address), with `HEADER_TIMEOUT` as the time a head may
    /// take.
    fn service(
        &self,
    ) -> impl ServiceFactory<
        actix_web::rt::net::TcpStream,
        Config = (),
        Response = (),
        Error = DispatchError,
        InitError = (),
    > + use<> {
        let local = self.local;
        let host = local.to_string();
        let app = crate::routes::app(web::Data::from(Arc::clone(&self.state)))
            .into_factory()
            .map_err(|err| err.error_response());
        let shutdown = self.stopping.clone();
        let mut http = HttpService::build()
            .graceful_shutdown_signal(move || {
                let signal = shutdown.clone();
                async move { signal.notified().await }
            })
            .keep_alive(KeepAlive::default())
            .client_request_timeout(self.header_timeout)
            .client_disconnect_timeout(Duration::from_secs(1))
            .h1_allow_half_closed(true)
            .local_addr(local);
        let pacer = self.state.pacer().cloned();
        if pacer.is_some() {
            http = http.on_connect_ext(|io: &Paced, data| {
                if let Some(reached) = io.reached() {
                    data.insert(reached);
                }
            });
        }
        // `AppConfig` has no public constructor but this one, which actix-test uses (and which
        // `HttpServer` calls under its own name): not secure, the listener's address as host.
        let http = http.finish(map_config(app, move |()| {
            AppConfig::__priv_test_new(false, host.clone(), local)
        }));
        let stopping = self.stopping.clone();
        fn_service(move |io: actix_web::rt::net::TcpStream| {
            let (pacer, stopping) = (pacer.clone(), stopping.clone());
            async move {
                let peer = io.peer_addr().ok();
                let ip = peer.map(|p| p.ip());
                let io = pacing::accept(pacer, io, ip, async move { stopping.notified().await })
                    .await
                    .map_err(DispatchError::Io)?;
                Ok((io, Protocol::Http1, peer))
            }
        })
        .and_then(http)
    }
}

/// Binds every address `addr` resolves to, as actix-web's `HttpServer::bind` does (address
/// reuse, a backlog of 1024); fails only when none can be bound.
fn bind_addrs(addr: &str) -> std::io::Result<Vec<std::net::TcpListener>> {
    let mut bound = Vec::new();
    let mut last_error = None;
    for addr in addr.to_socket_addrs()? {
        match listener(addr) {
            Ok(l) => bound.push(l),
            Err(e) => last_error = Some(e),
        }
    }
    match (bound.is_empty(), last_error) {
        (true, Some(e)) => Err(e),
        (true, None) => Err(std::io::Error::other("the address resolves to nothing")),
        (false, _) => Ok(bound),
    }
}

fn listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}
