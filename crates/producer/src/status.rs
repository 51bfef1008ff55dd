//! What operators see of the shared state, read from PostgreSQL on demand:
//!
//! - [`ProviderStatus`]: one provider's halt, current and last full sync,
//!   recent failures and dead letters (module `snapshot`);
//! - [`StateGauges`]: the same as Prometheus gauges, refreshed before each
//!   scrape of `/metrics` (module `gauges`);
//! - [`page`]: the read-only HTML status page on `[producer] status_listen`.
//!
//! Any replica can serve them: they read only the database.

mod gauges;
pub mod page;
mod snapshot;

pub use gauges::StateGauges;
pub use snapshot::{ProviderStatus, Watched};
