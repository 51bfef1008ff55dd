//! authentik API client: users, groups and the events feed.
