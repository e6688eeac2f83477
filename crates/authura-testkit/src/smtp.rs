//! A real SMTP server catching mail for tests (being written).
