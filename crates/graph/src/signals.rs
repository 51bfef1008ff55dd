//! Throttling signals Graph sends back (`microsoft-graph.md` §1.3, §1.4).

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

/// Parses `Retry-After`: whole seconds (`10`), decimal seconds (`2.128`) or an HTTP date.
/// A date in the past gives zero.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("10", now), Some(Duration::from_secs(10)));
        assert_eq!(
            parse_retry_after(" 2.128 ", now),
            Some(Duration::from_millis(2128))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

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
