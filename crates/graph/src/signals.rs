//! Throttling signals Graph sends back (`microsoft-graph.md` §1.3, §1.4).

use entra_sync_core::backoff::parse_retry_after;
use std::time::{Duration, SystemTime};

/// What a response says about throttling. Present on every outcome and failure.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ThrottleSignals {
    /// `Retry-After`, as whole seconds, decimal seconds or an HTTP date.
    pub retry_after: Option<Duration>,
    /// `x-ms-resource-unit`: the RUs this request used.
    pub resource_units: Option<u32>,
    /// `x-ms-throttle-limit-percentage`: the used share of a limit, sent above 0.8.
    pub limit_percentage: Option<f64>,
    /// `x-ms-throttle-scope`, e.g. `Tenant_Application/ReadWrite/{app}/{tenant}`.
    pub scope: Option<String>,
    /// `x-ms-throttle-information`, e.g. `WriteLimitExceeded`.
    pub information: Option<String>,
}

impl ThrottleSignals {
    /// Reads the signals from header name/value pairs; names match without regard to case.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        now: SystemTime,
    ) -> Self {
        let mut s = Self::default();
        for (name, value) in pairs {
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "retry-after" => s.retry_after = parse_retry_after(value, now),
                "x-ms-resource-unit" => s.resource_units = value.parse().ok(),
                "x-ms-throttle-limit-percentage" => s.limit_percentage = value.parse().ok(),
                "x-ms-throttle-scope" => s.scope = Some(value.to_string()),
                "x-ms-throttle-information" => s.information = Some(value.to_string()),
                _ => {}
            }
        }
        s
    }

    /// Reads the signals from a response's headers.
    pub fn from_headers(headers: &reqwest::header::HeaderMap, now: SystemTime) -> Self {
        Self::from_pairs(
            headers
                .iter()
                .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v))),
            now,
        )
    }

    /// The limit named in the scope: `Read`, `Write` or `ReadWrite`.
    pub fn scope_limit(&self) -> Option<&str> {
        self.scope.as_deref().and_then(|s| s.split('/').nth(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_case_insensitive() {
        let s = ThrottleSignals::from_pairs(
            [
                ("RETRY-AFTER", "3"),
                ("X-Ms-Resource-Unit", "2"),
                ("x-ms-throttle-limit-percentage", "0.93"),
                ("x-ms-throttle-scope", "Tenant_Application/Write/app/tenant"),
                ("X-MS-THROTTLE-INFORMATION", "WriteLimitExceeded"),
            ],
            SystemTime::now(),
        );
        assert_eq!(s.retry_after, Some(Duration::from_secs(3)));
        assert_eq!(s.resource_units, Some(2));
        assert_eq!(s.limit_percentage, Some(0.93));
        assert_eq!(s.scope_limit(), Some("Write"));
        assert_eq!(s.information.as_deref(), Some("WriteLimitExceeded"));
    }
}
