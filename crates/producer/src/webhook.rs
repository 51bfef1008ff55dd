//! The authentik notification webhook: `POST /hooks/authentik`, which wakes the events follower.
