//! Which authentik release entra-sync talks to, and what that release offers:
//! the one capability table of the client.
//!
//! The release comes from `GET /api/v3/admin/version/` (any token may call
//! it). [`Capabilities::of`] maps it to the features entra-sync uses, from
//! [`FIRST_RELEASE`] (`shared/reference/authentik-versions.md`). Nothing else
//! compares versions: code asks [`Capabilities::has`]. An unknown or newer
//! release gets the newest behaviour, with a warning.
//!
//! A capability is only a promise: authentik ignores unknown filters
//! silently, so a filter is trusted only once seen applied (module
//! `observed`).

use serde::{Deserialize, Serialize};
use std::fmt;

/// An authentik release, `year.minor` (the patch level changes none of our calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Release {
    /// e.g. 2025.
    pub year: u16,
    /// e.g. 4 (2025.4).
    pub minor: u8,
}

impl Release {
    /// `year.minor`.
    pub const fn new(year: u16, minor: u8) -> Self {
        Self { year, minor }
    }

    /// The release of a `version_current` such as `2025.8.0-rc1` or `2024.2.4`.
    pub fn parse(version: &str) -> Option<Self> {
        let mut parts = version.trim().split(['.', '-']);
        let year = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(Self { year, minor })
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.year, self.minor)
    }
}

/// The oldest release entra-sync supports.
pub const OLDEST: Release = Release::new(2024, 2);
/// The newest release entra-sync knows.
pub const NEWEST: Release = Release::new(2026, 8);

/// A feature of authentik's API that entra-sync uses when the release has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// `include_groups` / `include_users` (2024.4): without them every user
    /// comes with its expanded groups, and every group with its users.
    IncludeObjects,
    /// User `last_updated`, its `__gt` filter and ordering (2025.8): the
    /// watermark catches silent user edits within seconds. Without it, a
    /// periodic silent scan does.
    LastUpdated,
    /// The events list's `actions` filter (2025.8). Without it,
    /// `action=model_` (a substring match in every release) stands in.
    EventActions,
}

/// The first release that has each feature.
pub const FIRST_RELEASE: [(Feature, Release); 3] = [
    (Feature::IncludeObjects, Release::new(2024, 4)),
    (Feature::LastUpdated, Release::new(2025, 8)),
    (Feature::EventActions, Release::new(2025, 8)),
];

/// The features used with one release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// What authentik said (`version_current`), if it was read.
    pub version: Option<String>,
    /// The release whose behaviour is used.
    pub behaves_as: Release,
    /// Why the behaviour differs from what the version says, if it does.
    pub warning: Option<String>,
}

impl Capabilities {
    /// The newest behaviour, used until the version is known.
    pub fn newest() -> Self {
        Self {
            version: None,
            behaves_as: NEWEST,
            warning: None,
        }
    }

    /// The capabilities of the release `version` (authentik's `version_current`).
    pub fn of(version: &str) -> Self {
        let (behaves_as, warning) = match Release::parse(version) {
            None => (
                NEWEST,
                Some(format!(
                    "authentik version {version:?} is not a release entra-sync can read; using the behaviour of {NEWEST}"
                )),
            ),
            Some(r) if r > NEWEST => (
                NEWEST,
                Some(format!(
                    "authentik {r} is newer than the newest release entra-sync knows ({NEWEST}); using the behaviour of {NEWEST}"
                )),
            ),
            Some(r) if r < OLDEST => (
                OLDEST,
                Some(format!(
                    "authentik {r} is older than the oldest supported release ({OLDEST}); using the behaviour of {OLDEST}"
                )),
            ),
            Some(r) => (r, None),
        };
        Self {
            version: Some(version.to_owned()),
            behaves_as,
            warning,
        }
    }

    /// Whether the release has `feature`.
    pub fn has(&self, feature: Feature) -> bool {
        FIRST_RELEASE
            .iter()
            .find(|(f, _)| *f == feature)
            .is_some_and(|(_, first)| self.behaves_as >= *first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_to_releases() {
        assert_eq!(Release::parse("2025.8.0-rc1"), Some(Release::new(2025, 8)));
        assert_eq!(Release::parse("2024.2.4"), Some(Release::new(2024, 2)));
        assert_eq!(Release::parse("2026.8"), Some(Release::new(2026, 8)));
        assert_eq!(Release::parse("dev"), None);
    }

    #[test]
    fn features_follow_the_table() {
        let old = Capabilities::of("2024.2.4");
        assert!(old.warning.is_none());
        assert!(!old.has(Feature::IncludeObjects));
        assert!(!old.has(Feature::LastUpdated));
        let mid = Capabilities::of("2025.4.1");
        assert!(mid.has(Feature::IncludeObjects));
        assert!(!mid.has(Feature::LastUpdated) && !mid.has(Feature::EventActions));
        let new = Capabilities::of("2025.8.0");
        assert!(new.has(Feature::LastUpdated) && new.has(Feature::EventActions));
    }

    #[test]
    fn unknown_or_newer_releases_use_the_newest_behaviour_with_a_warning() {
        for v in ["2027.2.0", "nightly"] {
            let c = Capabilities::of(v);
            assert_eq!(c.behaves_as, NEWEST);
            assert!(c.warning.is_some(), "{v}");
            assert!(c.has(Feature::LastUpdated));
        }
        let old = Capabilities::of("2023.10.7");
        assert_eq!(old.behaves_as, OLDEST);
        assert!(old.warning.is_some());
    }
}
