//! One GraphQL request to Hasura and the translation of its answer into data or a domain error.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use authura_core::StoreError;

/// Hasura's `code` for a violated database constraint (unique, not-null, check, foreign key).
pub(crate) const CONSTRAINT_VIOLATION: &str = "constraint-violation";

/// A GraphQL response as Hasura sends it: `data` or `errors`, never both with useful data.
#[derive(Debug, Deserialize)]
pub(crate) struct Response<T> {
    pub(crate) data: Option<T>,
    #[serde(default)]
    pub(crate) errors: Vec<GraphqlError>,
}

/// One entry of `errors`: `{"message", "extensions": {"path", "code"}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct GraphqlError {
    #[serde(default)]
    pub(crate) message: String,
    #[serde(default)]
    pub(crate) extensions: Option<Extensions>,
}

/// Hasura's error extensions.
#[derive(Debug, Deserialize)]
pub(crate) struct Extensions {
    #[serde(default)]
    pub(crate) code: Option<String>,
    #[serde(default)]
    pub(crate) path: Option<String>,
}

/// Sends one named operation with its variables; the answer's `data`, or the error it means.
pub(crate) async fn execute<T: DeserializeOwned>(
    client: &reqwest::Client,
    url: &url::Url,
    admin_secret: &str,
    operation: &'static str,
    query: &'static str,
    variables: Value,
) -> Result<T, StoreError> {
    // The operation's name only: variables hold emails and password hashes.
    tracing::debug!(operation, "hasura request");
    let body = serde_json::json!({
        "operationName": operation,
        "query": query,
        "variables": variables,
    });
    let response = client
        .post(url.clone())
        .header("x-hasura-admin-secret", admin_secret)
        .json(&body)
        .send()
        .await
        .map_err(|e| transport(operation, &e))?;
    let status = response.status();
    if status.is_server_error() {
        return Err(StoreError::Unavailable(format!(
            "hasura answered {operation} with HTTP {status}"
        )));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| transport(operation, &e))?;
    let parsed: Response<T> = serde_json::from_slice(&bytes).map_err(|e| {
        StoreError::Backend(format!(
            "hasura answered {operation} with HTTP {status} and an unreadable body: {e}"
        ))
    })?;
    if !parsed.errors.is_empty() {
        return Err(translate(operation, &parsed.errors));
    }
    if !status.is_success() {
        return Err(StoreError::Backend(format!(
            "hasura answered {operation} with HTTP {status}"
        )));
    }
    parsed
        .data
        .ok_or_else(|| StoreError::Backend(format!("hasura answered {operation} without data")))
}

/// Hasura's `errors`: a constraint violation is a conflict (the only constraint Authura's
/// writes can break is the unique (email, tenant) index), anything else a backend error. The
/// message is Hasura's, which names fields and constraints, never variable values.
pub(crate) fn translate(operation: &str, errors: &[GraphqlError]) -> StoreError {
    if errors.iter().any(|e| code(e) == Some(CONSTRAINT_VIOLATION)) {
        return StoreError::Conflict;
    }
    let described = errors
        .iter()
        .map(|e| {
            let extensions = e.extensions.as_ref();
            format!(
                "{} (code {}, path {})",
                e.message,
                code(e).unwrap_or("none"),
                extensions.and_then(|x| x.path.as_deref()).unwrap_or("none")
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    tracing::warn!(operation, errors = %described, "hasura answered with errors");
    StoreError::Backend(format!(
        "hasura answered {operation} with errors: {described}"
    ))
}

/// A request that got no answer: timed out, refused, reset or dropped mid-way.
fn transport(operation: &str, err: &reqwest::Error) -> StoreError {
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "lost the connection"
    };
    // reqwest's error text names the URL, never headers or the body.
    StoreError::Unavailable(format!("hasura {what} during {operation}: {err}"))
}

fn code(error: &GraphqlError) -> Option<&str> {
    error.extensions.as_ref().and_then(|x| x.code.as_deref())
}
