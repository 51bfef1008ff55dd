//! Cursors into authentik's change sources, stored in `source_cursors`.
