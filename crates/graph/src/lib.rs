//! Microsoft Graph client: auth, paging, batching, throttling signals and typed outcomes.
//!
//! - [`GraphClient`] holds one pooled HTTP client, the cached token and the rate
//!   [`RequestGate`]; it is cheap to clone.
//! - Every answer is classified with `entra_sync_core::failure::classify`: callers get
//!   [`Written`] or [`GraphFailure`], never a raw status.
//! - Short waits are retried inline by the [`RetryPolicy`]; longer ones come back as
//!   transient failures with their `retry_after`.
//! - In dry run no mutating request leaves the process; [`Written::DryRun`] shows it.
//! - Groups are created with the idempotent upsert by `uniqueName` (`upsert`).

mod auth;
mod batch;
mod client;
mod credential;
mod deleted;
mod gate;
mod ops;
mod outcome;
mod retry;
mod signals;
mod upsert;

pub use batch::{BatchItem, BatchRequest, MAX_BATCH, MemberAddReport};
pub use client::{BuildError, GraphClient, GraphConfig, Priority};
pub use credential::{Credential, CredentialError, JWT_BEARER, check_credential};
pub use entra_sync_core::secret::{Secret, SecretSource};
pub use gate::{NoopGate, RequestCost, RequestGate};
pub use ops::{GroupLookup, MemberRef, Pager, UserLookup, VerifiedDomain, eq_filter};
pub use outcome::{GraphFailure, RequestRecord, Written};
pub use retry::RetryPolicy;
pub use signals::ThrottleSignals;
pub use upsert::Upserted;
