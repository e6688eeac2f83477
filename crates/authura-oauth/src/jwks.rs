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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// A JWKS endpoint on loopback that counts its requests: one RSA key, `kid` "k1".
    async fn jwks_server() -> (Url, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/jwks", listener.local_addr().unwrap())).unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&hits);
        tokio::spawn(async move {
            let body = r#"{"keys":[{"kty":"RSA","kid":"k1","use":"sig","alg":"RS256","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"}]}"#;
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                counted.fetch_add(1, Ordering::SeqCst);
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        (url, hits)
    }

    #[tokio::test]
    async fn the_set_is_fetched_once_and_an_unknown_kid_cannot_make_it_fetch_again_within_a_minute()
    {
        let (url, hits) = jwks_server().await;
        let http = reqwest::Client::new();
        let cache = JwksCache::new(url);
        // The first use fetches; the key is kept.
        let key = cache.key(&http, Some("k1")).await.unwrap();
        assert_eq!(key.common.key_id.as_deref(), Some("k1"));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        cache.key(&http, Some("k1")).await.unwrap();
        assert_eq!(
            hits.load(Ordering::SeqCst),
            1,
            "a kept key is not fetched again"
        );
        // Tokens with made-up kids, one after another: refused, and the provider is not asked
        // again within REFETCH_INTERVAL.
        for kid in ["forged-1", "forged-2", "forged-3"] {
            assert!(matches!(
                cache.key(&http, Some(kid)).await,
                Err(OAuthError::InvalidIdToken(_))
            ));
        }
        assert_eq!(hits.load(Ordering::SeqCst), 1, "no refetch within a minute");
        // A fresh cache whose first token names an unknown kid does fetch (there was none).
        let (url, hits) = jwks_server().await;
        let cache = JwksCache::new(url);
        assert!(cache.key(&http, Some("rotated")).await.is_err());
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }
}
