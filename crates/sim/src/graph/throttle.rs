//! Token-bucket throttling per (application, tenant), after `microsoft-graph.md` §1:
//! a resource-unit budget and a write quota, each refilled continuously over its window.

use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// The resource-unit budget of an (application, tenant) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuQuota {
    /// Graph's budget by tenant size: 3,500 RU (under 50 users), 5,000 (50–500) or 8,000 (over 500) per window.
    ByTenantSize,
    /// A fixed number of RUs per window, e.g. a tiny budget for tests.
    Fixed(u32),
}

/// Throttling settings. The defaults are Graph's published limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThrottleConfig {
    /// Whether requests are throttled at all.
    pub enabled: bool,
    /// Writes (POST, PATCH, PUT, DELETE) allowed per `write_window`.
    pub write_quota: u32,
    /// The window of the write quota.
    #[serde(with = "millis")]
    pub write_window: Duration,
    /// RUs allowed per `read_window`.
    pub ru_quota: RuQuota,
    /// The window of the RU budget.
    #[serde(with = "millis")]
    pub read_window: Duration,
    /// Members one write is charged for in a `members@odata.bind` PATCH: a
    /// PATCH adding `n` members costs `ceil(n / members_per_write)` writes
    /// (`microsoft-graph.md` §1.2: "about users_added/3, according to
    /// Microsoft", as Canvas budgets it). 0 charges every PATCH one write.
    #[serde(default = "default_members_per_write")]
    pub members_per_write: u32,
}

fn default_members_per_write() -> u32 {
    3
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            write_quota: 3_000,
            write_window: Duration::from_secs(150),
            ru_quota: RuQuota::ByTenantSize,
            read_window: Duration::from_secs(10),
            members_per_write: default_members_per_write(),
        }
    }
}

impl ThrottleConfig {
    /// No throttling at all.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// The writes a `members@odata.bind` PATCH adding `members` is charged.
    pub(crate) fn member_bind_writes(&self, members: usize) -> u32 {
        let members = u32::try_from(members).unwrap_or(u32::MAX).max(1);
        match self.members_per_write {
            0 => 1,
            per => members.div_ceil(per),
        }
    }

    fn ru_capacity(&self, tenant_users: usize) -> f64 {
        match self.ru_quota {
            RuQuota::Fixed(n) => f64::from(n),
            RuQuota::ByTenantSize if tenant_users < 50 => 3_500.0,
            RuQuota::ByTenantSize if tenant_users <= 500 => 5_000.0,
            RuQuota::ByTenantSize => 8_000.0,
        }
    }
}

/// Durations as whole milliseconds in JSON.
pub(crate) mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// What a request costs (§1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cost {
    pub ru: u32,
    pub writes: u32,
}

