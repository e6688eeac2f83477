//! The `UserStore` conformance suite (being written).
