//! Entry points for the fuzz targets in `fuzz/` (`cargo xtask fuzz`); not an API. Each runs
//! the server's own code on arbitrary input, the way a request would reach it.

use crate::extract::parse_body;
use crate::routes::{account, auth, session};

/// Parses `bytes` as every request body type, as the `Body` extractor would (JSON when `json`,
/// else a form), and a parsed address as the handlers do; returns how many types accepted it.
/// It must never panic.
pub fn parse_bodies(json: bool, bytes: &[u8]) -> usize {
    let mut accepted = 0;
    if let Ok(body) = parse_body::<auth::EmailBody>(json, bytes) {
        accepted += 1;
        let _ = authura_core::types::Email::parse(&body.email);
    }
    accepted += usize::from(parse_body::<auth::VerifyBody>(json, bytes).is_ok());
    accepted += usize::from(parse_body::<auth::TokenBody>(json, bytes).is_ok());
    accepted += usize::from(parse_body::<auth::RefreshBody>(json, bytes).is_ok());
    accepted += usize::from(parse_body::<account::ChangePasswordBody>(json, bytes).is_ok());
    accepted += usize::from(parse_body::<account::InviteBody>(json, bytes).is_ok());
    accepted += usize::from(parse_body::<session::SessionBody>(json, bytes).is_ok());
    accepted += usize::from(parse_body::<crate::permits::GroupIn>(json, bytes).is_ok());
    accepted += usize::from(parse_body::<crate::permits::PermitIn>(json, bytes).is_ok());
    accepted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bodies_parse_as_the_extractor_parses_them() {
        assert_eq!(parse_bodies(true, br#"{"email": "a@b.c"}"#), 2);
        assert_eq!(parse_bodies(false, b"email=a%40b.c&password=x"), 3);
        assert_eq!(parse_bodies(true, b"{not json"), 0);
        assert_eq!(
            parse_bodies(true, br#"{"name": "ops", "permissions": [1, "read"]}"#),
            1
        );
        assert_eq!(parse_bodies(true, br#"{"groups": [1, "ops"]}"#), 1);
    }
}
