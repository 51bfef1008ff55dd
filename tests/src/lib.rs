//! Harness for the end-to-end tests: per-test databases, vhosts and simulators.
