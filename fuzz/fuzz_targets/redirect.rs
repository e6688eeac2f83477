//! Redirect-URL matching (`ALLOWED_REDIRECT_URLS`): an arbitrary candidate is checked against
//! allow-listed prefixes; whatever is accepted is an http(s) URL under one of them (same
//! scheme, host and port, its path below the prefix's), and a mail link built on it keeps it.
#![no_main]

use std::sync::LazyLock;

use authura_core::mail::Action;
use authura_core::redirect::{RedirectPolicy, mail_link};
use libfuzzer_sys::fuzz_target;
use url::Url;

static POLICY: LazyLock<RedirectPolicy> = LazyLock::new(|| {
    RedirectPolicy::new(
        [
            "https://app.example.com/auth/",
            "http://localhost:3000/",
            "https://example.org/cb",
        ]
        .iter()
        .map(|u| Url::parse(u).unwrap())
        .collect(),
    )
});

fuzz_target!(|data: &[u8]| {
    let Ok(candidate) = std::str::from_utf8(data) else {
        return;
    };
    let policy = &*POLICY;
    if let Ok(url) = policy.check(candidate) {
        assert!(
            policy.prefixes().iter().any(|p| {
                p.scheme() == url.scheme()
                    && p.host_str() == url.host_str()
                    && p.port_or_known_default() == url.port_or_known_default()
                    && url.username().is_empty()
                    && url.password().is_none()
            }),
            "{candidate:?} accepted as {url}"
        );
        let link = mail_link(&url, Action::VerifyEmail, "tok");
        let parsed = Url::parse(&link).unwrap();
        assert_eq!(parsed.host_str(), url.host_str(), "{candidate:?} → {link}");
    }
});
