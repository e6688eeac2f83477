//! The `UserStore` conformance suite on `HasuraStore`, one fresh stand-in per case.

use std::sync::Arc;

use authura_core::UserStore;

authura_testkit::conformance_tests!(async {
    let (store, standin) = crate::fresh();
    (store as Arc<dyn UserStore>, standin)
});
