//! The authentik simulator.