/// A refused request: how long to wait and the `x-ms-throttle-*` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Throttled {
    pub retry_after_secs: u64,
    /// `Read`, `Write` or `ReadWrite`.
    pub limit: &'static str,
    /// `WriteLimitExceeded` or `ResourceUnitLimitExceeded`.
    pub information: &'static str,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn refill(&mut self, capacity: f64, window: Duration, now: Instant) {
        let rate = capacity / window.as_secs_f64().max(f64::MIN_POSITIVE);
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(capacity);
        self.last = now;
    }

    /// Seconds until `need` tokens are there, rounded up, at least 1.
    fn wait_secs(&self, need: f64, capacity: f64, window: Duration) -> u64 {
        let rate = capacity / window.as_secs_f64().max(f64::MIN_POSITIVE);
        let secs = ((need - self.tokens) / rate).ceil();
        if secs.is_finite() && secs >= 1.0 {
            secs as u64
        } else {
            1
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Block {
    until: Instant,
    limit: &'static str,
    information: &'static str,
}

/// The buckets and pauses of one (application, tenant) pair.
#[derive(Debug, Clone)]
pub(crate) struct Lane {
    ru: Option<Bucket>,
    writes: Option<Bucket>,
    read_block: Option<Block>,
    write_block: Option<Block>,
}

impl Lane {
    pub fn new() -> Self {
        Self {
            ru: None,
            writes: None,
            read_block: None,
            write_block: None,
        }
    }

    /// Admits a request, taking its cost, or refuses it. On success returns the used
    /// share of the fuller bucket when it is above 0.8 (`x-ms-throttle-limit-percentage`).
    pub fn admit(
        &mut self,
        config: &ThrottleConfig,
        tenant_users: usize,
        cost: Cost,
        now: Instant,
    ) -> Result<Option<f64>, Throttled> {
        if !config.enabled {
            return Ok(None);
        }
        let is_write = cost.writes > 0;
        let block = if is_write {
            self.write_block
        } else {
            self.read_block
        };
        if let Some(b) = block
            && now < b.until
        {
            let remaining = b.until.duration_since(now).as_secs_f64().ceil().max(1.0);
            return Err(Throttled {
                retry_after_secs: remaining as u64,
                limit: b.limit,
                information: b.information,
            });
        }
        let ru_cap = config.ru_capacity(tenant_users);
        let w_cap = f64::from(config.write_quota);
        let ru = self.ru.get_or_insert(Bucket {
            tokens: ru_cap,
            last: now,
        });
        ru.refill(ru_cap, config.read_window, now);
        let writes = self.writes.get_or_insert(Bucket {
            tokens: w_cap,
            last: now,
        });
        writes.refill(w_cap, config.write_window, now);
        let refusal = if ru.tokens < f64::from(cost.ru) {
            Some(Throttled {
                retry_after_secs: ru.wait_secs(f64::from(cost.ru), ru_cap, config.read_window),
                limit: "ReadWrite",
                information: "ResourceUnitLimitExceeded",
            })
        } else if is_write && writes.tokens < f64::from(cost.writes) {
            Some(Throttled {
                retry_after_secs: writes.wait_secs(
                    f64::from(cost.writes),
                    w_cap,
                    config.write_window,
                ),
                limit: "Write",
                information: "WriteLimitExceeded",
            })
        } else {
            None
        };
        if let Some(t) = refusal {
            let b = Block {
                until: now + Duration::from_secs(t.retry_after_secs),
                limit: t.limit,
                information: t.information,
            };
            self.write_block = Some(b);
            if t.limit == "ReadWrite" {
                self.read_block = Some(b);
            }
            return Err(t);
        }
        ru.tokens -= f64::from(cost.ru);
        writes.tokens -= f64::from(cost.writes);
        let used = (1.0 - ru.tokens / ru_cap).max(1.0 - writes.tokens / w_cap.max(1.0));
        Ok((used > 0.8).then_some(used))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> ThrottleConfig {
        ThrottleConfig {
            enabled: true,
            write_quota: 2,
            write_window: Duration::from_secs(2),
            ru_quota: RuQuota::Fixed(100),
            read_window: Duration::from_secs(10),
            members_per_write: 3,
        }
    }

    const WRITE: Cost = Cost { ru: 1, writes: 1 };
    const READ: Cost = Cost { ru: 1, writes: 0 };

    #[test]
    fn write_quota_refuses_then_blocks_until_retry_after_even_if_refilled() {
        let mut lane = Lane::new();
        let t0 = Instant::now();
        assert!(lane.admit(&tiny(), 1, WRITE, t0).is_ok());
        assert!(lane.admit(&tiny(), 1, WRITE, t0).is_ok());
        let refused = lane.admit(&tiny(), 1, WRITE, t0).unwrap_err();
        assert_eq!(
            refused,
            Throttled {
                retry_after_secs: 1,
                limit: "Write",
                information: "WriteLimitExceeded"
            }
        );
        // Reads are still allowed while writes are throttled.
        assert!(lane.admit(&tiny(), 1, READ, t0).is_ok());
        // Half-way through the pause: refused again, with the remaining time.
        let again = lane
            .admit(&tiny(), 1, WRITE, t0 + Duration::from_millis(500))
            .unwrap_err();
        assert_eq!(again.retry_after_secs, 1);
        assert!(
            lane.admit(&tiny(), 1, WRITE, t0 + Duration::from_millis(1_000))
                .is_ok()
        );
    }

    #[test]
    fn ru_budget_blocks_reads_and_writes() {
        let config = ThrottleConfig {
            ru_quota: RuQuota::Fixed(3),
            ..tiny()
        };
        let mut lane = Lane::new();
        let t0 = Instant::now();
        let big = Cost { ru: 2, writes: 0 };
        assert!(lane.admit(&config, 1, big, t0).is_ok());
        let refused = lane.admit(&config, 1, big, t0).unwrap_err();
        assert_eq!(refused.limit, "ReadWrite");
        assert_eq!(refused.information, "ResourceUnitLimitExceeded");
        assert_eq!(refused.retry_after_secs, 4, "1 RU missing at 0.3 RU/s");
        assert!(lane.admit(&config, 1, WRITE, t0).is_err());
    }

    #[test]
    fn limit_percentage_appears_above_80_percent() {
        let config = ThrottleConfig {
            ru_quota: RuQuota::Fixed(10),
            ..tiny()
        };
        let mut lane = Lane::new();
        let t0 = Instant::now();
        let mut shares = Vec::new();
        for _ in 0..10 {
            shares.push(lane.admit(&config, 1, READ, t0).unwrap());
        }
        assert!(shares[..8].iter().all(Option::is_none));
        assert!(shares[8].is_some_and(|s| s > 0.8));
    }

    #[test]
    fn a_member_bind_patch_costs_a_write_per_three_members() {
        let config = ThrottleConfig::default();
        assert_eq!(config.member_bind_writes(1), 1);
        assert_eq!(config.member_bind_writes(3), 1);
        assert_eq!(config.member_bind_writes(4), 2);
        assert_eq!(config.member_bind_writes(20), 7);
        let flat = ThrottleConfig {
            members_per_write: 0,
            ..config
        };
        assert_eq!(flat.member_bind_writes(20), 1);
    }

    #[test]
    fn a_multi_write_request_drains_the_write_quota_by_its_cost() {
        let config = ThrottleConfig {
            write_quota: 10,
            ..tiny()
        };
        let mut lane = Lane::new();
        let t0 = Instant::now();
        let bind = Cost { ru: 1, writes: 7 };
        assert!(lane.admit(&config, 1, bind, t0).is_ok());
        let refused = lane.admit(&config, 1, bind, t0).unwrap_err();
        assert_eq!(refused.information, "WriteLimitExceeded");
    }

    #[test]
    fn tenant_size_sets_the_ru_budget() {
        let config = ThrottleConfig::default();
        assert_eq!(config.ru_capacity(49), 3_500.0);
        assert_eq!(config.ru_capacity(500), 5_000.0);
        assert_eq!(config.ru_capacity(501), 8_000.0);
    }
}
