//! The administration subcommands of the `authura` binary (SPEC §11: "the same from the command
//! line"), which work on the configured backend and state store directly, no server needed. The
//! binary parses the command line into these modules' argument types and calls their `run`;
//! each opens the stores as the server would ([`open`]) and calls the same core flows as the
//! `/admin` routes. `account` has `authura user lock|unlock|archive|restore`; `users` has
//! `authura user list|show|create|update|delete|end-sessions|reset-password`; `group` and
//! `permit` have `authura group …` and `authura permit …` (SPEC §8a); `import` has
//! `authura import authaus` (SPEC §12).
//!
//! On PostgreSQL, a change that must reach running instances' session caches (sessions ended,
//! a user changed) is announced by `NOTIFY`, as the server announces its own.

use std::sync::Arc;

use authura_core::CoreError;
use authura_core::mail::Mailer;

use crate::config::Config;
use crate::error::ApiError;
use crate::state::{AppState, StartError, build_state_with_stores, mailer};

pub mod account;
pub mod group;
pub mod import;
pub mod permit;
pub mod users;

/// What a subcommand runs on: the server's state over the configured stores (opened and
/// migrated as `serve` would; no initial user is created, no port is bound) and the mailer, to
/// send mail and wait for it.
pub struct Opened {
    /// The state the flows run in.
    pub state: Arc<AppState>,
    /// The configured mailer.
    pub mailer: Arc<dyn Mailer>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened").finish_non_exhaustive()
    }
}

/// Opens the configured stores and builds the state around them.
///
/// # Errors
/// `StartError` naming what failed.
pub async fn open(config: &Config) -> Result<Opened, StartError> {
    let stores = crate::backend::open(
        &config.backend,
        config.state.as_ref(),
        config.extra_ca_pem.as_deref(),
    )
    .await?;
    let state = build_state_with_stores(config, stores).await?;
    Ok(Opened {
        state,
        mailer: mailer(config)?,
    })
}

/// Why a subcommand failed: what it prints and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// The error code of SPEC §3a (`not_found`, `email_taken`, …) or `start` when the stores
    /// could not be opened.
    pub code: &'static str,
    /// A sentence for the operator.
    pub message: String,
}

impl Failure {
    /// The failure as `--json` prints it: `{"error", "message"}`, as the API answers.
    pub fn json(&self) -> String {
        serde_json::json!({"error": self.code, "message": self.message}).to_string()
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl From<CoreError> for Failure {
    fn from(e: CoreError) -> Self {
        let detail = e.to_string();
        let api = ApiError::from(e);
        Failure {
            code: api.code(),
            // The API's message is written for clients; the operator gets the detail.
            message: detail,
        }
    }
}

impl From<StartError> for Failure {
    fn from(e: StartError) -> Self {
        Failure {
            code: "start",
            message: e.to_string(),
        }
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure {
            code: e.code(),
            message: e.to_string(),
        }
    }
}
