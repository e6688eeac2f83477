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

/// actix-http's connection dispatcher, which reports each malformed request (a bad request
/// line or header, a broken chunk) at ERROR as `stream error: …`, beside its real errors (a
/// response stream that failed, an upgrade handler's error).
pub const ACTIX_DISPATCHER_TARGET: &str = "actix_http::h1::dispatcher";

/// Where a malformed request is logged instead, at DEBUG: the client's fault, answered 400 by
/// the HTTP layer, as frequent as a client likes (`RUST_LOG=info,authura::malformed_http=debug`
/// to see them).
pub const MALFORMED_HTTP_TARGET: &str = "authura::malformed_http";

/// `RUST_LOG`'s filter, `info` when unset or invalid.
pub fn env_filter(rust_log: Option<&str>) -> EnvFilter {
    rust_log
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new("info"))
}

/// Drops actix-http's ERROR for a malformed request and logs it again at DEBUG under
/// [`MALFORMED_HTTP_TARGET`], so no client can fill the error log; the dispatcher's other
/// errors pass unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct DemoteMalformedHttp;

/// The `message` of an event, formatted.
struct Message(Option<String>);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for DemoteMalformedHttp {
    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        let meta = event.metadata();
        if *meta.level() != Level::ERROR || meta.target() != ACTIX_DISPATCHER_TARGET {
            return true;
        }
        let mut message = Message(None);
        event.record(&mut message);
        match message
            .0
            .as_deref()
            .and_then(|m| m.strip_prefix("stream error: "))
        {
            Some(error) => {
                tracing::debug!(target: MALFORMED_HTTP_TARGET, error, "malformed request");
                false
            }
            None => true,
        }
    }
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
        .with(DemoteMalformedHttp)
        .with(fmt)
        .try_init();
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What a subscriber built as `init` builds it wrote, as text.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(rust_log: &str, emit: impl FnOnce()) -> String {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::registry()
            .with(env_filter(Some(rust_log)))
            .with(secret_cap())
            .with(DemoteMalformedHttp)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(move || writer.clone()),
            );
        tracing::subscriber::with_default(subscriber, emit);
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    fn dispatcher_errors() {
        tracing::error!(target: ACTIX_DISPATCHER_TARGET, "stream error: {}", "parse error: invalid header");
        tracing::error!(target: ACTIX_DISPATCHER_TARGET, "Response payload stream error: {}", "boom");
    }

    /// Malformed requests are not errors; actix-http's other errors still are.
    #[test]
    fn malformed_requests_are_demoted_and_other_http_errors_kept() {
        let log = logged("info", dispatcher_errors);
        assert!(!log.contains("invalid header"), "{log}");
        assert!(
            log.contains("ERROR") && log.contains("Response payload stream error: boom"),
            "{log}"
        );
        // Naming actix_http does not bring them back at ERROR.
        let log = logged("info,actix_http=trace", dispatcher_errors);
        assert!(!log.contains("invalid header"), "{log}");
        assert!(log.contains("Response payload stream error: boom"), "{log}");
    }
}
