//! A provider's JSON Web Key Set, fetched once and kept; fetched again when a token names a
//! `kid` the set lacks (the provider rotated its keys), but never more than once a minute, so
//! tokens with made-up `kid`s cannot make Authura hammer the provider.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::Jwk;
use tokio::sync::Mutex;
use url::Url;

use crate::provider::OAuthError;

/// The shortest time between two fetches of one set.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(60);

/// The keys of one JWKS URL.
#[derive(Debug)]
pub struct JwksCache {
    url: Url,
    inner: Mutex<Cached>,
}

#[derive(Debug, Default)]
struct Cached {
    /// By `kid`; a key without one is kept under `""` (matched by a token without `kid`).
    keys: HashMap<String, Jwk>,
    fetched_at: Option<Instant>,
}

impl JwksCache {
    /// An empty cache for the set at `url`.
    pub fn new(url: Url) -> Self {
        JwksCache {
            url,
            inner: Mutex::new(Cached::default()),
        }
    }

    /// The key `kid` names: from the cache, or after fetching the set when it is not there and
    /// the last fetch is a minute old (or there was none).
    ///
    /// # Errors
    /// `Provider` when the set cannot be fetched; `InvalidIdToken` when no key has that `kid`.
    pub async fn key(&self, http: &reqwest::Client, kid: Option<&str>) -> Result<Jwk, OAuthError> {
        let kid = kid.unwrap_or("");
        let mut cached = self.inner.lock().await;
        if let Some(key) = cached.keys.get(kid) {
            return Ok(key.clone());
        }
        let stale = cached
            .fetched_at
            .is_none_or(|at| at.elapsed() >= REFETCH_INTERVAL);
        if !stale {
            return Err(OAuthError::InvalidIdToken(format!(
                "no key with kid {kid:?} in the provider's JWKS"
            )));
        }
        cached.fetched_at = Some(Instant::now());
        cached.keys = fetch(http, &self.url).await?;
        cached.keys.get(kid).cloned().ok_or_else(|| {
            OAuthError::InvalidIdToken(format!("no key with kid {kid:?} in the provider's JWKS"))
        })
    }
}

/// Fetches a set; keys of a type jsonwebtoken does not know are skipped, not fatal.
async fn fetch(http: &reqwest::Client, url: &Url) -> Result<HashMap<String, Jwk>, OAuthError> {
    #[derive(serde::Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let set: Set = crate::provider::get_json(http, url, None).await?;
    Ok(set
        .keys
        .into_iter()
        .filter_map(|key| serde_json::from_value::<Jwk>(key).ok())
        .map(|jwk| (jwk.common.key_id.clone().unwrap_or_default(), jwk))
        .collect())
}
