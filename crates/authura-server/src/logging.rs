//! Log setup: `LOG_FORMAT=json|pretty`, filtered by `RUST_LOG` (default `info`).
//!
//! Some libraries log secrets at debug level: lettre writes the SMTP conversation, including
//! `AUTH PLAIN <credentials>` and each message with its token link. Those targets are capped at
//! INFO by a filter layer of their own, beside `RUST_LOG`'s, so no directive an operator sets
//! (however specific) can turn them back on.

use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::LogFormat;

/// Targets that are never logged below INFO, because their debug output carries secrets.
pub const CAPPED_TARGETS: &[&str] = &["lettre::transport::smtp"];

/// The cap: everything passes but [`CAPPED_TARGETS`] below INFO.
pub fn secret_cap() -> Targets {
    CAPPED_TARGETS
        .iter()
        .fold(Targets::new().with_default(Level::TRACE), |t, target| {
            t.with_target(*target, Level::INFO)
        })
}

/// Installs the global subscriber; later calls are no-ops.
pub fn init(format: LogFormat) {
    let env = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let fmt = match format {
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
        LogFormat::Pretty => fmt.boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(env)
        .with(secret_cap())
        .with(fmt)
        .try_init();
}
