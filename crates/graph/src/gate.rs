//! The hook for a shared per-tenant rate budget (DESIGN invariant 5).
//!
//! The client calls [`RequestGate::before`] before every request with the request's
//! estimated cost, and reports every response's signals and every 429's pause.
//! The worker implements it over PostgreSQL; [`NoopGate`] does nothing.

use crate::signals::ThrottleSignals;
use futures_util::future::BoxFuture;
use std::time::Duration;

/// What a request costs against Graph's budgets (`microsoft-graph.md` §1.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCost {
    /// Resource units.
    pub resource_units: u32,
    /// Writes (POST, PATCH, PUT, DELETE).
    pub writes: u32,
}

impl RequestCost {
    /// Estimates the cost of one request from its method and URL: GET `users` 2,
    /// GET `groups/{id}/members` 3, other GETs 1; `$select` −1; `$top` below 20 −1;
    /// at least 1. Writes cost 1 RU and 1 write.
    pub fn estimate(method: &reqwest::Method, url: &str) -> Self {
        if *method != reqwest::Method::GET {
            return Self {
                resource_units: 1,
                writes: 1,
            };
        }
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let path = path
            .split("/v1.0")
            .last()
            .unwrap_or(path)
            .trim_end_matches('/');
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let base: u32 = match segments.as_slice() {
            ["users"] => 2,
            ["groups", _, "members"] => 3,
            _ => 1,
        };
        let has = |name: &str| {
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let select = u32::from(has("$select").is_some());
        let small_top = u32::from(
            has("$top")
                .and_then(|t| t.parse::<u32>().ok())
                .is_some_and(|t| t < 20),
        );
        Self {
            resource_units: base.saturating_sub(select + small_top).max(1),
            writes: 0,
        }
    }

    /// A `members@odata.bind` PATCH adding `members`: Graph charges it about
    /// one write per 3 members (`microsoft-graph.md` §1.2, after Canvas), so
    /// the estimate is `ceil(members / 3)` writes; the pace learns the rest.
    pub fn member_binds(members: usize) -> Self {
        Self {
            resource_units: 1,
            writes: u32::try_from(members)
                .unwrap_or(u32::MAX)
                .max(1)
                .div_ceil(3),
        }
    }

    /// The sum of two costs.
    pub fn plus(self, other: Self) -> Self {
        Self {
            resource_units: self.resource_units + other.resource_units,
            writes: self.writes + other.writes,
        }
    }
}

/// Admission control shared by every client of a tenant. Object-safe: use it as
/// `Arc<dyn RequestGate>`.
pub trait RequestGate: Send + Sync {
    /// Waits until a request of this cost may be sent.
    fn before(&self, cost: RequestCost) -> BoxFuture<'_, ()>;

    /// Graph answered 429: the tenant should pause for `pause` (its Retry-After, or a
    /// backoff when there was none). Called for outer and inner (`$batch`) 429s.
    fn throttled<'a>(&'a self, pause: Duration, signals: &'a ThrottleSignals) -> BoxFuture<'a, ()> {
        let _ = (pause, signals);
        Box::pin(async {})
    }

    /// Every answer of a request of this `cost` (a `$batch`'s inner ones
    /// each on its own), with its HTTP status and signals, e.g. to feed real
    /// RU costs back or slow down above 0.8.
    fn observe(&self, cost: RequestCost, status: u16, signals: &ThrottleSignals) {
        let _ = (cost, status, signals);
    }
}

/// A gate that admits everything at once.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopGate;

impl RequestGate for NoopGate {
    fn before(&self, _cost: RequestCost) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::Method;

    #[test]
    fn estimates_follow_the_reference_table() {
        let get = |url: &str| RequestCost::estimate(&Method::GET, url).resource_units;
        assert_eq!(get("https://g/v1.0/users"), 2);
        assert_eq!(get("https://g/v1.0/users?%24select=id"), 1);
        assert_eq!(get("https://g/v1.0/groups/x/members"), 3);
        assert_eq!(get("https://g/v1.0/groups/x/members?$select=id&$top=5"), 1);
        assert_eq!(get("https://g/v1.0/groups"), 1);
        assert_eq!(get("https://g/v1.0/users/abc"), 1);
        assert_eq!(
            RequestCost::estimate(&Method::PATCH, "https://g/v1.0/users/abc"),
            RequestCost {
                resource_units: 1,
                writes: 1
            }
        );
    }

    #[test]
    fn a_member_bind_is_estimated_at_a_write_per_three_members() {
        let writes = |n| RequestCost::member_binds(n).writes;
        assert_eq!((writes(1), writes(3), writes(4), writes(20)), (1, 1, 2, 7));
    }
}
