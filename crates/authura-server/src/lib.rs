//! Authura's HTTP service: configuration loading, the actix-web app over `authura-core`'s flows,
//! the hashing pool, rate limiting, the HTML pages, and `ApiError`, the one place that chooses
//! status codes. `bin/authura` is a thin shell around [`serve`].

pub mod app;
pub mod backend;
pub mod config;
pub mod error;
pub mod hashpool;
pub mod html;
pub mod logging;
pub mod ratelimit;

pub use app::{AppState, Running, StartError, bind, build_state};
pub use config::{Config, ConfigError, Sources, load};

/// Builds the service from `config`, binds it, prints the startup line, and serves until
/// SIGINT/SIGTERM (in-flight requests get up to 30 s).
///
/// # Errors
/// `StartError` when the backend, mail or listener cannot be set up.
pub async fn serve(config: Config) -> Result<(), StartError> {
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let state = build_state(&config).await?;
    let running = bind(state, &config, 0)?;
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
    drain_mail(&state, std::time::Duration::from_secs(10)).await;
    tracing::info!("authura stopped");
    Ok(())
}

/// Waits (up to `limit`) for mail queued by finished requests to be handed to the relay, and
/// logs what is still unsent rather than losing it silently.
async fn drain_mail(state: &AppState, limit: std::time::Duration) {
    use std::sync::atomic::Ordering::Relaxed;
    let stats = &state.mail_stats;
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
