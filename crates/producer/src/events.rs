//! Follows authentik's events feed with a cursor stored in PostgreSQL.
