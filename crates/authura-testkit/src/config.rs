//! The smallest configuration that loads, as environment variables, for the tests that load one
//! in-process (`authura-server`'s config tests) or through the binary (`bin/authura`'s).

/// Three distinct token secrets of at least 32 bytes and the dummy mailer: everything without
/// which no configuration loads.
pub const GOOD: &[(&str, &str)] = &[
    ("JWT_SECRET", "access-secret-0123456789abcdefghijklmnop"),
    (
        "JWT_REFRESH_SECRET",
        "refresh-secret-0123456789abcdefghijklmn",
    ),
    (
        "JWT_VERIFY_SECRET",
        "verify-secret-0123456789abcdefghijklmno",
    ),
    ("MAIL_HOST", "dummy"),
];
