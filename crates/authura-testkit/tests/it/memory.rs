//! The conformance suites on `MemoryStore` and `MemorySessionStore`.

use std::sync::Arc;

use authura_core::UserStore;
use authura_core::memory::MemoryStore;

authura_testkit::conformance_tests!(async { Arc::new(MemoryStore::new()) as Arc<dyn UserStore> });

/// The state store's suite on `MemorySessionStore`.
mod state {
    use std::sync::Arc;

    use authura_core::SessionStore;
    use authura_core::memory::MemorySessionStore;

    authura_testkit::state_conformance_tests!(async {
        Arc::new(MemorySessionStore::new()) as Arc<dyn SessionStore>
    });
}

/// The policy stores' suite on `MemoryPolicyStore`.
mod policy {
    use std::sync::Arc;

    use authura_core::memory::MemoryPolicyStore;
    use authura_core::state::PolicyStore;

    authura_testkit::policy_conformance_tests!(async {
        Arc::new(MemoryPolicyStore::new()) as Arc<dyn PolicyStore>
    });
}
