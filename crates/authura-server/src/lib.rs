//! Authura's HTTP service: configuration loading, the actix-web app over `authura-core`'s flows,
//! the hashing pool, rate limiting, the HTML pages, and `ApiError`, the one place that chooses
//! status codes. `bin/authura` is a thin shell around [`serve`].

mod answer;
pub mod audit;
pub mod backend;
pub mod captcha;
pub mod cli;
pub mod config;
pub mod error;
mod extract;
#[doc(hidden)]
pub mod fuzzing;
pub mod hashpool;
pub mod html;
pub mod listen;
pub mod logging;
pub mod metrics;
mod middleware;
pub mod openapi;
pub mod pacing;
pub mod permits;
pub mod principal;
pub mod ratelimit;
pub mod routes;
pub mod state;
pub mod state_store;
#[cfg(target_os = "linux")]
mod yield_timer;

pub use config::{Config, ConfigError, Sources, load};
pub use listen::{Running, bind, bind_to};
pub use state::{
    AppState, StartError, build_state, build_state_with_store, build_state_with_stores,
    ensure_initial_user,
};

/// Builds the service from `config`, binds it, prints the startup line, and serves until
/// SIGINT/SIGTERM (in-flight requests get up to 30 s).
///
/// # Errors
/// `StartError` when the backend, mail or listener cannot be set up.
pub async fn serve(config: Config) -> Result<(), StartError> {
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    // PostgreSQL may still be starting: listen at once (answering 503, `/readyz` included)
    // and connect in the background; SQLite opens before listening.
    let (stores, deferred) = match &config.backend {
        config::BackendConfig::Postgres(settings) => {
            let users = std::sync::Arc::new(backend::DeferredStore::default());
            let state = config.state.as_ref().map(|_| {
                (
                    std::sync::Arc::new(state_store::DeferredStateStore::default()),
                    std::sync::Arc::new(state_store::DeferredStateEvents::default()),
                )
            });
            let stores = backend::Stores {
                users: users.clone(),
                state: state.clone().map(|(store, events)| {
                    (
                        store as std::sync::Arc<dyn authura_core::state::StateStore>,
                        events as std::sync::Arc<dyn authura_core::state::StateEvents>,
                    )
                }),
            };
            (stores, Some((users, state, settings.clone())))
        }
        _ => (
            backend::open(
                &config.backend,
                config.state.as_ref(),
                config.extra_ca_pem.as_deref(),
            )
            .await?,
            None,
        ),
    };
    let state = build_state_with_stores(&config, stores).await?;
    if deferred.is_none() {
        ensure_initial_user(state.ctx(), &config).await?;
    }
    let running = bind(state, &config, 0)?;
    let signals = tokio::spawn(shutdown_on_signal(std::sync::Arc::clone(&running.state)));
    let connecting = deferred.map(|(deferred, deferred_state, settings)| {
        let (handle, state, config) = (
            running.server.handle(),
            std::sync::Arc::clone(&running.state),
            config.clone(),
        );
        tokio::spawn(async move {
            let connected = async {
                let store =
                    backend::connect_postgres(&settings, backend::POSTGRES_STARTUP_WAIT).await?;
                if let Some((deferred_state, deferred_events)) = deferred_state {
                    let sessions = store
                        .state()
                        .await
                        .map_err(|e| StartError::State(e.to_string()))?;
                    deferred_events.set(std::sync::Arc::new(sessions.events()));
                    deferred_state.set(std::sync::Arc::new(sessions));
                }
                // The initial user before the store is handed over: `/readyz` answers 200 only
                // once the configured admin can sign in (a deploy step or a test that waits for
                // readiness, then signs in, never races its creation).
                let store: std::sync::Arc<dyn authura_core::UserStore> = std::sync::Arc::new(store);
                let mut ctx = state.ctx().clone();
                ctx.store = std::sync::Arc::clone(&store);
                ensure_initial_user(&ctx, &config).await?;
                deferred.set(store);
                Ok::<(), StartError>(())
            };
            let result = connected.await;
            if result.is_err() {
                // Unreachable for too long, or refused for good: stop serving, exit 1.
                handle.stop(true).await;
            }
            result
        })
    });
    let mail = match &config.mail {
        config::MailConfig::Dummy => "dummy".to_owned(),
        config::MailConfig::Smtp(s) => format!("smtp {}:{}", s.host, s.port),
    };
    let mut features = vec![];
    if config.multi_tenant {
        features.push("multi-tenant");
    }
    if config.signup_disabled {
        features.push("signup-disabled");
    }
    if config.rate_per_minute > 0 {
        features.push("rate-limit");
    }
    if config.metrics_enabled {
        features.push("metrics");
    }
    if config.sessions.is_some() {
        features.push("sessions");
    }
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        listen = %running.addr,
        backend = config.backend.name(),
        mail = %mail,
        features = %features.join(","),
        "authura started"
    );
    if config.dev {
        let base = config.external_url.as_str().trim_end_matches('/');
        tracing::info!("dev mode: sign up at {base}/form?action=signup");
    }
    let state = std::sync::Arc::clone(&running.state);
    running.server.await?;
    signals.abort();
    if let Some(task) = connecting {
        if task.is_finished() {
            task.await
                .map_err(|e| StartError::Io(std::io::Error::other(e)))??;
        } else {
            task.abort();
        }
    }
    drain_mail(&state, std::time::Duration::from_secs(10)).await;
    tracing::info!("authura stopped");
    Ok(())
}

/// Waits for SIGTERM or SIGINT and tells the in-flight requests (actix-web, which receives the
/// same signal, stops the server itself): a body still arriving gets a short grace, not its
/// whole `REQUEST_TIMEOUT`, so a stalled client cannot hold up the shutdown.
async fn shutdown_on_signal(state: std::sync::Arc<AppState>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    if tokio::signal::ctrl_c().await.is_err() {
        return;
    }
    state.begin_shutdown();
}

/// Waits (up to `limit`) for mail queued by finished requests to be handed to the relay, and
/// logs what is still unsent rather than losing it silently.
async fn drain_mail(state: &AppState, limit: std::time::Duration) {
    use std::sync::atomic::Ordering::Relaxed;
    let stats = state.mail_stats();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let done =
            stats.sent.load(Relaxed) + stats.failed.load(Relaxed) + stats.dropped.load(Relaxed);
        let queued = stats.queued.load(Relaxed);
        if done >= queued {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(unsent = queued - done, "mail still unsent at shutdown");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
