//! The conformance suite on `MemoryStore`.

use std::sync::Arc;

use authura_core::UserStore;
use authura_core::memory::MemoryStore;

authura_testkit::conformance_tests!(async { Arc::new(MemoryStore::new()) as Arc<dyn UserStore> });
