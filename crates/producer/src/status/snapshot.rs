//! One provider's state as the database holds it now.

use crate::scheduler::ProviderSchedule;
use entra_sync_store::outcomes::Failure;
use entra_sync_store::overview::DeadLetter;
use entra_sync_store::providers::Halt;
use entra_sync_store::runs::{Run, RunState};
use entra_sync_store::{Store, StoreError};
use std::time::Duration;

/// A configured provider whose state is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watched {
    /// Its name.
    pub name: String,
    /// How often it runs a full sync.
    pub full_sync_interval: Duration,
}

impl Watched {
    /// The providers a producer schedules.
    pub fn of(schedules: &[ProviderSchedule]) -> Vec<Self> {
        schedules
            .iter()
            .map(|s| Self {
                name: s.provider.name.clone(),
                full_sync_interval: s.full_sync_interval,
            })
            .collect()
    }
}

/// One provider's state.
#[derive(Debug, Clone)]
pub struct ProviderStatus {
    /// The provider.
    pub provider: Watched,
    /// Why it is halted, if it is.
    pub halt: Option<Halt>,
    /// The full sync running now.
    pub current: Option<Run>,
    /// The newest finished full sync (done or failed).
    pub last: Option<Run>,
    /// The newest full sync that finished as done.
    pub last_success: Option<Run>,
    /// Its dead letters.
    pub dead_letters: i64,
    /// The newest object failures, newest first (empty unless asked for).
    pub recent_failures: Vec<Failure>,
    /// The newest dead letters, newest first (empty unless asked for).
    pub recent_dead_letters: Vec<DeadLetter>,
}

impl ProviderStatus {
    /// Reads `provider`'s state, with up to `listed` of its newest failures and dead letters.
    pub async fn read(store: &Store, provider: &Watched, listed: i64) -> Result<Self, StoreError> {
        let name = provider.name.as_str();
        let current = store
            .latest_run(name)
            .await?
            .filter(|run| run.state == RunState::Running);
        let (recent_failures, recent_dead_letters) = if listed > 0 {
            (
                store.recent_failures(name, listed).await?,
                store.recent_dead_letters(name, listed).await?,
            )
        } else {
            (Vec::new(), Vec::new())
        };
        Ok(Self {
            provider: provider.clone(),
            halt: store.halt_of(name).await?,
            current,
            last: store.last_finished_run(name, false).await?,
            last_success: store.last_finished_run(name, true).await?,
            dead_letters: store.dead_letter_count(name).await?,
            recent_failures,
            recent_dead_letters,
        })
    }
}
