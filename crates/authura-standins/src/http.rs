//! The reference server for the HTTP backend contract (being written).
