//! `oauth2`'s `AsyncHttpClient` over the workspace's reqwest (DEPENDENCIES.md: oauth2's own
//! reqwest feature pulls reqwest 0.12 and ring).

use std::future::Future;
use std::pin::Pin;

use oauth2::{HttpRequest, HttpResponse};

/// A reqwest client as `oauth2` calls it. Redirects are never followed (the client is built
/// with `Policy::none()`), as RFC 6749 §3.2 expects of a token endpoint.
#[derive(Debug, Clone)]
pub struct HttpClient(pub reqwest::Client);

/// A request that did not get an answer.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

impl<'c> oauth2::AsyncHttpClient<'c> for HttpClient {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request =
                reqwest::Request::try_from(request).map_err(|e| HttpError(e.to_string()))?;
            let response = self.0.execute(request).await.map_err(|e| {
                HttpError(authura_core::error::with_causes(
                    e.to_string(),
                    std::error::Error::source(&e),
                ))
            })?;
            let mut builder = oauth2::http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let body = response
                .bytes()
                .await
                .map_err(|e| HttpError(e.to_string()))?;
            builder
                .body(body.to_vec())
                .map_err(|e| HttpError(e.to_string()))
        })
    }
}
