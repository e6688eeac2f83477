//! The Authaus hash parser (`hash::authaus_matches`, the strict parser `verify_password` reads
//! a legacy hash with): any stored text and password, without a panic; whatever parses is in
//! Authaus's one format (a version byte and 64 bytes, in padded standard base64: 88
//! characters), and a text that is an Argon2 or bcrypt hash never does.
#![no_main]

use authura_core::hash::authaus_matches;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (stored, password) = text.split_once('\u{0}').unwrap_or((text, "password"));
    if authaus_matches(stored, password).is_some() {
        assert_eq!(stored.len(), 88, "{stored:?}");
        assert!(!stored.starts_with('$'), "{stored:?}");
    }
});
