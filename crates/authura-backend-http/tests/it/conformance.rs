//! The `UserStore` conformance suite on `HttpStore`, against a fresh reference server per case.

use authura_standins::http::HttpStandin;

authura_testkit::conformance_tests!(async {
    let standin = HttpStandin::start().unwrap();
    (crate::store(&standin), standin)
});
