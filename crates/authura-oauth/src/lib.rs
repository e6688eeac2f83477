//! Authura's OAuth 2.0 and OpenID Connect client (SPEC §9): the authorization-code flow with
//! PKCE (S256) against Google, GitHub, Microsoft Entra and any OpenID provider, and the
//! provider's identity read back from the answer.
//!
//! The code flow is the `oauth2` crate's, over the workspace's reqwest (its own default HTTP
//! client would pull a second reqwest and ring: `http::HttpClient` is ours). ID tokens are
//! checked with jsonwebtoken against the provider's JWKS (`jwks::JwksCache`: fetched once,
//! kept, fetched again for an unknown `kid` at most once a minute): the signature (asymmetric
//! algorithms only: never `none`, never HS*), `iss` exactly, `aud` (our client id), `exp`
//! and the `nonce` we sent. Authura's own token code (`authura_core`'s `jws`) never verifies a
//! third party's token.
//!
//! Which addresses count as verified is decided here, per provider ([`Identity::email_verified`]):
//! `email_verified` for Google and generic OIDC, the primary verified address for GitHub, and
//! for Microsoft `xms_edov` or a single-tenant app (the "nOAuth" takeover: a multi-tenant Entra
//! app sees `email` values any tenant's admin can set).

mod http;
mod jwks;
mod provider;

pub use provider::{
    Identity, Kind, OAuthError, Provider, ProviderSettings, code_challenge, random_token,
};
