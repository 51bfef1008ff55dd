//! Which authentik release the simulator imitates, and what differs between
//! the releases it knows (`shared/reference/authentik-versions.md`, read from
//! authentik's source at each tag).
//!
//! Each difference is one method here, so the API handlers ask "does this
//! release have X" and never compare versions themselves.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// An authentik release the simulator can imitate.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub enum Release {
    /// 2024.2: no `include_*` params; a root group in `groups_obj` lacks `parent_name`;
    /// events may be logged twice; no membership diff.
    #[serde(rename = "2024.2")]
    V2024_2,
    /// 2024.12: `include_*` honoured; membership diff without a licence.
    #[serde(rename = "2024.12")]
    V2024_12,
    /// 2025.4: `password_change_date`, `date_joined`; membership diff only when licensed.
    #[serde(rename = "2025.4")]
    V2025_4,
    /// 2025.10: `last_updated` and its filters, `actions`, `children`, `autocomplete`.
    #[serde(rename = "2025.10")]
    V2025_10,
    /// 2026.8: `parents` replace `parent`, `roles`, page size 20 by default and 100 at most.
    #[default]
    #[serde(rename = "2026.8")]
    V2026_8,
}

impl Release {
    /// Every release the simulator knows, oldest first.
    pub const ALL: [Release; 5] = [
        Self::V2024_2,
        Self::V2024_12,
        Self::V2025_4,
        Self::V2025_10,
        Self::V2026_8,
    ];

    /// `(year, minor)`.
    fn number(self) -> (u16, u8) {
        match self {
            Self::V2024_2 => (2024, 2),
            Self::V2024_12 => (2024, 12),
            Self::V2025_4 => (2025, 4),
            Self::V2025_10 => (2025, 10),
            Self::V2026_8 => (2026, 8),
        }
    }

    fn since(self, year: u16, minor: u8) -> bool {
        self.number() >= (year, minor)
    }

    /// `version_current` of `GET /admin/version/`.
    pub fn version_current(self) -> String {
        let (y, m) = self.number();
        let patch = match self {
            Self::V2024_2 => 4,
            _ => 1,
        };
        format!("{y}.{m}.{patch}")
    }

    /// `include_groups` / `include_users` / `include_roles` are honoured (2024.4).
    pub(crate) fn include_params(self) -> bool {
        self.since(2024, 4)
    }
    /// `parent_name` is `null` for a root group in `groups_obj`; before 2024.4 the key is missing.
    pub(crate) fn root_parent_name_null(self) -> bool {
        self.since(2024, 4)
    }
    /// Version fields `version_latest_valid` (2024.4) and `outpost_outdated` (2024.8).
    pub(crate) fn version_extras(self) -> bool {
        self.since(2024, 8)
    }
    /// One change may be logged more than once (fixed in 2024.8).
    pub(crate) fn duplicate_events(self) -> bool {
        !self.since(2024, 8)
    }
    /// Group-side membership events carry `context.diff`: from 2024.6 always,
    /// from 2025.2 only with an enterprise licence.
    pub(crate) fn membership_diff(self, licensed: bool) -> bool {
        self.since(2024, 6) && (licensed || !self.since(2025, 2))
    }
    /// User `password_change_date` (2025.2).
    pub(crate) fn password_change_date(self) -> bool {
        self.since(2025, 2)
    }
    /// User `date_joined` (2025.4).
    pub(crate) fn date_joined(self) -> bool {
        self.since(2025, 4)
    }
    /// User `last_updated`, its filters and ordering; events `actions`;
    /// group `children`; the envelope's `autocomplete` (2025.8).
    pub(crate) fn since_2025_8(self) -> bool {
        self.since(2025, 8)
    }
    /// Group `parents` replace `parent`/`parent_name`; user `roles`;
    /// page size 20 by default and 100 at most (2025.12).
    pub(crate) fn since_2025_12(self) -> bool {
        self.since(2025, 12)
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m) = self.number();
        write!(f, "{y}.{m}")
    }
}

impl FromStr for Release {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.to_string() == s)
            .ok_or_else(|| {
                let known: Vec<String> = Self::ALL.iter().map(|r| r.to_string()).collect();
                format!(
                    "unknown authentik release {s:?}: the simulator imitates {}",
                    known.join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_parse_and_print() {
        for r in Release::ALL {
            assert_eq!(r.to_string().parse::<Release>(), Ok(r));
        }
        assert!("2023.10".parse::<Release>().is_err());
        assert_eq!(Release::default(), Release::V2026_8);
    }

    #[test]
    fn the_membership_diff_follows_the_licence_from_2025_2() {
        assert!(!Release::V2024_2.membership_diff(true));
        assert!(Release::V2024_12.membership_diff(false));
        assert!(!Release::V2025_4.membership_diff(false));
        assert!(Release::V2025_4.membership_diff(true));
    }
}
