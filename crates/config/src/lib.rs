//! Loads and validates the entra-sync TOML configuration and resolves its secrets.
