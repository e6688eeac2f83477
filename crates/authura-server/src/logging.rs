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

/// The HTTP layer's target that reports each malformed request (a bad request line or header,
/// a broken chunk) at ERROR: the client's fault, answered 400, and as frequent as a client
/// likes. It is off unless `RUST_LOG` names `actix_http` (`RUST_LOG=info,actix_http=debug` to
/// see them), so no client can fill the error log.
pub const MALFORMED_HTTP_TARGET: &str = "actix_http::h1::dispatcher";

/// `RUST_LOG`'s filter (default `info`), with [`MALFORMED_HTTP_TARGET`] off unless it names
/// `actix_http` itself.
pub fn env_filter(rust_log: Option<&str>) -> EnvFilter {
    let mut env = rust_log
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    if !rust_log.is_some_and(|v| v.contains("actix_http"))
        && let Ok(off) = format!("{MALFORMED_HTTP_TARGET}=off").parse()
    {
        env = env.add_directive(off);
    }
    env
}

/// Installs the global subscriber; later calls are no-ops.
pub fn init(format: LogFormat) {
    let env = env_filter(std::env::var("RUST_LOG").ok().as_deref());
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
