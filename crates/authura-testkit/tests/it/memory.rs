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

/// The permit store's suite on `MemorySessionStore`.
mod permits {
    use std::sync::Arc;

    use authura_core::memory::MemorySessionStore;
    use authura_core::state::PermitStore;

    authura_testkit::permit_conformance_tests!(async {
        Arc::new(MemorySessionStore::new()) as Arc<dyn PermitStore>
    });
}

/// The policy stores' suite on `MemorySessionStore`.
mod policy {
    use std::sync::Arc;

    use authura_core::memory::MemorySessionStore;
    use authura_core::state::PolicyStore;

    authura_testkit::policy_conformance_tests!(async {
        Arc::new(MemorySessionStore::new()) as Arc<dyn PolicyStore>
    });
}

/// The OAuth link store's suite on `MemorySessionStore`.
mod oauth_links {
    use std::sync::Arc;

    use authura_core::memory::MemorySessionStore;
    use authura_core::state::OAuthLinkStore;

    authura_testkit::oauth_link_conformance_tests!(async {
        Arc::new(MemorySessionStore::new()) as Arc<dyn OAuthLinkStore>
    });
}
