//! Authura's HTTP service: configuration loading, the actix-web app over `authura-core`'s flows,
//! the hashing pool, rate limiting, the HTML pages, and `ApiError`, the one place that chooses
//! status codes. `bin/authura` is a thin shell around [`serve`].

pub mod app;
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
    running.server.await?;
    tracing::info!("authura stopped");
    Ok(())
}
