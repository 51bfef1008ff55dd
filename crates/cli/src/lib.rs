//! The wiring of entra-sync's services from the configuration, shared by the
//! `entra-sync` binary and the end-to-end tests.

pub mod wiring;
