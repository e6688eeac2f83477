//! In-process, data-driven tests of the configuration.
